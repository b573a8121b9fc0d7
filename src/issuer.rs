//! The token issuer: ChatTheatre's Chat Admin Server protocol, served natively.
//!
//! A client (a game server such as DGD/SkotOS) sends one JSON request per frame and gets one
//! JSON reply per request, `{success, message, token, time, seq?}` followed by `"\n\0"`,
//! byte-compatible with upstream so existing clients keep working. [`Issuer`] decides and
//! signs; [`Connection`] adds the framing of one stream. Both the Prosody module (through the
//! Lua binding) and the standalone `gatehouse-issuer` binary drive these and do the I/O; this
//! module does none.

mod backoff;
mod config;
mod frame;
mod mint;
mod request;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

pub use backoff::Backoff;
pub use config::{is_loopback_host, Endpoint, FileConfig, FileConfigError, IssuerOptions};
pub use frame::{FrameTooLarge, Framer, DEFAULT_MAX_FRAME_BYTES};
pub use mint::AUDIENCE;
pub use request::{Envelope, Request, RequestError, Validity, JWT_TOKEN};

use crate::clock::UnixTime;
use crate::token::{self, Algorithm, SigningKey, TokenError};

/// The default longest token lifetime, in seconds (one day). Upstream had no limit.
pub const DEFAULT_MAX_VALIDITY: u64 = 24 * 3600;

/// What an issuer mints and accepts. Build with [`IssuerConfig::new`], then set fields.
#[derive(Clone)]
pub struct IssuerConfig {
    /// `iss` of every token, Jitsi's `app_id`.
    pub app_id: String,
    /// The HS256 secret, Jitsi's `app_secret`.
    pub secret: Vec<u8>,
    /// `sub` of every token: the Jitsi XMPP domain.
    pub domain: String,
    /// The longest lifetime a request may ask for, in seconds. Defaults to one day.
    pub max_validity: u64,
    /// The largest request frame, in bytes. Defaults to 8 KiB.
    pub max_frame_bytes: usize,
    /// Write `context.user` as upstream's bare display-name string. Defaults to false.
    pub legacy_user_string: bool,
    /// A secret every request must carry in its `secret` field. Defaults to none.
    pub shared_secret: Option<String>,
    /// The channels a request may ask for (case-insensitive; `*` only if listed). Defaults to
    /// none, meaning every channel.
    pub channels: Option<Vec<String>>,
}

impl IssuerConfig {
    /// A config with the defaults above.
    pub fn new(
        app_id: impl Into<String>,
        secret: impl Into<Vec<u8>>,
        domain: impl Into<String>,
    ) -> Self {
        IssuerConfig {
            app_id: app_id.into(),
            secret: secret.into(),
            domain: domain.into(),
            max_validity: DEFAULT_MAX_VALIDITY,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            legacy_user_string: false,
            shared_secret: None,
            channels: None,
        }
    }
}

/// Secrets stay out of logs and panics.
impl fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("app_id", &self.app_id)
            .field("secret", &"<redacted>")
            .field("domain", &self.domain)
            .field("max_validity", &self.max_validity)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("legacy_user_string", &self.legacy_user_string)
            .field("shared_secret", &self.shared_secret.as_ref().map(|_| "<redacted>"))
            .field("channels", &self.channels)
            .finish()
    }
}

/// Why an issuer cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required setting is empty.
    Empty(&'static str),
    /// A limit is zero.
    Zero(&'static str),
    /// The signing key is unusable.
    Key(TokenError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Empty(what) => write!(f, "{what} must not be empty"),
            ConfigError::Zero(what) => write!(f, "{what} must be positive"),
            ConfigError::Key(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Mints tokens for requests. Shared by every connection (`Arc`); `Send + Sync`.
pub struct Issuer {
    config: IssuerConfig,
    key: SigningKey,
    /// SHA-256 of the shared secret, compared in constant time whatever the lengths.
    shared_secret: Option<Vec<u8>>,
}

impl Issuer {
    /// An issuer for `config`.
    pub fn new(mut config: IssuerConfig) -> Result<Issuer, ConfigError> {
        if config.app_id.is_empty() {
            return Err(ConfigError::Empty("app_id"));
        }
        if config.secret.is_empty() {
            return Err(ConfigError::Empty("app_secret"));
        }
        if config.domain.is_empty() {
            return Err(ConfigError::Empty("domain"));
        }
        if config.max_validity == 0 {
            return Err(ConfigError::Zero("max_validity"));
        }
        if config.max_frame_bytes == 0 {
            return Err(ConfigError::Zero("max_frame_size"));
        }
        if config.shared_secret.as_deref() == Some("") {
            return Err(ConfigError::Empty("shared_secret"));
        }
        let key =
            SigningKey::secret(Algorithm::HS256, &config.secret, None).map_err(ConfigError::Key)?;
        let shared_secret = config.shared_secret.as_deref().map(digest);
        if let Some(channels) = &mut config.channels {
            for channel in channels.iter_mut() {
                *channel = channel.to_lowercase();
            }
        }
        Ok(Issuer { config, key, shared_secret })
    }

    /// The settings this issuer runs with.
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    /// A new stream of requests to this issuer.
    pub fn connection(self: &Arc<Self>) -> Connection {
        Connection { issuer: Arc::clone(self), framer: Framer::new(self.config.max_frame_bytes) }
    }

    /// Answers one frame (without its terminator).
    pub fn answer(&self, frame: &[u8], now: UnixTime) -> Answer {
        let envelope = match Envelope::parse(frame) {
            Ok(envelope) => envelope,
            Err(error) => return Answer { outcome: Err(error), seq: None, time: now.0 },
        };
        let seq = envelope.seq().cloned();
        Answer { outcome: self.grant(&envelope, now), seq, time: now.0 }
    }

    fn grant(&self, envelope: &Envelope, now: UnixTime) -> Result<Grant, RequestError> {
        // The secret first: an unauthenticated client learns nothing about the rest.
        if let Some(expected) = &self.shared_secret {
            let given = envelope.secret()?;
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(&digest(given), expected);
            if same.is_err() {
                return Err(RequestError::WrongSecret);
            }
        }
        let request = envelope.request()?;
        mint::check_channel(&request.channel, self.config.channels.as_deref())?;
        let exp = mint::expiry(request.validity, now, self.config.max_validity)?;
        let minting = mint::Minting {
            app_id: &self.config.app_id,
            domain: &self.config.domain,
            legacy_user_string: self.config.legacy_user_string,
        };
        let claims = mint::claims(&request, &minting, now, exp);
        let token =
            token::sign(&claims, &self.key).map_err(|e| RequestError::Signing(e.to_string()))?;
        Ok(Grant {
            channel: request.channel,
            display_name: request.display_name,
            moderator: request.moderator,
            expires: exp,
            token,
        })
    }
}

/// A token handed out.
#[derive(Clone)]
pub struct Grant {
    /// The channel (the token's `room`).
    pub channel: String,
    /// The display name.
    pub display_name: String,
    /// The `moderator` claim.
    pub moderator: bool,
    /// The `exp` claim.
    pub expires: i64,
    token: String,
}

impl Grant {
    /// The signed token. Never log it.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// The token stays out of logs and panics.
impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("channel", &self.channel)
            .field("display_name", &self.display_name)
            .field("moderator", &self.moderator)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// The reply to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The token granted, or why the request was refused.
    pub outcome: Result<Grant, RequestError>,
    /// The request's `seq`, echoed.
    pub seq: Option<Value>,
    /// The server's time, in Unix seconds.
    pub time: u64,
}

impl Answer {
    /// A refusal that is not tied to a parsed request (a frame too large, a full server).
    pub fn refusal(message: impl fmt::Display, now: UnixTime) -> Vec<u8> {
        encode(false, &message.to_string(), "", now.0, None)
    }

    /// The reply on the wire: upstream's JSON (same keys, same order) followed by `"\n\0"`.
    pub fn encode(&self) -> Vec<u8> {
        match &self.outcome {
            Ok(grant) => encode(true, "OK", &grant.token, self.time, self.seq.as_ref()),
            Err(error) => encode(false, &error.to_string(), "", self.time, self.seq.as_ref()),
        }
    }
}

/// The reply terminator: upstream's newline "in case of line-oriented receiver", then NUL.
pub const REPLY_TERMINATOR: &[u8] = b"\n\0";

fn encode(success: bool, message: &str, token: &str, time: u64, seq: Option<&Value>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Wire<'a> {
        success: bool,
        message: &'a str,
        token: &'a str,
        time: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<&'a Value>,
    }
    let wire = Wire { success, message, token, time, seq };
    // Serialising strings, numbers and an already-parsed JSON value cannot fail; the fallback
    // only keeps the function total.
    let mut out = serde_json::to_vec(&wire).unwrap_or_else(|_| {
        format!(r#"{{"success":false,"message":"internal error","token":"","time":{time}}}"#)
            .into_bytes()
    });
    out.extend_from_slice(REPLY_TERMINATOR);
    out
}

/// One client stream: bytes in, replies out.
pub struct Connection {
    issuer: Arc<Issuer>,
    framer: Framer,
}

/// What a read produced.
#[derive(Debug, Default)]
pub struct Fed {
    /// The bytes to send back: every reply, in request order (possibly none).
    pub output: Vec<u8>,
    /// The answers behind `output`, for logging.
    pub answers: Vec<Answer>,
    /// Set when a frame was too large: `output` ends with a refusal saying so; send it, then
    /// close the connection.
    pub closing: Option<FrameTooLarge>,
}

impl Connection {
    /// Feeds the bytes of one read and answers every request they complete.
    pub fn feed(&mut self, data: &[u8], now: UnixTime) -> Fed {
        let mut frames = Vec::new();
        let pushed = self.framer.push(data, &mut frames);
        let mut fed = Fed::default();
        for frame in frames {
            let answer = self.issuer.answer(&frame, now);
            fed.output.extend_from_slice(&answer.encode());
            fed.answers.push(answer);
        }
        if let Err(too_large) = pushed {
            fed.output.extend_from_slice(&Answer::refusal(&too_large, now));
            fed.closing = Some(too_large);
        }
        fed
    }
}

fn digest(secret: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

#[cfg(test)]
mod tests;
