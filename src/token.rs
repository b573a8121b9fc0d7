//! Jitsi tokens: verify, decode without verifying, and sign.
//!
//! Verification follows jitsi-meet's `token/util.lib.lua` and `luajwtjitsi` rule by rule
//! (three segments, `typ`, an algorithm pinned by the server, `exp`/`nbf`, `iss`, `aud`,
//! `room`, `sub`) and fixes what upstream gets wrong: HMACs are compared in constant time, an
//! array `aud` is understood, ES/PS/EdDSA are supported, and a leeway can be configured.
//! Error texts keep upstream's wording, since operators search their logs for them.

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
    /// The signature does not match.
    InvalidSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired {
        /// The claim.
        exp: i64,
        /// The server's time.
        now: u64,
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
            TokenError::MissingClaim("room" | "sub") => "not-authorized",
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
            TokenError::Malformed(_) => "malformed",
            TokenError::BadType => "bad-typ",
            TokenError::AlgorithmMismatch { .. } => "bad-alg",
            TokenError::InvalidSignature => "invalid-signature",
            TokenError::Expired { .. } => "expired",
            TokenError::NotYetValid { .. } => "not-yet-valid",
            TokenError::BadTimeClaim(_) => "bad-time-claim",
            TokenError::MissingClaim(_) => "missing-claim",
            TokenError::InvalidIssuer => "invalid-issuer",
            TokenError::InvalidAudience => "invalid-audience",
            TokenError::Key(KeyError::BadKey(_)) => "bad-key",
            TokenError::Key(_) => "key-unavailable",
            TokenError::Signing(_) => "signing-failed",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Missing => write!(f, "token required"),
            TokenError::TooLarge { len, max } => {
                write!(f, "Invalid token: {len} bytes, the limit is {max}")
            }
            TokenError::Malformed(what) => write!(f, "Invalid token: {what}"),
            TokenError::BadType => write!(f, "Invalid typ"),
            TokenError::AlgorithmMismatch { expected, found } => {
                write!(f, "Invalid alg: expected {expected:?}, token has '{found}'")
            }
            TokenError::InvalidSignature => write!(f, "Invalid signature"),
            TokenError::Expired { exp, now } => {
                write!(f, "Not acceptable by exp ({exp} <= {now})")
            }
            TokenError::NotYetValid { nbf, now } => {
                write!(f, "Not acceptable by nbf ({nbf} > {now})")
            }
            TokenError::BadTimeClaim(name) => write!(f, "'{name}' must be a number"),
            TokenError::MissingClaim(name) => write!(f, "'{name}' claim is missing"),
            TokenError::InvalidIssuer => write!(f, "Invalid issuer ('iss' claim)"),
            TokenError::InvalidAudience => write!(f, "Invalid audience ('aud' claim)"),
            TokenError::Key(error) => write!(f, "{error}"),
            TokenError::Signing(text) => write!(f, "cannot sign token: {text}"),
        }
    }
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
}

impl Verifier {
    /// A verifier whose keys come from `source`.
    pub fn new(
        policy: Policy,
        source: KeySourceConfig,
        cache: KeyCacheConfig,
    ) -> Result<Self, TokenError> {
        let keys = KeySource::new(policy.algorithm, source, cache)?;
        Ok(Verifier { policy, keys })
    }

    /// The policy this verifier applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Verifies `token` with cached keys only; asks for a fetch when a remote key is missing.
    pub fn check(&self, token: &str, now: UnixTime) -> Check {
        let parsed = match Parsed::new(token, &self.policy) {
            Ok(parsed) => parsed,
            Err(error) => return Check::Done(Err(error)),
        };
        match self.keys.lookup(parsed.kid.as_deref(), Instant::now()) {
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

    /// Verifies with a PEM public key supplied for this one token (Jitsi's
    /// `pre-jitsi-authentication-fetch-key` event sets `session.public_key`).
    pub fn check_with_pem(
        &self,
        token: &str,
        pem: &str,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        Parsed::new(token, &self.policy)?;
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
    fn new(token: &str, policy: &Policy) -> Result<Self, TokenError> {
        if token.len() > policy.max_token_bytes {
            return Err(TokenError::TooLarge { len: token.len(), max: policy.max_token_bytes });
        }
        let (header, _) = split_and_decode(token)?;
        if let Some(typ) = header.get("typ") {
            if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
                return Err(TokenError::BadType);
            }
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
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
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three segments"));
    };
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

fn check_claims(claims: &Claims, policy: &Policy, now: UnixTime) -> Result<(), TokenError> {
    let leeway = policy.leeway as i64;
    let now_s = now.0 as i64;
    if let Some(exp) = claims.0.get("exp") {
        let exp = time_claim(exp, "exp")?;
        if now_s >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired { exp, now: now.0 });
        }
    }
    if let Some(nbf) = claims.0.get("nbf") {
        let nbf = time_claim(nbf, "nbf")?;
        if now_s.saturating_add(leeway) < nbf {
            return Err(TokenError::NotYetValid { nbf, now: now.0 });
        }
    }
    match claims.str("iss") {
        Some(iss) if !accepts(&policy.accepted_issuers, iss) => {
            return Err(TokenError::InvalidIssuer)
        }
        Some(_) => {}
        None if policy.require_jitsi_claims => return Err(TokenError::MissingClaim("iss")),
        None => {}
    }
    if policy.require_room_claim && !claims.0.contains_key("room") {
        return Err(TokenError::MissingClaim("room"));
    }
    match claims.0.get("aud") {
        None if !policy.require_jitsi_claims => {}
        None => return Err(TokenError::MissingClaim("aud")),
        Some(Value::String(aud)) if accepts(&policy.accepted_audiences, aud) => {}
        // RFC 7519 allows an array: any listed audience we accept will do.
        Some(Value::Array(auds))
            if auds
                .iter()
                .filter_map(Value::as_str)
                .any(|a| accepts(&policy.accepted_audiences, a)) => {}
        Some(_) => return Err(TokenError::InvalidAudience),
    }
    if policy.require_jitsi_claims && !claims.0.contains_key("sub") {
        return Err(TokenError::MissingClaim("sub"));
    }
    Ok(())
}

fn accepts(accepted: &[String], value: &str) -> bool {
    accepted.iter().any(|a| a == "*" || a == value)
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
