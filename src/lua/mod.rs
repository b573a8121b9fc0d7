//! The one place that knows Lua: `require "gatehouse"` returns the table built here.
//!
//! Each export converts Lua values to the core's types, calls the core, and converts back.
//! Expected failures come back as `nil, condition, text[, reason]`; a Lua error is raised only
//! for a caller's bug (such as a config table of the wrong shape), never for client input.

mod convert;
mod http;
mod issuer;
mod jobs;
mod matrix;
mod moderation;
mod room;
mod security;
mod token;
mod wallet;

use mlua::{Lua, Result, Table};

/// Entry point: Lua's `require "gatehouse"` calls `luaopen_gatehouse`, generated from this.
#[mlua::lua_module]
fn gatehouse(lua: &Lua) -> Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", env!("CARGO_PKG_VERSION"))?;
    exports.set("token", token::exports(lua)?)?;
    exports.set("room", room::exports(lua)?)?;
    exports.set("jobs", jobs::exports(lua)?)?;
    exports.set("security", security::exports(lua)?)?;
    exports.set("moderation", moderation::exports(lua)?)?;
    exports.set("matrix", matrix::exports(lua)?)?;
    exports.set("issuer", issuer::exports(lua)?)?;
    exports.set("wallet", wallet::exports(lua)?)?;
    exports.set("http", http::exports(lua)?)?;
    Ok(exports)
}
