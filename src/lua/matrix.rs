//! `gatehouse.matrix`: Matrix user verification (UVS) from Lua.

use std::time::Instant;

use mlua::{IntoLuaMulti, Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};
use serde_json::Value as Json;

use super::convert::{self, client_text, failure, json_to_lua, opt_bool, opt_number, opt_string};
use super::jobs::{prepare, Call};
use crate::clock::UnixTime;
use crate::matrix::{self, Admission, Check, Config, MatrixError, Verifier};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("new_verifier", lua.create_function(new_verifier)?)?;
    // `room_id(name)` → the Matrix room ID a Jitsi room name encodes, or nil.
    t.set(
        "room_id",
        lua.create_function(|_, name: Value| {
            Ok(client_text(&name).and_then(|n| matrix::room_id_from_name(&n)))
        })?,
    )?;
    // `canonical_room_id(node)` → that Matrix room ID only when the MUC room node is exactly its
    // canonical name (unpadded lower-case base32), else nil: what a join is checked against.
    t.set(
        "canonical_room_id",
        lua.create_function(|_, node: Value| {
            Ok(client_text(&node).and_then(|n| matrix::room_id_from_canonical_name(&n)))
        })?,
    )?;
    Ok(t)
}

/// `new_verifier{ uvs_base_url, uvs_auth_token | homeserver_url, homeserver_admin_token,
/// sync_power_levels, app_id, check_issuer, timeout, max_reply_size, cache_ttl, cache_size,
/// federation, federation_allow_private }`
/// (seconds and bytes).
fn new_verifier(lua: &Lua, options: Table) -> Result<MultiValue> {
    let uvs = opt_string(&options, "uvs_base_url")?;
    let homeserver = opt_string(&options, "homeserver_url")?;
    let mut config = match (uvs, homeserver) {
        (Some(url), None) => {
            let token = opt_string(&options, "uvs_auth_token")?.filter(|t| !t.is_empty());
            Config::uvs(&url, token)
        }
        (None, Some(url)) => {
            let token = opt_string(&options, "homeserver_admin_token")?.unwrap_or_default();
            Config::homeserver(&url, token)
        }
        (Some(_), Some(_)) => {
            let text = "set either uvs_base_url or the homeserver URL, not both";
            return failure(lua, "bad-config", text, "bad-config");
        }
        (None, None) => {
            return failure(lua, "bad-config", "uvs_base_url is required", "bad-config");
        }
    };
    config.sync_power_levels = opt_bool(&options, "sync_power_levels")?.unwrap_or(false);
    config.app_id = opt_string(&options, "app_id")?;
    config.check_issuer = opt_bool(&options, "check_issuer")?.unwrap_or(false);
    if let Some(seconds) = opt_number(&options, "timeout")? {
        // A zero timeout would mean "no deadline" to some clients; never let it.
        config.limits.timeout = convert::seconds(seconds.clamp(0.001, 3600.0));
    }
    if let Some(bytes) = opt_number(&options, "max_reply_size")? {
        config.limits.max_body = bytes as u64;
    }
    if let Some(seconds) = opt_number(&options, "cache_ttl")? {
        config.cache_ttl = convert::seconds(seconds.min(86_400.0));
    }
    if let Some(size) = opt_number(&options, "cache_size")? {
        config.cache_size = size as usize;
    }
    config.federation = opt_bool(&options, "federation")?.unwrap_or(true);
    config.federation_allow_private =
        opt_bool(&options, "federation_allow_private")?.unwrap_or(false);
    match Verifier::new(config) {
        Ok(verifier) => {
            Ok(MultiValue::from_vec(vec![Value::UserData(lua.create_userdata(verifier)?)]))
        }
        Err(error) => failure(lua, "bad-config", &error, "bad-config"),
    }
}

impl UserData for Verifier {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `verifier:forget(room_id, user_id)`: drop cached answers for that user in that room.
        methods.add_method("forget", |_, this, (room_id, user_id): (Value, Value)| {
            if let (Some(room_id), Some(user_id)) = (client_text(&room_id), client_text(&user_id)) {
                this.forget(&room_id, &user_id);
            }
            Ok(())
        });
        // `verifier:room_members(room_id)` → a Job whose result is `{ [user_id] = is_owner }`
        // for the room's joined members (homeserver mode), or `nil, condition, text, reason,
        // detail`.
        methods.add_method("room_members", |lua, this, room_id: Value| {
            let Some(room_id) = client_text(&room_id) else {
                return (Value::Nil, "bad-request", "room_members needs a room ID")
                    .into_lua_multi(lua);
            };
            let verifier = this.clone();
            // Rounds of the re-check for the same room share one query.
            let call =
                Call::to(verifier.config().backend.base_url(), Some(format!("members {room_id}")));
            prepare(
                lua,
                call,
                move || verifier.room_members(&room_id),
                |lua, result| match result {
                    Ok(members) => {
                        let t = lua.create_table_with_capacity(0, members.len())?;
                        for (user_id, is_owner) in members {
                            t.set(user_id.as_str(), *is_owner)?;
                        }
                        Ok(MultiValue::from_vec(vec![Value::Table(t)]))
                    }
                    Err(error) => (
                        Value::Nil,
                        error.condition(),
                        error.text(),
                        error.reason(),
                        error.to_string(),
                    )
                        .into_lua_multi(lua),
                },
            )
        });
        // `verifier:verify(token, room_name)` → an admission table
        // `{ room_id, user_id, is_owner, cached, claims }`; or `nil, condition, text, reason,
        // detail`; or a Job when UVS must be asked (the answer comes from `job:result()`).
        methods.add_method("verify", |lua, this, (token, room): (Value, Value)| {
            let token = match token {
                Value::Nil => None,
                // Not text at all: as undecodable as a garbage string.
                other => Some(client_text(&other).unwrap_or_default()),
            };
            let room = client_text(&room);
            match this.check(token.as_deref(), room.as_deref(), UnixTime::now(), Instant::now()) {
                Check::Done(result) => reply(lua, result),
                // The same token for the same room (a reconnect, a second tab) is one question.
                Check::Ask(ask) => {
                    let verifier = this.clone();
                    let key = question_key(token.as_deref(), room.as_deref());
                    let call = Call::to(verifier.config().backend.base_url(), Some(key));
                    prepare(
                        lua,
                        call,
                        move || verifier.ask(ask),
                        |lua, result| reply(lua, result.clone()),
                    )
                }
            }
        });
    }
}

/// What identifies a UVS question: a digest of the widget token and the room name (everything
/// the answer depends on), so credentials are not kept as map keys.
fn question_key(token: Option<&str>, room: Option<&str>) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(token.unwrap_or_default().as_bytes());
    context.update(&[0]);
    context.update(room.unwrap_or_default().as_bytes());
    data_encoding::HEXLOWER.encode(context.finish().as_ref())
}

fn reply(lua: &Lua, result: std::result::Result<Admission, MatrixError>) -> Result<MultiValue> {
    match result {
        Ok(admission) => {
            let t = lua.create_table()?;
            t.set("room_id", admission.room_id)?;
            t.set("user_id", admission.user_id)?;
            t.set("is_owner", admission.is_owner)?;
            t.set("cached", admission.cached)?;
            t.set("claims", json_to_lua(lua, &Json::Object(admission.claims.0))?)?;
            Ok(MultiValue::from_vec(vec![Value::Table(t)]))
        }
        Err(error) => {
            (Value::Nil, error.condition(), error.text(), error.reason(), error.to_string())
                .into_lua_multi(lua)
        }
    }
}
