//! What one HTTPS GET through gatehouse's HTTP client costs this process: CPU time and wall time
//! per call, each call as a key fetch makes it (a new agent, the trust configured once).
//! `tests/bench/https.mjs` runs it against a local HTTPS stand-in.
//!
//! Usage: `https_get URL CA_FILE [CALLS]` (CA_FILE: the stand-in's CA, as `gatehouse_ca_file`).

use std::path::Path;
use std::time::Instant;

use gatehouse::http::{get, Limits};

/// CPU time this thread has used, in seconds (/proc/thread-self/schedstat: nanoseconds on CPU).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: f64 = stat.split_whitespace().next().and_then(|n| n.parse().ok()).expect("on-CPU time");
    ns / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(ca_file)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: https_get URL CA_FILE [CALLS]");
        std::process::exit(2);
    };
    let calls: u32 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(500);
    let trust = gatehouse::trust::configure(Some(Path::new(ca_file))).expect("CA file");
    let fetch = || {
        let reply = get(url, &[], Limits::default()).expect("HTTPS GET");
        assert!(reply.is_success(), "status {}", reply.status);
    };
    fetch(); // the first call: whatever is built once is built here
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for _ in 0..calls {
        fetch();
    }
    let cpu = (cpu_seconds() - cpu0) / f64::from(calls);
    let wall = wall0.elapsed().as_secs_f64() / f64::from(calls);
    println!(
        "{calls} HTTPS GETs ({trust}): {:.3} ms CPU and {:.3} ms wall per call, {:.0} calls/s",
        cpu * 1e3,
        wall * 1e3,
        1.0 / wall
    );
}
