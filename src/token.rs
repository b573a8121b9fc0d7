//! Jitsi tokens: verify, decode without verifying, and sign.
//!
//! Verification follows jitsi-meet's `token/util.lib.lua` and `luajwtjitsi` rule by rule
//! (three segments, `typ`, an algorithm pinned by the server, `exp`/`nbf`, `iss`, `aud`,
//! `room`, `sub`) and fixes what upstream gets wrong: HMACs are compared in constant time, an
//! array `aud` is understood, ES/PS/EdDSA are supported, and a leeway can be configured.
//! Error texts (what the client reads, [`fmt::Display`]) are upstream's exact texts, since
//! clients and operators match on them; [`TokenError::detail`] says more, for the log only.

use std::fmt;
use std::time::Instant;

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

pub use jsonwebtoken::Algorithm;

use crate::clock::UnixTime;
use crate::keys::{KeyCacheConfig, KeyError, KeyFetch, KeySource, KeySourceConfig, Lookup};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// No token was presented and the host requires one.
    Missing,
    /// The token is longer than the configured limit.
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not three base64url segments of JSON objects.
    Malformed(&'static str),
    /// The header's `typ` is present and not `JWT`.
    BadType,
    /// The header's `alg` is not the one the server is configured for (this covers `none`).
    AlgorithmMismatch {
        /// What the server pins.
        expected: Algorithm,
        /// What the token says.
        found: String,
    },
    /// With a key server: the header is not JSON (upstream's "bad token format").
    BadHeaderFormat,
    /// A key server verifies RS256/384/512 tokens and this one names another family.
    NotRsaFamily,
    /// The signature does not match.
    InvalidSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired {
        /// The claim.
        exp: i64,
        /// The server's time.
        now: u64,
        /// `exp - iat`, when the token has a numeric `iat` (upstream reports it).
        valid_for: Option<i64>,
    },
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid {
        /// The claim.
        nbf: i64,
        /// The server's time.
        now: u64,
    },
    /// A time claim is not a number.
    BadTimeClaim(&'static str),
    /// A required claim is absent.
    MissingClaim(&'static str),
    /// The `room` claim is present but not a string (it would name no room, and a session
    /// without a room name is not checked at join).
    BadRoomClaim,
    /// `iss` is not among the accepted issuers.
    InvalidIssuer,
    /// `aud` is not among the accepted audiences.
    InvalidAudience,
    /// No key could be had to verify the token.
    Key(KeyError),
    /// A token could not be signed (issuer side).
    Signing(String),
}

impl TokenError {
    /// The XMPP condition upstream answers with: `not-authorized` for a missing `room` or
    /// `sub`, `internal-server-error` when the fault is the server's, `not-allowed` otherwise.
    pub fn condition(&self) -> &'static str {
        match self {
            TokenError::MissingClaim("room" | "sub") | TokenError::BadRoomClaim => "not-authorized",
            TokenError::Key(KeyError::BadKey(_)) | TokenError::Signing(_) => {
                "internal-server-error"
            }
            _ => "not-allowed",
        }
    }

    /// A short stable name for logs and metrics (`expired`, `invalid-signature`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::TooLarge { .. } => "too-large",
            TokenError::Malformed(_) | TokenError::BadHeaderFormat => "malformed",
            TokenError::BadType => "bad-typ",
            TokenError::AlgorithmMismatch { .. } | TokenError::NotRsaFamily => "bad-alg",
            TokenError::InvalidSignature => "invalid-signature",
            TokenError::Expired { .. } => "expired",
            TokenError::NotYetValid { .. } => "not-yet-valid",
            TokenError::BadTimeClaim(_) => "bad-time-claim",
            TokenError::MissingClaim(_) => "missing-claim",
            TokenError::BadRoomClaim => "bad-room-claim",
            TokenError::InvalidIssuer => "invalid-issuer",
            TokenError::InvalidAudience => "invalid-audience",
            TokenError::Key(KeyError::BadKey(_)) => "bad-key",
            TokenError::Key(_) => "key-unavailable",
            TokenError::Signing(_) => "signing-failed",
        }
    }
}

/// Upstream's texts (`luajwtjitsi.lib.lua`, `token/util.lib.lua`), word for word.
impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Missing => write!(f, "token required"),
            TokenError::TooLarge { .. } => write!(f, "Invalid token"),
            TokenError::Malformed(what) => f.write_str(malformed_text(what)),
            TokenError::BadType => write!(f, "Invalid typ"),
            TokenError::AlgorithmMismatch { .. } => write!(f, "Invalid or incorrect alg"),
            TokenError::NotRsaFamily => write!(f, "'kid' claim only support with RS family"),
            TokenError::BadHeaderFormat => write!(f, "bad token format"),
            TokenError::InvalidSignature => write!(f, "Invalid signature"),
            TokenError::Expired { exp, now, valid_for } => {
                // Upstream computes with cjson's floats: Lua 5.4 prints them as "12.0".
                write!(f, "Not acceptable by exp ({}.0 sec since expired", *now as i64 - exp)?;
                if let Some(valid_for) = valid_for {
                    write!(f, ", valid for:{valid_for}.0 sec")?;
                }
                write!(f, ")")
            }
            TokenError::NotYetValid { .. } => write!(f, "Not acceptable by nbf"),
            TokenError::BadTimeClaim(name) => write!(f, "{name} must be number"),
            TokenError::MissingClaim(name @ ("room" | "sub")) => {
                write!(f, "{name} claim is missing")
            }
            TokenError::MissingClaim(name) => write!(f, "'{name}' claim is missing"),
            TokenError::BadRoomClaim => write!(f, "room claim must be a string"),
            TokenError::InvalidIssuer => write!(f, "invalid 'iss' claim"),
            TokenError::InvalidAudience => write!(f, "invalid 'aud' claim"),
            TokenError::Key(KeyError::MissingKeyId) => write!(f, "'kid' claim is missing"),
            TokenError::Key(KeyError::BadKey(_)) => write!(f, "bad public key"),
            TokenError::Key(_) => write!(f, "could not obtain public key"),
            TokenError::Signing(text) => write!(f, "cannot sign token: {text}"),
        }
    }
}

/// upstream's `parse_token` answers: which segment could not be read.
fn malformed_text(what: &str) -> &'static str {
    if what.starts_with("header") {
        "Invalid header"
    } else if what.starts_with("payload") {
        "Invalid body"
    } else if what.starts_with("signature") {
        "Invalid signature"
    } else {
        "Invalid token"
    }
}

impl TokenError {
    /// What happened, for the log: gatehouse's own words, with any value that came from the
    /// client or a remote server shortened and escaped (see [`log_safe`]).
    pub fn detail(&self) -> String {
        let text = match self {
            TokenError::TooLarge { len, max } => {
                format!("token of {len} bytes, the limit is {max}")
            }
            TokenError::Malformed(what) => format!("malformed token: {what}"),
            TokenError::AlgorithmMismatch { expected, found } => {
                format!("alg '{found}', expected {expected:?}")
            }
            TokenError::Expired { exp, now, .. } => format!("expired: exp {exp} <= now {now}"),
            TokenError::NotYetValid { nbf, now } => format!("not yet valid: nbf {nbf} > now {now}"),
            TokenError::Key(error) => error.to_string(),
            other => other.to_string(),
        };
        log_safe(&text, 200)
    }
}

/// `text` made safe for one log line: control characters (newlines that would forge log
/// lines) escaped, and at most `max` characters kept, marked with `…` when cut.
pub fn log_safe(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    for c in text.chars() {
        let piece: String =
            if c.is_control() { c.escape_default().collect() } else { c.to_string() };
        len += piece.chars().count();
        if len > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

impl std::error::Error for TokenError {}

impl From<KeyError> for TokenError {
    fn from(error: KeyError) -> Self {
        TokenError::Key(error)
    }
}

/// What a verifier accepts. Each field mirrors a jitsi-meet option.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The one algorithm accepted (`signature_algorithm`). Jitsi's default is HS256 with a
    /// secret and RS256 with a key server.
    pub algorithm: Algorithm,
    /// Accepted `iss` values (`asap_accepted_issuers`); `*` accepts any. Defaults to `app_id`.
    pub accepted_issuers: Vec<String>,
    /// Accepted `aud` values (`asap_accepted_audiences`); `*` accepts any. Defaults to `*`.
    pub accepted_audiences: Vec<String>,
    /// Whether `room` must be present (`asap_require_room_claim`). Defaults to true.
    pub require_room_claim: bool,
    /// Seconds of clock skew tolerated on `exp`/`nbf`. Defaults to 0, as upstream.
    pub leeway: u64,
    /// Longest token accepted, in bytes. Defaults to 16 KiB.
    pub max_token_bytes: usize,
    /// Whether `iss`, `aud` and `sub` must be present, as Jitsi requires. Defaults to true.
    /// Matrix widget tokens are checked like `luajwtjitsi.verify` without issuers or
    /// audiences: signature and times only, and any claim present must still be accepted.
    pub require_jitsi_claims: bool,
}

impl Policy {
    /// Upstream's defaults for an `app_id`.
    pub fn new(algorithm: Algorithm, app_id: &str) -> Self {
        Policy {
            algorithm,
            accepted_issuers: vec![app_id.to_string()],
            accepted_audiences: vec!["*".to_string()],
            require_room_claim: true,
            leeway: 0,
            max_token_bytes: 16 * 1024,
            require_jitsi_claims: true,
        }
    }
}

/// The verified payload of a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// A string claim, if present and a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }
}

/// The outcome of [`Verifier::check`].
pub enum Check {
    /// Verification finished.
    Done(Result<Claims, TokenError>),
    /// The key must be fetched first: run this (on a worker), then call `check` again.
    NeedsKey(KeyFetch),
}

/// Verifies tokens against one policy and one key source. Cheap to clone; clones share caches.
#[derive(Clone)]
pub struct Verifier {
    policy: Policy,
    keys: KeySource,
    /// Keys come from a key server or JWKS: upstream then requires a `kid`.
    remote: bool,
    /// With both `cache_keys_url` and `asap_key_server`, the key server, asked for kids the
    /// JWKS lacks (upstream's order).
    fallback: Option<KeySource>,
}

impl Verifier {
    /// A verifier whose keys come from `source`.
    pub fn new(
        policy: Policy,
        source: KeySourceConfig,
        cache: KeyCacheConfig,
    ) -> Result<Self, TokenError> {
        let remote = matches!(source, KeySourceConfig::AsapServer(_) | KeySourceConfig::Jwks(_));
        let keys = KeySource::new(policy.algorithm, source, cache)?;
        Ok(Verifier { policy, keys, remote, fallback: None })
    }

    /// Also asks the ASAP key server at `base` for kids the JWKS does not hold, as upstream
    /// does when both `cache_keys_url` and `asap_key_server` are set.
    pub fn with_asap_fallback(
        mut self,
        base: String,
        cache: KeyCacheConfig,
    ) -> Result<Self, TokenError> {
        let source = KeySourceConfig::AsapServer(base);
        self.fallback = Some(KeySource::new(self.policy.algorithm, source, cache)?);
        Ok(self)
    }

    /// The key for `kid`: the main source, then the fallback for a kid the main one lacks.
    fn lookup(&self, kid: Option<&str>) -> Result<Lookup, KeyError> {
        match (self.keys.lookup(kid, Instant::now()), &self.fallback) {
            (Err(KeyError::UnknownKeyId(_)), Some(fallback)) => {
                fallback.lookup(kid, Instant::now())
            }
            (answer, _) => answer,
        }
    }

    /// The policy this verifier applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Verifies `token` with cached keys only; asks for a fetch when a remote key is missing.
    pub fn check(&self, token: &str, now: UnixTime) -> Check {
        let parsed = match Parsed::new(token, &self.policy, self.remote) {
            Ok(parsed) => parsed,
            Err(error) => return Check::Done(Err(error)),
        };
        match self.lookup(parsed.kid.as_deref()) {
            Ok(Lookup::Found(key)) => Check::Done(self.finish(token, &key, now)),
            Ok(Lookup::Fetch(fetch)) => Check::NeedsKey(fetch),
            Err(error) => Check::Done(Err(error.into())),
        }
    }

    /// Runs the fetch [`Verifier::check`] asked for (blocking: call it on a worker thread),
    /// then verifies with the fetched key.
    pub fn check_after_fetch(
        &self,
        fetch: KeyFetch,
        token: &str,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        self.check_fetched(&fetch.run(), token, now)
    }

    /// Verifies once a fetch [`Verifier::check`] asked for has run (here or for another token
    /// waiting for the same key), given how that fetch ended.
    pub fn check_fetched(
        &self,
        fetched: &Result<(), KeyError>,
        token: &str,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        match self.check(token, now) {
            Check::Done(result) => result,
            // Still no usable key: report why the fetch failed, if it did.
            Check::NeedsKey(_) => Err(fetched
                .clone()
                .err()
                .unwrap_or_else(|| KeyError::Fetch("key not usable after fetch".into()))
                .into()),
        }
    }

    /// Like [`Verifier::check_fetched`] (as [`Check::Done`]), except that when the fetch
    /// succeeded and the key must still come from the fallback key server (a kid the fresh
    /// JWKS lacks), that fetch is returned ([`Check::NeedsKey`]) to be run next. Run it, then
    /// call [`Verifier::check_fetched`]: at most two fetches per verification.
    pub fn after_fetch(&self, fetched: &Result<(), KeyError>, token: &str, now: UnixTime) -> Check {
        match self.check(token, now) {
            Check::NeedsKey(next) if self.fallback.is_some() && fetched.is_ok() => {
                Check::NeedsKey(next)
            }
            Check::Done(result) => Check::Done(result),
            Check::NeedsKey(_) => Check::Done(self.check_fetched(fetched, token, now)),
        }
    }

    /// Verifies with a PEM public key supplied for this one token (Jitsi's
    /// `pre-jitsi-authentication-fetch-key` event sets `session.public_key`).
    pub fn check_with_pem(
        &self,
        token: &str,
        pem: &str,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        Parsed::new(token, &self.policy, false)?;
        let key = crate::keys::parse_pem(self.policy.algorithm, pem.as_bytes())?;
        self.finish(token, &key, now)
    }

    fn finish(&self, token: &str, key: &DecodingKey, now: UnixTime) -> Result<Claims, TokenError> {
        let claims = verify_signature(token, key, self.policy.algorithm)?;
        check_claims(&claims, &self.policy, now)?;
        Ok(claims)
    }
}

/// The header fields that matter before a key is chosen.
struct Parsed {
    kid: Option<String>,
}

impl Parsed {
    /// `remote`: keys come from a key server, where upstream reads `kid` before anything else
    /// and refuses a token without one.
    fn new(token: &str, policy: &Policy, remote: bool) -> Result<Self, TokenError> {
        if token.len() > policy.max_token_bytes {
            return Err(TokenError::TooLarge { len: token.len(), max: policy.max_token_bytes });
        }
        if remote {
            remote_header_checks(token, policy)?;
        }
        let (header, _) = split_and_decode(token)?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if let Some(typ) = header.get("typ") {
            if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
                return Err(TokenError::BadType);
            }
        }
        if parse_algorithm(alg) != Some(policy.algorithm) {
            return Err(TokenError::AlgorithmMismatch {
                expected: policy.algorithm,
                found: alg.chars().take(16).collect(),
            });
        }
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_string);
        Ok(Parsed { kid })
    }
}

/// With a key server, token/util.lib.lua reads the header itself before fetching a key, with
/// its own answers: the first segment, then `kid`, `alg` and the RSA family.
fn remote_header_checks(token: &str, policy: &Policy) -> Result<(), TokenError> {
    let Some((first, _)) = token.split_once('.') else {
        return Err(TokenError::Malformed("no dot in the token"));
    };
    let bytes = BASE64URL_NOPAD
        .decode(first.trim_end_matches('=').as_bytes())
        .map_err(|_| TokenError::Malformed("token header is not base64url"))?;
    let header: Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::BadHeaderFormat)?;
    if !header.get("kid").is_some_and(Value::is_string) {
        return Err(TokenError::Key(KeyError::MissingKeyId));
    }
    let Some(alg) = header.get("alg") else {
        return Err(TokenError::MissingClaim("alg"));
    };
    let rsa_server = algorithm_name(policy.algorithm).starts_with("RS");
    if rsa_server && !alg.as_str().is_some_and(|a| a.starts_with("RS")) {
        return Err(TokenError::NotRsaFamily);
    }
    Ok(())
}

/// A JSON object, as token headers and payloads are.
pub type JsonObject = Map<String, Value>;

/// Header and payload of a token, without checking anything but their shape. For tooling
/// and logs; never for access decisions.
pub fn decode_unverified(token: &str) -> Result<(JsonObject, JsonObject), TokenError> {
    split_and_decode(token)
}

/// A key to sign tokens with.
pub struct SigningKey {
    algorithm: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
}

impl SigningKey {
    /// An HMAC key (HS256/384/512).
    pub fn secret(
        algorithm: Algorithm,
        secret: &[u8],
        kid: Option<String>,
    ) -> Result<Self, TokenError> {
        if algorithm.family() != AlgorithmFamily::Hmac {
            return Err(TokenError::Signing(format!(
                "{algorithm:?} needs a private key, not a secret"
            )));
        }
        Ok(SigningKey { algorithm, key: EncodingKey::from_secret(secret), kid })
    }

    /// A private key in PEM form for an RSA, EC or Ed25519 algorithm.
    pub fn private_pem(
        algorithm: Algorithm,
        pem: &[u8],
        kid: Option<String>,
    ) -> Result<Self, TokenError> {
        let key = match algorithm.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                return Err(TokenError::Signing(format!(
                    "{algorithm:?} takes a secret, not a PEM key"
                )))
            }
        };
        let key = key.map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(SigningKey { algorithm, key, kid })
    }
}

/// Signs `claims` (a JSON object) into a compact JWT with header `{"alg", "typ": "JWT", "kid"?}`.
pub fn sign(claims: &Map<String, Value>, key: &SigningKey) -> Result<String, TokenError> {
    let mut header = Header::new(key.algorithm);
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, claims, &key.key).map_err(|e| TokenError::Signing(e.to_string()))
}

/// Parses an algorithm name as Jitsi's `signature_algorithm` spells it (`RS256`, `EdDSA`, …).
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}

/// The JOSE name of an algorithm (its `Debug` form is exactly that name).
pub fn algorithm_name(algorithm: Algorithm) -> String {
    format!("{algorithm:?}")
}

fn split_and_decode(token: &str) -> Result<(JsonObject, JsonObject), TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three segments"));
    };
    // Upstream splits on runs of dots, so an empty segment (an unsigned `alg: none` token's
    // signature) makes fewer than three.
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed("expected three segments"));
    }
    Ok((decode_segment(header, "header")?, decode_segment(payload, "payload")?))
}

fn decode_segment(segment: &str, what: &'static str) -> Result<Map<String, Value>, TokenError> {
    let bytes = BASE64URL_NOPAD.decode(segment.trim_end_matches('=').as_bytes()).map_err(|_| {
        TokenError::Malformed(if what == "header" {
            "header is not base64url"
        } else {
            "payload is not base64url"
        })
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed(if what == "header" {
            "header is not a JSON object"
        } else {
            "payload is not a JSON object"
        })),
    }
}

/// Checks the signature with the pinned algorithm only; claims are checked by us afterwards,
/// with Jitsi's rules rather than jsonwebtoken's defaults (60 s leeway, `exp` required).
fn verify_signature(
    token: &str,
    key: &DecodingKey,
    algorithm: Algorithm,
) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
        Ok(data) => Ok(Claims(data.claims)),
        Err(error) => Err(match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::InvalidSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::InvalidSignature,
            jsonwebtoken::errors::ErrorKind::Base64(_) => {
                TokenError::Malformed("signature is not base64url")
            }
            jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
            | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
            | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey => {
                TokenError::Key(KeyError::BadKey(error.to_string()))
            }
            _ => TokenError::InvalidSignature,
        }),
    }
}

/// Upstream's order: the types of `exp` and `nbf`, then their values, `iss`, `aud`, and
/// (`token/util.lib.lua`) `room`, then `sub`.
fn check_claims(claims: &Claims, policy: &Policy, now: UnixTime) -> Result<(), TokenError> {
    let leeway = policy.leeway as i64;
    let now_s = now.0 as i64;
    let exp = claims.0.get("exp").map(|v| time_claim(v, "exp")).transpose()?;
    let nbf = claims.0.get("nbf").map(|v| time_claim(v, "nbf")).transpose()?;
    if let Some(exp) = exp {
        if now_s >= exp.saturating_add(leeway) {
            let iat = claims.0.get("iat").and_then(|v| time_claim(v, "iat").ok());
            let valid_for = iat.map(|iat| exp.saturating_sub(iat));
            return Err(TokenError::Expired { exp, now: now.0, valid_for });
        }
    }
    if let Some(nbf) = nbf {
        if now_s.saturating_add(leeway) < nbf {
            return Err(TokenError::NotYetValid { nbf, now: now.0 });
        }
    }
    // JSON null reads as absent for `iss` and `aud` (both refuse, upstream's text differs).
    match claims.0.get("iss").filter(|v| !v.is_null()) {
        None if policy.require_jitsi_claims => return Err(TokenError::MissingClaim("iss")),
        None => {}
        Some(iss) if !accepts_claim(&policy.accepted_issuers, iss) => {
            return Err(TokenError::InvalidIssuer)
        }
        Some(_) => {}
    }
    match claims.0.get("aud").filter(|v| !v.is_null()) {
        None if !policy.require_jitsi_claims => {}
        None => return Err(TokenError::MissingClaim("aud")),
        // RFC 7519 allows an array: any listed audience we accept will do.
        Some(Value::Array(auds))
            if auds.iter().any(|a| accepts_claim(&policy.accepted_audiences, a)) => {}
        Some(aud) if accepts_claim(&policy.accepted_audiences, aud) => {}
        Some(_) => return Err(TokenError::InvalidAudience),
    }
    match claims.0.get("room") {
        None if policy.require_room_claim => return Err(TokenError::MissingClaim("room")),
        None | Some(Value::String(_)) => {}
        Some(_) if !policy.require_jitsi_claims => {}
        Some(_) => return Err(TokenError::BadRoomClaim),
    }
    if policy.require_jitsi_claims && !claims.0.contains_key("sub") {
        return Err(TokenError::MissingClaim("sub"));
    }
    Ok(())
}

/// Upstream's `verify_claim`: `*` accepts anything, else the claim must equal a listed value.
fn accepts_claim(accepted: &[String], value: &Value) -> bool {
    accepted.iter().any(|a| a == "*" || value.as_str() == Some(a))
}

/// NumericDate may be fractional; Jitsi compares whole seconds.
fn time_claim(value: &Value, name: &'static str) -> Result<i64, TokenError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .ok_or(TokenError::BadTimeClaim(name)),
        _ => Err(TokenError::BadTimeClaim(name)),
    }
}

#[cfg(test)]
mod tests;
