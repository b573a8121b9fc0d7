//! gatehouse: native access control for Jitsi Meet's Prosody.
//!
//! The crate has two halves. The core modules below are plain Rust (no Lua): they parse,
//! verify and decide, and `cargo test` exercises them without any Lua library. The `lua`
//! module, built only with one of the `lua5x`/`luajit` features, is the single place that
//! knows Lua: it turns Lua tables into the core's types and the core's answers back into Lua
//! values, and exports `luaopen_gatehouse` for Prosody's `require "gatehouse"`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
pub mod clock;
pub mod dns;
pub mod flight;
pub mod guild;
pub mod http;
pub mod issuer;
pub mod jobs;
pub mod keys;
pub mod lua_pattern;
pub mod matrix;
pub mod moderation;
pub mod room;
pub mod security;
pub mod token;
pub mod trust;
pub mod wallet;

#[cfg(feature = "module")]
mod lua;

/// Compile-time check that what worker threads share can cross threads.
fn _ensure_send_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<token::Verifier>();
    is_send_sync::<jobs::JobPool<u8>>();
    is_send_sync::<matrix::Verifier>();
    is_send_sync::<issuer::Issuer>();
    is_send_sync::<guild::Client>();
    is_send_sync::<wallet::challenge::ChallengeStore>();
}
