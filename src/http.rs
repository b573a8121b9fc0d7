//! The one HTTP client every remote call goes through (key servers, UVS, the Guild API).
//!
//! Calls are blocking and meant for worker threads (see [`crate::jobs`]), never for
//! Prosody's own thread. Every request has a global timeout and a bounded reply size, and
//! redirects are not followed: an access-control service that answers elsewhere is treated
//! as an error the operator must look at, not silently trusted. Which CAs HTTPS trusts is
//! [`crate::trust`]'s job.

use std::fmt;
use std::time::Duration;

/// Limits applied to one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Whole-request deadline: connect, send and read the reply. Defaults to 5 seconds.
    pub timeout: Duration,
    /// Largest reply body accepted, in bytes. Defaults to 256 KiB.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(5), max_body: 256 * 1024 }
    }
}

/// A reply that arrived in full, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body, at most [`Limits::max_body`] bytes.
    pub body: Vec<u8>,
    /// `max-age` from a `Cache-Control` header, when the server sent one.
    pub max_age: Option<Duration>,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request produced no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The deadline passed before the reply was complete.
    Timeout {
        /// The deadline that passed.
        after: Duration,
    },
    /// The reply body was larger than allowed.
    TooLarge {
        /// The limit in bytes.
        max: u64,
    },
    /// The server answered with a redirect, which is not followed.
    Redirect {
        /// The redirect status.
        status: u16,
    },
    /// Connection refused or reset, DNS failure, TLS failure, bad URL and the like.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Timeout { after } => write!(f, "timed out after {} ms", after.as_millis()),
            HttpError::TooLarge { max } => write!(f, "reply larger than {max} bytes"),
            HttpError::Redirect { status } => {
                write!(f, "http status: {status} (redirects are not followed)")
            }
            HttpError::Transport(text) => write!(f, "{text}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// `GET url` with the given headers.
pub fn get(url: &str, headers: &[(&str, &str)], limits: Limits) -> Result<Reply, HttpError> {
    let mut request = agent(limits).get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read_reply(request.call(), limits)
}

/// `POST url` with a JSON body and the given headers.
pub fn post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
    limits: Limits,
) -> Result<Reply, HttpError> {
    let mut request = agent(limits).post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read_reply(request.send(body.to_string().as_bytes()), limits)
}

/// An agent is cheap to build and holds no state we want shared between calls (a pooled
/// connection to a server that hangs would only spread the hang), so each call gets its own.
fn agent(limits: Limits) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(limits.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        // The system's CAs plus the operator's extra file (see crate::trust), not just the
        // public roots compiled in: key servers and UVS often sit behind a company CA.
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(crate::trust::root_certs()).build())
        .build();
    config.into()
}

fn read_reply(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    limits: Limits,
) -> Result<Reply, HttpError> {
    let mut response = result.map_err(|e| from_ureq(e, limits))?;
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        return Err(HttpError::Redirect { status });
    }
    let max_age = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let body = response
        .body_mut()
        .with_config()
        .limit(limits.max_body)
        .read_to_vec()
        .map_err(|e| from_ureq(e, limits))?;
    Ok(Reply { status, body, max_age })
}

fn from_ureq(error: ureq::Error, limits: Limits) -> HttpError {
    match error {
        ureq::Error::Timeout(_) => HttpError::Timeout { after: limits.timeout },
        ureq::Error::BodyExceedsLimit(_) => HttpError::TooLarge { max: limits.max_body },
        other => HttpError::Transport(other.to_string()),
    }
}

/// Reads `max-age=N` out of a Cache-Control value; `no-store`/`no-cache` mean "do not keep".
pub fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            max_age = seconds.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reads_max_age_among_other_directives() {
        assert_eq!(parse_max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_max_age("MAX-AGE=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=soon"), None);
    }
}
