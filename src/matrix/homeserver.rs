//! Direct homeserver mode: what UVS does, done here, so an operator needs no separate service.
//!
//! All within the verification's deadline: the OpenID token's user from
//! `GET /_matrix/federation/v1/openid/userinfo`, asked of the configured homeserver when the
//! token is its own, else of the token's `server_name` over federation (`federation.rs`); then
//! the room's joined members from the configured homeserver's
//! `GET /_synapse/admin/v1/rooms/{room}/members`, and, with power sync on, the power levels
//! from `GET /_synapse/admin/v1/rooms/{room}/state`. The configured homeserver's own server
//! name is learnt once from `GET /_matrix/client/v3/account/whoami` with the admin token.
//! Power is read as UVS reads it (`users[user_id]`, else `users_default`, else 0); unlike UVS,
//! in rooms of version 12 (where creators hold unlimited power and are not listed in `users`)
//! the creators are owners.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use super::federation::{Discovery, Fetched, Lookups};
use super::{power, Config, Decision, Denial, MatrixError, UvsRequest, DEFAULT_STATE_DEFAULT};
use crate::dns::{self, DnsError, ResolvConf, SrvRecords};
use crate::http::{self, HttpError, Limits, Reply};
use crate::jobs;

/// What the homeserver mode remembers between verifications.
pub(super) struct State {
    /// The configured homeserver's server name, once learnt.
    local_name: OnceLock<String>,
    /// Server discovery for tokens of other homeservers.
    discovery: Discovery,
}

impl State {
    pub(super) fn new(allow_private: bool) -> Self {
        State { local_name: OnceLock::new(), discovery: Discovery::new(allow_private) }
    }
}

/// Asks the homeserver at `base_url` whether the OpenID token's user is in the room.
pub(super) fn ask(
    base_url: &str,
    admin_token: &str,
    request: &UvsRequest,
    config: &Config,
    state: &State,
) -> Result<Decision, MatrixError> {
    let deadline = Deadline::new(config.limits);
    let Some(server_name) = request.server_name.as_deref() else {
        return Ok(Decision::Deny(Denial::NoServerName));
    };
    let bearer = format!("Bearer {admin_token}");
    let admin = [("Authorization", bearer.as_str())];
    let local_name = match state.local_name.get() {
        Some(name) => name.as_str(),
        None => {
            let name = whoami(base_url, &admin, &deadline)?;
            state.local_name.get_or_init(|| name).as_str()
        }
    };
    let user_id = if server_name == local_name {
        userinfo(base_url, request, &deadline)?
    } else if config.federation {
        remote_userinfo(&state.discovery, server_name, request, &deadline)?
    } else {
        None
    };
    let Some(user_id) = user_id else {
        return Ok(Decision::Deny(Denial::InvalidToken));
    };
    let room = encode(&request.room_id);

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

/// One admin-API query for a room's joined members and, with power sync, whether each is owner:
/// `GET /_synapse/admin/v1/rooms/{room}/state`, whose member events carry the membership.
pub(super) fn room_members(
    base_url: &str,
    admin_token: &str,
    room_id: &str,
    config: &Config,
) -> Result<Vec<(String, bool)>, MatrixError> {
    let deadline = Deadline::new(config.limits);
    let bearer = format!("Bearer {admin_token}");
    let url = format!("{base_url}/_synapse/admin/v1/rooms/{}/state", encode(room_id));
    let reply = deadline.get(&url, &[("Authorization", bearer.as_str())], "")?;
    if reply.status != 200 {
        return Err(MatrixError::Denied(Denial::HomeserverStatus {
            endpoint: "admin state",
            status: reply.status,
        }));
    }
    joined_from_state(&reply.body, config.sync_power_levels).map_err(MatrixError::Denied)
}

/// The configured homeserver's server name: what follows the first colon of the admin's user
/// ID (`@admin:matrix.example.com` → `matrix.example.com`).
fn whoami(
    base_url: &str,
    admin: &[(&str, &str)],
    deadline: &Deadline,
) -> Result<String, MatrixError> {
    let url = format!("{base_url}/_matrix/client/v3/account/whoami");
    let reply = deadline.get(&url, admin, "")?;
    if reply.status != 200 {
        return Err(MatrixError::Denied(Denial::HomeserverStatus {
            endpoint: "whoami",
            status: reply.status,
        }));
    }
    let user_id = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Object(me)) => me.get("user_id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    match user_id.as_deref().and_then(|id| id.split_once(':')) {
        Some((_, server)) if !server.is_empty() => Ok(server.to_string()),
        _ => Err(MatrixError::Denied(Denial::BadReply("whoami has no user_id"))),
    }
}

/// The user an OpenID token of another homeserver belongs to, asked of that server over
/// federation; `None` when it does not know the token or names a user of another server.
fn remote_userinfo(
    discovery: &Discovery,
    server_name: &str,
    request: &UvsRequest,
    deadline: &Deadline,
) -> Result<Option<String>, MatrixError> {
    let failed = |text: String| MatrixError::Denied(Denial::Federation(text));
    let target = discovery
        .locate(server_name, &mut Network(deadline))
        .map_err(|e| failed(format!("{server_name}: {e}")))?;
    let url = format!(
        "https://{}/_matrix/federation/v1/openid/userinfo?access_token={}",
        target.authority,
        encode(&request.token)
    );
    let reply = deadline
        .get_pinned(&url, &target.addrs, MAX_USERINFO, &request.token)
        .map_err(|e| failed(format!("{server_name} at {}: {e}", target.authority)))?;
    read_userinfo(reply, server_name, "federation openid/userinfo")
}

/// Server discovery's questions, asked over the network within the verification's deadline.
struct Network<'a>(&'a Deadline);

impl Lookups for Network<'_> {
    fn addresses(&mut self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
        dns::lookup_host(host, port, self.0.end)
    }

    fn well_known(&mut self, url: &str, addrs: &[SocketAddr], max_body: u64) -> Fetched {
        match self.0.get_pinned(url, addrs, max_body, "") {
            Ok(reply) if reply.status == 200 => Fetched::Document(reply.body),
            Ok(reply) if reply.status >= 500 => Fetched::Failed,
            Ok(_) => Fetched::Absent,
            Err(MatrixError::Unavailable(HttpError::Redirect {
                location: Some(location), ..
            })) => Fetched::Redirect(location),
            Err(MatrixError::Unavailable(
                HttpError::Redirect { .. } | HttpError::TooLarge { .. },
            )) => Fetched::Absent,
            Err(_) if Instant::now() >= self.0.end => Fetched::Unfinished,
            Err(_) => Fetched::Failed,
        }
    }

    fn srv(&mut self, name: &str) -> Result<SrvRecords, DnsError> {
        dns::lookup_srv(name, &ResolvConf::system(), self.0.end)
    }
}

/// Longest userinfo reply read from another homeserver. The answer is `{"sub": "@user:server"}`;
/// the server is anyone a token names, and a reply as large as the configured homeserver's
/// may be (member lists) would cost many times its size in memory once parsed.
const MAX_USERINFO: u64 = 64 * 1024;

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
    let server_name = request.server_name.as_deref().unwrap_or_default();
    read_userinfo(reply, server_name, "openid/userinfo")
}

/// Reads a userinfo reply: `{"sub": "@user:server"}` for a token of `server_name`.
fn read_userinfo(
    reply: Reply,
    server_name: &str,
    endpoint: &'static str,
) -> Result<Option<String>, MatrixError> {
    match reply.status {
        200 => {}
        // M_UNKNOWN_TOKEN: unknown or expired.
        401 => return Ok(None),
        status => return Err(MatrixError::Denied(Denial::HomeserverStatus { endpoint, status })),
    }
    let sub = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Object(info)) => info.get("sub").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let Some(sub) = sub.filter(|s| s.starts_with('@') && s.contains(':')) else {
        return Err(MatrixError::Denied(Denial::BadReply("userinfo has no user ID in 'sub'")));
    };
    // A server vouches only for its own users: a token said to be from one server, answered
    // with a user of another, is refused (server names may carry a port: `@bob:host:8448`).
    if !user_on_server(&sub, server_name) {
        return Ok(None);
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
    let state = state_events(body)?;
    Powers::of(&state).is_owner(user_id)
}

/// The room's joined members (`m.room.member` with membership `join`), each with whether
/// they are owner (only computed with `sync_power_levels`), from one admin-API state reply.
pub(super) fn joined_from_state(
    body: &[u8],
    sync_power_levels: bool,
) -> Result<Vec<(String, bool)>, Denial> {
    let state = state_events(body)?;
    let powers = Powers::of(&state);
    let mut joined = Vec::new();
    for event in &state {
        if event.get("type").and_then(Value::as_str) != Some("m.room.member") {
            continue;
        }
        let membership = event.get("content").and_then(|c| c.get("membership"));
        let Some(user_id) = event.get("state_key").and_then(Value::as_str) else { continue };
        if membership.and_then(Value::as_str) == Some("join") {
            let is_owner = sync_power_levels && powers.is_owner(user_id)?;
            joined.push((user_id.to_string(), is_owner));
        }
    }
    Ok(joined)
}

fn state_events(body: &[u8]) -> Result<Vec<Value>, Denial> {
    let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(body) else {
        return Err(Denial::BadReply("state reply is not a JSON object"));
    };
    match reply.remove("state") {
        Some(Value::Array(state)) => Ok(state),
        _ => Err(Denial::BadReply("state reply has no 'state' list")),
    }
}

/// The two state events that decide ownership, found once per state reply.
struct Powers<'a> {
    create: Option<&'a Value>,
    levels: Option<&'a Value>,
}

impl<'a> Powers<'a> {
    fn of(state: &'a [Value]) -> Self {
        let find = |kind: &str| {
            state.iter().find(|event| {
                event.get("type").and_then(Value::as_str) == Some(kind)
                    && event.get("state_key").and_then(Value::as_str) == Some("")
            })
        };
        Powers {
            create: find("m.room.create"),
            levels: find("m.room.power_levels").and_then(|e| e.get("content")),
        }
    }

    fn is_owner(&self, user_id: &str) -> Result<bool, Denial> {
        if self.create.is_some_and(|create| is_creator(create, user_id)) {
            return Ok(true);
        }
        let Some(levels) = self.levels else {
            return Err(Denial::NoPowerLevels);
        };
        let users_default = match levels.get("users_default") {
            None | Some(Value::Null) => 0,
            level => power(level).ok_or(Denial::BadReply("'users_default' is not a number"))?,
        };
        let user = match levels.get("users").and_then(|u| u.get(user_id)) {
            None | Some(Value::Null) => users_default,
            level => {
                power(level).ok_or(Denial::BadReply("a user's power level is not a number"))?
            }
        };
        let state_default = match levels.get("state_default") {
            None | Some(Value::Null) => DEFAULT_STATE_DEFAULT,
            level => power(level).ok_or(Denial::BadReply("'state_default' is not a number"))?,
        };
        Ok(user >= state_default)
    }
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
    /// The configured timeout from now, or the job's own deadline when that comes first (time
    /// spent waiting for a worker counts): nothing a verification does outlives the caller's
    /// wait for it.
    fn new(limits: Limits) -> Deadline {
        let own = Instant::now() + limits.timeout;
        let end = jobs::current_deadline().map_or(own, |job| job.min(own));
        Deadline { end, limits }
    }

    /// `GET url` with what is left of the deadline. `secret` (the OpenID token, which the
    /// userinfo URL carries) is scrubbed from any error text, since errors reach the log.
    fn get(&self, url: &str, headers: &[(&str, &str)], secret: &str) -> Result<Reply, MatrixError> {
        let limits = self.left()?;
        http::get(url, headers, limits).map_err(|e| self.scrub(e, secret))
    }

    /// `GET url` connecting only to `addrs`, with a reply of at most `max_body` bytes.
    fn get_pinned(
        &self,
        url: &str,
        addrs: &[SocketAddr],
        max_body: u64,
        secret: &str,
    ) -> Result<Reply, MatrixError> {
        let limits = Limits { max_body, ..self.left()? };
        http::get_pinned(url, &[], limits, addrs).map_err(|e| self.scrub(e, secret))
    }

    /// The limits with what is left of the deadline, or the timeout error when none is.
    fn left(&self) -> Result<Limits, MatrixError> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(MatrixError::Unavailable(HttpError::Timeout {
                after: self.limits.timeout,
            }));
        }
        Ok(Limits { timeout: left, ..self.limits })
    }

    fn scrub(&self, error: HttpError, secret: &str) -> MatrixError {
        match error {
            HttpError::Timeout { .. } => {
                MatrixError::Unavailable(HttpError::Timeout { after: self.limits.timeout })
            }
            HttpError::Transport(text) if !secret.is_empty() => {
                MatrixError::Unavailable(HttpError::Transport(
                    text.replace(secret, "<redacted>").replace(&encode(secret), "<redacted>"),
                ))
            }
            other => MatrixError::Unavailable(other),
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
    fn test_joined_members_and_their_ownership_come_from_one_state_reply() {
        let member = |user: &str, membership: &str| json!({"type": "m.room.member", "state_key": user, "content": {"membership": membership}});
        let pl = levels(json!({"users": {"@mod:hs": 50}, "state_default": 50}));
        let body = state(json!([
            create("10", "@a:hs", &[]),
            pl,
            member("@mod:hs", "join"),
            member("@ana:hs", "join"),
            member("@gone:hs", "leave"),
            member("@banned:hs", "ban"),
            member("@asked:hs", "invite"),
        ]));
        assert_eq!(
            joined_from_state(&body, true),
            Ok(vec![("@mod:hs".to_string(), true), ("@ana:hs".to_string(), false)])
        );
        assert_eq!(
            joined_from_state(&body, false),
            Ok(vec![("@mod:hs".to_string(), false), ("@ana:hs".to_string(), false)])
        );
        assert!(joined_from_state(b"{}", true).is_err());
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
