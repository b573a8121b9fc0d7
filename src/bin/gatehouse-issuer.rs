//! gatehouse-issuer: the Chat Admin Server as a standalone process, for operators who ran
//! ChatTheatre's Node service next to Jitsi. Same config file, same protocol, same replies;
//! see `gatehouse::issuer` for what changed (real expiry, precise errors, reconnection).
//!
//! Usage: `gatehouse-issuer CONFIG.json`. Logs go to stderr, one line per event; tokens and
//! secrets are never logged.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gatehouse::clock::UnixTime;
use gatehouse::issuer::{Answer, Backoff, Endpoint, FileConfig, Issuer, IssuerOptions};

const USAGE: &str = "usage: gatehouse-issuer CONFIG.json";
/// A peer that stops reading must not pin a thread forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (typically out of file descriptors) before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if path.starts_with('-') {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            log("error", format_args!("cannot read {path}: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let config = match FileConfig::parse(&text) {
        Ok(config) => config,
        Err(error) => {
            log("error", format_args!("{path}: {error}"));
            return ExitCode::FAILURE;
        }
    };
    for warning in &config.warnings {
        log("warn", format_args!("{path}: {warning}"));
    }
    let issuer = match Issuer::new(config.issuer.clone()) {
        Ok(issuer) => Arc::new(issuer),
        Err(error) => {
            log("error", format_args!("{path}: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let mut threads = Vec::new();
    if let Some(inbound) = &config.inbound {
        let authenticated = config.issuer.shared_secret.is_some();
        let listener = match bind(inbound, &config.options, authenticated) {
            Ok(listener) => listener,
            Err(error) => {
                log("error", format_args!("cannot listen on {}: {error}", inbound.address()));
                return ExitCode::FAILURE;
            }
        };
        let issuer = Arc::clone(&issuer);
        let max = config.options.max_connections;
        threads.push(thread::spawn(move || serve_inbound(listener, issuer, max)));
    }
    if let Some(outbound) = config.outbound.clone() {
        let issuer = Arc::clone(&issuer);
        let options = config.options.clone();
        threads.push(thread::spawn(move || run_outbound(outbound, issuer, options)));
    }
    for thread in threads {
        // Both loops run forever; a panic in one is already reported on stderr.
        let _ = thread.join();
    }
    ExitCode::FAILURE
}

fn log(level: &str, message: std::fmt::Arguments<'_>) {
    eprintln!("gatehouse-issuer {level}: {message}");
}

/// Binds the inbound endpoint; every address it resolves to must be loopback unless remote
/// listening was explicitly allowed (the config check only sees the name).
fn bind(
    endpoint: &Endpoint,
    options: &IssuerOptions,
    authenticated: bool,
) -> io::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = endpoint.address().to_socket_addrs()?.collect();
    if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        if !options.allow_remote {
            return Err(io::Error::other(format!(
                "{remote} is not a loopback address (set gatehouse.allow_remote to allow it)"
            )));
        }
        if !authenticated {
            log(
                "warn",
                format_args!(
                    "{remote} is reachable from other hosts and no \
                gatehouse.shared_secret is set: anyone who can reach it can mint tokens"
                ),
            );
        }
    }
    let listener = TcpListener::bind(addrs.as_slice())?;
    log("info", format_args!("listening on {} (inbound)", listener.local_addr()?));
    Ok(listener)
}

fn serve_inbound(listener: TcpListener, issuer: Arc<Issuer>, max_connections: usize) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                log("warn", format_args!("accept failed: {error}"));
                thread::sleep(ACCEPT_PAUSE);
                continue;
            }
        };
        let peer = stream.peer_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
        if active.fetch_add(1, Ordering::SeqCst) >= max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            log("warn", format_args!("refused {peer}: {max_connections} connections already"));
            let refusal = format!("too many connections (limit {max_connections})");
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = stream.write_all(&Answer::refusal(refusal, UnixTime::now()));
            continue;
        }
        let issuer = Arc::clone(&issuer);
        let active = Arc::clone(&active);
        thread::spawn(move || {
            log("info", format_args!("connection from {peer}"));
            let result = serve(stream, &issuer, &peer);
            // The slot is free before the log line says so.
            active.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(()) => log("info", format_args!("{peer} closed the connection")),
                Err(error) => log("info", format_args!("connection from {peer} lost: {error}")),
            }
        });
    }
}

/// Keeps a connection to the game server, reconnecting with bounded exponential backoff
/// (upstream gave up after the first drop).
fn run_outbound(endpoint: Endpoint, issuer: Arc<Issuer>, options: IssuerOptions) {
    let address = endpoint.address();
    let mut backoff = Backoff::new(options.reconnect_min, options.reconnect_max);
    loop {
        match connect(&address) {
            Ok(stream) => {
                backoff.reset();
                log("info", format_args!("connected to {address} (outbound)"));
                match serve(stream, &issuer, &address) {
                    Ok(()) => log("warn", format_args!("{address} closed the outbound connection")),
                    Err(error) => {
                        log("warn", format_args!("outbound connection to {address} lost: {error}"))
                    }
                }
            }
            Err(error) => log("warn", format_args!("cannot connect to {address}: {error}")),
        }
        let delay = backoff.next_delay();
        log("info", format_args!("reconnecting to {address} in {:.1} s", delay.as_secs_f64()));
        thread::sleep(delay);
    }
}

fn connect(address: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::other("the name resolves to no address");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Answers requests on one stream until the peer closes it or a frame is too large.
fn serve(mut stream: TcpStream, issuer: &Arc<Issuer>, peer: &str) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut connection = issuer.connection();
    let mut buffer = [0u8; 4096];
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let fed = connection.feed(&buffer[..read], UnixTime::now());
        for answer in &fed.answers {
            match &answer.outcome {
                Ok(grant) => log(
                    "info",
                    format_args!(
                        "token for channel {:?} (moderator: {}, expires {}) to {peer}",
                        grant.channel, grant.moderator, grant.expires
                    ),
                ),
                Err(error) => log("info", format_args!("refused a request from {peer}: {error}")),
            }
        }
        stream.write_all(&fed.output)?;
        if let Some(too_large) = fed.closing {
            log("warn", format_args!("closing {peer}: {too_large}"));
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}
