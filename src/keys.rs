//! Where verification keys come from: a shared secret, a PEM public key, an ASAP key server
//! or a JWKS document, with the remote ones cached.
//!
//! Looking a key up never touches the network. When a remote key is missing or stale, the
//! lookup answers [`Lookup::Fetch`] with a [`KeyFetch`] that the caller runs on a worker thread
//! (see [`crate::jobs`]); the fetch fills the shared cache and the caller looks up again.
//!
//! What a token's `kid` can make us fetch is bounded, since anyone can send a token with any
//! `kid` before a signature is checked:
//! - a JWKS document is fetched again for an unknown `kid` at most once per
//!   [`KeyCacheConfig::retry_after`], counted from when a fetch *starts*; logins that arrive
//!   while it runs wait for that same fetch;
//! - an ASAP key server is asked about a new `kid` at most [`KeyCacheConfig::fetch_rate`] times
//!   per second (after a burst of four seconds' worth); a `kid` it does not know is not asked
//!   about again for `retry_after`, a failed fetch for a few seconds.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily as Family, DecodingKey};

use crate::cache::{later, RateLimit, TtlCache};
use crate::http::{self, HttpError, Limits};

/// Why no key could be found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The token names no `kid`, but the key source needs one to pick a key.
    MissingKeyId,
    /// The key server or JWKS document has no usable key with this `kid`.
    UnknownKeyId(String),
    /// The key server could not be reached or answered badly.
    Fetch(String),
    /// A key (configured or fetched) is not a valid key for the configured algorithm.
    BadKey(String),
    /// Too many new key ids asked for at once: the key server is spared until the rate allows.
    Throttled,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::MissingKeyId => write!(f, "'kid' claim is missing"),
            KeyError::UnknownKeyId(kid) => write!(f, "no public key for kid '{kid}'"),
            KeyError::Fetch(text) => write!(f, "could not obtain public key: {text}"),
            KeyError::BadKey(text) => write!(f, "bad public key: {text}"),
            KeyError::Throttled => {
                write!(f, "could not obtain public key: too many new key ids, try again shortly")
            }
        }
    }
}

impl std::error::Error for KeyError {}

impl From<HttpError> for KeyError {
    fn from(error: HttpError) -> Self {
        KeyError::Fetch(error.to_string())
    }
}

/// The answer to "which key verifies a token with this `kid`?".
pub enum Lookup {
    /// Use this key.
    Found(Arc<DecodingKey>),
    /// Not cached: run this fetch (blocking, on a worker thread), then look up again.
    Fetch(KeyFetch),
}

/// How a key source is configured.
#[derive(Debug, Clone)]
pub enum KeySourceConfig {
    /// An HMAC secret (`app_secret`).
    Secret(Vec<u8>),
    /// One PEM public key for the configured algorithm.
    PublicKeyPem(String),
    /// Jitsi's ASAP layout: `{base}/{hex(sha256(kid))}.pem` (`asap_key_server`).
    AsapServer(String),
    /// A JWKS document (`cache_keys_url`).
    Jwks(String),
}

/// Cache and network settings for remote key sources.
#[derive(Debug, Clone, Copy)]
pub struct KeyCacheConfig {
    /// Keys kept at most (`jwt_pubkey_cache_size`). Defaults to 128.
    pub capacity: usize,
    /// How long an ASAP key is trusted before it is fetched again. Defaults to 1 hour.
    pub asap_ttl: Duration,
    /// JWKS lifetime when the reply has no `Cache-Control: max-age`. Defaults to 6 hours.
    /// A shorter `max-age` is honoured down to `retry_after`.
    pub jwks_default_ttl: Duration,
    /// After a failed JWKS fetch, or for an unknown `kid`, wait this long before fetching again.
    /// Defaults to 30 seconds.
    pub retry_after: Duration,
    /// New key ids an ASAP key server is asked about per second, at most, after a burst of
    /// four seconds' worth (`gatehouse_key_fetch_rate`). Defaults to 5.
    pub fetch_rate: f64,
    /// Timeout and size limit of each fetch. Defaults to 5 s and 64 KiB.
    pub http: Limits,
}

impl Default for KeyCacheConfig {
    fn default() -> Self {
        KeyCacheConfig {
            capacity: 128,
            asap_ttl: Duration::from_secs(3600),
            jwks_default_ttl: Duration::from_secs(6 * 3600),
            retry_after: Duration::from_secs(30),
            fetch_rate: 5.0,
            http: Limits { timeout: Duration::from_secs(5), max_body: 64 * 1024 },
        }
    }
}

/// A configured source of verification keys; cheap to clone, caches are shared.
#[derive(Clone)]
pub struct KeySource {
    algorithm: Algorithm,
    kind: SourceKind,
}

#[derive(Clone)]
enum SourceKind {
    Static(Arc<DecodingKey>),
    Asap {
        base: String,
        cache: Arc<Mutex<TtlCache<String, Arc<DecodingKey>>>>,
        asking: Arc<Mutex<AsapAsking>>,
        cfg: KeyCacheConfig,
    },
    Jwks {
        url: String,
        state: Arc<Mutex<JwksState>>,
        cfg: KeyCacheConfig,
    },
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// The key to use for tokens without `kid`, when the document holds exactly one key.
    only: Option<Arc<DecodingKey>>,
    /// When the last fetch started: the "fetched recently" mark.
    started: Option<Instant>,
    /// Until when the last fetch may still be running (its start plus the timeout).
    running_until: Option<Instant>,
    expires: Option<Instant>,
    /// Why the last fetch failed, while no fetch has succeeded since.
    last_error: Option<KeyError>,
}

/// What an ASAP source remembers about the key ids it was asked for; keyed by the key's URL
/// (a hash of the `kid`), so a long `kid` costs no more memory than a short one.
struct AsapAsking {
    /// Fetches started and not finished (until the timeout, in case one is never run).
    pending: TtlCache<String, ()>,
    /// Recent failures: the `kid` is unknown, or the server failed a moment ago.
    failed: TtlCache<String, Failure>,
    /// New key ids per second.
    rate: RateLimit,
}

#[derive(Clone)]
enum Failure {
    UnknownKid,
    Error(KeyError),
}

/// Key ids remembered as pending or failed, per ASAP source.
const ASAP_MEMORY: usize = 4096;
/// How long a failed ASAP fetch (timeout, 5xx, reset) is answered from memory.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// The longest a JWKS document is trusted without fetching it again, whatever its max-age.
const MAX_JWKS_TTL: Duration = Duration::from_secs(86_400);

impl KeySource {
    /// Builds a source for tokens signed with `algorithm` (pinned by the server).
    pub fn new(
        algorithm: Algorithm,
        config: KeySourceConfig,
        cache: KeyCacheConfig,
    ) -> Result<Self, KeyError> {
        let kind = match config {
            KeySourceConfig::Secret(secret) => {
                if algorithm.family() != Family::Hmac {
                    return Err(KeyError::BadKey(format!(
                        "a shared secret cannot verify {algorithm:?} tokens"
                    )));
                }
                SourceKind::Static(Arc::new(DecodingKey::from_secret(&secret)))
            }
            KeySourceConfig::PublicKeyPem(pem) => {
                SourceKind::Static(Arc::new(parse_pem(algorithm, pem.as_bytes())?))
            }
            KeySourceConfig::AsapServer(base) => SourceKind::Asap {
                base: base.trim_end_matches('/').to_string(),
                cache: Arc::new(Mutex::new(TtlCache::new(cache.capacity))),
                asking: Arc::new(Mutex::new(AsapAsking {
                    pending: TtlCache::new(ASAP_MEMORY),
                    failed: TtlCache::new(ASAP_MEMORY),
                    rate: RateLimit::new(cache.fetch_rate, cache.fetch_rate * 4.0, Instant::now()),
                })),
                cfg: cache,
            },
            KeySourceConfig::Jwks(url) => {
                SourceKind::Jwks { url, state: Arc::default(), cfg: cache }
            }
        };
        if matches!(kind, SourceKind::Asap { .. } | SourceKind::Jwks { .. })
            && algorithm.family() == Family::Hmac
        {
            return Err(KeyError::BadKey(format!(
                "{algorithm:?} needs a shared secret, not a key server"
            )));
        }
        Ok(KeySource { algorithm, kind })
    }

    /// The key for a token whose header carries `kid`, without any network access.
    pub fn lookup(&self, kid: Option<&str>, now: Instant) -> Result<Lookup, KeyError> {
        match &self.kind {
            SourceKind::Static(key) => Ok(Lookup::Found(Arc::clone(key))),
            SourceKind::Asap { base, cache, asking, cfg } => {
                let kid = kid.ok_or(KeyError::MissingKeyId)?;
                if let Some(key) = lock(cache).get(&kid.to_string(), now) {
                    return Ok(Lookup::Found(key));
                }
                let url = asap_url(base, kid);
                let mut memory = lock(asking);
                match memory.failed.get(&url, now) {
                    Some(Failure::UnknownKid) => return Err(KeyError::UnknownKeyId(kid.into())),
                    Some(Failure::Error(error)) => return Err(error),
                    None => {}
                }
                // A fetch for this kid already running is joined (jobs share it); a kid never
                // seen costs one of the rate's tokens; an expired known key is refreshed freely.
                if memory.pending.get(&url, now).is_none() {
                    let known = lock(cache).contains(&kid.to_string());
                    if !known && !memory.rate.try_take(now) {
                        return Err(KeyError::Throttled);
                    }
                    memory.pending.insert(url.clone(), (), cfg.http.timeout, now);
                }
                Ok(Lookup::Fetch(KeyFetch(FetchKind::Asap {
                    url,
                    kid: kid.to_string(),
                    algorithm: self.algorithm,
                    cache: Arc::clone(cache),
                    asking: Arc::clone(asking),
                    cfg: *cfg,
                })))
            }
            SourceKind::Jwks { url, state, cfg } => {
                let mut guard = lock(state);
                let fresh = guard.expires.is_some_and(|e| now < e);
                let found = match kid {
                    Some(kid) => guard.keys.get(kid).cloned(),
                    None => guard.only.clone(),
                };
                if let (Some(key), true) = (&found, fresh) {
                    return Ok(Lookup::Found(Arc::clone(key)));
                }
                let fetch = || {
                    Lookup::Fetch(KeyFetch(FetchKind::Jwks {
                        url: url.clone(),
                        algorithm: self.algorithm,
                        state: Arc::clone(state),
                        cfg: *cfg,
                    }))
                };
                // A fetch in progress: wait for it (the jobs share one request).
                if guard.running_until.is_some_and(|until| now < until) {
                    return Ok(fetch());
                }
                // Fetched recently (counted from the start): the issuer may have rotated keys,
                // but a kid nobody knows must not make us fetch once per login.
                let recently = guard.started.is_some_and(|s| now < later(s, cfg.retry_after));
                if recently {
                    return match (found, kid) {
                        // A refresh failed a moment ago: the keys we had still serve.
                        (Some(key), _) => Ok(Lookup::Found(key)),
                        _ if guard.keys.is_empty() => Err(guard
                            .last_error
                            .clone()
                            .unwrap_or_else(|| KeyError::Fetch("no JWKS document yet".into()))),
                        (None, Some(kid)) => Err(KeyError::UnknownKeyId(kid.to_string())),
                        (None, None) => Err(KeyError::MissingKeyId),
                    };
                }
                guard.started = Some(now);
                guard.running_until = Some(later(now, cfg.http.timeout));
                Ok(fetch())
            }
        }
    }

    /// The algorithm this source's keys verify.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// A pending remote key fetch; [`KeyFetch::run`] blocks, so run it on a worker thread.
pub struct KeyFetch(FetchKind);

enum FetchKind {
    /// Fetch one PEM from an ASAP key server.
    Asap {
        /// Full URL of the PEM.
        url: String,
        /// The key id it is cached under.
        kid: String,
        /// Algorithm the key must fit.
        algorithm: Algorithm,
        /// Shared cache to fill.
        cache: Arc<Mutex<TtlCache<String, Arc<DecodingKey>>>>,
        /// Pending and failed key ids to update.
        asking: Arc<Mutex<AsapAsking>>,
        /// Limits and lifetimes.
        cfg: KeyCacheConfig,
    },
    /// Fetch a JWKS document.
    Jwks {
        /// Document URL.
        url: String,
        /// Algorithm the keys must fit.
        algorithm: Algorithm,
        /// Shared state to refresh.
        state: Arc<Mutex<JwksState>>,
        /// Limits and lifetimes.
        cfg: KeyCacheConfig,
    },
}

impl KeyFetch {
    /// The URL fetched: identical fetches share one request (see [`crate::jobs::Call::key`]).
    pub fn url(&self) -> &str {
        match &self.0 {
            FetchKind::Asap { url, .. } | FetchKind::Jwks { url, .. } => url,
        }
    }

    /// Fetches and caches the key(s). Blocks up to the configured HTTP timeout.
    pub fn run(self) -> Result<(), KeyError> {
        match self.0 {
            FetchKind::Asap { url, kid, algorithm, cache, asking, cfg } => {
                let result = fetch_asap(&url, algorithm, &cfg);
                let now = Instant::now();
                let mut asking = lock(&asking);
                asking.pending.remove(&url);
                match result {
                    Ok(key) => {
                        lock(&cache).insert(kid, Arc::new(key), cfg.asap_ttl, now);
                        Ok(())
                    }
                    Err((failure, error)) => {
                        let memory = match failure {
                            Failure::UnknownKid => cfg.retry_after,
                            Failure::Error(_) => FAILURE_MEMORY.min(cfg.retry_after),
                        };
                        asking.failed.insert(url, failure, memory, now);
                        Err(error)
                    }
                }
            }
            FetchKind::Jwks { url, algorithm, state, cfg } => {
                let result = fetch_jwks(&url, algorithm, &cfg);
                let now = Instant::now();
                let mut guard = lock(&state);
                guard.running_until = None;
                match result {
                    Ok((keys, max_age)) => {
                        guard.only =
                            if keys.len() == 1 { keys.values().next().cloned() } else { None };
                        guard.keys = keys;
                        guard.expires = Some(later(now, jwks_ttl(max_age, &cfg)));
                        guard.last_error = None;
                        Ok(())
                    }
                    Err(error) => {
                        // Keep serving the keys we had; the "recently" mark spaces retries.
                        guard.last_error = Some(error.clone());
                        Err(error)
                    }
                }
            }
        }
    }
}

/// How long a fetched JWKS document is used: its `max-age`, else the default, never less than
/// `retry_after` (a server saying `no-cache` or `max-age=0` must not make us fetch once per
/// login, or fail every login) and never more than a day, whatever the server says.
fn jwks_ttl(max_age: Option<Duration>, cfg: &KeyCacheConfig) -> Duration {
    max_age.unwrap_or(cfg.jwks_default_ttl).max(cfg.retry_after).min(MAX_JWKS_TTL)
}

/// One ASAP key, or what to remember about the failure and the error to report.
fn fetch_asap(
    url: &str,
    algorithm: Algorithm,
    cfg: &KeyCacheConfig,
) -> Result<DecodingKey, (Failure, KeyError)> {
    let reply = http::get(url, &[], cfg.http).map_err(|e| {
        let error = KeyError::from(e);
        (Failure::Error(error.clone()), error)
    })?;
    if !reply.is_success() {
        let error = KeyError::Fetch(format!("http status: {}", reply.status));
        // 4xx: the server says it has no such key. Anything else may pass.
        let failure = if (400..500).contains(&reply.status) {
            Failure::UnknownKid
        } else {
            Failure::Error(error.clone())
        };
        return Err((failure, error));
    }
    // A bad key from the server is the server's fault, not this host's config.
    parse_pem(algorithm, &reply.body).map_err(|e| {
        let error = KeyError::Fetch(e.to_string());
        (Failure::Error(error.clone()), error)
    })
}

/// A public key for `algorithm` from PEM text (SPKI or PKCS#1 for RSA).
pub fn parse_pem(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, KeyError> {
    let key = match algorithm.family() {
        Family::Rsa => DecodingKey::from_rsa_pem(pem),
        Family::Ec => DecodingKey::from_ec_pem(pem),
        Family::Ed => DecodingKey::from_ed_pem(pem),
        Family::Hmac => {
            return Err(KeyError::BadKey(format!("{algorithm:?} takes a secret, not a PEM key")))
        }
    };
    key.map_err(|e| KeyError::BadKey(e.to_string()))
}

/// Jitsi's ASAP key URL: the key id is hashed so that it cannot walk the server's paths.
pub fn asap_url(base: &str, kid: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, kid.as_bytes());
    format!(
        "{}/{}.pem",
        base.trim_end_matches('/'),
        data_encoding::HEXLOWER.encode(digest.as_ref())
    )
}

type FetchedKeys = (HashMap<String, Arc<DecodingKey>>, Option<Duration>);

fn fetch_jwks(
    url: &str,
    algorithm: Algorithm,
    cfg: &KeyCacheConfig,
) -> Result<FetchedKeys, KeyError> {
    let reply = http::get(url, &[("Accept", "application/json")], cfg.http)?;
    if !reply.is_success() {
        return Err(KeyError::Fetch(format!("http status: {}", reply.status)));
    }
    let keys = parse_jwks(algorithm, &reply.body)?;
    Ok((keys, reply.max_age))
}

/// The keys of a JWKS document usable with `algorithm`, by `kid` (keys without `kid` are
/// stored under ""). Keys of another family, secret (`oct`) keys and keys that do not parse
/// are skipped, so one odd entry cannot take the whole document down.
pub fn parse_jwks(
    algorithm: Algorithm,
    body: &[u8],
) -> Result<HashMap<String, Arc<DecodingKey>>, KeyError> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| KeyError::Fetch(format!("JWKS is not JSON: {e}")))?;
    let entries = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| KeyError::Fetch("JWKS has no \"keys\" array".into()))?;
    let mut keys = HashMap::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else { continue };
        let fits = matches!(
            (&jwk.algorithm, algorithm.family()),
            (AlgorithmParameters::RSA(_), Family::Rsa)
                | (AlgorithmParameters::EllipticCurve(_), Family::Ec)
                | (AlgorithmParameters::OctetKeyPair(_), Family::Ed)
        );
        let alg_ok =
            jwk.common.key_algorithm.is_none_or(|a| format!("{a:?}") == format!("{algorithm:?}"));
        if !fits || !alg_ok {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(jwk.common.key_id.clone().unwrap_or_default(), Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err(KeyError::Fetch(format!("JWKS holds no {algorithm:?} key")));
    }
    Ok(keys)
}

/// See [`crate::jobs`]: a poisoned lock only means a panic elsewhere; the data is whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_asap_url_hashes_the_kid() {
        // sha256("jitsi/default") as upstream's hex.to(sha256(kid)) computes it.
        let url = asap_url("https://keys.example/asap/", "jitsi/default");
        assert!(url.starts_with("https://keys.example/asap/"));
        assert!(url.ends_with(".pem"));
        assert_eq!(url.len(), "https://keys.example/asap/".len() + 64 + 4);
        assert!(!url.contains("jitsi/default"));
    }

    #[test]
    fn test_secret_source_refuses_asymmetric_algorithm() {
        let err = KeySource::new(
            Algorithm::RS256,
            KeySourceConfig::Secret(b"s".to_vec()),
            KeyCacheConfig::default(),
        );
        assert!(matches!(err, Err(KeyError::BadKey(_))));
    }

    #[test]
    fn test_jwks_skips_secret_and_foreign_keys() {
        let doc = br#"{"keys":[
            {"kty":"oct","kid":"s","k":"c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"EC","crv":"P-256","kid":"broken","x":"AAAA","y":"AAAA"},
            {"not":"a key"}
        ]}"#;
        let keys = parse_jwks(Algorithm::EdDSA, doc).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ed"]);
        assert!(parse_jwks(Algorithm::RS256, doc).is_err());
        assert!(parse_jwks(Algorithm::RS256, b"not json").is_err());
        assert!(parse_jwks(Algorithm::RS256, b"{\"keys\":{}}").is_err());
    }

    #[test]
    fn test_asap_lookup_asks_for_fetch_then_finds_cached_key() {
        let source = KeySource::new(
            Algorithm::RS256,
            KeySourceConfig::AsapServer("http://127.0.0.1:9".into()),
            KeyCacheConfig::default(),
        )
        .unwrap();
        let now = Instant::now();
        assert!(matches!(source.lookup(None, now), Err(KeyError::MissingKeyId)));
        let Ok(Lookup::Fetch(KeyFetch(FetchKind::Asap { cache, .. }))) =
            source.lookup(Some("k1"), now)
        else {
            panic!("expected a fetch");
        };
        lock(&cache).insert(
            "k1".into(),
            Arc::new(DecodingKey::from_secret(b"x")),
            Duration::from_secs(5),
            now,
        );
        assert!(matches!(source.lookup(Some("k1"), now), Ok(Lookup::Found(_))));
        assert!(matches!(
            source.lookup(Some("k1"), now + Duration::from_secs(6)),
            Ok(Lookup::Fetch(_))
        ));
    }
}
