//! `gatehouse.room`: Jitsi's room-claim check from Lua.

use mlua::{IntoLuaMulti, Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};

use super::convert::{client_text, opt_bool, opt_number, opt_string};
use crate::lua_pattern::Budget;
use crate::room::{Claim, JoinContext, RoomClaims, RoomPolicy, RoomVerdict};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("new_policy", lua.create_function(new_policy)?)?;
    Ok(t)
}

/// `new_policy{ enable_domain_verification, muc_mapper_domain_base, … }` with Jitsi's names
/// and defaults.
fn new_policy(_: &Lua, config: Table) -> Result<RoomPolicy> {
    let defaults = RoomPolicy::default();
    let budget = defaults.pattern_budget;
    let policy = RoomPolicy {
        domain_verification: opt_bool(&config, "enable_domain_verification")?
            .unwrap_or(defaults.domain_verification),
        muc_domain_base: opt_string(&config, "muc_mapper_domain_base")?,
        muc_domain_prefix: opt_string(&config, "muc_mapper_domain_prefix")?
            .unwrap_or(defaults.muc_domain_prefix),
        muc_domain: opt_string(&config, "muc_mapper_domain")?,
        require_room_claim: opt_bool(&config, "asap_require_room_claim")?
            .unwrap_or(defaults.require_room_claim),
        patterns_enabled: opt_bool(&config, "token_regex_enabled")?
            .unwrap_or(defaults.patterns_enabled),
        pattern_budget: Budget {
            max_pattern_len: opt_number(&config, "token_regex_room_max_length")?
                .map_or(budget.max_pattern_len, |n| n as usize),
            max_quantifiers: opt_number(&config, "token_regex_max_quantifiers")?
                .map_or(budget.max_quantifiers, |n| n as usize),
            ..budget
        },
    };
    Ok(policy)
}

/// A claim read from the claims table, owned until the check borrows it.
enum ClaimValue {
    Absent,
    Text(String),
    Other,
}

impl ClaimValue {
    fn read(value: &Value) -> Self {
        match (value, client_text(value)) {
            (Value::Nil, _) => ClaimValue::Absent,
            (_, Some(text)) => ClaimValue::Text(text),
            _ => ClaimValue::Other,
        }
    }

    fn borrow(&self) -> Claim<'_> {
        match self {
            ClaimValue::Absent => Claim::Absent,
            ClaimValue::Text(text) => Claim::Text(text),
            ClaimValue::Other => Claim::Other,
        }
    }
}

fn field(table: Option<&Table>, key: &str) -> Result<Value> {
    table.map_or(Ok(Value::Nil), |t| t.raw_get(key))
}

fn as_table(value: Value) -> Option<Table> {
    match value {
        Value::Table(t) => Some(t),
        _ => None,
    }
}

impl UserData for RoomPolicy {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `policy:verify(room_jid, claims, url_tenant, closed_to_guests)` with the session's
        // verified claims (nil without any) → `true, nil, nil, tenant_mismatch` or
        // `false, error_element|nil, text, tenant_mismatch, detail`.
        methods.add_method(
            "verify",
            |lua,
             this,
             (room_jid, claims, url_tenant, closed): (Value, Value, Value, Value)|
             -> Result<MultiValue> {
                let room_jid = client_text(&room_jid).unwrap_or_default();
                let claims = as_table(claims);
                let context = as_table(field(claims.as_ref(), "context")?);
                let room_context = as_table(field(context.as_ref(), "room")?);
                let room = ClaimValue::read(&field(claims.as_ref(), "room")?);
                let sub = ClaimValue::read(&field(claims.as_ref(), "sub")?);
                let tenant = ClaimValue::read(&field(context.as_ref(), "tenant")?);
                let room_is_pattern = match field(room_context.as_ref(), "regex")? {
                    Value::Boolean(b) => b,
                    Value::String(s) => s.to_str().is_ok_and(|s| &*s == "true"),
                    _ => false,
                };
                let claims = RoomClaims {
                    room: room.borrow(),
                    sub: sub.borrow(),
                    tenant: tenant.borrow(),
                    room_is_pattern,
                };
                let url_tenant = client_text(&url_tenant).unwrap_or_default();
                let join = JoinContext {
                    url_tenant: &url_tenant,
                    closed_to_guests: matches!(closed, Value::Boolean(true)),
                };
                let check = this.verify(claims, &room_jid, join);
                match check.verdict {
                    RoomVerdict::Allow => {
                        (true, Value::Nil, Value::Nil, check.tenant_mismatch).into_lua_multi(lua)
                    }
                    RoomVerdict::Deny(denial) => (
                        false,
                        denial.error_element(),
                        denial.to_string(),
                        check.tenant_mismatch,
                        denial.detail(),
                    )
                        .into_lua_multi(lua),
                }
            },
        );
        // The main MUC's domain, where upstream looks the room up (nil without
        // muc_mapper_domain_base).
        methods.add_method("muc_domain", |_, this, ()| Ok(this.muc_domain()));
    }
}
