//! The `gatehouse-issuer` binary as an operator runs it: a config file in upstream's format,
//! requests over loopback TCP (inbound), and a stand-in game server it connects out to.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use gatehouse::clock::UnixTime;
use gatehouse::keys::{KeyCacheConfig, KeySourceConfig};
use gatehouse::token::{Algorithm, Check, Policy, Verifier};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse-issuer");
const SECRET: &str = "binary-test-secret";
const WAIT: Duration = Duration::from_secs(10);

/// A running binary; killed when dropped, so a failing test leaves nothing behind.
struct Issuer {
    child: Child,
    stderr: Receiver<String>,
    log: Vec<String>,
    _config: TempFile,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Issuer {
    fn start(config: &str) -> Issuer {
        let file = TempFile::new(config);
        let mut child = Command::new(BIN)
            .arg(&file.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Issuer { child, stderr: rx, log: Vec::new(), _config: file }
    }

    /// Waits (bounded) for a stderr line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no stderr line with {needle:?}; got {:#?}", self.log);
    }

    fn inbound_port(&mut self) -> u16 {
        let line = self.wait_for("(inbound)");
        let addr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir()
            .join(format!("gatehouse-issuer-test-{}-{n}.json", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config(inbound: Option<u16>, outbound: Option<u16>, extra: &str) -> String {
    let mut text = format!(
        r#"{{"jitsi":{{"domain":"meet.test"}},"jwt":{{"app_id":"app","secret":"{SECRET}"}}"#
    );
    if let Some(port) = inbound {
        text += &format!(r#","inbound":{{"host":"127.0.0.1","port":{port}}}"#);
    }
    if let Some(port) = outbound {
        text += &format!(r#","outbound":{{"host":"127.0.0.1","port":{port}}}"#);
    }
    text + extra + "}"
}

/// One protocol client over a stream: send a frame, read one `\n\0`-ended reply.
struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client { stream, buffer: Vec::new() }
    }

    fn connect(port: u16) -> Client {
        Client::new(TcpStream::connect(("127.0.0.1", port)).unwrap())
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn request(&mut self, request: &Value, terminator: u8) -> (Value, String) {
        let mut frame = request.to_string().into_bytes();
        frame.push(terminator);
        self.send(&frame);
        self.reply()
    }

    /// The next reply, parsed, and its raw text (terminator included).
    fn reply(&mut self) -> (Value, String) {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\0") {
                let raw: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let raw = String::from_utf8(raw).unwrap();
                return (serde_json::from_str(&raw[..end]).unwrap(), raw);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed before a reply");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// True once the peer has closed (reads EOF within the wait).
    fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }
}

fn request(extra: Value) -> Value {
    let mut base = json!({
        "cmd": "jwt_token", "displayName": "Ana", "channel": "r1", "moderator": true,
        "validFor": 60,
    });
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

fn verify(token: &str) -> serde_json::Map<String, Value> {
    let mut policy = Policy::new(Algorithm::HS256, "app");
    policy.accepted_audiences = vec!["jitsi".into()];
    let verifier = Verifier::new(
        policy,
        KeySourceConfig::Secret(SECRET.as_bytes().to_vec()),
        KeyCacheConfig::default(),
    )
    .unwrap();
    match verifier.check(token, UnixTime::now()) {
        Check::Done(Ok(claims)) => claims.0,
        Check::Done(Err(error)) => panic!("token refused: {error}"),
        Check::NeedsKey(_) => panic!("a secret needs no fetch"),
    }
}

#[test]
fn test_inbound_serves_the_protocol_with_upstreams_replies() {
    let mut issuer = Issuer::start(&config(Some(0), None, ""));
    let port = issuer.inbound_port();
    let mut client = Client::connect(port);

    let (reply, raw) = client.request(&request(json!({ "seq": 41 })), 0);
    assert!(raw.starts_with(r#"{"success":true,"message":"OK","token":""#), "{raw}");
    assert!(raw.ends_with(",\"seq\":41}\n\0"), "{raw}");
    let claims = verify(reply["token"].as_str().unwrap());
    assert_eq!(claims["room"], json!("r1"));
    assert_eq!(claims["sub"], json!("meet.test"));
    assert_eq!(claims["moderator"], json!(true));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 60);

    // Newline-terminated, and two requests in one write.
    let (reply, _) = client.request(&request(json!({ "seq": "nl" })), b'\n');
    assert_eq!((reply["success"].clone(), reply["seq"].clone()), (json!(true), json!("nl")));
    let mut two = request(json!({ "seq": 1 })).to_string().into_bytes();
    two.push(0);
    two.extend(request(json!({ "seq": 2, "validFor": 0 })).to_string().into_bytes());
    two.push(b'\n');
    client.send(&two);
    assert_eq!(client.reply().0["seq"], json!(1));
    let (second, _) = client.reply();
    assert_eq!(second["message"], json!("'validFor' must be positive"));
    assert_eq!(second["token"], json!(""));

    // A request split over several writes.
    let text = request(json!({ "seq": "split" })).to_string();
    let (a, b) = text.split_at(7);
    client.send(a.as_bytes());
    thread::sleep(Duration::from_millis(50));
    client.send(b.as_bytes());
    client.send(b"\0");
    assert_eq!(client.reply().0["seq"], json!("split"));

    let line = issuer.wait_for("refused a request");
    assert!(line.contains("'validFor' must be positive"), "{line}");
    let log = issuer.log.join("\n");
    assert!(!log.contains(SECRET), "the secret was logged");
    assert!(log.contains("token for channel \"r1\" (moderator: true"), "{log}");
}

#[test]
fn test_oversized_frame_is_refused_and_closed() {
    let mut issuer =
        Issuer::start(&config(Some(0), None, r#","gatehouse":{"max_frame_size":200}"#));
    let port = issuer.inbound_port();
    let mut client = Client::connect(port);
    client.send(&[b'x'; 300]);
    let (reply, _) = client.reply();
    assert_eq!(reply["message"], json!("request frame exceeds 200 bytes; closing the connection"));
    assert!(client.closed());
    // The server itself carries on.
    let mut other = Client::connect(port);
    assert_eq!(other.request(&request(json!({})), 0).0["success"], json!(true));
}

#[test]
fn test_connections_beyond_the_limit_are_refused() {
    let mut issuer = Issuer::start(&config(Some(0), None, r#","gatehouse":{"max_connections":1}"#));
    let port = issuer.inbound_port();
    let mut first = Client::connect(port);
    assert_eq!(first.request(&request(json!({})), 0).0["success"], json!(true));
    let mut second = Client::connect(port);
    let (reply, _) = second.reply();
    assert_eq!(reply["message"], json!("too many connections (limit 1)"));
    assert!(second.closed());
    drop(first);
    issuer.wait_for("closed the connection");
    let mut third = Client::connect(port);
    assert_eq!(third.request(&request(json!({})), 0).0["success"], json!(true));
}

#[test]
fn test_outbound_serves_the_game_server_and_reconnects_after_it_restarts() {
    let game = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = game.local_addr().unwrap().port();
    let extra = r#","gatehouse":{"reconnect_min":0.1,"reconnect_max":0.4}"#;
    let mut issuer = Issuer::start(&config(None, Some(port), extra));

    let (stream, _) = game.accept().unwrap();
    let mut link = Client::new(stream);
    let (reply, _) = link.request(&request(json!({ "seq": "g1" })), 0);
    assert_eq!(reply["seq"], json!("g1"));
    verify(reply["token"].as_str().unwrap());

    // The game server restarts: the connection drops and the port is closed for a while.
    drop(link);
    drop(game);
    issuer.wait_for("closed the outbound connection");
    issuer.wait_for("cannot connect to");
    let game = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (stream, _) = game.accept().unwrap();
    let mut link = Client::new(stream);
    let (reply, _) = link.request(&request(json!({ "seq": "g2" })), b'\n');
    assert_eq!(reply["success"], json!(true));
    issuer.wait_for("reconnecting to");
}

#[test]
fn test_upstream_example_with_its_trailing_comma_starts_with_a_warning() {
    let text = "{\n  \"jitsi\": {\"domain\": \"meet.test\"},\n  \"jwt\": {\"app_id\": \"app\", \"secret\": \"s\"},\n  \"inbound\": {\"host\": \"127.0.0.1\", \"port\": 0},\n}\n";
    let mut issuer = Issuer::start(text);
    let line = issuer.wait_for("trailing comma");
    assert!(line.contains("line 4: trailing comma ignored"), "{line}");
    issuer.inbound_port();
}

#[test]
fn test_bad_configs_exit_with_a_clear_message() {
    let cases = [
        (config(None, None, ""), "neither 'inbound' nor 'outbound' is configured"),
        (
            r#"{"jitsi":{"domain":"d"},"jwt":{"app_id":"a"},"inbound":{"host":"127.0.0.1","port":1}}"#
                .to_string(),
            "'jwt.secret' is required",
        ),
        (
            config(None, None, r#","inbound":{"host":"0.0.0.0","port":4114}"#),
            "'inbound.host' 0.0.0.0 is not a loopback address",
        ),
        ("{ nope".to_string(), "key must be a string at line 1 column 3"),
    ];
    for (text, expected) in cases {
        let file = TempFile::new(&text);
        let output = Command::new(BIN).arg(&file.0).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
    let output = Command::new(BIN).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage: gatehouse-issuer CONFIG.json"));
}
