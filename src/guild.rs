//! A Guild.xyz API client: resolve a guild, decide whether an address is a member.
//!
//! Calls go through [`crate::http`] and block, so they run on a worker thread (see
//! [`crate::jobs`]). Answers are cached: a member stays a member for `positive_ttl`, a
//! non-member is asked again after the shorter `negative_ttl` (someone who just got a role
//! should not wait long). Membership follows guild.xyz's own front end: a member is an address
//! for which any role of the guild reports `access == true` (see [`parse_membership`]).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::TtlCache;
use crate::flight::Flight;
use crate::http::{self, HttpError, Limits};
use crate::wallet::Address;

/// How to reach the Guild API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL without a trailing slash. Defaults to `https://api.guild.xyz`.
    pub base_url: String,
    /// An API key, sent as `x-guild-auth` (with `x-guild-service`), as the Guild API reads
    /// it. Defaults to none: the endpoints used here are public.
    pub api_key: Option<String>,
    /// The service name sent as `x-guild-service` with the API key. Defaults to `gatehouse`.
    pub service_name: String,
    /// Timeout and reply size of one request. Defaults to 5 seconds and 256 KiB.
    pub limits: Limits,
    /// How long "is a member" and a resolved guild are trusted. Defaults to 5 minutes.
    pub positive_ttl: Duration,
    /// How long "is not a member" is trusted. Defaults to 30 seconds.
    pub negative_ttl: Duration,
    /// Answers kept, per cache. Defaults to 4096.
    pub cache_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base_url: "https://api.guild.xyz".into(),
            api_key: None,
            service_name: "gatehouse".into(),
            limits: Limits::default(),
            positive_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            cache_size: 4096,
        }
    }
}

/// A guild as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guild {
    /// Numeric id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// The `guild.xyz/<url_name>` path.
    pub url_name: String,
}

/// The answer for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The guild asked about.
    pub guild: Guild,
    /// Whether any role grants access.
    pub member: bool,
    /// Whether the answer came from the cache.
    pub cached: bool,
}

/// A shared client; clones share the caches.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<Config>,
    guilds: Arc<Mutex<TtlCache<String, Guild>>>,
    members: Arc<Mutex<TtlCache<(u64, Address), bool>>>,
    /// Guild lookups in progress: joins of one guild by many addresses resolve it once.
    resolving: Arc<Flight<String, Result<Guild, GuildError>>>,
}

impl Client {
    /// A client for `config`; refuses a base URL that is not http(s).
    pub fn new(mut config: Config) -> Result<Client, GuildError> {
        let trimmed = config.base_url.trim_end_matches('/').to_string();
        if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
            return Err(GuildError::BadConfig(format!("base URL {trimmed} is not http(s)")));
        }
        config.base_url = trimmed;
        let size = config.cache_size;
        Ok(Client {
            config: Arc::new(config),
            guilds: Arc::new(Mutex::new(TtlCache::new(size))),
            members: Arc::new(Mutex::new(TtlCache::new(size))),
            resolving: Arc::default(),
        })
    }

    /// The API's base URL (its origin is the source the per-source limit counts).
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// The cached answer, if both the guild and the membership are cached.
    pub fn cached(
        &self,
        guild: &str,
        address: &Address,
        now: Instant,
    ) -> Result<Option<Membership>, GuildError> {
        let key = guild_key(guild)?;
        let Some(guild) = lock(&self.guilds).get(&key, now) else { return Ok(None) };
        let member = lock(&self.members).get(&(guild.id, *address), now);
        Ok(member.map(|member| Membership { guild, member, cached: true }))
    }

    /// Asks the API (blocking): resolves the guild unless cached, then the membership.
    pub fn ask(&self, guild: &str, address: &Address) -> Result<Membership, GuildError> {
        let key = guild_key(guild)?;
        let cached_guild = lock(&self.guilds).get(&key, Instant::now());
        let guild = match cached_guild {
            Some(guild) => guild,
            None => {
                let gave_up = || {
                    Err(GuildError::Http(HttpError::Timeout { after: self.config.limits.timeout }))
                };
                let guild = self.resolving.run(key.clone(), || self.fetch_guild(&key), gave_up)?;
                lock(&self.guilds).insert(
                    key,
                    guild.clone(),
                    self.config.positive_ttl,
                    Instant::now(),
                );
                guild
            }
        };
        let member = self.fetch_membership(&guild, address)?;
        let ttl = if member { self.config.positive_ttl } else { self.config.negative_ttl };
        lock(&self.members).insert((guild.id, *address), member, ttl, Instant::now());
        Ok(Membership { guild, member, cached: false })
    }

    fn fetch_guild(&self, key: &str) -> Result<Guild, GuildError> {
        let reply = self.get(&format!("/v2/guilds/{key}"))?;
        parse_guild(key, reply.status, &reply.body)
    }

    fn fetch_membership(&self, guild: &Guild, address: &Address) -> Result<bool, GuildError> {
        let path = format!("/v2/users/{}/memberships?guildId={}", address.to_lowercase(), guild.id);
        let reply = self.get(&path)?;
        parse_membership(guild.id, reply.status, &reply.body)
    }

    fn get(&self, path: &str) -> Result<http::Reply, GuildError> {
        let url = format!("{}{path}", self.config.base_url);
        let mut headers = vec![("Accept", "application/json")];
        if let Some(key) = &self.config.api_key {
            headers.push(("x-guild-auth", key.as_str()));
            headers.push(("x-guild-service", self.config.service_name.as_str()));
        }
        let reply = http::get(&url, &headers, self.config.limits).map_err(GuildError::Http)?;
        if !reply.is_success() && reply.status != 404 {
            return Err(GuildError::Status {
                status: reply.status,
                message: error_message(&reply.body),
            });
        }
        Ok(reply)
    }
}

/// Why the Guild API gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuildError {
    /// A guild reference other than a url name (`[a-z0-9-]`) or a numeric id.
    BadGuildName(String),
    /// The API does not know the guild.
    NoSuchGuild(String),
    /// The request failed: timeout, connection refused, reply too large.
    Http(HttpError),
    /// The API answered with an error status, and maybe its `{errors:[{msg}]}` text (bounded,
    /// control characters replaced).
    Status {
        /// The HTTP status.
        status: u16,
        /// The API's own message, when its reply carried one.
        message: Option<String>,
    },
    /// The reply is not the JSON the API documents.
    BadReply(String),
    /// The client's configuration is unusable.
    BadConfig(String),
}

impl GuildError {
    /// What a user may be told: [`fmt::Display`] without the API's own message (which is
    /// about the server's request, for the admin's log, not for clients).
    pub fn public_text(&self) -> String {
        match self {
            GuildError::Status { status, .. } => format!("guild API: http status: {status}"),
            other => other.to_string(),
        }
    }

    /// A stable kebab-case code (a fixed set: fit for metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            GuildError::BadGuildName(_) => "guild-bad-name",
            GuildError::NoSuchGuild(_) => "guild-unknown",
            GuildError::Http(_) => "guild-http",
            GuildError::Status { .. } => "guild-status",
            GuildError::BadReply(_) => "guild-bad-reply",
            GuildError::BadConfig(_) => "guild-bad-config",
        }
    }

    /// The broad class for the stanza error: `bad-guild` for the room's requirement,
    /// `guild-unavailable` for the service.
    pub fn condition(&self) -> &'static str {
        match self {
            GuildError::BadGuildName(_) | GuildError::NoSuchGuild(_) => "bad-guild",
            GuildError::BadConfig(_) => "bad-config",
            _ => "guild-unavailable",
        }
    }
}

impl fmt::Display for GuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuildError::BadGuildName(name) => write!(f, "not a guild url name or id: {name}"),
            GuildError::NoSuchGuild(name) => write!(f, "no such guild: {name}"),
            GuildError::Http(error) => write!(f, "guild API: {error}"),
            GuildError::Status { status, message: None } => {
                write!(f, "guild API: http status: {status}")
            }
            GuildError::Status { status, message: Some(message) } => {
                write!(f, "guild API: http status: {status}: {message:?}")
            }
            GuildError::BadReply(what) => write!(f, "guild API: unexpected reply ({what})"),
            GuildError::BadConfig(text) => write!(f, "guild API: {text}"),
        }
    }
}

impl std::error::Error for GuildError {}

/// Normalises a guild reference; only characters that cannot escape the URL path pass.
pub fn guild_key(guild: &str) -> Result<String, GuildError> {
    let key = guild.trim().to_ascii_lowercase();
    let valid = !key.is_empty()
        && key.len() <= 100
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(key)
    } else {
        Err(GuildError::BadGuildName(guild.chars().take(100).collect()))
    }
}

/// The guild in a `/v2/guilds/{key}` reply (`status` 2xx or 404).
pub fn parse_guild(key: &str, status: u16, body: &[u8]) -> Result<Guild, GuildError> {
    if status == 404 {
        return Err(GuildError::NoSuchGuild(key.to_string()));
    }
    let json = json_of(body)?;
    let id = json.get("id").and_then(Value::as_u64).ok_or_else(|| bad_reply("guild id"))?;
    let text = |field: &str| json.get(field).and_then(Value::as_str).map(str::to_string);
    Ok(Guild {
        id,
        name: text("name").unwrap_or_else(|| key.to_string()),
        url_name: text("urlName").unwrap_or_else(|| key.to_string()),
    })
}

/// Whether a `/v2/users/{address}/memberships` reply (`status` 2xx or 404) makes the address a
/// member of guild `guild_id`. Two shapes (REFERENCE §7):
/// * with `?guildId=` (what [`Client`] asks): one object `{guildId, roleIds, roles:[{roleId,
///   access}]}`; a member has any role with `access == true`, as guild.xyz's front end decides;
/// * without it: an array `[{guildId, roleIds, isAdmin, isOwner, joinedAt}]` with no `roles`;
///   a member has an entry for this guild holding at least one role (`roleIds` not empty).
///
/// An entry for another guild never counts; an entry that carries `roles` is judged by them.
pub fn parse_membership(guild_id: u64, status: u16, body: &[u8]) -> Result<bool, GuildError> {
    // The API answers 404 for an address it has never seen: not a member of anything.
    if status == 404 {
        return Ok(false);
    }
    let json = json_of(body)?;
    let memberships: Vec<&Value> = match &json {
        Value::Array(items) => items.iter().collect(),
        object @ Value::Object(_) => vec![object],
        _ => return Err(bad_reply("memberships")),
    };
    let this_guild = |m: &&Value| match m.get("guildId") {
        None => !json.is_array(), // the object form may leave out the id it was asked for
        Some(id) => id.as_u64() == Some(guild_id),
    };
    Ok(memberships.into_iter().filter(this_guild).any(|m| match m.get("roles") {
        Some(roles) => roles
            .as_array()
            .is_some_and(|roles| roles.iter().any(|r| r.get("access") == Some(&Value::Bool(true)))),
        None => m.get("roleIds").and_then(Value::as_array).is_some_and(|ids| !ids.is_empty()),
    }))
}

/// The API's own error text: `{errors:[{msg}]}` (or `{message}`), at most 200 characters,
/// control characters replaced, so it can go into a log line.
pub fn error_message(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let text = json
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|errors| errors.first())
        .and_then(|error| error.get("msg"))
        .or_else(|| json.get("message"))
        .and_then(Value::as_str)?;
    Some(text.chars().take(200).map(|c| if c.is_control() { ' ' } else { c }).collect())
}

fn json_of(body: &[u8]) -> Result<Value, GuildError> {
    serde_json::from_slice(body).map_err(|_| bad_reply("not JSON"))
}

fn bad_reply(what: &str) -> GuildError {
    GuildError::BadReply(what.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each cache operation is one map update; a panic elsewhere cannot leave it half-done.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-thread HTTP server answering each request with the next canned reply.
    fn serve(replies: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in replies {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                seen.push(request);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        (url, handle)
    }

    const ADDRESS: Address = Address([0xab; 20]);
    const GUILD: &str = r#"{"id": 42, "name": "Our Guild", "urlName": "our-guild"}"#;

    fn client(url: &str) -> Client {
        Client::new(Config {
            base_url: url.into(),
            api_key: Some("k-123".into()),
            ..Config::default()
        })
        .unwrap()
    }

    #[test]
    fn test_member_when_any_role_has_access_and_answer_is_cached() {
        let body = r#"{"guildId": 42, "roles": [{"roleId": 1, "access": false},
            {"roleId": 2, "access": true}]}"#;
        let (url, server) = serve(vec![(200, GUILD), (200, body)]);
        let client = client(&url);
        let answer = client.ask("Our-Guild", &ADDRESS).unwrap();
        assert!(answer.member && !answer.cached);
        assert_eq!(answer.guild.name, "Our Guild");
        let cached = client.cached("our-guild", &ADDRESS, Instant::now()).unwrap().unwrap();
        assert!(cached.member && cached.cached);
        let requests = server.join().unwrap();
        assert!(requests[0].starts_with("GET /v2/guilds/our-guild "));
        let address = "0xabababababababababababababababababababab";
        assert!(requests[1].starts_with(&format!("GET /v2/users/{address}/memberships?guildId=42")));
        let headers = requests[1].to_ascii_lowercase();
        assert!(headers.contains("\r\nx-guild-auth: k-123\r\n"), "{headers}");
        assert!(headers.contains("\r\nx-guild-service: gatehouse\r\n"), "{headers}");
        assert!(!headers.contains("x-api-key"), "{headers}");
    }

    #[test]
    fn test_not_member_without_access_or_unknown_address() {
        let none = r#"[{"guildId": 42, "roles": [{"roleId": 1, "access": false}]},
            {"guildId": 7, "roles": [{"roleId": 3, "access": true}]}]"#;
        let (url, server) = serve(vec![(200, GUILD), (200, none), (404, "")]);
        let client = client(&url);
        assert!(!client.ask("our-guild", &ADDRESS).unwrap().member);
        assert!(!client.ask("our-guild", &Address([1; 20])).unwrap().member);
        server.join().unwrap();
    }

    #[test]
    fn test_negative_answers_expire_sooner() {
        let (url, server) = serve(vec![(200, GUILD), (200, r#"{"roles": []}"#)]);
        let client = Client::new(Config {
            base_url: url,
            negative_ttl: Duration::from_secs(2),
            ..Config::default()
        })
        .unwrap();
        assert!(!client.ask("our-guild", &ADDRESS).unwrap().member);
        let later = Instant::now() + Duration::from_secs(3);
        assert!(!client.cached("our-guild", &ADDRESS, Instant::now()).unwrap().unwrap().member);
        assert!(client.cached("our-guild", &ADDRESS, later).unwrap().is_none());
        server.join().unwrap();
    }

    #[test]
    fn test_errors_are_distinct() {
        let (url, server) = serve(vec![(404, ""), (503, ""), (200, "{}")]);
        let client = client(&url);
        assert_eq!(client.ask("nope", &ADDRESS), Err(GuildError::NoSuchGuild("nope".into())));
        assert_eq!(
            client.ask("down", &ADDRESS),
            Err(GuildError::Status { status: 503, message: None })
        );
        assert!(matches!(client.ask("odd", &ADDRESS), Err(GuildError::BadReply(_))));
        server.join().unwrap();
        assert!(matches!(guild_key("../admin"), Err(GuildError::BadGuildName(_))));
        assert!(matches!(guild_key(""), Err(GuildError::BadGuildName(_))));
        assert_eq!(guild_key(" 1234 ").unwrap(), "1234");
    }

    #[test]
    fn test_memberships_array_without_guild_id_has_no_roles() {
        // The SDK's user.getMemberships shape: membership is an entry for the guild with roles.
        let list = br#"[{"guildId": 7, "roleIds": [3], "isAdmin": false, "isOwner": false,
            "joinedAt": "2024-01-01T00:00:00.000Z"},
            {"guildId": 42, "roleIds": [1, 2], "isAdmin": false, "isOwner": false,
            "joinedAt": "2024-02-01T00:00:00.000Z"}]"#;
        assert_eq!(parse_membership(42, 200, list), Ok(true));
        assert_eq!(parse_membership(7, 200, list), Ok(true));
        assert_eq!(parse_membership(8, 200, list), Ok(false));
        let no_roles = br#"[{"guildId": 42, "roleIds": [], "isAdmin": false, "isOwner": false}]"#;
        assert_eq!(parse_membership(42, 200, no_roles), Ok(false));
        assert_eq!(parse_membership(42, 200, b"[]"), Ok(false));
        // An array entry without its guildId is nobody's membership.
        assert_eq!(parse_membership(42, 200, br#"[{"roleIds": [1]}]"#), Ok(false));
        // The one-object form (?guildId=) is judged by its roles' access.
        let object =
            br#"{"guildId": 42, "roleIds": [1], "roles": [{"roleId": 1, "access": false}]}"#;
        assert_eq!(parse_membership(42, 200, object), Ok(false));
        let other = br#"{"guildId": 7, "roles": [{"roleId": 1, "access": true}]}"#;
        assert_eq!(parse_membership(42, 200, other), Ok(false));
    }

    #[test]
    fn test_error_body_is_kept_bounded_for_the_log() {
        let body = r#"{"errors": [{"msg": "Invalid API key\nforged line"}]}"#;
        let (url, server) = serve(vec![(401, body)]);
        let error = client(&url).ask("our-guild", &ADDRESS).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            error.to_string(),
            r#"guild API: http status: 401: "Invalid API key forged line""#
        );
        assert_eq!(error.public_text(), "guild API: http status: 401");
        assert_eq!(error_message(br#"{"message": "Not found"}"#).as_deref(), Some("Not found"));
        let long = format!(r#"{{"errors": [{{"msg": "{}"}}]}}"#, "x".repeat(5000));
        assert_eq!(error_message(long.as_bytes()).map(|m| m.len()), Some(200));
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn test_timeout_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = Config { base_url: url, ..Config::default() };
        config.limits.timeout = Duration::from_millis(200);
        let client = Client::new(config).unwrap();
        let error = client.ask("slow", &ADDRESS).unwrap_err();
        assert_eq!(error.condition(), "guild-unavailable");
        drop(listener);
        assert!(Client::new(Config { base_url: "ftp://x".into(), ..Config::default() }).is_err());
    }
}
