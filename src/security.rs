//! Security on demand: what a token's `context.room` asks of a room, and who may skip its gates.
//!
//! The rules are jitsi-contrib's `mod_token_security_ondemand`: after a token holder joins,
//! `context.room.lobby` (a real boolean only) switches the lobby on or off and
//! `context.room.password` (a string; `""` clears) sets the room password; before a holder
//! joins, `context.user.security_bypass == true` lets them past the password and the lobby.
//!
//! This module only decides. [`plan`] compares the request with the room's state and returns
//! the changes as [`SecurityAction`]s, in the order the Prosody module must apply them; a request
//! the room already satisfies (the same password again) plans nothing, so repeated joins neither
//! rewrite the room nor make clients re-read its configuration. It never
//! plans a half state: with Jitsi's lobby, "lobby off" also turns members-only off (Jitsi's
//! `destroy-lobby-room` leaves it on), and without Jitsi's lobby modules the room's members-only
//! mode stands in for the lobby, so the room is protected either way.

use serde_json::Value;

/// What a token's `context.room` asks for. Values of the wrong type are ignored, as upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomRequest {
    /// `context.room.lobby`: only a real boolean counts (`"true"` is ignored).
    pub lobby: Option<bool>,
    /// `context.room.password`: a string sets the password, the empty string clears it.
    pub password: Option<PasswordRequest>,
}

/// What `context.room.password` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordRequest {
    /// Protect the room with this (non-empty) password.
    Set(String),
    /// Remove the room's password (`""` in the token).
    Clear,
}

impl RoomRequest {
    /// Reads `context.room`; anything that is not an object asks for nothing.
    pub fn from_context_room(context_room: &Value) -> RoomRequest {
        let lobby = context_room.get("lobby").and_then(Value::as_bool);
        let password = context_room.get("password").and_then(Value::as_str).map(|password| {
            if password.is_empty() {
                PasswordRequest::Clear
            } else {
                PasswordRequest::Set(password.to_string())
            }
        });
        RoomRequest { lobby, password }
    }
}

/// The room as it is when the token holder has joined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomState<'a> {
    /// Jitsi's lobby is attached to the room (`room._data.lobbyroom ~= nil`).
    pub lobby_on: bool,
    /// The room admits members only (`room:get_members_only()`).
    pub members_only: bool,
    /// The room's current password (`room:get_password()`), if it has one.
    pub password: Option<&'a str>,
    /// Jitsi's lobby modules (`muc_lobby_rooms` and `persistent_lobby`) answer the lobby events.
    /// Without them the room's members-only mode is the lobby.
    pub lobby_available: bool,
}

/// One change to a room, in the words of the Prosody module that applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityAction {
    /// Fire `create-persistent-lobby-room {room, skip_display_name_check = true}`; Jitsi's
    /// handler makes present occupants members and the room members-only.
    EnableLobby,
    /// Fire `destroy-lobby-room {room, newjid = room.jid}`. Always preceded by
    /// `SetMembersOnly(false)` when the room is members-only.
    DisableLobby,
    /// `room:set_members_only(on)`; when turning it on, present occupants become members first
    /// so nobody already in the room is removed.
    SetMembersOnly(bool),
    /// `room:set_password(password)`; planned only when the room has another password or none.
    SetPassword(String),
    /// `room:set_password(nil)`.
    ClearPassword,
}

impl SecurityAction {
    /// The name the binding hands to Lua (`"enable-lobby"`, `"set-members-only"`, …).
    pub fn verb(&self) -> &'static str {
        match self {
            SecurityAction::EnableLobby => "enable-lobby",
            SecurityAction::DisableLobby => "disable-lobby",
            SecurityAction::SetMembersOnly(_) => "set-members-only",
            SecurityAction::SetPassword(_) => "set-password",
            SecurityAction::ClearPassword => "clear-password",
        }
    }
}

/// The changes `request` makes to a room in `state`, in the order to apply them.
pub fn plan(request: &RoomRequest, state: &RoomState<'_>) -> Vec<SecurityAction> {
    let mut actions = Vec::new();
    match (request.lobby, state.lobby_available) {
        (Some(true), true) => {
            if !state.lobby_on {
                // Jitsi's create-lobby-room turns members-only on itself.
                actions.push(SecurityAction::EnableLobby);
            } else if !state.members_only {
                // A lobby nobody has to pass: close the room again.
                actions.push(SecurityAction::SetMembersOnly(true));
            }
        }
        (Some(false), true) => {
            // Upstream's order: destroy-lobby-room does not clear members-only, and a room left
            // members-only without a lobby would refuse everyone with nowhere to wait.
            if state.members_only {
                actions.push(SecurityAction::SetMembersOnly(false));
            }
            if state.lobby_on {
                actions.push(SecurityAction::DisableLobby);
            }
        }
        (Some(on), false) => {
            if state.members_only != on {
                actions.push(SecurityAction::SetMembersOnly(on));
            }
        }
        (None, _) => {}
    }
    match &request.password {
        Some(PasswordRequest::Set(password)) if state.password != Some(password.as_str()) => {
            actions.push(SecurityAction::SetPassword(password.clone()))
        }
        Some(PasswordRequest::Clear) if state.password.is_some() => {
            actions.push(SecurityAction::ClearPassword)
        }
        _ => {}
    }
    actions
}

/// Whether `context.user` lets its holder past the room's password and lobby: only
/// `security_bypass` set to the boolean `true` does.
pub fn has_security_bypass(context_user: &Value) -> bool {
    context_user.get("security_bypass").and_then(Value::as_bool) == Some(true)
}

/// The room as a bypass holder is about to join it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinState {
    /// The room has a password.
    pub password_set: bool,
    /// The joining user already has an affiliation (member or above) in the room.
    pub affiliated: bool,
}

/// One step that lets a bypass holder in, applied before the lobby (-4), members-only (-5) and
/// password (-20) checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassAction {
    /// Put the room's password into the join (replacing any the client sent).
    SupplyPassword,
    /// Make the user a member with the participant role, which is what the lobby and
    /// members-only checks look for.
    AdmitAsMember,
}

impl BypassAction {
    /// The name the binding hands to Lua.
    pub fn verb(&self) -> &'static str {
        match self {
            BypassAction::SupplyPassword => "supply-password",
            BypassAction::AdmitAsMember => "admit-as-member",
        }
    }
}

/// The steps that let the holder of `context_user` into a room in `state`; none without bypass.
pub fn bypass_plan(context_user: &Value, state: &JoinState) -> Vec<BypassAction> {
    let mut actions = Vec::new();
    if !has_security_bypass(context_user) {
        return actions;
    }
    if state.password_set {
        actions.push(BypassAction::SupplyPassword);
    }
    if !state.affiliated {
        actions.push(BypassAction::AdmitAsMember);
    }
    actions
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use SecurityAction::*;

    fn request(context_room: Value) -> RoomRequest {
        RoomRequest::from_context_room(&context_room)
    }

    const OPEN_JITSI: RoomState =
        RoomState { lobby_on: false, members_only: false, password: None, lobby_available: true };
    const LOBBY_JITSI: RoomState = RoomState { lobby_on: true, members_only: true, ..OPEN_JITSI };
    const OPEN_PLAIN: RoomState = RoomState { lobby_available: false, ..OPEN_JITSI };

    #[test]
    fn test_only_real_booleans_switch_the_lobby() {
        assert_eq!(request(json!({ "lobby": true })).lobby, Some(true));
        assert_eq!(request(json!({ "lobby": false })).lobby, Some(false));
        for ignored in [json!("true"), json!(1), json!(null), json!({}), json!([true])] {
            assert_eq!(request(json!({ "lobby": ignored })).lobby, None, "{ignored}");
        }
    }

    #[test]
    fn test_password_string_sets_and_empty_string_clears() {
        assert_eq!(
            request(json!({ "password": "pw" })).password,
            Some(PasswordRequest::Set("pw".into()))
        );
        assert_eq!(request(json!({ "password": "" })).password, Some(PasswordRequest::Clear));
        for ignored in [json!(1234), json!(null), json!(false), json!(["pw"])] {
            assert_eq!(request(json!({ "password": ignored })).password, None, "{ignored}");
        }
    }

    #[test]
    fn test_context_room_of_the_wrong_shape_asks_for_nothing() {
        for shape in [json!(null), json!("lobby"), json!([true, "pw"]), json!(42), json!({})] {
            assert_eq!(request(shape.clone()), RoomRequest::default(), "{shape}");
            assert!(plan(&request(shape), &LOBBY_JITSI).is_empty());
        }
    }

    #[test]
    fn test_enables_jitsi_lobby_when_it_is_off() {
        assert_eq!(plan(&request(json!({ "lobby": true })), &OPEN_JITSI), vec![EnableLobby]);
        assert!(plan(&request(json!({ "lobby": true })), &LOBBY_JITSI).is_empty());
    }

    #[test]
    fn test_disables_jitsi_lobby_members_only_first() {
        assert_eq!(
            plan(&request(json!({ "lobby": false })), &LOBBY_JITSI),
            vec![SetMembersOnly(false), DisableLobby]
        );
        assert!(plan(&request(json!({ "lobby": false })), &OPEN_JITSI).is_empty());
    }

    #[test]
    fn test_repairs_half_states_with_jitsi_lobby() {
        // Lobby gone but still members-only: everyone refused with no lobby to wait in.
        let closed_no_lobby = RoomState { members_only: true, ..OPEN_JITSI };
        assert_eq!(
            plan(&request(json!({ "lobby": false })), &closed_no_lobby),
            vec![SetMembersOnly(false)]
        );
        // Lobby attached but the room open: nobody has to pass it.
        let open_with_lobby = RoomState { lobby_on: true, ..OPEN_JITSI };
        assert_eq!(
            plan(&request(json!({ "lobby": true })), &open_with_lobby),
            vec![SetMembersOnly(true)]
        );
        assert_eq!(plan(&request(json!({ "lobby": false })), &open_with_lobby), vec![DisableLobby]);
    }

    #[test]
    fn test_without_lobby_modules_members_only_stands_in() {
        assert_eq!(
            plan(&request(json!({ "lobby": true })), &OPEN_PLAIN),
            vec![SetMembersOnly(true)]
        );
        let closed = RoomState { members_only: true, ..OPEN_PLAIN };
        assert_eq!(plan(&request(json!({ "lobby": false })), &closed), vec![SetMembersOnly(false)]);
        assert!(plan(&request(json!({ "lobby": true })), &closed).is_empty());
        assert!(plan(&request(json!({ "lobby": false })), &OPEN_PLAIN).is_empty());
    }

    #[test]
    fn test_never_fires_lobby_events_without_lobby_modules() {
        let states = [OPEN_PLAIN, RoomState { lobby_on: true, members_only: true, ..OPEN_PLAIN }];
        for state in states {
            for lobby in [true, false] {
                let actions = plan(&request(json!({ "lobby": lobby })), &state);
                assert!(!actions.contains(&EnableLobby) && !actions.contains(&DisableLobby));
            }
        }
    }

    #[test]
    fn test_password_set_only_when_it_changes_clear_only_when_set() {
        assert_eq!(
            plan(&request(json!({ "password": "pw" })), &OPEN_JITSI),
            vec![SetPassword("pw".into())]
        );
        assert!(plan(&request(json!({ "password": "" })), &OPEN_JITSI).is_empty());
        let protected = RoomState { password: Some("pw"), ..OPEN_PLAIN };
        assert_eq!(plan(&request(json!({ "password": "" })), &protected), vec![ClearPassword]);
        // The same password again (every later join of the same token) changes nothing.
        assert!(plan(&request(json!({ "password": "pw" })), &protected).is_empty());
        assert_eq!(
            plan(&request(json!({ "password": "other" })), &protected),
            vec![SetPassword("other".into())]
        );
    }

    #[test]
    fn test_lobby_and_password_together() {
        assert_eq!(
            plan(&request(json!({ "lobby": true, "password": "pw" })), &OPEN_PLAIN),
            vec![SetMembersOnly(true), SetPassword("pw".into())]
        );
    }

    #[test]
    fn test_verbs_are_stable_names() {
        let verbs: Vec<_> = [
            EnableLobby,
            DisableLobby,
            SetMembersOnly(true),
            SetPassword("x".into()),
            ClearPassword,
        ]
        .iter()
        .map(SecurityAction::verb)
        .collect();
        assert_eq!(
            verbs,
            ["enable-lobby", "disable-lobby", "set-members-only", "set-password", "clear-password"]
        );
    }

    #[test]
    fn test_only_boolean_true_bypasses() {
        assert!(has_security_bypass(&json!({ "security_bypass": true })));
        for no in [
            json!({ "security_bypass": "true" }),
            json!({ "security_bypass": 1 }),
            json!({ "security_bypass": false }),
            json!({}),
            json!(null),
            json!("security_bypass"),
        ] {
            assert!(!has_security_bypass(&no), "{no}");
        }
    }

    #[test]
    fn test_bypass_supplies_password_and_admits_unaffiliated_users() {
        let user = json!({ "security_bypass": true });
        let both = JoinState { password_set: true, affiliated: false };
        assert_eq!(
            bypass_plan(&user, &both),
            vec![BypassAction::SupplyPassword, BypassAction::AdmitAsMember]
        );
        let member = JoinState { password_set: false, affiliated: true };
        assert!(bypass_plan(&user, &member).is_empty());
        assert!(bypass_plan(&json!({ "security_bypass": "true" }), &both).is_empty());
    }
}
