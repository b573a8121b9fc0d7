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
//! operator allows private ones, one well-known fetch per name per hour and SRV answers kept
//! for their TTL (at least a minute; cached, found or not), no redirects, small replies, and
//! everything within the verification's deadline.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::TtlCache;
use crate::dns::{self, DnsError, Srv, SrvRecords};

/// The federation port when a server name names none.
pub const DEFAULT_PORT: u16 = 8448;

/// The SRV services of Matrix federation, in the order asked: the current one, then the
/// deprecated one (still asked by the spec and by Synapse).
pub const SRV_SERVICES: [&str; 2] = ["_matrix-fed._tcp", "_matrix._tcp"];

/// How long a well-known answer (a delegation, or that there is none) is reused.
const DELEGATION_TTL: Duration = Duration::from_secs(3600);

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
    /// The name has no address (or a DNS failure).
    NoAddress(String),
    /// Every address is private, loopback or link-local, and those are not allowed.
    PrivateAddress(String),
    /// The SRV lookup of this name failed (no answer, not "no records").
    Srv(String, DnsError),
    /// The SRV records of this name say the service is not offered (a single target ".").
    NoService(String),
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
        }
    }
}

/// What discovery asks of the network beyond the system's address lookup; a trait so tests
/// need neither a DNS server nor an HTTPS one.
pub trait Lookups {
    /// `GET https://<host>/.well-known/matrix/server`, connecting only to `addrs`: the body
    /// (at most `max_body` bytes) when the status is 200.
    fn well_known(&mut self, host: &str, addrs: &[SocketAddr], max_body: u64) -> Option<Vec<u8>>;
    /// The SRV records of `name`.
    fn srv(&mut self, name: &str) -> Result<SrvRecords, DnsError>;
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
        let addrs = self.addresses(&server.host, server.port.unwrap_or(DEFAULT_PORT))?;
        Ok(Target { authority: server.authority(), addrs })
    }

    /// The server a name delegates to through its well-known document, cached either way.
    fn delegation(&self, name: &str, lookups: &mut impl Lookups) -> Option<ServerName> {
        let now = Instant::now();
        if let Some(known) = lock(&self.delegations).get(&name.to_string(), now) {
            return known;
        }
        let found = self
            .addresses(&Host::Name(name.to_string()), 443)
            .ok()
            .and_then(|addrs| lookups.well_known(name, &addrs, MAX_WELL_KNOWN))
            .and_then(|body| read_well_known(&body));
        lock(&self.delegations).insert(name.to_string(), found.clone(), DELEGATION_TTL, now);
        found
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
            let mut addrs = Vec::new();
            let mut failure = None;
            for record in dns::in_order(&records, dns::random_up_to) {
                if record.target.is_empty() {
                    continue;
                }
                match self.addresses(&Host::Name(record.target.clone()), record.port) {
                    Ok(found) => addrs.extend(found),
                    Err(error) => failure = Some(error),
                }
            }
            if addrs.is_empty() {
                let shown = format!("the targets of SRV {srv_name}");
                return Err(match failure {
                    Some(Unreachable::PrivateAddress(_)) => Unreachable::PrivateAddress(shown),
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
    fn addresses(&self, host: &Host, port: u16) -> Result<Vec<SocketAddr>, Unreachable> {
        let found: Vec<SocketAddr> = match host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
            Host::Name(name) => (name.as_str(), port)
                .to_socket_addrs()
                .map_err(|_| Unreachable::NoAddress(name.clone()))?
                .collect(),
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

/// A cache's lock. A poisoned lock only means a panic elsewhere; the map stays consistent.
fn lock<T>(cache: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (b & 0xc0) == 64))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
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
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "::ffff:1.1.1.1"] {
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

    /// Scripted answers: well-known bodies by host, SRV records by name; every question is
    /// counted, and a question not scripted gets nothing (no document, no records).
    #[derive(Default)]
    struct Fake {
        well_known: Vec<(&'static str, &'static str)>,
        srv: Vec<(&'static str, Result<Vec<Srv>, DnsError>)>,
        asked: Vec<String>,
    }

    impl Lookups for Fake {
        fn well_known(&mut self, host: &str, addrs: &[SocketAddr], _: u64) -> Option<Vec<u8>> {
            assert!(addrs.iter().all(|a| a.port() == 443), "well-known is fetched on 443");
            self.asked.push(format!("well-known {host}"));
            let found = self.well_known.iter().find(|(h, _)| *h == host);
            found.map(|(_, body)| body.as_bytes().to_vec())
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
        assert_eq!(
            Discovery::new(true).locate("localhost", &mut nowhere),
            Err(Unreachable::NoAddress("the targets of SRV _matrix-fed._tcp.localhost".into()))
        );
    }
}
