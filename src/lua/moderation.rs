//! `gatehouse.moderation`: token moderation decisions from Lua.

use mlua::{Lua, Result, Table, Value};

use super::convert::claim_json;
use crate::moderation::{self, Grantor, ModerationClaims, ModerationPolicy};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("affiliation", lua.create_function(affiliation)?)?;
    t.set("owner_grant", lua.create_function(owner_grant)?)?;
    t.set("role_grant", lua.create_function(role_grant)?)?;
    Ok(t)
}

/// `affiliation(claims, is_admin, accept_context_user)` → `"owner"` or `"member"`. `claims` is
/// the verified claims table (or one shaped like it: `moderator`, `context.user`); claims of
/// any odd shape count as none. `accept_context_user` defaults to true, as the option does.
fn affiliation(
    lua: &Lua,
    (claims, is_admin, accept_context_user): (Value, Value, Value),
) -> Result<&'static str> {
    let policy = ModerationPolicy {
        accept_context_user: !matches!(accept_context_user, Value::Boolean(false)),
    };
    let claims = ModerationClaims::from_claims(&claim_json(lua, claims));
    Ok(policy.affiliation(&claims, matches!(is_admin, Value::Boolean(true))).as_str())
}

/// `owner_grant(grantor, target_is_owner_by_token)` → `"apply"`, `"acknowledge"` or
/// `"refuse"`. `grantor` is `"focus"`, `"admin"` or anything else (another grantor).
fn owner_grant(_: &Lua, (grantor, target_is_owner): (Value, Value)) -> Result<&'static str> {
    let target_is_owner = matches!(target_is_owner, Value::Boolean(true));
    Ok(moderation::owner_grant(grantor_of(&grantor), target_is_owner).as_str())
}

/// `role_grant(grantor, target_is_owner_by_token)` → `"apply"` or `"refuse"`: a grant of the
/// moderator role to an occupant below admin.
fn role_grant(_: &Lua, (grantor, target_is_owner): (Value, Value)) -> Result<&'static str> {
    let target_is_owner = matches!(target_is_owner, Value::Boolean(true));
    Ok(moderation::moderator_role_grant(grantor_of(&grantor), target_is_owner).as_str())
}

fn grantor_of(grantor: &Value) -> Grantor {
    match grantor {
        Value::String(s) if &*s.as_bytes() == b"focus" => Grantor::Focus,
        Value::String(s) if &*s.as_bytes() == b"admin" => Grantor::Admin,
        _ => Grantor::Other,
    }
}
