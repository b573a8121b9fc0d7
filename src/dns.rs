//! A stub resolver for SRV records, which Matrix server discovery needs and the system's
//! `getaddrinfo` cannot give.
//!
//! It asks the nameservers of `/etc/resolv.conf` as the C library's resolver would (`nameserver`
//! lines, `options timeout:` and `attempts:`, UDP on port 53, TCP when the answer is
//! truncated), so an operator's DNS setup applies unchanged. Names and addresses of the
//! targets are then resolved by the system as usual. A whole resolver crate would bring an
//! async runtime into Prosody for this one question.
//!
//! What DNS says only steers where we connect: the federation request that follows checks the
//! server's certificate against the server name, so a forged answer cannot impersonate a server.

pub mod message;

use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpStream, ToSocketAddrs, UdpSocket,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use message::{Answer, BadAnswer};

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is tried first.
    pub priority: u16,
    /// Within one priority, the share of connections this target should get.
    pub weight: u16,
    /// The port on the target.
    pub port: u16,
    /// The target host; "" (the root, ".") means the service is not offered at all.
    pub target: String,
}

/// The SRV records of a name and how long they may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecords {
    /// As received; see [`in_order`] for the order to try them in.
    pub records: Vec<Srv>,
    /// The smallest TTL among them (zero when there are none).
    pub ttl: Duration,
}

/// Why no nameserver gave an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// No answer within the time allowed.
    Timeout,
    /// The nameservers could not answer (SERVFAIL, REFUSED, ...: the last RCODE seen).
    ServerFailure(u8),
    /// An answer broke the DNS format.
    Malformed(&'static str),
    /// The network refused (no route, connection refused, ...), or the system's resolver
    /// found no address.
    Io(String),
    /// Too many of the system resolver's lookups are still running (see [`lookup_host`]).
    Busy,
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::Timeout => write!(f, "DNS timed out"),
            DnsError::ServerFailure(rcode) => write!(f, "DNS server failure (RCODE {rcode})"),
            DnsError::Malformed(why) => write!(f, "malformed DNS answer: {why}"),
            DnsError::Io(text) => write!(f, "DNS: {text}"),
            DnsError::Busy => write!(f, "too many address lookups still running"),
        }
    }
}

/// The resolver settings of `/etc/resolv.conf` that a stub resolver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// At most three, as the C library uses (`MAXNS`).
    pub nameservers: Vec<SocketAddr>,
    /// How long to wait for one nameserver's answer (`options timeout:`, default 5 s).
    pub timeout: Duration,
    /// How many rounds over the nameservers (`options attempts:`, default 2).
    pub attempts: u32,
}

impl ResolvConf {
    /// The system's settings, read afresh (the file may change while Prosody runs). A missing
    /// or unreadable file means the C library's defaults: the nameserver on this host.
    pub fn system() -> ResolvConf {
        Self::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }

    /// Reads resolv.conf text as glibc does: `nameserver <ip>` (the first three), `options`
    /// with `timeout:n` (at most 30) and `attempts:n` (at most 5); everything else is ignored.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf =
            ResolvConf { nameservers: Vec::new(), timeout: Duration::from_secs(5), attempts: 2 };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let server = words.next().and_then(nameserver_address);
                    if let Some(server) = server.filter(|_| conf.nameservers.len() < MAXNS) {
                        conf.nameservers.push(server);
                    }
                }
                Some("options") => {
                    for option in words {
                        let number = |prefix| option.strip_prefix(prefix)?.parse::<u32>().ok();
                        if let Some(seconds) = number("timeout:") {
                            conf.timeout = Duration::from_secs(seconds.clamp(1, 30).into());
                        } else if let Some(attempts) = number("attempts:") {
                            conf.attempts = attempts.clamp(1, 5);
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        conf
    }
}

/// A `nameserver` address: an IP, or a link-local IPv6 with its interface
/// (`fe80::1%eth0`, as NetworkManager writes it; or `%2`, the interface's index).
fn nameserver_address(text: &str) -> Option<SocketAddr> {
    let Some((ip, interface)) = text.split_once('%') else {
        return Some(SocketAddr::new(text.parse().ok()?, 53));
    };
    let scope = interface.parse().ok().or_else(|| {
        let path = format!("/sys/class/net/{interface}/ifindex");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })?;
    Some(SocketAddrV6::new(ip.parse().ok()?, 53, 0, scope).into())
}

/// The SRV records of `name` (a DNS name such as `_matrix-fed._tcp.example.org`), asking the
/// nameservers of `conf` in turn, each for at most its timeout, all by `deadline`. A name
/// without records, or that does not exist, gives no records; only a failure to get an answer
/// is an error.
pub fn lookup_srv(
    name: &str,
    conf: &ResolvConf,
    deadline: Instant,
) -> Result<SrvRecords, DnsError> {
    let mut failure = DnsError::Timeout;
    for _ in 0..conf.attempts {
        for server in &conf.nameservers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DnsError::Timeout);
            }
            let wait = conf.timeout.min(left);
            match ask(*server, name, wait) {
                Ok(Answer::Records { records, ttl }) => {
                    return Ok(SrvRecords { records, ttl: Duration::from_secs(ttl.into()) });
                }
                Ok(Answer::Failed(rcode)) => failure = DnsError::ServerFailure(rcode),
                Ok(Answer::Truncated) => failure = DnsError::Malformed("truncated over TCP"),
                Err(error) => failure = error,
            }
        }
    }
    Err(failure)
}

/// The records in the order to try them: by priority, then within one priority a random
/// order weighted by `weight` (RFC 2782's selection). `random(n)` gives a number in `0..=n`.
pub fn in_order(records: &[Srv], mut random: impl FnMut(u32) -> u32) -> Vec<Srv> {
    let mut left: Vec<Srv> = records.to_vec();
    // Zero weights first, as the RFC asks, so they are picked only when chance lands on 0.
    left.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(left.len());
    while let Some(priority) = left.first().map(|r| r.priority) {
        let same = left.iter().take_while(|r| r.priority == priority).count();
        let total: u32 = left[..same].iter().map(|r| u32::from(r.weight)).sum();
        let pick = random(total);
        let mut running = 0;
        let chosen = left[..same]
            .iter()
            .position(|r| {
                running += u32::from(r.weight);
                running >= pick
            })
            .unwrap_or(same - 1);
        ordered.push(left.remove(chosen));
    }
    ordered
}

/// A uniformly random number in `0..=n`, for [`in_order`].
pub fn random_up_to(n: u32) -> u32 {
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0;
    }
    (u64::from(u32::from_be_bytes(bytes)) % (u64::from(n) + 1)) as u32
}

/// The addresses of `host` on `port` from the system's resolver (getaddrinfo: /etc/hosts,
/// nsswitch, resolv.conf), by `deadline`. getaddrinfo takes no timeout and, for a name whose
/// nameservers are silent, may take `timeout` × `attempts` × nameservers (30 s by default):
/// so it runs on a thread of its own, left to finish alone when the deadline comes, and at
/// most [`MAX_PENDING_LOOKUPS`] such threads run at a time. An IP literal needs no lookup.
pub fn lookup_host(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, DnsError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    let host = host.to_string();
    let found = by_deadline(&PENDING, MAX_PENDING_LOOKUPS, deadline, move || {
        (host.as_str(), port).to_socket_addrs().map(Iterator::collect).map_err(|e| e.to_string())
    })?;
    found.map_err(DnsError::Io)
}

/// At most this many getaddrinfo threads at a time, those whose caller gave up included: beyond
/// it, a lookup fails at once ([`DnsError::Busy`]) rather than add threads without bound.
const MAX_PENDING_LOOKUPS: usize = 64;

/// Runs `work` on a thread of its own and waits for its result until `deadline`, counting the
/// thread in `pending` (at most `max`) until it ends, whether or not anyone still waits.
fn by_deadline<T: Send + 'static>(
    pending: &'static AtomicUsize,
    max: usize,
    deadline: Instant,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DnsError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(DnsError::Timeout);
    }
    let counted =
        pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
    if counted.is_err() {
        return Err(DnsError::Busy);
    }
    // Released when the thread ends, or when it could not start (the closure is dropped).
    struct Running(&'static AtomicUsize);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let running = Running(pending);
    let (sender, receiver) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("gatehouse-lookup".into())
        .spawn(move || {
            let _running = running;
            let _ = sender.send(work()); // the caller may have gone
        })
        .map_err(io)?;
    match receiver.recv_timeout(left) {
        Ok(result) => Ok(result),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(DnsError::Timeout),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(DnsError::Io("the lookup failed".into())),
    }
}

/// The C library's limit on nameservers used.
const MAXNS: usize = 3;

/// Largest UDP answer read; without EDNS a server sends at most 512 bytes.
const MAX_UDP: usize = 512;

/// One question to one nameserver: over UDP, again over TCP if the answer was truncated.
fn ask(server: SocketAddr, name: &str, wait: Duration) -> Result<Answer, DnsError> {
    let until = Instant::now() + wait;
    let id = random_id();
    let query = message::query(id, name);
    match over_udp(server, &query, until, |reply| message::read_answer(id, name, reply))? {
        Answer::Truncated => {
            let reply = over_tcp(server, &query, until)?;
            message::read_answer(id, name, &reply).map_err(malformed)
        }
        answer => Ok(answer),
    }
}

/// Sends `query` and waits for a datagram that `read` accepts as the answer; strays (another
/// ID or question, as a spoofing attempt would be) are dropped and the wait goes on.
fn over_udp(
    server: SocketAddr,
    query: &[u8],
    until: Instant,
    read: impl Fn(&[u8]) -> Result<Answer, BadAnswer>,
) -> Result<Answer, DnsError> {
    let local: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((local, 0)).map_err(io)?;
    // Connected: the kernel drops datagrams from any other address.
    socket.connect(server).map_err(io)?;
    socket.send(query).map_err(io)?;
    let mut buffer = [0u8; MAX_UDP];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DnsError::Timeout);
        }
        socket.set_read_timeout(Some(left)).map_err(io)?;
        let length = match socket.recv(&mut buffer) {
            Ok(length) => length,
            Err(e) if is_timeout(&e) => return Err(DnsError::Timeout),
            Err(e) => return Err(io(e)),
        };
        match read(&buffer[..length]) {
            Err(BadAnswer::NotOurs) => continue,
            other => return other.map_err(malformed),
        }
    }
}

/// Sends `query` over TCP (two-byte length before each message, RFC 1035 §4.2.2) and returns
/// the reply.
fn over_tcp(server: SocketAddr, query: &[u8], until: Instant) -> Result<Vec<u8>, DnsError> {
    let left = |until: Instant| {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(DnsError::Timeout)
        } else {
            Ok(left)
        }
    };
    let mut stream = TcpStream::connect_timeout(&server, left(until)?).map_err(timeout_or_io)?;
    stream.set_write_timeout(Some(left(until)?)).map_err(io)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).map_err(timeout_or_io)?;
    let mut length = [0u8; 2];
    read_all_by(&mut stream, &mut length, until)?;
    let mut reply = vec![0u8; u16::from_be_bytes(length).into()];
    read_all_by(&mut stream, &mut reply, until)?;
    Ok(reply)
}

/// Fills `buffer` from `stream` by `until`. Each read waits only for what is left of the time,
/// so a server that sends its reply a byte at a time cannot stretch the wait (a read timeout
/// alone bounds each read, not the whole).
fn read_all_by(stream: &mut TcpStream, buffer: &mut [u8], until: Instant) -> Result<(), DnsError> {
    let mut filled = 0;
    while filled < buffer.len() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DnsError::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(io)?;
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Err(DnsError::Io("connection closed before the whole answer".into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timeout_or_io(e)),
        }
    }
    Ok(())
}

fn random_id() -> u16 {
    random_up_to(u32::from(u16::MAX)) as u16
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

fn io(error: std::io::Error) -> DnsError {
    DnsError::Io(error.to_string())
}

fn timeout_or_io(error: std::io::Error) -> DnsError {
    if is_timeout(&error) {
        DnsError::Timeout
    } else {
        io(error)
    }
}

fn malformed(error: BadAnswer) -> DnsError {
    match error {
        BadAnswer::NotOurs => DnsError::Malformed("an answer to another question"),
        BadAnswer::Malformed(why) => DnsError::Malformed(why),
    }
}

#[cfg(test)]
mod tests;
