//! Federation: finding another homeserver and asking it whose OpenID token this is.
//!
//! Element's widget names the homeserver that issued the OpenID token (`server_name`). When
//! that is not the configured homeserver, the token is checked where it was issued, as UVS
//! does: server discovery per the Matrix server-server API ("Resolving server names"), then
//! `GET /_matrix/federation/v1/openid/userinfo` over HTTPS. Discovery, in the spec's order:
//! an IP literal, or a name with a port, is used as is; otherwise
//! `https://<name>/.well-known/matrix/server` may delegate to another name (used as is when it
//! is an IP literal or has a port); a name without a port is then looked up as the SRV records
//! `_matrix-fed._tcp.<name>` and the deprecated `_matrix._tcp.<name>`; failing those, port 8448.
//! The request's Host header and the certificate checked carry the (delegated) server name,
//! whatever address SRV leads to.
//!
//! The server name comes from a token anyone can make, so what it can make us fetch is
//! bounded: only names that parse as Matrix server names, only public addresses unless the
//! operator allows private ones (each host a redirect or SRV record leads to is screened
//! too), one well-known fetch per name per hour (two minutes when the server did not answer)
//! and SRV answers kept for their TTL (at least a minute; cached, found or not), at most 16
//! SRV targets resolved, small replies, and every lookup and request within the
//! verification's deadline.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::TtlCache;
use crate::dns::{self, DnsError, Srv, SrvRecords};
use crate::http;

/// The federation port when a server name names none.
pub const DEFAULT_PORT: u16 = 8448;

/// The SRV services of Matrix federation, in the order asked: the current one, then the
/// deprecated one (still asked by the spec and by Synapse).
pub const SRV_SERVICES: [&str; 2] = ["_matrix-fed._tcp", "_matrix._tcp"];

/// How long a well-known answer (a delegation, or that there is none) is reused.
const DELEGATION_TTL: Duration = Duration::from_secs(3600);

/// How long a well-known fetch that got no answer (no connection, a TLS failure, a 5xx) counts
/// as "no delegation": two minutes, as Synapse (`WELL_KNOWN_DOWN_CACHE_PERIOD`), so an outage
/// or a slow moment of the server does not cut its users off for the hour an answer is kept.
const DELEGATION_DOWN_TTL: Duration = Duration::from_secs(120);

/// The well-known document's path.
const WELL_KNOWN_PATH: &str = "/.well-known/matrix/server";

/// Redirects followed from the well-known URL (the spec: follow them, but avoid loops).
const MAX_WELL_KNOWN_REDIRECTS: usize = 5;

/// Longest path a redirect may lead to.
const MAX_PATH: usize = 1024;

/// How long SRV answers are kept at least and at most, whatever their TTL says; a name without
/// records is asked again after [`SRV_ABSENT_TTL`].
const SRV_TTL: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3600));
const SRV_ABSENT_TTL: Duration = Duration::from_secs(300);

/// Server names whose well-known answer, and SRV names whose records, are remembered at most.
const DELEGATIONS_KEPT: usize = 1024;

/// Longest well-known document read.
const MAX_WELL_KNOWN: u64 = 64 * 1024;

/// A Matrix server name: a host (DNS name or IP literal) and an optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerName {
    host: Host,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl ServerName {
    /// Parses the server-server API's grammar: `host[:port]`, the host an IPv4 address, an
    /// IPv6 address in brackets, or a DNS name (letters, digits, `-`, `.`; at most 255 bytes).
    pub fn parse(text: &str) -> Option<ServerName> {
        if text.is_empty() || text.len() > 255 {
            return None;
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, after) = rest.split_once(']')?;
            let ip: std::net::Ipv6Addr = v6.parse().ok()?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':')?)?),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(parse_port(port)?)),
                None => (text, None),
            };
            let host = match host.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => Host::Ip(IpAddr::V4(ip)),
                Err(_) if is_dns_name(host) => Host::Name(host.to_ascii_lowercase()),
                Err(_) => return None,
            };
            (host, port)
        };
        Some(ServerName { host, port })
    }

    /// The host as a URL authority wants it (IPv6 in brackets).
    fn url_host(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        }
    }

    /// The URL authority, and so the Host header: the host, with the port only when the name
    /// has one (the spec's Host header).
    fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.url_host()),
            None => self.url_host(),
        }
    }
}

/// Where to send a federation request: the URL's authority (the Host header, and the name TLS
/// checks) and the addresses to connect to, in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]` for the `https://` URL.
    pub authority: String,
    /// The screened addresses (each with its port) to connect to.
    pub addrs: Vec<SocketAddr>,
}

/// Why a server could not be found or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// The token's `server_name` is not a Matrix server name.
    BadServerName,
    /// The name's address lookup gave no address.
    NoAddress(String),
    /// Every address is private, loopback or link-local, and those are not allowed.
    PrivateAddress(String),
    /// The SRV lookup of this name failed (no answer, not "no records").
    Srv(String, DnsError),
    /// The SRV records of this name say the service is not offered (a single target ".").
    NoService(String),
    /// The address lookup of this host failed: no such name, a DNS failure (the resolver's
    /// own words), or no answer in time.
    Lookup(String, DnsError),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::BadServerName => write!(f, "server_name is not a Matrix server name"),
            Unreachable::NoAddress(host) => write!(f, "no address for {host}"),
            Unreachable::PrivateAddress(host) => write!(
                f,
                "{host} has only private addresses (matrix_user_verification_federation_allow_private is off)"
            ),
            Unreachable::Srv(name, error) => write!(f, "SRV lookup of {name} failed: {error}"),
            Unreachable::NoService(name) => {
                write!(f, "SRV {name} says there is no federation service (target \".\")")
            }
            Unreachable::Lookup(host, error) => {
                write!(f, "address lookup of {host} failed: {error}")
            }
        }
    }
}

/// What discovery asks of the network, each question within the verification's deadline; a
/// trait so tests need neither a DNS server nor an HTTPS one.
pub trait Lookups {
    /// The addresses of `host` on `port`, from the system's resolver.
    fn addresses(&mut self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError>;
    /// `GET url` (an `https://` URL), connecting only to `addrs`, a body of at most `max_body`
    /// bytes, redirects not followed.
    fn well_known(&mut self, url: &str, addrs: &[SocketAddr], max_body: u64) -> Fetched;
    /// The SRV records of `name`.
    fn srv(&mut self, name: &str) -> Result<SrvRecords, DnsError>;
}

/// What a well-known fetch got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Status 200, and the body.
    Document(Vec<u8>),
    /// A redirect to this `Location`.
    Redirect(String),
    /// An answer that is not a document (a 404, a 403, a body too large, ...): no delegation.
    Absent,
    /// No answer (no connection, a TLS failure, a timeout, a 5xx): the server may be down.
    Failed,
    /// We gave up first (the verification's deadline, or our own limits): nothing learnt.
    Unfinished,
}

/// Server discovery with caches of well-known and SRV answers. Shared by every verification.
pub struct Discovery {
    allow_private: bool,
    delegations: Mutex<TtlCache<String, Option<ServerName>>>,
    services: Mutex<TtlCache<String, Vec<Srv>>>,
}

impl Discovery {
    /// A discovery that refuses private addresses unless `allow_private`.
    pub fn new(allow_private: bool) -> Self {
        Discovery {
            allow_private,
            delegations: Mutex::new(TtlCache::new(DELEGATIONS_KEPT)),
            services: Mutex::new(TtlCache::new(DELEGATIONS_KEPT)),
        }
    }

    /// Finds the federation endpoint of `server_name`, in the order of the spec's steps.
    pub fn locate(
        &self,
        server_name: &str,
        lookups: &mut impl Lookups,
    ) -> Result<Target, Unreachable> {
        let server = ServerName::parse(server_name).ok_or(Unreachable::BadServerName)?;
        let server = match (&server.host, server.port) {
            (Host::Name(name), None) => self.delegation(name, lookups).unwrap_or(server),
            _ => server,
        };
        if let (Host::Name(name), None) = (&server.host, server.port) {
            if let Some(target) = self.by_srv(name, lookups)? {
                return Ok(target);
            }
        }
        let addrs = self.addresses(&server.host, server.port.unwrap_or(DEFAULT_PORT), lookups)?;
        Ok(Target { authority: server.authority(), addrs })
    }

    /// The server a name delegates to through its well-known document, cached either way: an
    /// answer for [`DELEGATION_TTL`], no answer for [`DELEGATION_DOWN_TTL`], and a fetch we
    /// gave up on not at all (one login's deadline must not decide for the next).
    fn delegation(&self, name: &str, lookups: &mut impl Lookups) -> Option<ServerName> {
        let now = Instant::now();
        if let Some(known) = lock(&self.delegations).get(&name.to_string(), now) {
            return known;
        }
        let (found, ttl) = delegation_from(self.fetch_well_known(name, lookups))?;
        lock(&self.delegations).insert(name.to_string(), found.clone(), ttl, now);
        found
    }

    /// `GET https://<name>/.well-known/matrix/server`, following redirects to other `https://`
    /// URLs (up to [`MAX_WELL_KNOWN_REDIRECTS`]), each host's addresses screened as any other's.
    /// A redirect elsewhere (plain `http://`, a malformed location) or one too many is no
    /// document.
    fn fetch_well_known(&self, name: &str, lookups: &mut impl Lookups) -> Fetched {
        let mut at = WellKnownUrl {
            server: ServerName { host: Host::Name(name.to_string()), port: None },
            path: WELL_KNOWN_PATH.to_string(),
        };
        for _ in 0..=MAX_WELL_KNOWN_REDIRECTS {
            let addrs =
                match self.addresses(&at.server.host, at.server.port.unwrap_or(443), lookups) {
                    Ok(addrs) => addrs,
                    Err(Unreachable::Lookup(_, DnsError::Timeout | DnsError::Busy)) => {
                        return Fetched::Unfinished
                    }
                    Err(Unreachable::PrivateAddress(_)) => return Fetched::Absent,
                    Err(_) => return Fetched::Failed,
                };
            match lookups.well_known(&at.url(), &addrs, MAX_WELL_KNOWN) {
                Fetched::Redirect(location) => match at.follow(&location) {
                    Some(next) => at = next,
                    None => return Fetched::Absent,
                },
                other => return other,
            }
        }
        Fetched::Absent
    }

    /// The target SRV records give `name` (the current service first, then the deprecated
    /// one); `None` when it has neither.
    fn by_srv(
        &self,
        name: &str,
        lookups: &mut impl Lookups,
    ) -> Result<Option<Target>, Unreachable> {
        for service in SRV_SERVICES {
            let srv_name = format!("{service}.{name}");
            let records = self.srv_records(&srv_name, lookups)?;
            if records.is_empty() {
                continue;
            }
            if let [only] = records.as_slice() {
                if only.target.is_empty() {
                    return Err(Unreachable::NoService(srv_name));
                }
            }
            // Only as many targets are resolved as the request can try (an answer may list
            // thousands, each a lookup), in the order they are to be tried.
            let mut addrs = Vec::new();
            let mut failure = None;
            let targets = dns::in_order(&records, dns::random_up_to);
            for record in targets.iter().filter(|r| !r.target.is_empty()).take(http::MAX_PINNED) {
                match self.addresses(&Host::Name(record.target.clone()), record.port, lookups) {
                    Ok(found) => addrs.extend(found),
                    Err(error) => failure = Some(error),
                }
                if addrs.len() >= http::MAX_PINNED {
                    break;
                }
            }
            if addrs.is_empty() {
                let shown = format!("the targets of SRV {srv_name}");
                return Err(match failure {
                    Some(Unreachable::PrivateAddress(_)) => Unreachable::PrivateAddress(shown),
                    Some(Unreachable::Lookup(_, error)) => Unreachable::Lookup(shown, error),
                    _ => Unreachable::NoAddress(shown),
                });
            }
            return Ok(Some(Target { authority: name.to_string(), addrs }));
        }
        Ok(None)
    }

    /// The SRV records of `srv_name`, cached for their TTL (within [`SRV_TTL`]); a failed
    /// lookup is not cached.
    fn srv_records(
        &self,
        srv_name: &str,
        lookups: &mut impl Lookups,
    ) -> Result<Vec<Srv>, Unreachable> {
        let now = Instant::now();
        if let Some(known) = lock(&self.services).get(&srv_name.to_string(), now) {
            return Ok(known);
        }
        let found = lookups.srv(srv_name).map_err(|e| Unreachable::Srv(srv_name.to_string(), e))?;
        let ttl = match found.records.is_empty() {
            true => SRV_ABSENT_TTL,
            false => found.ttl.clamp(SRV_TTL.0, SRV_TTL.1),
        };
        lock(&self.services).insert(srv_name.to_string(), found.records.clone(), ttl, now);
        Ok(found.records)
    }

    /// The host's addresses, screened.
    fn addresses(
        &self,
        host: &Host,
        port: u16,
        lookups: &mut impl Lookups,
    ) -> Result<Vec<SocketAddr>, Unreachable> {
        let found: Vec<SocketAddr> = match host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
            Host::Name(name) => lookups
                .addresses(name, port)
                .map_err(|error| Unreachable::Lookup(name.clone(), error))?,
        };
        let shown = || match host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        if found.is_empty() {
            return Err(Unreachable::NoAddress(shown()));
        }
        let usable: Vec<SocketAddr> =
            found.into_iter().filter(|a| self.allow_private || is_public(a.ip())).collect();
        if usable.is_empty() {
            return Err(Unreachable::PrivateAddress(shown()));
        }
        Ok(usable)
    }
}

/// Where a well-known fetch goes: the server (host and port, checked as a server name is) and
/// the path.
struct WellKnownUrl {
    server: ServerName,
    path: String,
}

impl WellKnownUrl {
    fn url(&self) -> String {
        format!("https://{}{}", self.server.authority(), self.path)
    }

    /// Where a redirect's `Location` leads: an absolute `https://` URL (its host checked as a
    /// server name, so no user info and nothing but a host and port), or a path on this
    /// server. The fragment is dropped; anything else leads nowhere.
    fn follow(&self, location: &str) -> Option<WellKnownUrl> {
        let location = location.split('#').next().unwrap_or_default();
        let (server, path) = if let Some(rest) = location.strip_prefix("https://") {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let path = match &rest[end..] {
                "" => "/",
                path => path,
            };
            (ServerName::parse(&rest[..end])?, path)
        } else if location.starts_with('/') && !location.starts_with("//") {
            (self.server.clone(), location)
        } else {
            return None;
        };
        let printable = path.bytes().all(|b| b.is_ascii_graphic());
        (printable && path.len() <= MAX_PATH)
            .then(|| WellKnownUrl { server, path: path.to_string() })
    }
}

/// A cache's lock. A poisoned lock only means a panic elsewhere; the map stays consistent.
fn lock<T>(cache: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a well-known fetch tells of a name's delegation, and for how long that holds; nothing
/// when we gave up before the server could answer.
fn delegation_from(fetched: Fetched) -> Option<(Option<ServerName>, Duration)> {
    match fetched {
        Fetched::Document(body) => Some((read_well_known(&body), DELEGATION_TTL)),
        Fetched::Absent | Fetched::Redirect(_) => Some((None, DELEGATION_TTL)),
        Fetched::Failed => Some((None, DELEGATION_DOWN_TTL)),
        Fetched::Unfinished => None,
    }
}

/// `{"m.server": "<name>[:<port>]"}` → the delegated server; anything else → none.
pub fn read_well_known(body: &[u8]) -> Option<ServerName> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    ServerName::parse(doc.get("m.server")?.as_str()?)
}

/// Whether an address may be fetched from on a stranger's say-so: not loopback, private,
/// link-local, carrier-grade NAT, multicast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (b & 0xc0) == 64) // carrier-grade NAT
                || (a == 198 && (b & 0xfe) == 18) // benchmarking (RFC 2544)
                || (a == 192 && b == 0 && c == 0)) // IETF protocol assignments
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |high: u16, low: u16| {
                let [a, b] = high.to_be_bytes();
                let [c, d] = low.to_be_bytes();
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            };
            // Addresses that carry an IPv4 address something on the way delivers to: mapped
            // (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d, RFC 6052) and 6to4 (2002:aabb:ccdd::,
            // RFC 3056). Each is as public as the IPv4 address inside.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(embedded(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public(embedded(s[1], s[2]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[..6] == [0; 6] // IPv4-compatible (::a.b.c.d), deprecated
                || s[..3] == [0x64, 0xff9b, 1] // local-use NAT64 (RFC 8215)
                || s[..2] == [0x2001, 0] // Teredo, which carries a relay's address
                || s[..2] == [0x2001, 0xdb8] // documentation
                || s[..4] == [0x100, 0, 0, 0] // discard-only (RFC 6666)
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0) // site-local, deprecated
        }
    }
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|port| *port != 0)
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(host: &str, port: Option<u16>) -> ServerName {
        ServerName { host: Host::Name(host.into()), port }
    }

    #[test]
    fn test_server_names_parse_per_the_grammar() {
        assert_eq!(ServerName::parse("matrix.org"), Some(name("matrix.org", None)));
        assert_eq!(ServerName::parse("Host.Example:8448"), Some(name("host.example", Some(8448))));
        let v4 = ServerName::parse("127.1.2.3:9000").unwrap();
        assert_eq!(v4.url_host(), "127.1.2.3");
        assert_eq!(v4.port, Some(9000));
        assert_eq!(ServerName::parse("[::1]:8448").unwrap().url_host(), "[::1]");
        assert_eq!(ServerName::parse("[2001:db8::1]").unwrap().port, None);
        for bad in [
            "",
            ":8448",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "a b",
            "host/path",
            "user@host",
            "host..example",
            "[::1",
            "::1",
            "host:1:2",
            "é.example",
        ] {
            assert_eq!(ServerName::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ServerName::parse(&"a".repeat(256)), None);
    }

    #[test]
    fn test_only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            // IPv6 that delivers to a private IPv4 address, and reserved ranges.
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "::7f00:1",
            "2001::1",
            "2001:db8::1",
            "100::1",
            "fec0::1",
            "198.18.0.1",
            "198.19.255.1",
            "192.0.0.8",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
            "198.20.0.1",
            "192.0.1.1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn test_well_known_delegates_only_to_a_server_name() {
        assert_eq!(
            read_well_known(br#"{"m.server": "synapse.example:443"}"#),
            Some(name("synapse.example", Some(443)))
        );
        for bad in [&b"{}"[..], b"[]", b"garbage", br#"{"m.server": 7}"#, br#"{"m.server": "a b"}"#]
        {
            assert_eq!(read_well_known(bad), None);
        }
    }

    /// Scripted answers: addresses by host (else the system's lookup), well-known bodies by
    /// host, other fetches by URL, SRV records by name. Every fetch and SRV question is noted in
    /// `asked` and every address lookup counted; a question not scripted gets nothing (no
    /// document, no records).
    #[derive(Default)]
    struct Fake {
        hosts: Vec<(&'static str, &'static str)>,
        well_known: Vec<(&'static str, &'static str)>,
        fetched: Vec<(&'static str, Fetched)>,
        srv: Vec<(&'static str, Result<Vec<Srv>, DnsError>)>,
        asked: Vec<String>,
        resolved: usize,
    }

    impl Lookups for Fake {
        fn addresses(&mut self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
            self.resolved += 1;
            if let Some((_, ip)) = self.hosts.iter().find(|(h, _)| *h == host) {
                return Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)]);
            }
            dns::lookup_host(host, port, Instant::now() + Duration::from_secs(5))
        }

        fn well_known(&mut self, url: &str, _: &[SocketAddr], _: u64) -> Fetched {
            let standard =
                url.strip_prefix("https://").and_then(|u| u.strip_suffix(WELL_KNOWN_PATH));
            if let Some(host) = standard.filter(|h| !h.contains(':')) {
                self.asked.push(format!("well-known {host}"));
                if let Some((_, body)) = self.well_known.iter().find(|(h, _)| *h == host) {
                    return Fetched::Document(body.as_bytes().to_vec());
                }
            } else {
                self.asked.push(format!("get {url}"));
            }
            let found = self.fetched.iter().find(|(u, _)| *u == url);
            found.map_or(Fetched::Absent, |(_, answer)| answer.clone())
        }

        fn srv(&mut self, name: &str) -> Result<SrvRecords, DnsError> {
            self.asked.push(format!("srv {name}"));
            let found = self.srv.iter().find(|(n, _)| *n == name).map(|(_, r)| r.clone());
            let records = found.unwrap_or(Ok(Vec::new()))?;
            Ok(SrvRecords { records, ttl: Duration::from_secs(300) })
        }
    }

    fn record(priority: u16, port: u16, target: &str) -> Srv {
        Srv { priority, weight: 0, port, target: target.into() }
    }

    fn target(authority: &str, addrs: &[&str]) -> Target {
        Target {
            authority: authority.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn test_ip_literals_and_explicit_ports_skip_well_known_and_srv() {
        let discovery = Discovery::new(true);
        let mut fake = Fake::default();
        // No port in the server name: none in the Host header either, but 8448 to connect to.
        assert_eq!(
            discovery.locate("127.9.8.7", &mut fake),
            Ok(target("127.9.8.7", &["127.9.8.7:8448"]))
        );
        assert_eq!(discovery.locate("[::1]:9", &mut fake), Ok(target("[::1]:9", &["[::1]:9"])));
        assert_eq!(
            discovery.locate("localhost:8449", &mut fake).unwrap().authority,
            "localhost:8449"
        );
        assert!(fake.asked.is_empty(), "{:?}", fake.asked);
    }

    #[test]
    fn test_private_addresses_are_refused_unless_allowed() {
        let mut fake = Fake::default();
        assert_eq!(
            Discovery::new(false).locate("127.0.0.1:8448", &mut fake),
            Err(Unreachable::PrivateAddress("127.0.0.1".into()))
        );
        assert_eq!(
            Discovery::new(false).locate("not a name", &mut fake),
            Err(Unreachable::BadServerName)
        );
        let mut srv_to_loopback = Fake {
            srv: vec![("_matrix-fed._tcp.localhost", Ok(vec![record(0, 8448, "localhost")]))],
            ..Fake::default()
        };
        assert_eq!(
            Discovery::new(false).locate("localhost", &mut srv_to_loopback),
            Err(Unreachable::PrivateAddress(
                "the targets of SRV _matrix-fed._tcp.localhost".into()
            )),
            "SRV targets are screened as any address is"
        );
    }

    #[test]
    fn test_well_known_delegation_is_followed_and_cached_either_way() {
        let discovery = Discovery::new(true);
        let mut fake = Fake {
            well_known: vec![("localhost", r#"{"m.server": "127.0.0.2:9448"}"#)],
            ..Fake::default()
        };
        let found = discovery.locate("localhost", &mut fake).unwrap();
        assert_eq!(found, target("127.0.0.2:9448", &["127.0.0.2:9448"]));
        assert_eq!(discovery.locate("localhost", &mut fake), Ok(found));
        assert_eq!(fake.asked, ["well-known localhost"], "the delegation is cached");

        // No well-known, no SRV: the name itself on port 8448 (Host header without a port),
        // and those answers are cached too.
        let discovery = Discovery::new(true);
        let mut fake = Fake::default();
        let found = discovery.locate("localhost", &mut fake).unwrap();
        assert_eq!(found.authority, "localhost");
        assert!(found.addrs.iter().all(|a| a.port() == 8448 && a.ip().is_loopback()));
        discovery.locate("localhost", &mut fake).unwrap();
        assert_eq!(
            fake.asked,
            [
                "well-known localhost",
                "srv _matrix-fed._tcp.localhost",
                "srv _matrix._tcp.localhost"
            ]
        );
    }

    #[test]
    fn test_srv_records_lead_to_their_targets_in_priority_order() {
        let discovery = Discovery::new(true);
        let mut fake = Fake {
            srv: vec![(
                "_matrix-fed._tcp.localhost",
                Ok(vec![record(20, 9002, "127.0.0.3"), record(10, 9001, "127.0.0.2")]),
            )],
            ..Fake::default()
        };
        // The Host header (and the certificate) stay the server name; only the address moves.
        assert_eq!(
            discovery.locate("localhost", &mut fake),
            Ok(target("localhost", &["127.0.0.2:9001", "127.0.0.3:9002"]))
        );
        assert_eq!(fake.asked, ["well-known localhost", "srv _matrix-fed._tcp.localhost"]);
        discovery.locate("localhost", &mut fake).unwrap();
        assert_eq!(fake.asked.len(), 2, "the records are cached");
    }

    #[test]
    fn test_the_deprecated_service_is_asked_when_the_current_one_has_no_records() {
        let mut fake = Fake {
            srv: vec![("_matrix._tcp.localhost", Ok(vec![record(0, 9003, "127.0.0.4")]))],
            ..Fake::default()
        };
        assert_eq!(
            Discovery::new(true).locate("localhost", &mut fake),
            Ok(target("localhost", &["127.0.0.4:9003"]))
        );
    }

    #[test]
    fn test_a_delegated_name_without_port_is_looked_up_by_srv() {
        let mut fake = Fake {
            well_known: vec![("localhost", r#"{"m.server": "delegated.localhost"}"#)],
            srv: vec![(
                "_matrix-fed._tcp.delegated.localhost",
                Ok(vec![record(0, 9004, "127.0.0.5")]),
            )],
            ..Fake::default()
        };
        assert_eq!(
            Discovery::new(true).locate("localhost", &mut fake),
            Ok(target("delegated.localhost", &["127.0.0.5:9004"]))
        );
        assert_eq!(
            fake.asked,
            ["well-known localhost", "srv _matrix-fed._tcp.delegated.localhost"],
            "SRV is asked for the delegated name, not the original one"
        );
    }

    #[test]
    fn test_srv_target_dot_means_no_service_and_failures_are_not_fallen_through() {
        let mut none = Fake {
            srv: vec![("_matrix-fed._tcp.localhost", Ok(vec![record(0, 0, "")]))],
            ..Fake::default()
        };
        assert_eq!(
            Discovery::new(true).locate("localhost", &mut none),
            Err(Unreachable::NoService("_matrix-fed._tcp.localhost".into()))
        );
        // A lookup that failed is an error (not "no records", which would fall through to a
        // server the name's owner may not run), and is asked again next time.
        let discovery = Discovery::new(true);
        let mut failing = Fake {
            srv: vec![("_matrix-fed._tcp.localhost", Err(DnsError::Timeout))],
            ..Fake::default()
        };
        let failed = Unreachable::Srv("_matrix-fed._tcp.localhost".into(), DnsError::Timeout);
        assert_eq!(discovery.locate("localhost", &mut failing), Err(failed.clone()));
        assert_eq!(discovery.locate("localhost", &mut failing), Err(failed.clone()));
        assert_eq!(failing.asked.iter().filter(|q| q.starts_with("srv")).count(), 2);
        assert_eq!(
            failed.to_string(),
            "SRV lookup of _matrix-fed._tcp.localhost failed: DNS timed out"
        );
    }

    #[test]
    fn test_srv_targets_without_address_are_skipped() {
        let mut fake = Fake {
            srv: vec![(
                "_matrix-fed._tcp.localhost",
                Ok(vec![record(0, 9005, "no-such-host.invalid"), record(1, 9006, "127.0.0.6")]),
            )],
            ..Fake::default()
        };
        assert_eq!(
            Discovery::new(true).locate("localhost", &mut fake),
            Ok(target("localhost", &["127.0.0.6:9006"]))
        );
        let mut nowhere = Fake {
            srv: vec![(
                "_matrix-fed._tcp.localhost",
                Ok(vec![record(0, 9005, "no-such-host.invalid")]),
            )],
            ..Fake::default()
        };
        // The resolver's own words stay in the error, for the log.
        let Err(Unreachable::Lookup(shown, DnsError::Io(why))) =
            Discovery::new(true).locate("localhost", &mut nowhere)
        else {
            panic!("not an address lookup failure")
        };
        assert_eq!(shown, "the targets of SRV _matrix-fed._tcp.localhost");
        assert!(!why.is_empty());
    }

    #[test]
    fn test_only_as_many_srv_targets_are_resolved_as_can_be_tried() {
        // An answer (over TCP) can list thousands of targets, each a lookup of its own.
        let records: Vec<Srv> = (0..300u32)
            .map(|i| record(0, 9000, &format!("127.1.{}.{}", i / 200, i % 200 + 1)))
            .collect();
        let mut fake =
            Fake { srv: vec![("_matrix-fed._tcp.localhost", Ok(records))], ..Fake::default() };
        let found = Discovery::new(true).locate("localhost", &mut fake).unwrap();
        assert_eq!(found.addrs.len(), http::MAX_PINNED);
        assert!(fake.resolved <= 1 + http::MAX_PINNED, "{} lookups", fake.resolved);
    }

    #[test]
    fn test_what_a_well_known_fetch_tells_is_kept_for_as_long_as_it_holds() {
        let delegated = Some(name("fed.example", Some(443)));
        let document = Fetched::Document(br#"{"m.server": "fed.example:443"}"#.to_vec());
        assert_eq!(delegation_from(document), Some((delegated, DELEGATION_TTL)));
        assert_eq!(
            delegation_from(Fetched::Document(b"{}".to_vec())),
            Some((None, DELEGATION_TTL))
        );
        assert_eq!(delegation_from(Fetched::Absent), Some((None, DELEGATION_TTL)));
        // No answer: "none" for two minutes, not the hour, so an outage heals soon.
        assert_eq!(delegation_from(Fetched::Failed), Some((None, DELEGATION_DOWN_TTL)));
        // We gave up first: nothing learnt, nothing kept.
        assert_eq!(delegation_from(Fetched::Unfinished), None);

        let discovery = Discovery::new(true);
        let url = "https://localhost/.well-known/matrix/server";
        let mut fake = Fake { fetched: vec![(url, Fetched::Unfinished)], ..Fake::default() };
        let mut fake_found = || discovery.locate("localhost", &mut fake).map(|t| t.authority);
        assert_eq!(fake_found(), Ok("localhost".into()));
        assert_eq!(fake_found(), Ok("localhost".into()));
        let fetches = fake.asked.iter().filter(|q| q.starts_with("well-known")).count();
        assert_eq!(fetches, 2, "a fetch given up is asked again: {:?}", fake.asked);
    }

    #[test]
    fn test_well_known_redirects_are_followed_to_https_urls() {
        let mut fake = Fake {
            fetched: vec![
                (
                    "https://localhost/.well-known/matrix/server",
                    Fetched::Redirect("https://127.0.0.2:8443/.well-known/matrix/server".into()),
                ),
                (
                    "https://127.0.0.2:8443/.well-known/matrix/server",
                    Fetched::Redirect("/moved#top".into()),
                ),
                (
                    "https://127.0.0.2:8443/moved",
                    Fetched::Document(br#"{"m.server": "127.0.0.3:9448"}"#.to_vec()),
                ),
            ],
            ..Fake::default()
        };
        assert_eq!(
            Discovery::new(true).locate("localhost", &mut fake),
            Ok(target("127.0.0.3:9448", &["127.0.0.3:9448"]))
        );
        assert_eq!(
            fake.asked,
            [
                "well-known localhost",
                "get https://127.0.0.2:8443/.well-known/matrix/server",
                "get https://127.0.0.2:8443/moved"
            ]
        );
    }

    #[test]
    fn test_well_known_redirects_elsewhere_or_in_a_loop_are_no_delegation() {
        let url = "https://localhost/.well-known/matrix/server";
        for location in
            ["http://127.0.0.2/.well-known/matrix/server", "//127.0.0.2/x", "x", "https://u@h/"]
        {
            let mut fake = Fake {
                fetched: vec![(url, Fetched::Redirect(location.into()))],
                ..Fake::default()
            };
            let found = Discovery::new(true).locate("localhost", &mut fake).unwrap();
            assert_eq!(found.authority, "localhost", "{location}");
            assert_eq!(
                fake.asked.iter().filter(|q| !q.starts_with("srv")).count(),
                1,
                "{location}"
            );
        }
        let mut looping =
            Fake { fetched: vec![(url, Fetched::Redirect(url.into()))], ..Fake::default() };
        assert_eq!(
            Discovery::new(true).locate("localhost", &mut looping).unwrap().authority,
            "localhost"
        );
        let fetches = looping.asked.iter().filter(|q| !q.starts_with("srv")).count();
        assert_eq!(fetches, 1 + MAX_WELL_KNOWN_REDIRECTS);
    }

    #[test]
    fn test_a_redirect_to_a_private_address_is_not_fetched() {
        let mut fake = Fake {
            hosts: vec![("public.test", "93.184.216.34"), ("inside.test", "10.0.0.5")],
            fetched: vec![(
                "https://public.test/.well-known/matrix/server",
                Fetched::Redirect("https://inside.test/.well-known/matrix/server".into()),
            )],
            ..Fake::default()
        };
        assert_eq!(
            Discovery::new(false).locate("public.test", &mut fake),
            Ok(target("public.test", &["93.184.216.34:8448"]))
        );
        assert!(!fake.asked.iter().any(|q| q.contains("inside.test")), "{:?}", fake.asked);
    }

    #[test]
    fn test_redirect_locations_are_read_strictly() {
        let at = WellKnownUrl { server: name("example.org", None), path: WELL_KNOWN_PATH.into() };
        let follow = |location: &str| at.follow(location).map(|next| next.url());
        let www = "https://www.example.org/.well-known/matrix/server";
        assert_eq!(follow(www).as_deref(), Some(www));
        assert_eq!(
            follow("https://WWW.example.org:8443").as_deref(),
            Some("https://www.example.org:8443/")
        );
        assert_eq!(
            follow("https://[::1]:8448/x?y=1#z").as_deref(),
            Some("https://[::1]:8448/x?y=1")
        );
        assert_eq!(follow("/other").as_deref(), Some("https://example.org/other"));
        for nowhere in [
            "http://example.org/",
            "//example.org/",
            "other",
            "",
            "https://a@b/",
            "https://h/a b",
            "https://h:0/",
        ] {
            assert_eq!(follow(nowhere), None, "{nowhere:?}");
        }
        assert_eq!(follow(&format!("/{}", "a".repeat(MAX_PATH))), None);
    }

    #[test]
    fn test_an_address_lookup_that_times_out_is_reported_as_such() {
        struct Slow;
        impl Lookups for Slow {
            fn addresses(&mut self, _: &str, _: u16) -> Result<Vec<SocketAddr>, DnsError> {
                Err(DnsError::Timeout)
            }
            fn well_known(&mut self, _: &str, _: &[SocketAddr], _: u64) -> Fetched {
                unreachable!("no address, no fetch")
            }
            fn srv(&mut self, _: &str) -> Result<SrvRecords, DnsError> {
                Ok(SrvRecords { records: vec![record(0, 9000, "slow.test")], ttl: Duration::ZERO })
            }
        }
        assert_eq!(
            Discovery::new(true).locate("example.test", &mut Slow),
            Err(Unreachable::Lookup(
                "the targets of SRV _matrix-fed._tcp.example.test".into(),
                DnsError::Timeout
            ))
        );
    }
}
