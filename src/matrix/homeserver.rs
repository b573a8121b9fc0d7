//! Direct homeserver mode: what UVS does, done here, so an operator needs no separate service.
//!
//! Three calls to one homeserver, all within the verification's deadline: the OpenID token's
//! user from `GET /_matrix/federation/v1/openid/userinfo`, the room's joined members from
//! Synapse's `GET /_synapse/admin/v1/rooms/{room}/members`, and, with power sync on, the
//! power levels from `GET /_synapse/admin/v1/rooms/{room}/state`. Unlike UVS, a room's
//! `users_default` counts, and in rooms of version 12 (where creators hold unlimited power and
//! are not listed in `users`) the creators are owners.

use std::time::Instant;

use serde_json::Value;

use super::{power, Config, Decision, Denial, MatrixError, UvsRequest, DEFAULT_STATE_DEFAULT};
use crate::http::{self, HttpError, Limits, Reply};

/// Asks the homeserver at `base_url` whether the OpenID token's user is in the room.
pub(super) fn ask(
    base_url: &str,
    admin_token: &str,
    request: &UvsRequest,
    config: &Config,
) -> Result<Decision, MatrixError> {
    let deadline = Deadline { end: Instant::now() + config.limits.timeout, limits: config.limits };
    let Some(user_id) = userinfo(base_url, request, &deadline)? else {
        return Ok(Decision::Deny(Denial::InvalidToken));
    };
    let room = encode(&request.room_id);
    let bearer = format!("Bearer {admin_token}");
    let admin = [("Authorization", bearer.as_str())];

    let url = format!("{base_url}/_synapse/admin/v1/rooms/{room}/members");
    let reply = deadline.get(&url, &admin, &request.token)?;
    match reply.status {
        200 => {}
        // An unknown or malformed room ID: nobody is in it.
        400 | 404 => return Ok(Decision::Deny(Denial::NotInRoom)),
        status => return Ok(deny_status("admin members", status)),
    }
    if !members_include(&reply.body, &user_id)? {
        return Ok(Decision::Deny(Denial::NotInRoom));
    }
    if !config.sync_power_levels {
        return Ok(Decision::Allow { user_id: Some(user_id), is_owner: false });
    }

    let url = format!("{base_url}/_synapse/admin/v1/rooms/{room}/state");
    let reply = deadline.get(&url, &admin, &request.token)?;
    if reply.status != 200 {
        return Ok(deny_status("admin state", reply.status));
    }
    match owner_from_state(&reply.body, &user_id) {
        Ok(is_owner) => Ok(Decision::Allow { user_id: Some(user_id), is_owner }),
        Err(denial) => Ok(Decision::Deny(denial)),
    }
}

/// The user the OpenID token belongs to, or `None` when the homeserver does not know it.
fn userinfo(
    base_url: &str,
    request: &UvsRequest,
    deadline: &Deadline,
) -> Result<Option<String>, MatrixError> {
    let url = format!(
        "{base_url}/_matrix/federation/v1/openid/userinfo?access_token={}",
        encode(&request.token)
    );
    let reply = deadline.get(&url, &[], &request.token)?;
    match reply.status {
        200 => {}
        // M_UNKNOWN_TOKEN: unknown or expired.
        401 => return Ok(None),
        status => {
            return Err(MatrixError::Denied(Denial::HomeserverStatus {
                endpoint: "openid/userinfo",
                status,
            }))
        }
    }
    let sub = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Object(info)) => info.get("sub").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let Some(sub) = sub.filter(|s| s.starts_with('@') && s.contains(':')) else {
        return Err(MatrixError::Denied(Denial::BadReply("userinfo has no user ID in 'sub'")));
    };
    // A token said to be from another server is not this homeserver's to vouch for. Compared
    // by suffix, as UVS does: server names may carry a port (`@bob:host:8448`).
    if let Some(server) = &request.server_name {
        if !user_on_server(&sub, server) {
            return Ok(None);
        }
    }
    Ok(Some(sub))
}

/// Whether `user_id` belongs to `server_name`: everything after the user ID's first colon is
/// the server name, port included (`@bob:host:8448`), since a localpart never holds a colon.
/// UVS's `endsWith(':' + server_name)` agrees for every real server name, and this also
/// refuses a bare port (`8448`) claimed as one.
pub(super) fn user_on_server(user_id: &str, server_name: &str) -> bool {
    user_id.split_once(':').is_some_and(|(local, server)| local.len() > 1 && server == server_name)
}

/// Whether the admin API's `{"members": [...]}` lists `user_id`.
pub(super) fn members_include(body: &[u8], user_id: &str) -> Result<bool, MatrixError> {
    let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(body) else {
        return Err(MatrixError::Denied(Denial::BadReply("members reply is not a JSON object")));
    };
    let Some(Value::Array(members)) = reply.get("members") else {
        return Err(MatrixError::Denied(Denial::BadReply("members reply has no 'members' list")));
    };
    Ok(members.iter().any(|m| m.as_str() == Some(user_id)))
}

/// Owner ⇔ power ≥ `state_default`, read from the admin API's `{"state": [events]}`. The
/// user's power is `users[user_id]`, else `users_default`, else 0; `state_default` is 50 when
/// unset. In rooms whose creators are privileged (version 12 on), a creator is owner.
pub(super) fn owner_from_state(body: &[u8], user_id: &str) -> Result<bool, Denial> {
    let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(body) else {
        return Err(Denial::BadReply("state reply is not a JSON object"));
    };
    let Some(Value::Array(state)) = reply.get("state") else {
        return Err(Denial::BadReply("state reply has no 'state' list"));
    };
    let content = |kind: &str| {
        state.iter().find_map(|event| {
            (event.get("type")?.as_str()? == kind && event.get("state_key")?.as_str()?.is_empty())
                .then_some(event)
        })
    };
    if let Some(create) = content("m.room.create") {
        if is_creator(create, user_id) {
            return Ok(true);
        }
    }
    let Some(levels) = content("m.room.power_levels").and_then(|e| e.get("content")) else {
        return Err(Denial::NoPowerLevels);
    };
    let users_default = match levels.get("users_default") {
        None | Some(Value::Null) => 0,
        level => power(level).ok_or(Denial::BadReply("'users_default' is not a number"))?,
    };
    let user = match levels.get("users").and_then(|u| u.get(user_id)) {
        None | Some(Value::Null) => users_default,
        level => power(level).ok_or(Denial::BadReply("a user's power level is not a number"))?,
    };
    let state_default = match levels.get("state_default") {
        None | Some(Value::Null) => DEFAULT_STATE_DEFAULT,
        level => power(level).ok_or(Denial::BadReply("'state_default' is not a number"))?,
    };
    Ok(user >= state_default)
}

/// Room versions 12 and later (and their draft, `org.matrix.hydra.11`) give the sender of
/// `m.room.create` and its `additional_creators` unlimited power.
fn is_creator(create: &Value, user_id: &str) -> bool {
    let content = create.get("content");
    let version =
        content.and_then(|c| c.get("room_version")).and_then(Value::as_str).unwrap_or("1");
    let privileged =
        version == "org.matrix.hydra.11" || version.parse::<u32>().is_ok_and(|v| v >= 12);
    if !privileged {
        return false;
    }
    let additional = content
        .and_then(|c| c.get("additional_creators"))
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|u| u.as_str() == Some(user_id)));
    create.get("sender").and_then(Value::as_str) == Some(user_id) || additional
}

fn deny_status(endpoint: &'static str, status: u16) -> Decision {
    Decision::Deny(Denial::HomeserverStatus { endpoint, status })
}

/// One deadline shared by the calls of a verification.
struct Deadline {
    end: Instant,
    limits: Limits,
}

impl Deadline {
    /// `GET url` with what is left of the deadline. `secret` (the OpenID token, which the
    /// userinfo URL carries) is scrubbed from any error text, since errors reach the log.
    fn get(&self, url: &str, headers: &[(&str, &str)], secret: &str) -> Result<Reply, MatrixError> {
        let timed_out = MatrixError::Unavailable(HttpError::Timeout { after: self.limits.timeout });
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out);
        }
        match http::get(url, headers, Limits { timeout: left, ..self.limits }) {
            Ok(reply) => Ok(reply),
            Err(HttpError::Timeout { .. }) => Err(timed_out),
            Err(HttpError::Transport(text)) => Err(MatrixError::Unavailable(HttpError::Transport(
                text.replace(secret, "<redacted>").replace(&encode(secret), "<redacted>"),
            ))),
            Err(other) => Err(MatrixError::Unavailable(other)),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment or a
/// query value (room IDs carry `!` and `:`, tokens anything).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state(events: Value) -> Vec<u8> {
        json!({ "state": events }).to_string().into_bytes()
    }

    fn levels(content: Value) -> Value {
        json!({"type": "m.room.power_levels", "state_key": "", "sender": "@a:hs", "content": content})
    }

    fn create(version: &str, sender: &str, additional: &[&str]) -> Value {
        json!({"type": "m.room.create", "state_key": "", "sender": sender,
            "content": {"room_version": version, "additional_creators": additional}})
    }

    #[test]
    fn test_encode_leaves_only_unreserved_characters() {
        assert_eq!(encode("!abc:matrix.org"), "%21abc%3Amatrix.org");
        assert_eq!(encode("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn test_power_from_users_then_users_default_then_zero() {
        let pl = levels(
            json!({"users": {"@mod:hs": 50, "@low:hs": 10}, "users_default": 0, "state_default": 50}),
        );
        let body = state(json!([create("10", "@a:hs", &[]), pl]));
        assert_eq!(owner_from_state(&body, "@mod:hs"), Ok(true));
        assert_eq!(owner_from_state(&body, "@low:hs"), Ok(false));
        assert_eq!(owner_from_state(&body, "@other:hs"), Ok(false));
        let generous = state(json!([levels(json!({"users_default": 50}))]));
        assert_eq!(
            owner_from_state(&generous, "@anyone:hs"),
            Ok(true),
            "users_default, state_default 50"
        );
        let legacy =
            state(json!([levels(json!({"users": {"@s:hs": "60"}, "state_default": "55"}))]));
        assert_eq!(owner_from_state(&legacy, "@s:hs"), Ok(true), "string levels of old rooms");
    }

    #[test]
    fn test_creators_of_version_12_rooms_are_owners() {
        let pl = levels(json!({"users": {}, "state_default": 50}));
        let v12 = state(json!([create("12", "@creator:hs", &["@co:hs"]), pl.clone()]));
        assert_eq!(owner_from_state(&v12, "@creator:hs"), Ok(true));
        assert_eq!(owner_from_state(&v12, "@co:hs"), Ok(true));
        assert_eq!(owner_from_state(&v12, "@guest:hs"), Ok(false));
        let v11 = state(json!([create("11", "@creator:hs", &[]), pl]));
        assert_eq!(
            owner_from_state(&v11, "@creator:hs"),
            Ok(false),
            "before 12, only users counts"
        );
    }

    #[test]
    fn test_state_without_power_levels_or_in_bad_shape_is_denied() {
        assert_eq!(
            owner_from_state(&state(json!([create("10", "@a:hs", &[])])), "@a:hs"),
            Err(Denial::NoPowerLevels)
        );
        for body in [
            b"null".to_vec(),
            b"{}".to_vec(),
            b"garbage".to_vec(),
            state(json!([levels(json!({"users": {"@a:hs": {}}}))])),
        ] {
            assert!(matches!(owner_from_state(&body, "@a:hs"), Err(Denial::BadReply(_))));
        }
        // A power-levels event with another state key is not the room's.
        let keyed =
            state(json!([{"type": "m.room.power_levels", "state_key": "x", "content": {}}]));
        assert_eq!(owner_from_state(&keyed, "@a:hs"), Err(Denial::NoPowerLevels));
    }

    #[test]
    fn test_user_matches_server_by_suffix_port_included() {
        assert!(user_on_server("@bob:host:8448", "host:8448"));
        assert!(user_on_server("@bob:matrix.org", "matrix.org"));
        assert!(!user_on_server("@bob:host:8448", "8448"), "the port alone is no server");
        assert!(!user_on_server("@bob:evilmatrix.org", "matrix.org"), "a colon must precede");
        assert!(!user_on_server("@bob:host", "host:8448"));
        assert!(!user_on_server(":matrix.org", "matrix.org"));
    }

    #[test]
    fn test_members_list_is_read_strictly() {
        let body = br#"{"members": ["@a:hs", "@b:hs"], "total": 2}"#;
        assert_eq!(members_include(body, "@b:hs"), Ok(true));
        assert_eq!(members_include(body, "@c:hs"), Ok(false));
        assert!(members_include(b"{}", "@a:hs").is_err());
        assert!(members_include(b"[]", "@a:hs").is_err());
    }
}
