//! Federation: finding another homeserver and asking it whose OpenID token this is.
//!
//! Element's widget names the homeserver that issued the OpenID token (`server_name`). When
//! that is not the configured homeserver, the token is checked where it was issued, as UVS
//! does: server discovery per the Matrix server-server API (an IP literal or a name with a
//! port is used as is; otherwise `https://<name>/.well-known/matrix/server` may delegate, and
//! the default port is 8448), then `GET /_matrix/federation/v1/openid/userinfo` over HTTPS.
//! SRV records are not looked up (no DNS client here); servers that publish only SRV records
//! are reached on port 8448 of their name.
//!
//! The server name comes from a token anyone can make, so what it can make us fetch is
//! bounded: only names that parse as Matrix server names, only public addresses unless the
//! operator allows private ones, one well-known fetch per name per hour (cached, found or
//! not), no redirects, small replies, and everything within the verification's deadline.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::TtlCache;

/// The federation port when a server name names none.
pub const DEFAULT_PORT: u16 = 8448;

/// How long a well-known answer (a delegation, or that there is none) is reused.
const DELEGATION_TTL: Duration = Duration::from_secs(3600);

/// Server names whose well-known answer is remembered at most.
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
}

/// Where to send a federation request: the URL's authority (the name TLS checks) and the
/// addresses to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` for the `https://` URL.
    pub authority: String,
    /// The screened addresses of that host.
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
        }
    }
}

/// Server discovery with a cache of well-known answers. Shared by every verification.
pub struct Discovery {
    allow_private: bool,
    delegations: Mutex<TtlCache<String, Option<ServerName>>>,
}

impl Discovery {
    /// A discovery that refuses private addresses unless `allow_private`.
    pub fn new(allow_private: bool) -> Self {
        Discovery { allow_private, delegations: Mutex::new(TtlCache::new(DELEGATIONS_KEPT)) }
    }

    /// Finds the federation endpoint of `server_name`. `well_known` fetches
    /// `https://<host>/.well-known/matrix/server` pinned to the given addresses and returns its
    /// body when the status is 200 (injected, so tests need no HTTPS server).
    pub fn locate(
        &self,
        server_name: &str,
        well_known: impl FnOnce(&str, &[SocketAddr], u64) -> Option<Vec<u8>>,
    ) -> Result<Target, Unreachable> {
        let server = ServerName::parse(server_name).ok_or(Unreachable::BadServerName)?;
        let server = match (&server.host, server.port) {
            (Host::Name(name), None) => self.delegation(name, well_known).unwrap_or(server),
            _ => server,
        };
        let port = server.port.unwrap_or(DEFAULT_PORT);
        let addrs = self.addresses(&server.host, port)?;
        Ok(Target { authority: format!("{}:{port}", server.url_host()), addrs })
    }

    /// The server a name delegates to through its well-known document, cached either way.
    fn delegation(
        &self,
        name: &str,
        well_known: impl FnOnce(&str, &[SocketAddr], u64) -> Option<Vec<u8>>,
    ) -> Option<ServerName> {
        let now = Instant::now();
        if let Some(known) = self.lock().get(&name.to_string(), now) {
            return known;
        }
        let found = self
            .addresses(&Host::Name(name.to_string()), 443)
            .ok()
            .and_then(|addrs| well_known(name, &addrs, MAX_WELL_KNOWN))
            .and_then(|body| read_well_known(&body));
        self.lock().insert(name.to_string(), found.clone(), DELEGATION_TTL, now);
        found
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

    fn lock(&self) -> std::sync::MutexGuard<'_, TtlCache<String, Option<ServerName>>> {
        // A poisoned lock only means a panic elsewhere; the map itself stays consistent.
        self.delegations.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    #[test]
    fn test_ip_literals_and_explicit_ports_skip_the_well_known() {
        let discovery = Discovery::new(true);
        let never = |_: &str, _: &[SocketAddr], _: u64| -> Option<Vec<u8>> {
            panic!("no well-known for an IP literal or a name with a port")
        };
        let target = discovery.locate("127.9.8.7", never).unwrap();
        assert_eq!(target.authority, "127.9.8.7:8448");
        assert_eq!(target.addrs, vec!["127.9.8.7:8448".parse().unwrap()]);
        assert_eq!(discovery.locate("[::1]:9", never).unwrap().authority, "[::1]:9");
        assert_eq!(discovery.locate("localhost:8449", never).unwrap().authority, "localhost:8449");
    }

    #[test]
    fn test_private_addresses_are_refused_unless_allowed() {
        let none = |_: &str, _: &[SocketAddr], _: u64| None;
        assert_eq!(
            Discovery::new(false).locate("127.0.0.1:8448", none),
            Err(Unreachable::PrivateAddress("127.0.0.1".into()))
        );
        assert_eq!(
            Discovery::new(false).locate("not a name", none),
            Err(Unreachable::BadServerName)
        );
    }

    #[test]
    fn test_well_known_delegation_is_followed_and_cached_either_way() {
        let discovery = Discovery::new(true);
        let mut asked = 0;
        let mut delegate = |host: &str, addrs: &[SocketAddr], _: u64| {
            asked += 1;
            assert_eq!(host, "localhost");
            assert!(addrs.iter().all(|a| a.port() == 443));
            Some(br#"{"m.server": "127.0.0.2:9448"}"#.to_vec())
        };
        let target = discovery.locate("localhost", &mut delegate).unwrap();
        assert_eq!(target.authority, "127.0.0.2:9448");
        let again = discovery.locate("localhost", &mut delegate).unwrap();
        assert_eq!(again, target);
        assert_eq!(asked, 1, "the delegation is cached");

        // No well-known: the name itself on port 8448, and that answer is cached too.
        let discovery = Discovery::new(true);
        let mut misses = 0;
        let mut nothing = |_: &str, _: &[SocketAddr], _: u64| {
            misses += 1;
            None
        };
        assert_eq!(
            discovery.locate("localhost", &mut nothing).unwrap().authority,
            "localhost:8448"
        );
        discovery.locate("localhost", &mut nothing).unwrap();
        assert_eq!(misses, 1);
    }
}
