//! `gatehouse.security`: security-on-demand decisions from Lua.

use mlua::{Lua, Result, Table, Value};

use super::convert::{claim_json, flag};
use crate::security::{self, JoinState, RoomRequest, RoomState, SecurityAction};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("plan", lua.create_function(plan)?)?;
    t.set("bypass", lua.create_function(bypass)?)?;
    Ok(t)
}

/// `plan(context_room, state)` → an array of `{ verb = "enable-lobby" }`,
/// `{ verb = "set-members-only", value = true }`, `{ verb = "set-password", value = "pw" }`, …
/// in the order to apply them; what the room already is plans nothing. `state` holds
/// `lobby_on`, `members_only`, `lobby_available` (flags) and `password` (the room's current
/// password, or nil); a `context_room` of any odd shape asks for nothing.
fn plan(lua: &Lua, (context_room, state): (Value, Table)) -> Result<Table> {
    let request = RoomRequest::from_context_room(&claim_json(lua, context_room));
    let password = room_password(&state)?;
    let state = RoomState {
        lobby_on: flag(&state, "lobby_on")?,
        members_only: flag(&state, "members_only")?,
        password: password.as_deref(),
        lobby_available: flag(&state, "lobby_available")?,
    };
    let actions = lua.create_table()?;
    for (i, action) in security::plan(&request, &state).into_iter().enumerate() {
        let entry = lua.create_table()?;
        entry.set("verb", action.verb())?;
        match action {
            SecurityAction::SetMembersOnly(on) => entry.set("value", on)?,
            SecurityAction::SetPassword(password) => entry.set("value", password)?,
            _ => {}
        }
        actions.raw_set(i + 1, entry)?;
    }
    Ok(actions)
}

/// `bypass(context_user, state)` → an array of verbs (`"supply-password"`,
/// `"admit-as-member"`); empty unless `context_user.security_bypass` is the boolean `true`.
/// `state` holds `password_set` and `affiliated`.
fn bypass(lua: &Lua, (context_user, state): (Value, Table)) -> Result<Table> {
    let state = JoinState {
        password_set: flag(&state, "password_set")?,
        affiliated: flag(&state, "affiliated")?,
    };
    let verbs = security::bypass_plan(&claim_json(lua, context_user), &state)
        .into_iter()
        .map(|action| action.verb());
    lua.create_sequence_from(verbs)
}

/// The room's current password from the state table. Prosody's XML parser only lets UTF-8
/// through; anything else is still a password (kept lossily), so the room counts as protected.
fn room_password(state: &Table) -> Result<Option<String>> {
    Ok(match state.get::<Value>("password")? {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => None,
    })
}
