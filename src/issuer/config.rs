//! The standalone server's config file: upstream's `config-example.json` format, unchanged,
//! plus an optional `gatehouse` object for what upstream could not configure.
//!
//! ```json
//! { "jitsi": { "domain": "meet.jitsi" },
//!   "jwt": { "app_id": "skotos", "secret": "1234567890" },
//!   "inbound": { "host": "127.0.0.1", "port": 4114 },
//!   "outbound": { "host": "127.0.0.1", "port": 10091 },
//!   "gatehouse": { "max_validity": 86400, "channels": ["lobby"] } }
//! ```
//!
//! Upstream's example ends with a trailing comma, which JSON forbids (Node's `JSON.parse`
//! refuses it too, so the example never ran as shipped). It is tolerated here with a warning
//! naming the line, so an operator's copied config works and they learn why it was wrong.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, IssuerConfig, DEFAULT_MAX_VALIDITY};
use crate::issuer::frame::DEFAULT_MAX_FRAME_BYTES;

/// A host and port to listen on or connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP address or a host name.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Endpoint {
    /// `host:port`, with brackets around an IPv6 address, for `ToSocketAddrs` and logs.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Whether `host` names the loopback interface: `localhost` or an address in 127.0.0.0/8 or
/// `::1`. Other names are not resolved here and count as remote (fail closed).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How the standalone server runs, beyond what the issuer itself needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerOptions {
    /// Most inbound connections served at once; more are refused. Defaults to 64.
    pub max_connections: usize,
    /// Allow `inbound.host` to be a non-loopback address. Defaults to false: the protocol has
    /// no authentication unless a shared secret is set.
    pub allow_remote: bool,
    /// First delay before reconnecting `outbound`. Defaults to 1 s.
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts (the delay doubles up to it). Defaults to
    /// 60 s.
    pub reconnect_max: Duration,
}

impl Default for IssuerOptions {
    fn default() -> Self {
        IssuerOptions {
            max_connections: 64,
            allow_remote: false,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
        }
    }
}

/// A parsed config file.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// The issuer's settings.
    pub issuer: IssuerConfig,
    /// `inbound`: where to listen, if anywhere.
    pub inbound: Option<Endpoint>,
    /// `outbound`: the game server to connect to, if any.
    pub outbound: Option<Endpoint>,
    /// The server's own settings.
    pub options: IssuerOptions,
    /// Problems tolerated while reading (the trailing comma), for the operator's log.
    pub warnings: Vec<String>,
}

/// Why a config file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileConfigError {
    /// Not JSON, or a field of the wrong type (serde's message has the line and column).
    Json(String),
    /// A required setting is missing, named by its path (`jwt.secret`).
    Missing(&'static str),
    /// Neither `inbound` nor `outbound` is configured.
    NoEndpoint,
    /// `inbound.host` is not loopback and `gatehouse.allow_remote` is not set.
    RemoteInbound(String),
    /// The issuer refused the settings.
    Issuer(ConfigError),
}

impl fmt::Display for FileConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileConfigError::Json(detail) => write!(f, "{detail}"),
            FileConfigError::Missing(path) => write!(f, "'{path}' is required"),
            FileConfigError::NoEndpoint => {
                write!(f, "neither 'inbound' nor 'outbound' is configured; nothing to serve")
            }
            FileConfigError::RemoteInbound(host) => write!(
                f,
                "'inbound.host' {host} is not a loopback address; the protocol has no \
                 authentication of its own, so set \"gatehouse\": {{\"allow_remote\": true}} \
                 (and preferably a shared_secret) if you really mean it"
            ),
            FileConfigError::Issuer(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for FileConfigError {}

impl FileConfig {
    /// Parses the text of a config file.
    pub fn parse(text: &str) -> Result<FileConfig, FileConfigError> {
        let mut warnings = Vec::new();
        let raw: Raw = match serde_json::from_str(text) {
            Ok(raw) => raw,
            Err(first) => {
                let (repaired, lines) = strip_trailing_commas(text);
                // Only a trailing comma is forgiven; any other error is reported as it was.
                match (lines.is_empty(), serde_json::from_str(&repaired)) {
                    (false, Ok(raw)) => {
                        for line in lines {
                            warnings.push(format!(
                                "line {line}: trailing comma ignored (JSON does not allow it; \
                                 upstream's config-example.json has one)"
                            ));
                        }
                        raw
                    }
                    _ => return Err(FileConfigError::Json(first.to_string())),
                }
            }
        };
        raw.into_config(warnings)
    }
}

#[derive(Deserialize)]
struct Raw {
    jitsi: Option<RawJitsi>,
    jwt: Option<RawJwt>,
    inbound: Option<RawEndpoint>,
    outbound: Option<RawEndpoint>,
    gatehouse: Option<RawOptions>,
}

#[derive(Deserialize)]
struct RawJitsi {
    domain: Option<String>,
}

#[derive(Deserialize)]
struct RawJwt {
    app_id: Option<String>,
    secret: Option<String>,
}

#[derive(Deserialize)]
struct RawEndpoint {
    host: Option<String>,
    port: Option<u16>,
}

/// Typos here are errors rather than silently ignored settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    max_validity: Option<u64>,
    max_frame_size: Option<usize>,
    legacy_user_string: Option<bool>,
    shared_secret: Option<String>,
    channels: Option<Vec<String>>,
    max_connections: Option<usize>,
    allow_remote: Option<bool>,
    reconnect_min: Option<f64>,
    reconnect_max: Option<f64>,
}

impl Raw {
    fn into_config(self, warnings: Vec<String>) -> Result<FileConfig, FileConfigError> {
        let domain =
            self.jitsi.and_then(|j| j.domain).ok_or(FileConfigError::Missing("jitsi.domain"))?;
        let jwt = self.jwt.ok_or(FileConfigError::Missing("jwt.app_id"))?;
        let app_id = jwt.app_id.ok_or(FileConfigError::Missing("jwt.app_id"))?;
        let secret = jwt.secret.ok_or(FileConfigError::Missing("jwt.secret"))?;
        let inbound = endpoint(self.inbound, "inbound.host", "inbound.port")?;
        let outbound = endpoint(self.outbound, "outbound.host", "outbound.port")?;
        if inbound.is_none() && outbound.is_none() {
            return Err(FileConfigError::NoEndpoint);
        }
        let mut issuer = IssuerConfig::new(app_id, secret, domain);
        let mut options = IssuerOptions::default();
        if let Some(raw) = self.gatehouse {
            issuer.max_validity = raw.max_validity.unwrap_or(DEFAULT_MAX_VALIDITY);
            issuer.max_frame_bytes = raw.max_frame_size.unwrap_or(DEFAULT_MAX_FRAME_BYTES);
            issuer.legacy_user_string = raw.legacy_user_string.unwrap_or(false);
            issuer.shared_secret = raw.shared_secret;
            issuer.channels = raw.channels;
            options.max_connections = raw.max_connections.unwrap_or(options.max_connections);
            options.allow_remote = raw.allow_remote.unwrap_or(false);
            options.reconnect_min = seconds(raw.reconnect_min, options.reconnect_min);
            options.reconnect_max = seconds(raw.reconnect_max, options.reconnect_max);
        }
        if let Some(inbound) = &inbound {
            if !options.allow_remote && !is_loopback_host(&inbound.host) {
                return Err(FileConfigError::RemoteInbound(inbound.host.clone()));
            }
        }
        // Build once to report bad settings now rather than at the first request.
        super::Issuer::new(issuer.clone()).map_err(FileConfigError::Issuer)?;
        Ok(FileConfig { issuer, inbound, outbound, options, warnings })
    }
}

fn endpoint(
    raw: Option<RawEndpoint>,
    host_path: &'static str,
    port_path: &'static str,
) -> Result<Option<Endpoint>, FileConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let host = raw.host.ok_or(FileConfigError::Missing(host_path))?;
    let port = raw.port.ok_or(FileConfigError::Missing(port_path))?;
    Ok(Some(Endpoint { host, port }))
}

/// Negative, NaN or absurd values fall back to the default rather than panicking in
/// `Duration::from_secs_f64`.
fn seconds(value: Option<f64>, default: Duration) -> Duration {
    match value {
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Duration::from_secs_f64(s),
        _ => default,
    }
}

/// Removes commas that are followed (after whitespace) by `}` or `]`, outside strings.
/// Returns the text and the 1-based lines of the commas removed.
fn strip_trailing_commas(text: &str) -> (String, Vec<usize>) {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut lines = Vec::new();
    let (mut in_string, mut escaped, mut line) = (false, false, 1);
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                lines.push(line);
                continue;
            }
        }
        out.push(c);
    }
    (out, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's config-example.json, byte for byte (trailing comma included).
    const UPSTREAM_EXAMPLE: &str = "{\n    \"jitsi\": {\n        \"domain\": \"meet.jitsi\"\n    },\n    \"jwt\": {\n        \"app_id\": \"skotos\",\n        \"secret\": \"1234567890\"\n    },\n    \"inbound\": {\n        \"host\": \"127.0.0.1\",\n        \"port\": 4114\n    },\n    \"outbound\": {\n        \"host\": \"127.0.0.1\",\n        \"port\": 10091\n    },\n}\n";

    #[test]
    fn test_upstream_example_is_read_with_a_warning_for_its_trailing_comma() {
        let config = FileConfig::parse(UPSTREAM_EXAMPLE).unwrap();
        assert_eq!(config.issuer.app_id, "skotos");
        assert_eq!(config.issuer.secret, b"1234567890");
        assert_eq!(config.issuer.domain, "meet.jitsi");
        assert_eq!(config.inbound, Some(Endpoint { host: "127.0.0.1".into(), port: 4114 }));
        assert_eq!(config.outbound, Some(Endpoint { host: "127.0.0.1".into(), port: 10091 }));
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].starts_with("line 16: trailing comma"), "{:?}", config.warnings);
        assert_eq!(config.options, IssuerOptions::default());
    }

    #[test]
    fn test_commas_inside_strings_are_left_alone() {
        let (text, lines) = strip_trailing_commas(r#"{"a": ",}", "b": [1,2,],}"#);
        assert_eq!(text, r#"{"a": ",}", "b": [1,2]}"#);
        assert_eq!(lines, vec![1, 1]);
        let (text, lines) = strip_trailing_commas(r#"{"a\",}": 1}"#);
        assert_eq!(text, r#"{"a\",}": 1}"#);
        assert!(lines.is_empty());
    }

    #[test]
    fn test_other_json_errors_are_reported_with_their_position() {
        let error = FileConfig::parse("{\n \"jwt\": {\"app_id\": skotos}\n}").unwrap_err();
        assert!(matches!(&error, FileConfigError::Json(t) if t.contains("line 2")), "{error}");
        // A trailing comma does not excuse another error elsewhere.
        let error = FileConfig::parse("{\"jwt\": nope,}").unwrap_err();
        assert!(matches!(error, FileConfigError::Json(_)));
    }

    #[test]
    fn test_missing_settings_are_named_by_path() {
        let error = FileConfig::parse(
            r#"{"jwt":{"app_id":"a","secret":"s"},"inbound":{"host":"127.0.0.1","port":1}}"#,
        );
        assert_eq!(error.unwrap_err().to_string(), "'jitsi.domain' is required");
        let error = FileConfig::parse(
            r#"{"jitsi":{"domain":"d"},"jwt":{"app_id":"a"},"inbound":{"host":"127.0.0.1","port":1}}"#,
        );
        assert_eq!(error.unwrap_err().to_string(), "'jwt.secret' is required");
        let error = FileConfig::parse(
            r#"{"jitsi":{"domain":"d"},"jwt":{"app_id":"a","secret":"s"},"outbound":{"host":"h"}}"#,
        );
        assert_eq!(error.unwrap_err().to_string(), "'outbound.port' is required");
        let error =
            FileConfig::parse(r#"{"jitsi":{"domain":"d"},"jwt":{"app_id":"a","secret":"s"}}"#);
        assert_eq!(error.unwrap_err(), FileConfigError::NoEndpoint);
    }

    #[test]
    fn test_remote_inbound_needs_an_explicit_allow() {
        let base = r#"{"jitsi":{"domain":"d"},"jwt":{"app_id":"a","secret":"s"},"inbound":{"host":"0.0.0.0","port":4114}"#;
        let error = FileConfig::parse(&format!("{base}}}")).unwrap_err();
        assert!(matches!(error, FileConfigError::RemoteInbound(_)));
        let config = FileConfig::parse(&format!(r#"{base},"gatehouse":{{"allow_remote":true}}}}"#));
        assert!(config.unwrap().options.allow_remote);
    }

    #[test]
    fn test_gatehouse_options_are_read_and_typos_refused() {
        let text = r#"{"jitsi":{"domain":"d"},"jwt":{"app_id":"a","secret":"s"},
            "outbound":{"host":"127.0.0.1","port":10091},
            "gatehouse":{"max_validity":600,"max_frame_size":1024,"legacy_user_string":true,
              "shared_secret":"x","channels":["R1"],"max_connections":2,
              "reconnect_min":0.25,"reconnect_max":5}}"#;
        let config = FileConfig::parse(text).unwrap();
        assert_eq!(config.issuer.max_validity, 600);
        assert_eq!(config.issuer.max_frame_bytes, 1024);
        assert!(config.issuer.legacy_user_string);
        assert_eq!(config.issuer.shared_secret.as_deref(), Some("x"));
        assert_eq!(config.issuer.channels, Some(vec!["R1".to_string()]));
        assert_eq!(config.options.max_connections, 2);
        assert_eq!(config.options.reconnect_min, Duration::from_millis(250));
        assert_eq!(config.options.reconnect_max, Duration::from_secs(5));
        let typo = text.replace("max_validity", "max_valdity");
        let error = FileConfig::parse(&typo).unwrap_err();
        assert!(error.to_string().contains("max_valdity"), "{error}");
    }

    #[test]
    fn test_issuer_settings_are_checked_at_load() {
        let text = r#"{"jitsi":{"domain":"d"},"jwt":{"app_id":"a","secret":""},"inbound":{"host":"127.0.0.1","port":1}}"#;
        assert_eq!(
            FileConfig::parse(text).unwrap_err().to_string(),
            "app_secret must not be empty"
        );
    }

    #[test]
    fn test_loopback_hosts() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "*", "10.0.0.1", "example.com", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert_eq!(Endpoint { host: "::1".into(), port: 5 }.address(), "[::1]:5");
    }
}
