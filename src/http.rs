//! The one HTTP client every remote call goes through (key servers, UVS, the Guild API).
//!
//! Calls are blocking and meant for worker threads (see [`crate::jobs`]), never for
//! Prosody's own thread. Every request has a global timeout and a bounded reply size, and
//! redirects are not followed: an access-control service that answers elsewhere is treated
//! as an error the operator must look at, not silently trusted. Which CAs HTTPS trusts is
//! [`crate::trust`]'s job. A request made by a job ends by that job's deadline
//! ([`crate::jobs::current_deadline`]) even when its own timeout is longer: the caller has
//! stopped waiting by then.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

use crate::jobs;

/// The longest `Cache-Control: max-age` taken from a server (30 days); anything longer is read
/// as this. Durations from outside are clamped before they reach `Instant` arithmetic.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(30 * 86_400);

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
        /// Where to, as sent (`Location`), when there is one of at most 2 KiB.
        location: Option<String>,
    },
    /// Connection refused or reset, DNS failure, TLS failure, bad URL and the like.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Timeout { after } => write!(f, "timed out after {} ms", after.as_millis()),
            HttpError::TooLarge { max } => write!(f, "reply larger than {max} bytes"),
            HttpError::Redirect { status, .. } => {
                write!(f, "http status: {status} (redirects are not followed)")
            }
            HttpError::Transport(text) => write!(f, "{text}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// `GET url` with the given headers.
pub fn get(url: &str, headers: &[(&str, &str)], limits: Limits) -> Result<Reply, HttpError> {
    let mut request = agent(within_deadline(limits)?, DefaultResolver::default()).get(url);
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
    let mut request = agent(within_deadline(limits)?, DefaultResolver::default())
        .post(url)
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read_reply(request.send(body.to_string().as_bytes()), limits)
}

/// How many of the addresses given to [`get_pinned`] are tried at most.
pub const MAX_PINNED: usize = 16;

/// `GET url`, connecting only to `addrs` whatever the URL's host resolves to; TLS still
/// checks the certificate against the URL's host. For Matrix federation, where server
/// discovery decides the address and the name the certificate must carry, and where the
/// addresses were screened first (no private ones) so DNS cannot change them in between.
pub fn get_pinned(
    url: &str,
    headers: &[(&str, &str)],
    limits: Limits,
    addrs: &[SocketAddr],
) -> Result<Reply, HttpError> {
    let pinned = Pinned(addrs.iter().take(MAX_PINNED).copied().collect());
    let mut request = agent(within_deadline(limits)?, pinned).get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read_reply(request.call(), limits)
}

/// The origin of a URL (`scheme://host:port`, lower case): what counts as one remote source for
/// the per-source limits of [`crate::jobs`]. Text that is not a URL is its own source.
pub fn origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let scheme = scheme.to_ascii_lowercase();
    let has_port = host.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'));
    let default_port = if scheme == "https" { 443 } else { 80 };
    if has_port {
        format!("{scheme}://{}", host.to_ascii_lowercase())
    } else {
        format!("{scheme}://{}:{default_port}", host.to_ascii_lowercase())
    }
}

/// `limits` with the timeout cut to what is left of the current job's deadline; a deadline
/// already passed fails at once, without a request. A timeout is still reported with the
/// configured value: that is the budget the caller gave the whole call.
fn within_deadline(limits: Limits) -> Result<Limits, HttpError> {
    let Some(deadline) = jobs::current_deadline() else { return Ok(limits) };
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(HttpError::Timeout { after: limits.timeout });
    }
    Ok(Limits { timeout: limits.timeout.min(left), ..limits })
}

/// Each call gets its own agent, so its own connection pool: a pooled connection to a server
/// that hangs would only spread the hang. What is worth sharing is the connector: its TLS
/// client config holds the root store, parsed from every trusted certificate (~150 from a
/// distribution's store) when the first HTTPS call connects, and TLS sessions to resume.
/// Calls share one connector for as long as the trust configuration they were built from is
/// in force (see [`crate::trust`]); `resolver` decides where a call connects.
fn agent(limits: Limits, resolver: impl Resolver) -> ureq::Agent {
    let (roots, generation) = crate::trust::root_certs();
    ureq::Agent::with_parts(agent_config(limits, roots), shared_connector(generation), resolver)
}

/// The connector for trust configuration `generation`, made on first use.
fn shared_connector(generation: u64) -> SharedConnector {
    static CURRENT: ConnectorSlot = Mutex::new(None);
    connector_in(&CURRENT, generation)
}

type ConnectorSlot = Mutex<Option<(u64, SharedConnector)>>;

/// The connector `slot` holds for `generation`, or a new one that replaces the one it held.
fn connector_in(slot: &ConnectorSlot, generation: u64) -> SharedConnector {
    let mut current = slot.lock().unwrap_or_else(|e| e.into_inner());
    match current.as_ref() {
        Some((made_for, connector)) if *made_for == generation => connector.clone(),
        _ => {
            let connector = SharedConnector(Arc::new(DefaultConnector::default()));
            *current = Some((generation, connector.clone()));
            connector
        }
    }
}

/// ureq's default connector chain (TCP, then rustls), shared between agents.
#[derive(Debug, Clone)]
struct SharedConnector(Arc<DefaultConnector>);

impl Connector for SharedConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        self.0.connect(details, chained)
    }
}

/// The settings of every agent: one place, so pinned and ordinary calls trust the same CAs.
/// The TLS settings must not vary between calls of one trust configuration: the shared
/// connector builds its TLS client config from the first call's and keeps it.
fn agent_config(limits: Limits, roots: ureq::tls::RootCerts) -> Config {
    ureq::Agent::config_builder()
        .timeout_global(Some(limits.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        // ureq's 128 KiB buffers each way are sized for downloads; our replies are small and
        // hundreds of calls may be in flight at once, so 32 KiB in (room for any sane reply
        // head) and 16 KiB out (a head and a small JSON body).
        .input_buffer_size(32 * 1024)
        .max_response_header_size(32 * 1024)
        .output_buffer_size(16 * 1024)
        // The system's CAs plus the operator's extra file (see crate::trust), not just the
        // public roots compiled in: key servers and UVS often sit behind a company CA.
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .build()
}

/// Resolves every host to the addresses given.
#[derive(Debug)]
struct Pinned(Vec<SocketAddr>);

impl Resolver for Pinned {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if self.0.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        let mut addrs = self.empty();
        for addr in &self.0 {
            addrs.push(*addr);
        }
        Ok(addrs)
    }
}

fn read_reply(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    limits: Limits,
) -> Result<Reply, HttpError> {
    let mut response = result.map_err(|e| from_ureq(e, limits))?;
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        let location = response.headers().get("location").and_then(|v| v.to_str().ok());
        let location = location.filter(|l| l.len() <= MAX_LOCATION).map(str::to_string);
        return Err(HttpError::Redirect { status, location });
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

/// Longest `Location` of a redirect kept.
const MAX_LOCATION: usize = 2048;

fn from_ureq(error: ureq::Error, limits: Limits) -> HttpError {
    match error {
        ureq::Error::Timeout(_) => HttpError::Timeout { after: limits.timeout },
        ureq::Error::BodyExceedsLimit(_) => HttpError::TooLarge { max: limits.max_body },
        other => HttpError::Transport(other.to_string()),
    }
}

/// Reads `max-age=N` out of a Cache-Control value; `no-store`/`no-cache` mean "do not keep".
/// At most [`MAX_AGE_LIMIT`], however large N is.
pub fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            let seconds = seconds.trim_matches('"');
            max_age = if !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit()) {
                // More digits than u64 holds is still just "very long".
                let secs = seconds.parse::<u64>().unwrap_or(u64::MAX);
                Some(Duration::from_secs(secs).min(MAX_AGE_LIMIT))
            } else {
                None
            };
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
        assert_eq!(parse_max_age("max-age=-5"), None);
    }

    #[test]
    fn test_huge_max_age_is_clamped() {
        for huge in [
            "max-age=18446744073709551615",
            "max-age=18446744073709551616",
            "max-age=999999999999999999999999",
        ] {
            assert_eq!(parse_max_age(huge), Some(MAX_AGE_LIMIT), "{huge}");
        }
        // What the clamp protects: adding the age to a clock reading must not overflow.
        assert!(Instant::now()
            .checked_add(parse_max_age("max-age=18446744073709551615").unwrap())
            .is_some());
    }

    #[test]
    fn test_origin_names_scheme_host_and_port() {
        assert_eq!(origin("https://Keys.Example/asap/x.pem"), "https://keys.example:443");
        assert_eq!(origin("http://127.0.0.1:8080/v2?x=1"), "http://127.0.0.1:8080");
        assert_eq!(origin("http://user:pw@h:81"), "http://h:81");
        assert_eq!(origin("http://[::1]/x"), "http://[::1]:80");
        assert_eq!(origin("http://[::1]:9/x"), "http://[::1]:9");
        assert_eq!(origin("not a url"), "not a url");
    }

    #[test]
    fn test_one_connector_per_trust_configuration() {
        let slot = Mutex::new(None);
        let first = connector_in(&slot, 1);
        assert!(Arc::ptr_eq(&first.0, &connector_in(&slot, 1).0), "reused while in force");
        let second = connector_in(&slot, 2);
        assert!(!Arc::ptr_eq(&first.0, &second.0), "a new trust configuration, a new one");
        assert!(Arc::ptr_eq(&second.0, &connector_in(&slot, 2).0));
    }

    #[test]
    fn test_a_request_past_the_job_deadline_is_not_sent() {
        let past = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        // Port 9 (discard) on loopback is never contacted: the deadline has passed.
        let result =
            jobs::with_deadline(past, || get("http://127.0.0.1:9/", &[], Limits::default()));
        assert!(matches!(result, Err(HttpError::Timeout { .. })), "{result:?}");
    }

    #[test]
    fn test_the_job_deadline_shortens_the_timeout() {
        let soon = Instant::now() + Duration::from_millis(300);
        let limits = jobs::with_deadline(soon, || within_deadline(Limits::default())).unwrap();
        assert!(limits.timeout <= Duration::from_millis(300));
        assert_eq!(within_deadline(Limits::default()).unwrap().timeout, Duration::from_secs(5));
    }
}
