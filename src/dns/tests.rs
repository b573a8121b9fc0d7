//! The stub resolver against nameservers on loopback that answer as scripted.

use std::net::{TcpListener, UdpSocket};
use std::thread;

use super::*;

const NAME: &str = "_matrix-fed._tcp.example.test";

/// How a scripted nameserver answers a query over UDP.
#[derive(Clone, Copy)]
enum Script {
    /// An SRV record for `target.test` on port 8448.
    Answer,
    /// First a datagram with another ID, then the answer.
    StrayThenAnswer,
    /// The TC bit; the full answer over TCP on the same port.
    Truncated,
    /// The TC bit; then over TCP the full answer a byte every 50 ms.
    TruncatedThenDrip,
    /// RCODE 2.
    ServerFailure,
    /// Nothing at all.
    Silent,
}

/// The reply to `query` with `flags` (beyond QR and RA) and, if `with_record`, one SRV record.
fn reply(query: &[u8], flags: u16, with_record: bool) -> Vec<u8> {
    let mut reply = query.to_vec();
    reply[2..4].copy_from_slice(&(0x8180 | flags).to_be_bytes());
    if with_record {
        reply[7] = 1;
        reply.extend_from_slice(&[
            0xc0, 12, 0, 33, 0, 1, 0, 0, 1, 44, 0, 19, 0, 10, 0, 5, 0x21, 0x10,
        ]);
        reply.extend_from_slice(b"\x06target\x04test\x00");
    }
    reply
}

/// A nameserver on loopback (UDP, and TCP on the same port) that answers one query per
/// script entry, then stops.
fn nameserver(script: Vec<Script>) -> SocketAddr {
    let (udp, tcp) = udp_and_tcp_on_one_port();
    let address = udp.local_addr().unwrap();
    thread::spawn(move || {
        for step in script {
            let mut query = [0u8; 512];
            let Ok((length, client)) = udp.recv_from(&mut query) else { return };
            let query = &query[..length];
            match step {
                Script::Answer => drop(udp.send_to(&reply(query, 0, true), client)),
                Script::StrayThenAnswer => {
                    let mut stray = reply(query, 0, true);
                    stray[0] ^= 0xff;
                    udp.send_to(&stray, client).unwrap();
                    udp.send_to(&reply(query, 0, true), client).unwrap();
                }
                Script::Truncated | Script::TruncatedThenDrip => {
                    udp.send_to(&reply(query, 0x0200, false), client).unwrap();
                    let (mut stream, _) = tcp.accept().unwrap();
                    let mut length = [0u8; 2];
                    stream.read_exact(&mut length).unwrap();
                    let mut query = vec![0u8; u16::from_be_bytes(length).into()];
                    stream.read_exact(&mut query).unwrap();
                    let full = reply(&query, 0, true);
                    let mut framed = (full.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&full);
                    if let Script::Truncated = step {
                        stream.write_all(&framed).unwrap();
                        continue;
                    }
                    for byte in framed {
                        thread::sleep(Duration::from_millis(50));
                        if stream.write_all(&[byte]).is_err() {
                            break; // the client gave up, as it should
                        }
                    }
                }
                Script::ServerFailure => drop(udp.send_to(&reply(query, 2, false), client)),
                Script::Silent => {}
            }
        }
    });
    address
}

/// A UDP and a TCP socket on the same loopback port. The port the kernel picks for UDP may be
/// taken for TCP (another test's connection), so a few ports are tried.
fn udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

fn conf(nameservers: Vec<SocketAddr>, timeout_ms: u64) -> ResolvConf {
    ResolvConf { nameservers, timeout: Duration::from_millis(timeout_ms), attempts: 2 }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

fn expected() -> SrvRecords {
    let target = Srv { priority: 10, weight: 5, port: 8464, target: "target.test".into() };
    SrvRecords { records: vec![target], ttl: Duration::from_secs(300) }
}

#[test]
fn test_asks_over_udp() {
    let server = nameserver(vec![Script::Answer]);
    assert_eq!(lookup_srv(NAME, &conf(vec![server], 1000), soon()), Ok(expected()));
}

#[test]
fn test_a_stray_datagram_is_ignored() {
    let server = nameserver(vec![Script::StrayThenAnswer]);
    assert_eq!(lookup_srv(NAME, &conf(vec![server], 1000), soon()), Ok(expected()));
}

#[test]
fn test_a_truncated_answer_is_asked_again_over_tcp() {
    let server = nameserver(vec![Script::Truncated]);
    assert_eq!(lookup_srv(NAME, &conf(vec![server], 1000), soon()), Ok(expected()));
}

#[test]
fn test_a_tcp_answer_that_drips_in_fails_by_the_timeout() {
    // Every byte comes well within the timeout, but the whole answer (~70 bytes) would take
    // 3.5 s: the timeout bounds the whole answer, not each read.
    let server = nameserver(vec![Script::TruncatedThenDrip]);
    let started = Instant::now();
    let conf =
        ResolvConf { nameservers: vec![server], timeout: Duration::from_millis(400), attempts: 1 };
    assert_eq!(lookup_srv(NAME, &conf, soon()), Err(DnsError::Timeout));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn test_the_next_nameserver_is_asked_after_a_failure_or_silence() {
    let failing = nameserver(vec![Script::ServerFailure]);
    let silent = nameserver(vec![Script::Silent]);
    let working = nameserver(vec![Script::Answer]);
    let conf = conf(vec![failing, silent, working], 200);
    assert_eq!(lookup_srv(NAME, &conf, soon()), Ok(expected()));
}

#[test]
fn test_only_failures_give_the_last_error() {
    let failing = nameserver(vec![Script::ServerFailure, Script::ServerFailure]);
    assert_eq!(
        lookup_srv(NAME, &conf(vec![failing], 200), soon()),
        Err(DnsError::ServerFailure(2))
    );
}

#[test]
fn test_a_silent_nameserver_fails_by_the_deadline() {
    let silent = nameserver(vec![Script::Silent, Script::Silent]);
    let started = Instant::now();
    let result = lookup_srv(NAME, &conf(vec![silent], 5000), started + Duration::from_millis(300));
    assert_eq!(result, Err(DnsError::Timeout));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn test_resolv_conf_is_read_as_glibc_reads_it() {
    let conf = ResolvConf::parse(
        "# comment\nsearch example.org\nnameserver 10.0.0.1\nnameserver ::1\n\
         nameserver fe80::1%no-such-interface\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n\
         options ndots:2 timeout:3 attempts:9\n",
    );
    let ns = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 53);
    assert_eq!(conf.nameservers, vec![ns("10.0.0.1"), ns("::1"), ns("10.0.0.2")]);
    // A link-local nameserver names its interface (lo is index 1 on Linux), or its index.
    let scoped = ResolvConf::parse("nameserver fe80::1%lo\nnameserver fe80::2%7\n");
    let link_local =
        |ip: &str, scope| SocketAddr::from(SocketAddrV6::new(ip.parse().unwrap(), 53, 0, scope));
    assert_eq!(scoped.nameservers, vec![link_local("fe80::1", 1), link_local("fe80::2", 7)]);
    assert_eq!(conf.timeout, Duration::from_secs(3));
    assert_eq!(conf.attempts, 5, "attempts are capped at 5");

    let empty = ResolvConf::parse("");
    assert_eq!(empty.nameservers, vec![ns("127.0.0.1")]);
    assert_eq!((empty.timeout, empty.attempts), (Duration::from_secs(5), 2));
    assert_eq!(ResolvConf::parse("options timeout:0").timeout, Duration::from_secs(1));
}

fn srv(priority: u16, weight: u16, target: &str) -> Srv {
    Srv { priority, weight, port: 8448, target: target.into() }
}

fn targets(records: &[Srv]) -> Vec<&str> {
    records.iter().map(|r| r.target.as_str()).collect()
}

#[test]
fn test_lower_priority_comes_first() {
    let records = [srv(20, 0, "c"), srv(10, 0, "a"), srv(15, 0, "b")];
    assert_eq!(targets(&in_order(&records, |_| 0)), ["a", "b", "c"]);
}

#[test]
fn test_weights_pick_within_a_priority() {
    let records = [srv(10, 1, "light"), srv(10, 9, "heavy"), srv(10, 0, "none")];
    // Chance on 0 picks a zero-weight record (listed first); then the running sums decide.
    assert_eq!(targets(&in_order(&records, |_| 0)), ["none", "light", "heavy"]);
    assert_eq!(targets(&in_order(&records, |total| total)), ["heavy", "light", "none"]);
    // Over many draws, "heavy" comes first 9 times in 11 (a draw in 2..=10 of 0..=10).
    let first_heavy =
        (0..2000).filter(|_| in_order(&records, random_up_to)[0].target == "heavy").count();
    assert!((1500..=1800).contains(&first_heavy), "{first_heavy}");
}

#[test]
fn test_host_lookups_use_the_system_resolver_and_skip_ip_literals() {
    let found = lookup_host("localhost", 8448, soon()).unwrap();
    assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback() && a.port() == 8448));
    assert_eq!(
        lookup_host("127.9.9.9", 1, Instant::now()),
        Ok(vec!["127.9.9.9:1".parse().unwrap()])
    );
    assert!(matches!(lookup_host("no-such-host.invalid", 1, soon()), Err(DnsError::Io(_))));
    assert_eq!(lookup_host("localhost", 1, Instant::now()), Err(DnsError::Timeout));
}

#[test]
fn test_a_slow_lookup_is_left_behind_at_the_deadline_and_counted_until_it_ends() {
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    let slow = || thread::sleep(Duration::from_millis(600));
    let started = Instant::now();
    let until = started + Duration::from_millis(100);
    assert_eq!(by_deadline(&PENDING, 2, until, slow), Err(DnsError::Timeout));
    assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
    assert_eq!(
        by_deadline(&PENDING, 2, Instant::now() + Duration::from_millis(50), slow),
        Err(DnsError::Timeout)
    );
    // Two threads still run: a third lookup is refused at once rather than add a thread.
    assert_eq!(by_deadline(&PENDING, 2, soon(), || 7), Err(DnsError::Busy));
    thread::sleep(Duration::from_millis(800));
    assert_eq!(PENDING.load(Ordering::Acquire), 0);
    assert_eq!(by_deadline(&PENDING, 2, soon(), || 7), Ok(7));
}
