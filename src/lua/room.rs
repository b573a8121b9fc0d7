//! `gatehouse.room`: Jitsi's room-claim check from Lua.

use mlua::{IntoLuaMulti, Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};

use super::convert::{client_text, opt_bool, opt_number, opt_string};
use crate::lua_pattern::Budget;
use crate::room::{RoomClaims, RoomPolicy, RoomVerdict};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("new_policy", lua.create_function(new_policy)?)?;
    Ok(t)
}

/// `new_policy{ enable_domain_verification, muc_mapper_domain_base, … }` with Jitsi's names.
fn new_policy(_: &Lua, config: Table) -> Result<RoomPolicy> {
    let defaults = Budget::default();
    let policy = RoomPolicy {
        domain_verification: opt_bool(&config, "enable_domain_verification")?.unwrap_or(false),
        muc_domain_base: opt_string(&config, "muc_mapper_domain_base")?,
        muc_domain_prefix: opt_string(&config, "muc_mapper_domain_prefix")?
            .unwrap_or_else(|| "conference".into()),
        muc_domain: opt_string(&config, "muc_mapper_domain")?,
        patterns_enabled: opt_bool(&config, "token_regex_enabled")?.unwrap_or(true),
        pattern_budget: Budget {
            max_pattern_len: opt_number(&config, "token_regex_room_max_length")?
                .map_or(defaults.max_pattern_len, |n| n as usize),
            max_quantifiers: opt_number(&config, "token_regex_max_quantifiers")?
                .map_or(defaults.max_quantifiers, |n| n as usize),
            ..defaults
        },
    };
    Ok(policy)
}

impl UserData for RoomPolicy {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `policy:verify(room_jid, room_claim, sub_claim, room_is_pattern)` →
        // `true` or `false, error_element, text`.
        methods.add_method(
            "verify",
            |lua,
             this,
             (room_jid, room, sub, pattern): (Value, Value, Value, Value)|
             -> Result<MultiValue> {
                let Some(room_jid) = client_text(&room_jid) else {
                    return (
                        false,
                        "room-mismatch",
                        "Room and token mismatched (bad room address)",
                    )
                        .into_lua_multi(lua);
                };
                let room = client_text(&room);
                let sub = client_text(&sub);
                let room_is_pattern = match pattern {
                    Value::Boolean(b) => b,
                    Value::String(s) => s.to_str().is_ok_and(|s| &*s == "true"),
                    _ => false,
                };
                let claims =
                    RoomClaims { room: room.as_deref(), sub: sub.as_deref(), room_is_pattern };
                match this.verify(claims, &room_jid) {
                    RoomVerdict::Allow => true.into_lua_multi(lua),
                    RoomVerdict::Deny(denial) => {
                        (false, denial.error_element(), denial.to_string()).into_lua_multi(lua)
                    }
                }
            },
        );
    }
}
