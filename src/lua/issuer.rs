//! `gatehouse.issuer`: the Chat Admin Server protocol from Lua, for `mod_gatehouse_issuer`.
//!
//! ```lua
//! local issuer = gatehouse.issuer.new({ app_id = …, secret = …, domain = … });
//! local conn = issuer:new_connection();            -- one per socket
//! local out, outcomes = conn:feed(data);           -- bytes to write back, and what happened
//! -- on an oversized frame: nil, "policy-violation", text, last_bytes (write them, close)
//! ```

use std::sync::Arc;

use mlua::{
    IntoLuaMulti, Lua, LuaString, MultiValue, Result, Table, UserData, UserDataMethods, Value,
};

use super::convert::{failure, opt_bool, opt_number, opt_string, opt_string_list};
use crate::clock::UnixTime;
use crate::issuer::{is_loopback_host, Answer, Connection, Issuer, IssuerConfig};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("new", lua.create_function(new)?)?;
    t.set(
        "is_loopback",
        lua.create_function(|_, host: Value| {
            Ok(matches!(&host, Value::String(s) if s.to_str().is_ok_and(|h| is_loopback_host(&h))))
        })?,
    )?;
    Ok(t)
}

/// An issuer shared by all of a module's connections.
struct IssuerHandle(Arc<Issuer>);

/// `new{ app_id, secret, domain, max_validity, max_frame_size, legacy_user_string,
/// shared_secret, channels }` → issuer, or `nil, "bad-config", text`.
fn new(lua: &Lua, config: Table) -> Result<MultiValue> {
    let required =
        |key: &str| -> Result<String> { Ok(opt_string(&config, key)?.unwrap_or_default()) };
    let mut settings =
        IssuerConfig::new(required("app_id")?, required("secret")?, required("domain")?);
    if let Some(seconds) = opt_number(&config, "max_validity")? {
        settings.max_validity = seconds as u64;
    }
    if let Some(bytes) = opt_number(&config, "max_frame_size")? {
        settings.max_frame_bytes = bytes as usize;
    }
    if let Some(legacy) = opt_bool(&config, "legacy_user_string")? {
        settings.legacy_user_string = legacy;
    }
    settings.shared_secret = opt_string(&config, "shared_secret")?;
    settings.channels = opt_string_list(&config, "channels")?;
    match Issuer::new(settings) {
        Ok(issuer) => IssuerHandle(Arc::new(issuer)).into_lua_multi(lua),
        Err(error) => failure(lua, "bad-config", error, "bad-config"),
    }
}

impl UserData for IssuerHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("new_connection", |_, this, ()| Ok(this.0.connection()));
        // A `success: false` reply not tied to a request (a full server), to write and close.
        methods.add_method("refusal", |lua, _, message: String| {
            lua.create_string(Answer::refusal(message, UnixTime::now()))
        });
    }
}

impl UserData for Connection {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `conn:feed(data)` → `replies, outcomes`; or `nil, "policy-violation", text, replies`
        // when a frame was too large (write the replies, then close).
        methods.add_method_mut("feed", |lua, this, data: LuaString| -> Result<MultiValue> {
            let fed = this.feed(&data.as_bytes(), UnixTime::now());
            let output = lua.create_string(&fed.output)?;
            match fed.closing {
                Some(too_large) => (Value::Nil, "policy-violation", too_large.to_string(), output)
                    .into_lua_multi(lua),
                None => (output, outcomes(lua, &fed.answers)?).into_lua_multi(lua),
            }
        });
    }
}

/// What each request came to, for the module's log: never the token.
fn outcomes(lua: &Lua, answers: &[Answer]) -> Result<Table> {
    let list = lua.create_table()?;
    for answer in answers {
        let item = lua.create_table()?;
        match &answer.outcome {
            Ok(grant) => {
                item.set("success", true)?;
                item.set("channel", grant.channel.as_str())?;
                item.set("moderator", grant.moderator)?;
                item.set("expires", grant.expires)?;
            }
            Err(error) => {
                item.set("success", false)?;
                item.set("message", error.to_string())?;
            }
        }
        list.push(item)?;
    }
    Ok(list)
}
