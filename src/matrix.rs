//! Matrix user verification: the decisions of matrix-org's `mod_auth_matrix_user_verification`.
//!
//! Element's Jitsi widget logs in with a JWT (HS256, secret `notused`) whose
//! `context.matrix` carries a Matrix OpenID token and a room ID, and with the Jitsi room name
//! being that room ID in base32. The checks run in upstream's order with upstream's error
//! conditions and texts; then the user verification service (UVS) is asked whether the
//! OpenID token's owner is in the room, and with which power. In the direct homeserver mode
//! (`homeserver.rs`) the homeserver is asked instead, and no UVS is needed.
//!
//! What upstream lacks is added here: an optional `iss` check, a timeout and a reply size limit
//! on the UVS call, a strict reading of every UVS reply (`power_levels: null` included), and a
//! short-lived cache of positive answers so a reconnecting participant does not ask UVS again.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use data_encoding::BASE32_NOPAD;
use serde_json::{json, Map, Value};

use crate::cache::TtlCache;
use crate::clock::UnixTime;
use crate::http::{self, HttpError, Limits};
use crate::keys::{KeyCacheConfig, KeySourceConfig};
use crate::token::{self, Algorithm, Claims, Policy, TokenError};

/// The HMAC secret Element's widget signs its tokens with. It is public: the signature only
/// proves the token was built by something that knows the convention, not who built it.
pub const WIDGET_SECRET: &[u8] = b"notused";

/// Power needed for ownership when the room's power levels name no `state_default`; the
/// Matrix specification's default for it.
pub const DEFAULT_STATE_DEFAULT: i64 = 50;

/// Oldest cached answer that may still make an owner. Element reuses one OpenID token on every
/// rejoin of a widget, so without this bound a user demoted in Matrix would stay owner for the
/// whole cache TTL; an older owner answer is asked again (membership alone is still reused).
pub const OWNER_ANSWER_MAX_AGE: Duration = Duration::from_secs(5);

/// Longest Jitsi room name decoded, in bytes; room IDs are far shorter.
const MAX_ROOM_NAME: usize = 1024;

/// Why a login is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixError {
    /// The session brought no `?token=`.
    MissingToken,
    /// The token is not a JWT signed with the widget secret, or it has expired.
    Undecodable(TokenError),
    /// `iss` is not the configured `app_id` (only when the issuer check is on).
    WrongIssuer {
        /// The token's `iss`, shortened, if it had one.
        found: Option<String>,
    },
    /// The token has no `context.matrix.room_id` (upstream throws when `context` is missing).
    MissingRoomId,
    /// The `?room=` name does not decode to the token's `context.matrix.room_id`.
    RoomMismatch,
    /// UVS (or the homeserver) answered, and the answer is not "member".
    Denied(Denial),
    /// UVS (or the homeserver) gave no answer: unreachable, too slow, or a reply too large.
    Unavailable(HttpError),
    /// The configuration cannot work (a URL that is not http(s), the homeserver mode without
    /// an admin token, the issuer check without `app_id`).
    Config(String),
}

impl MatrixError {
    /// The SASL condition sent to the client: upstream's for every check it has;
    /// `temporary-auth-failure` when UVS could not be asked, which upstream never reports
    /// because it waits forever.
    pub fn condition(&self) -> &'static str {
        match self {
            MatrixError::MissingToken
            | MatrixError::Undecodable(_)
            | MatrixError::MissingRoomId => "bad-request",
            MatrixError::WrongIssuer { .. }
            | MatrixError::RoomMismatch
            | MatrixError::Denied(_) => "access-denied",
            MatrixError::Unavailable(_) => "temporary-auth-failure",
            MatrixError::Config(_) => "internal-server-error",
        }
    }

    /// The text sent to the client: upstream's words, so clients and operators recognise them.
    pub fn text(&self) -> &'static str {
        match self {
            MatrixError::MissingToken => "JWT token must be provided with OpenID token and room ID",
            MatrixError::Undecodable(_) => "JWT token cannot be decoded",
            MatrixError::WrongIssuer { .. } => "JWT issuer does not match app_id",
            MatrixError::MissingRoomId => "Matrix room ID must be given.",
            MatrixError::RoomMismatch => "Jitsi room does not match Matrix room",
            MatrixError::Denied(_) => "Token invalid or not in room",
            MatrixError::Unavailable(_) => "Matrix user verification service unavailable",
            MatrixError::Config(_) => "Matrix user verification is misconfigured",
        }
    }

    /// A short stable name for logs. Where upstream logs `REQUEST_COMPLETE reason:…`, the
    /// same name, so existing log searches keep working.
    pub fn reason(&self) -> &'static str {
        match self {
            MatrixError::MissingToken => "invalid_auth_token",
            MatrixError::Undecodable(_) => "auth_token_decode_issue",
            MatrixError::WrongIssuer { .. } => "wrong_issuer",
            MatrixError::MissingRoomId => "missing_matrix_room_id",
            MatrixError::RoomMismatch => "jitsi_and_matrix_room_mismatch",
            MatrixError::Denied(Denial::InvalidToken) => "invalid_token",
            MatrixError::Denied(Denial::NotInRoom) => "not_in_room",
            MatrixError::Denied(Denial::NoPowerLevels) => "no_power_levels",
            MatrixError::Denied(Denial::NoOpenIdToken) => "missing_openid_token",
            MatrixError::Denied(Denial::NoServerName) => "missing_server_name",
            MatrixError::Denied(Denial::Federation(_)) => "federation_failed",
            MatrixError::Denied(
                Denial::Status(_) | Denial::BadReply(_) | Denial::HomeserverStatus { .. },
            ) => "invalid_response",
            MatrixError::Unavailable(HttpError::Timeout { .. }) => "uvs_timeout",
            MatrixError::Unavailable(_) => "uvs_unavailable",
            MatrixError::Config(_) => "bad_config",
        }
    }
}

/// For the admin's log: what exactly went wrong. Never contains a token.
impl fmt::Display for MatrixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatrixError::MissingToken => write!(f, "no token in the connection URL"),
            MatrixError::Undecodable(error) => write!(f, "widget token refused: {error}"),
            MatrixError::WrongIssuer { found: Some(iss) } => {
                write!(f, "'iss' is '{iss}', which is not app_id")
            }
            MatrixError::WrongIssuer { found: None } => {
                write!(f, "'iss' is missing, app_id expected")
            }
            MatrixError::MissingRoomId => write!(f, "no context.matrix.room_id in the token"),
            MatrixError::RoomMismatch => {
                write!(f, "the ?room= name does not base32-decode to context.matrix.room_id")
            }
            MatrixError::Denied(denial) => write!(f, "{denial}"),
            MatrixError::Unavailable(error) => write!(f, "no answer to the verification: {error}"),
            MatrixError::Config(text) => write!(f, "{text}"),
        }
    }
}

impl std::error::Error for MatrixError {}

impl From<HttpError> for MatrixError {
    fn from(error: HttpError) -> Self {
        MatrixError::Unavailable(error)
    }
}

/// What UVS said, once its reply is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The OpenID token is valid and its user is in the room.
    Allow {
        /// The Matrix user, when UVS names it.
        user_id: Option<String>,
        /// Whether the user's power is at least `state_default` (only with power sync on).
        is_owner: bool,
    },
    /// Anything else.
    Deny(Denial),
}

/// Why UVS's (or the homeserver's) answer does not let the user in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// `results.user` is false: the OpenID token is unknown, expired or from another server.
    InvalidToken,
    /// `results.room_membership` is false: a valid user, not in the room.
    NotInRoom,
    /// Power sync is on and UVS could not tell the user's power (`power_levels: null`).
    NoPowerLevels,
    /// The token has no `context.matrix.token`, so there is nothing to ask UVS about (UVS
    /// would answer 400).
    NoOpenIdToken,
    /// Homeserver mode: the token has no `context.matrix.server_name`, so the homeserver that
    /// issued the OpenID token is unknown (UVS answers 400 to such a request).
    NoServerName,
    /// Homeserver mode: the token's own homeserver could not be found or asked over federation
    /// (a bad server name, no public address, a TLS or connection failure, no answer).
    Federation(String),
    /// A status other than 200: 403 for a wrong `uvs_auth_token`, 400 for a malformed request.
    Status(u16),
    /// A 200 reply that is not the JSON UVS (or the homeserver) sends.
    BadReply(&'static str),
    /// Homeserver mode: an endpoint answered with an unexpected status (401/403 from the
    /// admin API: the admin token is wrong or not an admin's).
    HomeserverStatus {
        /// Which endpoint (`openid/userinfo`, `admin members`, `admin state`).
        endpoint: &'static str,
        /// The status it answered.
        status: u16,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::InvalidToken => write!(f, "OpenID token invalid"),
            Denial::NotInRoom => write!(f, "user not in the room"),
            Denial::NoPowerLevels => {
                write!(f, "member, but the room's power levels are unknown (uvs_sync_power_levels is on)")
            }
            Denial::NoOpenIdToken => write!(f, "no context.matrix.token in the widget token"),
            Denial::NoServerName => {
                write!(f, "no context.matrix.server_name in the widget token (homeserver mode)")
            }
            Denial::Federation(text) => write!(f, "token's homeserver not asked: {text}"),
            Denial::Status(403) => write!(f, "UVS: http status: 403 (check uvs_auth_token)"),
            Denial::Status(status) => write!(f, "UVS: http status: {status}"),
            Denial::BadReply(what) => write!(f, "unexpected reply: {what}"),
            Denial::HomeserverStatus { endpoint, status: status @ (401 | 403) } => write!(
                f,
                "homeserver {endpoint}: http status: {status} (is the admin token a server admin's?)"
            ),
            Denial::HomeserverStatus { endpoint, status } => {
                write!(f, "homeserver {endpoint}: http status: {status}")
            }
        }
    }
}

/// Reads a UVS reply. Allowed only for status 200 with `results.user` and
/// `results.room_membership` both `true`, as upstream; every other shape is a denial, never a
/// crash. With `sync_power_levels`, owner ⇔ `power_levels.user >= power_levels.room.state_default`
/// (50 when absent); power levels may be integers or, in pre-v10 rooms, integer strings.
pub fn decide(status: u16, body: &[u8], sync_power_levels: bool) -> Decision {
    match read_reply(status, body, sync_power_levels) {
        Ok(decision) => decision,
        Err(denial) => Decision::Deny(denial),
    }
}

fn read_reply(status: u16, body: &[u8], sync_power_levels: bool) -> Result<Decision, Denial> {
    if status != 200 {
        return Err(Denial::Status(status));
    }
    let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(body) else {
        return Err(Denial::BadReply("not a JSON object"));
    };
    let Some(Value::Object(results)) = reply.get("results") else {
        return Err(Denial::BadReply("no 'results' object"));
    };
    match results.get("user") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(Denial::InvalidToken),
        _ => return Err(Denial::BadReply("'results.user' is not a boolean")),
    }
    match results.get("room_membership") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(Denial::NotInRoom),
        _ => return Err(Denial::BadReply("'results.room_membership' is not a boolean")),
    }
    let user_id = match reply.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(Denial::BadReply("'user_id' is not a string")),
    };
    let is_owner = sync_power_levels && is_owner(reply.get("power_levels"))?;
    Ok(Decision::Allow { user_id, is_owner })
}

fn is_owner(power_levels: Option<&Value>) -> Result<bool, Denial> {
    let levels = match power_levels {
        Some(Value::Object(levels)) => levels,
        None | Some(Value::Null) => return Err(Denial::NoPowerLevels),
        Some(_) => return Err(Denial::BadReply("'power_levels' is not an object")),
    };
    let user =
        power(levels.get("user")).ok_or(Denial::BadReply("'power_levels.user' is not a number"))?;
    let state_default = match levels.get("room") {
        None | Some(Value::Null) => DEFAULT_STATE_DEFAULT,
        Some(Value::Object(room)) => match room.get("state_default") {
            None | Some(Value::Null) => DEFAULT_STATE_DEFAULT,
            level => power(level).ok_or(Denial::BadReply("'state_default' is not a number"))?,
        },
        Some(_) => return Err(Denial::BadReply("'power_levels.room' is not an object")),
    };
    Ok(user >= state_default)
}

/// A power level: an integer, or an integer in a string (allowed in rooms before version 10).
fn power(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The Matrix room ID a Jitsi room name stands for: RFC 4648 base32, any case (jitsi-meet
/// lowercases room names, Element encodes upper case), `=` padding optional. `None` when the
/// name is not base32 of UTF-8.
pub fn room_id_from_name(name: &str) -> Option<String> {
    if name.len() > MAX_ROOM_NAME {
        return None;
    }
    let unpadded = name.trim_end_matches('=').to_ascii_uppercase();
    let bytes = BASE32_NOPAD.decode(unpadded.as_bytes()).ok()?;
    String::from_utf8(bytes).ok()
}

/// The Jitsi room name Element's widget gives a Matrix room, as Prosody stores it: unpadded
/// base32, lower case (MUC room nodes are nodeprepped, hence lower case).
pub fn room_name(room_id: &str) -> String {
    BASE32_NOPAD.encode(room_id.as_bytes()).to_ascii_lowercase()
}

/// The Matrix room ID a MUC room node stands for, only when the node is exactly that room's
/// [`room_name`]: the login accepts any case and padding (as upstream), but `b32(A)`,
/// `b32(A)=`, `b32(A)==`… are distinct MUC rooms, and only one of them may be room A's call.
pub fn room_id_from_canonical_name(node: &str) -> Option<String> {
    let room_id = room_id_from_name(node).filter(|id| !id.is_empty())?;
    (room_name(&room_id) == node).then_some(room_id)
}

/// The question put to UVS: `POST {uvs_base_url}/verify/user_in_room` with this JSON body.
/// Also the key of the answer cache: the same OpenID token, room and server.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UvsRequest {
    /// The Matrix OpenID token (`context.matrix.token`).
    pub token: String,
    /// The Matrix room (`context.matrix.room_id`).
    pub room_id: String,
    /// The homeserver the token belongs to (`context.matrix.server_name`), when given.
    pub server_name: Option<String>,
}

/// The OpenID token is a credential: keep it out of debug output and therefore out of logs.
impl fmt::Debug for UvsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UvsRequest")
            .field("token", &"<redacted>")
            .field("room_id", &self.room_id)
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl UvsRequest {
    /// `{"token", "room_id"}` plus `"matrix_server_name"` when the server is known.
    pub fn body(&self) -> Value {
        let mut body = json!({ "token": self.token, "room_id": self.room_id });
        if let Some(server) = &self.server_name {
            body["matrix_server_name"] = Value::String(server.clone());
        }
        body
    }
}

/// Who answers "is this OpenID token's user in that room, and with which power?".
#[derive(Clone)]
pub enum Backend {
    /// A user verification service, as upstream.
    Uvs {
        /// `uvs_base_url`, without the trailing slash.
        base_url: String,
        /// `uvs_auth_token`, sent as `Authorization: Bearer …`.
        auth_token: Option<String>,
    },
    /// The homeserver itself, no UVS: the OpenID token's user from the federation
    /// `openid/userinfo` endpoint, membership and power levels from Synapse's admin API.
    Homeserver {
        /// The homeserver's base URL, without the trailing slash.
        base_url: String,
        /// An access token of a Synapse server admin, for the admin API.
        admin_token: String,
    },
}

/// Tokens stay out of debug output.
impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Uvs { base_url, auth_token } => f
                .debug_struct("Uvs")
                .field("base_url", base_url)
                .field("auth_token", &auth_token.as_ref().map(|_| "<redacted>"))
                .finish(),
            Backend::Homeserver { base_url, .. } => f
                .debug_struct("Homeserver")
                .field("base_url", base_url)
                .field("admin_token", &"<redacted>")
                .finish(),
        }
    }
}

impl Backend {
    /// The URL requests go to.
    pub fn base_url(&self) -> &str {
        match self {
            Backend::Uvs { base_url, .. } | Backend::Homeserver { base_url, .. } => base_url,
        }
    }
}

/// How a [`Verifier`] checks tokens and asks UVS. Build it once from the Prosody options.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where membership and power are asked. Required.
    pub backend: Backend,
    /// `uvs_sync_power_levels`: decide ownership from the reply's power levels. Defaults to
    /// false.
    pub sync_power_levels: bool,
    /// `app_id`. Only read when `check_issuer` is on. Defaults to none.
    pub app_id: Option<String>,
    /// Refuse tokens whose `iss` is not `app_id`. Defaults to false, as upstream never checks.
    pub check_issuer: bool,
    /// Deadline of the whole verification (UVS's one call, or the homeserver's three) and the
    /// largest reply accepted. Defaults to 5 seconds and 256 KiB (UVS) or 8 MiB (homeserver,
    /// whose room state and member lists grow with the room).
    pub limits: Limits,
    /// How long a positive answer is reused for the same OpenID token and room. Defaults to
    /// 30 seconds; zero turns the cache off.
    pub cache_ttl: Duration,
    /// Positive answers kept at most. Defaults to 1024.
    pub cache_size: usize,
    /// Homeserver mode: check OpenID tokens of other homeservers at their own server, over
    /// federation (as UVS does). Defaults to true; when false, only the configured
    /// homeserver's users get in.
    pub federation: bool,
    /// Homeserver mode: let server discovery connect to private, loopback and link-local
    /// addresses. Defaults to false, since the server name comes from the client.
    pub federation_allow_private: bool,
}

impl Config {
    /// Defaults for a UVS at `uvs_base_url`, with `uvs_auth_token` if it has one.
    pub fn uvs(uvs_base_url: &str, auth_token: Option<String>) -> Self {
        let base_url = uvs_base_url.trim_end_matches('/').to_string();
        Config::with(Backend::Uvs { base_url, auth_token }, 256 * 1024)
    }

    /// Defaults for asking the homeserver at `base_url` directly, as a Synapse admin.
    pub fn homeserver(base_url: &str, admin_token: String) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        Config::with(Backend::Homeserver { base_url, admin_token }, 8 * 1024 * 1024)
    }

    fn with(backend: Backend, max_body: u64) -> Self {
        Config {
            backend,
            sync_power_levels: false,
            app_id: None,
            check_issuer: false,
            limits: Limits { timeout: Duration::from_secs(5), max_body },
            cache_ttl: Duration::from_secs(30),
            cache_size: 1024,
            federation: true,
            federation_allow_private: false,
        }
    }
}

/// Who got in, and as what.
#[derive(Clone, PartialEq)]
pub struct Admission {
    /// The Matrix room verified (`context.matrix.room_id`).
    pub room_id: String,
    /// The Matrix user, when UVS named it (the homeserver mode always does).
    pub user_id: Option<String>,
    /// Owner of the Jitsi room (power sync on, power ≥ `state_default`).
    pub is_owner: bool,
    /// The widget token's claims (`context.user`, `context.group`, … for the session).
    pub claims: Claims,
    /// Whether the answer came from the cache rather than from UVS.
    pub cached: bool,
}

/// The claims carry the OpenID token (`context.matrix.token`): debug output leaves them out.
impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("room_id", &self.room_id)
            .field("user_id", &self.user_id)
            .field("is_owner", &self.is_owner)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`Verifier::check`].
#[derive(Debug)]
pub enum Check {
    /// Decided without UVS: a refused token, or a cached positive answer.
    Done(Result<Admission, MatrixError>),
    /// UVS must be asked: run [`Verifier::ask`] with this on a worker thread.
    Ask(UvsCall),
}

/// A UVS question waiting to be asked, with what is needed to finish the admission.
pub struct UvsCall {
    request: UvsRequest,
    claims: Claims,
}

/// Leaves the claims out, as [`Admission`] does.
impl fmt::Debug for UvsCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UvsCall").field("request", &self.request).finish_non_exhaustive()
    }
}

impl UvsCall {
    /// The request that will be sent.
    pub fn request(&self) -> &UvsRequest {
        &self.request
    }
}

/// Checks widget tokens and asks UVS or the homeserver. Cheap to clone; clones share the
/// answer cache.
#[derive(Clone)]
pub struct Verifier {
    config: Arc<Config>,
    jwt: token::Verifier,
    cache: Arc<Mutex<TtlCache<UvsRequest, Allowed>>>,
    homeserver: Arc<homeserver::State>,
}

/// A cached positive answer.
#[derive(Debug, Clone)]
struct Allowed {
    user_id: Option<String>,
    is_owner: bool,
    /// When UVS or the homeserver gave it.
    answered: Instant,
}

impl Allowed {
    /// Whether this answer may still be reused at `at`: membership for the whole TTL (the
    /// cache drops it after that), ownership only while younger than [`OWNER_ANSWER_MAX_AGE`].
    fn reusable(&self, at: Instant) -> bool {
        !self.is_owner || at.saturating_duration_since(self.answered) <= OWNER_ANSWER_MAX_AGE
    }
}

impl Verifier {
    /// A verifier for `config`; refuses a configuration that cannot work.
    pub fn new(config: Config) -> Result<Self, MatrixError> {
        let url = config.backend.base_url();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(MatrixError::Config(format!(
                "the verification URL must be an http:// or https:// URL, not '{url}'"
            )));
        }
        if matches!(&config.backend, Backend::Homeserver { admin_token, .. } if admin_token.is_empty())
        {
            return Err(MatrixError::Config(
                "the homeserver mode needs an admin access token".into(),
            ));
        }
        if config.check_issuer && config.app_id.as_deref().is_none_or(str::is_empty) {
            return Err(MatrixError::Config("the issuer check needs app_id to be set".into()));
        }
        // Element's token: HS256 with the widget secret, `exp`/`nbf` honoured when present,
        // nothing else required, like upstream's `luajwtjitsi.verify(token, "HS256", "notused")`.
        let mut policy = Policy::new(Algorithm::HS256, "");
        policy.accepted_issuers = vec!["*".into()];
        policy.accepted_audiences = vec!["*".into()];
        policy.require_room_claim = false;
        policy.require_jitsi_claims = false;
        let jwt = token::Verifier::new(
            policy,
            KeySourceConfig::Secret(WIDGET_SECRET.to_vec()),
            KeyCacheConfig::default(),
        )
        .map_err(|e| MatrixError::Config(e.to_string()))?;
        let cache = Arc::new(Mutex::new(TtlCache::new(config.cache_size)));
        let homeserver = Arc::new(homeserver::State::new(config.federation_allow_private));
        Ok(Verifier { config: Arc::new(config), jwt, cache, homeserver })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs upstream's checks in upstream's order: token present, token decodes, issuer (when
    /// configured), `context.matrix.room_id` present, room name matches. Then answers from the
    /// cache when it can, or asks for a UVS call. `now` judges `exp`/`nbf`; `at` the cache.
    pub fn check(
        &self,
        token: Option<&str>,
        room_name: Option<&str>,
        now: UnixTime,
        at: Instant,
    ) -> Check {
        match self.prepare(token, room_name, now) {
            Err(error) => Check::Done(Err(error)),
            Ok(call) => match self.lock_cache().get(&call.request, at) {
                Some(hit) if hit.reusable(at) => Check::Done(Ok(admit(call, hit, true))),
                _ => Check::Ask(call),
            },
        }
    }

    /// Asks UVS or the homeserver (blocking: call it on a worker thread), then remembers a
    /// positive answer.
    pub fn ask(&self, call: UvsCall) -> Result<Admission, MatrixError> {
        let decision = match &self.config.backend {
            Backend::Uvs { base_url, auth_token } => {
                ask_uvs(base_url, auth_token.as_deref(), &call.request, &self.config)?
            }
            Backend::Homeserver { base_url, admin_token } => homeserver::ask(
                base_url,
                admin_token,
                &call.request,
                &self.config,
                &self.homeserver,
            )?,
        };
        let allowed = match decision {
            Decision::Allow { user_id, is_owner } => {
                Allowed { user_id, is_owner, answered: Instant::now() }
            }
            Decision::Deny(denial) => return Err(MatrixError::Denied(denial)),
        };
        self.lock_cache().insert(
            call.request.clone(),
            allowed.clone(),
            self.config.cache_ttl,
            Instant::now(),
        );
        Ok(admit(call, allowed, false))
    }

    /// Homeserver mode: the room's joined members, each with whether they are owner (power
    /// sync on), from one admin-API query (blocking: call it on a worker thread). For the
    /// periodic membership re-check of participants already in a call.
    pub fn room_members(&self, room_id: &str) -> Result<Vec<(String, bool)>, MatrixError> {
        match &self.config.backend {
            Backend::Homeserver { base_url, admin_token } => {
                homeserver::room_members(base_url, admin_token, room_id, &self.config)
            }
            Backend::Uvs { .. } => Err(MatrixError::Config(
                "the membership re-check needs the homeserver mode (UVS cannot list a room)".into(),
            )),
        }
    }

    /// Forgets the cached answers that let `user_id` into `room_id`, so a user the membership
    /// re-check removed is asked again on their next login.
    pub fn forget(&self, room_id: &str, user_id: &str) {
        self.lock_cache().remove_where(|request, answer| {
            request.room_id == room_id && answer.user_id.as_deref() == Some(user_id)
        });
    }

    fn prepare(
        &self,
        token: Option<&str>,
        room_name: Option<&str>,
        now: UnixTime,
    ) -> Result<UvsCall, MatrixError> {
        let token = token.ok_or(MatrixError::MissingToken)?;
        let claims = match self.jwt.check(token, now) {
            token::Check::Done(result) => result.map_err(MatrixError::Undecodable)?,
            // A static secret never needs a key fetch; say so rather than wait for nothing.
            token::Check::NeedsKey(_) => {
                return Err(MatrixError::Config(
                    "the widget secret should never need a fetch".into(),
                ))
            }
        };
        if self.config.check_issuer {
            let iss = claims.str("iss");
            if iss != self.config.app_id.as_deref() {
                let found = claims.0.get("iss").map(|v| match v {
                    Value::String(s) => s.chars().take(64).collect(),
                    other => other.to_string().chars().take(64).collect(),
                });
                return Err(MatrixError::WrongIssuer { found });
            }
        }
        let matrix =
            claims.0.get("context").and_then(Value::as_object).and_then(|c| c.get("matrix"));
        let matrix = match matrix {
            Some(Value::Object(matrix)) => matrix,
            _ => return Err(MatrixError::MissingRoomId),
        };
        let room_id = match matrix.get("room_id") {
            None | Some(Value::Null) => return Err(MatrixError::MissingRoomId),
            // Upstream compares the decoded name with whatever room_id is; only a string matches.
            Some(Value::String(room_id)) => room_id.clone(),
            Some(_) => return Err(MatrixError::RoomMismatch),
        };
        if room_name.and_then(room_id_from_name).as_deref() != Some(room_id.as_str()) {
            return Err(MatrixError::RoomMismatch);
        }
        let openid_token = match matrix.get("token") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => return Err(MatrixError::Denied(Denial::NoOpenIdToken)),
        };
        let server_name = string_field(matrix, "server_name");
        // UVS refuses such a request (400); asking the configured homeserver instead would
        // vouch for a token whose issuer nobody named.
        if server_name.is_none() && matches!(self.config.backend, Backend::Homeserver { .. }) {
            return Err(MatrixError::Denied(Denial::NoServerName));
        }
        let request = UvsRequest { token: openid_token, room_id, server_name };
        Ok(UvsCall { request, claims })
    }

    /// A poisoned lock only means a thread panicked while holding it; the cache is a plain
    /// map updated by single inserts, so its data is still consistent.
    fn lock_cache(&self) -> MutexGuard<'_, TtlCache<UvsRequest, Allowed>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn ask_uvs(
    base_url: &str,
    auth_token: Option<&str>,
    request: &UvsRequest,
    config: &Config,
) -> Result<Decision, MatrixError> {
    let url = format!("{base_url}/verify/user_in_room");
    let bearer = auth_token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    let reply = http::post_json(&url, &headers, &request.body(), config.limits)?;
    Ok(decide(reply.status, &reply.body, config.sync_power_levels))
}

fn admit(call: UvsCall, allowed: Allowed, cached: bool) -> Admission {
    Admission {
        room_id: call.request.room_id,
        user_id: allowed.user_id,
        is_owner: allowed.is_owner,
        claims: call.claims,
        cached,
    }
}

fn string_field(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

mod federation;
mod homeserver;
#[cfg(test)]
mod tests;
