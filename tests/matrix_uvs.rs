//! The blocking UVS call against a local STAND-IN for matrix-org's user verification service
//! (a few lines of std HTTP on 127.0.0.1 serving canned replies in UVS's exact shapes), and the
//! ways it goes wrong: refused bearer token, bad request, garbage, huge replies, hangs, a
//! closed port. Then the direct homeserver mode against a stand-in serving Synapse's replies
//! (the real Synapse is in tests/e2e/matrix_synapse.test.js).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gatehouse::clock::UnixTime;
use gatehouse::http::{HttpError, Limits};
use gatehouse::matrix::{Admission, Check, Config, Denial, MatrixError, Verifier, WIDGET_SECRET};
use gatehouse::token::{sign, Algorithm, SigningKey};
use serde_json::{json, Value};

const ROOM_ID: &str = "!qwertyasdfgh:matrix.org";
const ROOM_NAME: &str = "efyxozlsor4wc43emztwqotnmf2he2lyfzxxezy";

/// One canned reply: status line, body, content type and a delay before answering.
#[derive(Clone)]
struct Canned {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    delay: Duration,
}

fn json_reply(body: &str) -> Canned {
    Canned {
        status: "200 OK",
        content_type: "application/json; charset=utf-8",
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// A request as the stand-in received it.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: String,
    body: Value,
}

/// Serves `reply` for every request on a loopback port and records what it was asked.
fn serve(reply: Canned) -> (String, Arc<Mutex<Vec<Seen>>>) {
    serve_routes(move |_| reply.clone())
}

/// Serves `route(request)` for each request on a loopback port and records what it was asked.
fn serve_routes(
    route: impl Fn(&Seen) -> Canned + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let route = Arc::new(route);
    thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let route = Arc::clone(&route);
            let record = Arc::clone(&record);
            thread::spawn(move || {
                let Some(request) = read_request(&mut stream) else { return };
                let reply = route(&request);
                record.lock().unwrap().push(request);
                thread::sleep(reply.delay);
                let head = format!(
                    "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.status,
                    reply.content_type,
                    reply.body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&reply.body);
            });
        }
    });
    (base, seen)
}

/// Reads the head, then exactly Content-Length bytes of body.
fn read_request(stream: &mut std::net::TcpStream) -> Option<Seen> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let (request_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    Some(Seen {
        request_line: request_line.to_string(),
        headers: headers.to_ascii_lowercase(),
        body: serde_json::from_slice(&data[head_end..]).unwrap_or(Value::Null),
    })
}

fn widget_token(matrix: Value) -> String {
    let claims = json!({"iss": "meet.example", "sub": "meet.example", "aud": "https://meet.example", "room": "*",
        "context": {"user": {"name": "Ana"}, "matrix": matrix}});
    let key = SigningKey::secret(Algorithm::HS256, WIDGET_SECRET, None).unwrap();
    sign(claims.as_object().unwrap(), &key).unwrap()
}

fn element_token() -> String {
    widget_token(json!({"token": "openid-1", "room_id": ROOM_ID, "server_name": "matrix.org"}))
}

fn verifier(base: &str, adjust: impl FnOnce(&mut Config)) -> Verifier {
    let mut config = Config::uvs(base, None);
    adjust(&mut config);
    Verifier::new(config).unwrap()
}

/// What the Prosody module does: check, and if UVS must be asked, ask (on a worker there).
fn login(v: &Verifier, token: &str) -> (bool, Result<Admission, MatrixError>) {
    match v.check(Some(token), Some(ROOM_NAME), UnixTime::now(), Instant::now()) {
        Check::Done(result) => (false, result),
        Check::Ask(call) => (true, v.ask(call)),
    }
}

const MEMBER: &str = r#"{"results":{"user":true,"room_membership":true},"user_id":"@ana:matrix.org","power_levels":{"room":{"ban":50,"events_default":0,"invite":0,"kick":50,"redact":50,"state_default":50,"users_default":0,"events":{"m.room.name":50}},"user":50}}"#;

#[test]
fn test_member_is_admitted_with_the_exact_request_upstream_sends() {
    let (base, seen) = serve(json_reply(MEMBER));
    // A trailing slash on uvs_base_url is dropped, as upstream's README asks for none.
    let config = Config::uvs(&format!("{base}/"), Some("uvs-secret".into()));
    let v = Verifier::new(Config { sync_power_levels: true, ..config }).unwrap();
    let (asked, result) = login(&v, &element_token());
    let admission = result.unwrap();
    assert!(asked && !admission.cached);
    assert_eq!(admission.user_id.as_deref(), Some("@ana:matrix.org"));
    assert!(admission.is_owner, "power 50 >= state_default 50");
    assert_eq!(admission.room_id, ROOM_ID);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line, "POST /verify/user_in_room HTTP/1.1");
    assert!(seen[0].headers.contains("content-type: application/json"), "{}", seen[0].headers);
    assert!(seen[0].headers.contains("authorization: bearer uvs-secret"), "{}", seen[0].headers);
    assert_eq!(
        seen[0].body,
        json!({"token": "openid-1", "room_id": ROOM_ID, "matrix_server_name": "matrix.org"})
    );
}

#[test]
fn test_positive_answer_is_cached_and_negative_ones_are_not() {
    let (base, seen) = serve(json_reply(MEMBER));
    let v = verifier(&base, |c| c.cache_ttl = Duration::from_secs(60));
    assert!(login(&v, &element_token()).1.is_ok());
    let (asked, result) = login(&v, &element_token());
    assert!(!asked && result.unwrap().cached, "a reconnect is answered from the cache");
    assert_eq!(seen.lock().unwrap().len(), 1);

    let not_in_room = r#"{"results":{"user":true,"room_membership":false},"user_id":"@ana:matrix.org","power_levels":null}"#;
    let (base, seen) = serve(json_reply(not_in_room));
    let v = verifier(&base, |c| c.cache_ttl = Duration::from_secs(60));
    for _ in 0..2 {
        assert_eq!(
            login(&v, &element_token()).1.unwrap_err(),
            MatrixError::Denied(Denial::NotInRoom)
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 2, "refusals are asked again every time");
}

#[test]
fn test_zero_ttl_turns_the_cache_off() {
    let (base, seen) = serve(json_reply(MEMBER));
    let v = verifier(&base, |c| c.cache_ttl = Duration::ZERO);
    for _ in 0..2 {
        assert!(login(&v, &element_token()).0);
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn test_uvs_refusals_and_errors_deny_with_upstream_text() {
    let cases = [
        (
            json_reply(
                r#"{"results":{"user":false,"room_membership":null},"user_id":null,"power_levels":null}"#,
            ),
            Denial::InvalidToken,
        ),
        (Canned { status: "403 Forbidden", ..json_reply("{}") }, Denial::Status(403)),
        (
            Canned {
                status: "400 Bad Request",
                content_type: "text/html; charset=utf-8",
                body: b"Invalid request: token not found or with empty value in the JSON payload."
                    .to_vec(),
                delay: Duration::ZERO,
            },
            Denial::Status(400),
        ),
        (json_reply("<html>proxy error</html>"), Denial::BadReply("not a JSON object")),
    ];
    for (reply, denial) in cases {
        let (base, _) = serve(reply);
        let error = login(&verifier(&base, |_| {}), &element_token()).1.unwrap_err();
        assert_eq!(error, MatrixError::Denied(denial.clone()));
        assert_eq!(
            (error.condition(), error.text()),
            ("access-denied", "Token invalid or not in room"),
            "{denial:?}"
        );
    }
}

#[test]
fn test_null_power_levels_with_sync_on_refuse_cleanly() {
    let (base, _) = serve(json_reply(
        r#"{"results":{"user":true,"room_membership":true},"user_id":"@ana:matrix.org","power_levels":null}"#,
    ));
    let error =
        login(&verifier(&base, |c| c.sync_power_levels = true), &element_token()).1.unwrap_err();
    assert_eq!(error, MatrixError::Denied(Denial::NoPowerLevels));
    let admission = login(&verifier(&base, |_| {}), &element_token()).1.unwrap();
    assert!(!admission.is_owner, "without sync the same reply admits a member");
}

#[test]
fn test_slow_uvs_times_out_at_the_configured_limit() {
    let (base, _) = serve(Canned { delay: Duration::from_secs(3), ..json_reply(MEMBER) });
    let v =
        verifier(&base, |c| c.limits = Limits { timeout: Duration::from_millis(300), ..c.limits });
    let started = Instant::now();
    let error = login(&v, &element_token()).1.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "gave up after {elapsed:?}"
    );
    assert_eq!(
        error,
        MatrixError::Unavailable(HttpError::Timeout { after: Duration::from_millis(300) })
    );
    assert_eq!((error.condition(), error.reason()), ("temporary-auth-failure", "uvs_timeout"));
}

#[test]
fn test_huge_reply_is_cut_off() {
    let huge = format!(
        r#"{{"results":{{"user":true,"room_membership":true}},"pad":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let (base, _) = serve(json_reply(&huge));
    let v = verifier(&base, |c| c.limits = Limits { max_body: 16 * 1024, ..c.limits });
    let error = login(&v, &element_token()).1.unwrap_err();
    assert_eq!(error, MatrixError::Unavailable(HttpError::TooLarge { max: 16 * 1024 }));
}

#[test]
fn test_connection_refused_is_unavailable() {
    // Bind then drop: the port is closed when the call is made.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let v = verifier(&format!("http://127.0.0.1:{port}"), |_| {});
    let error = login(&v, &element_token()).1.unwrap_err();
    assert!(matches!(error, MatrixError::Unavailable(HttpError::Transport(_))), "{error:?}");
    assert_eq!((error.condition(), error.reason()), ("temporary-auth-failure", "uvs_unavailable"));
}

#[test]
fn test_request_without_server_name_has_no_matrix_server_name() {
    let (base, seen) = serve(json_reply(MEMBER));
    let token = widget_token(json!({"token": "openid-2", "room_id": ROOM_ID}));
    assert!(login(&verifier(&base, |_| {}), &token).1.is_ok());
    assert_eq!(seen.lock().unwrap()[0].body, json!({"token": "openid-2", "room_id": ROOM_ID}));
    assert!(
        !seen.lock().unwrap()[0].headers.contains("authorization"),
        "no bearer without uvs_auth_token"
    );
}

// ---- Direct homeserver mode, against a stand-in answering as Synapse does ----

const ADMIN_TOKEN: &str = "syt_admin_token";

fn synapse_reply(request: &Seen, openid: &'static str, levels: Value) -> Canned {
    let path = request.request_line.split_whitespace().nth(1).unwrap_or("");
    let admin =
        request.headers.contains(&format!("authorization: bearer {}", ADMIN_TOKEN.to_lowercase()));
    let json =
        |status: &'static str, body: Value| Canned { status, ..json_reply(&body.to_string()) };
    if let Some(query) = path.strip_prefix("/_matrix/federation/v1/openid/userinfo?access_token=") {
        return match query == openid {
            true => json("200 OK", json!({"sub": "@ana:matrix.org"})),
            false => json(
                "401 Unauthorized",
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Access token unknown or expired"}),
            ),
        };
    }
    if !admin {
        return json(
            "401 Unauthorized",
            json!({"errcode": "M_MISSING_TOKEN", "error": "Missing access token."}),
        );
    }
    match path {
        "/_matrix/client/v3/account/whoami" => {
            json("200 OK", json!({"user_id": "@admin:matrix.org"}))
        }
        "/_synapse/admin/v1/rooms/%21qwertyasdfgh%3Amatrix.org/members" => {
            json("200 OK", json!({"members": ["@bob:matrix.org", "@ana:matrix.org"], "total": 2}))
        }
        "/_synapse/admin/v1/rooms/%21qwertyasdfgh%3Amatrix.org/state" => json(
            "200 OK",
            json!({"state": [
                {"type": "m.room.create", "state_key": "", "sender": "@bob:matrix.org", "content": {"room_version": "10"}},
                {"type": "m.room.power_levels", "state_key": "", "sender": "@bob:matrix.org", "content": levels},
            ]}),
        ),
        _ => json("404 Not Found", json!({"errcode": "M_NOT_FOUND", "error": "Room not found"})),
    }
}

fn homeserver_verifier(base: &str, admin_token: &str, sync: bool) -> Verifier {
    let config = Config::homeserver(base, admin_token.into());
    Verifier::new(Config { sync_power_levels: sync, ..config }).unwrap()
}

#[test]
fn test_homeserver_mode_checks_token_membership_and_power_itself() {
    let levels = json!({"users": {"@bob:matrix.org": 100, "@ana:matrix.org": 50}, "users_default": 0, "state_default": 50});
    let (base, seen) = serve_routes(move |r| synapse_reply(r, "openid-1", levels.clone()));
    let admission =
        login(&homeserver_verifier(&base, ADMIN_TOKEN, true), &element_token()).1.unwrap();
    assert_eq!(admission.user_id.as_deref(), Some("@ana:matrix.org"));
    assert!(admission.is_owner, "power 50 >= state_default 50");
    let seen = seen.lock().unwrap();
    let lines: Vec<&str> = seen.iter().map(|s| s.request_line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /_matrix/client/v3/account/whoami HTTP/1.1",
            "GET /_matrix/federation/v1/openid/userinfo?access_token=openid-1 HTTP/1.1",
            "GET /_synapse/admin/v1/rooms/%21qwertyasdfgh%3Amatrix.org/members HTTP/1.1",
            "GET /_synapse/admin/v1/rooms/%21qwertyasdfgh%3Amatrix.org/state HTTP/1.1",
        ]
    );
    assert!(!seen[1].headers.contains("authorization"), "the admin token never goes to userinfo");
}

#[test]
fn test_homeserver_mode_without_sync_skips_the_state_and_users_default_counts() {
    let levels = json!({"users": {}, "users_default": 50});
    let (base, seen) = serve_routes(move |r| synapse_reply(r, "openid-1", levels.clone()));
    let admission =
        login(&homeserver_verifier(&base, ADMIN_TOKEN, false), &element_token()).1.unwrap();
    assert!(!admission.is_owner);
    assert_eq!(seen.lock().unwrap().len(), 3, "whoami, userinfo, members: no state without sync");
    let admission =
        login(&homeserver_verifier(&base, ADMIN_TOKEN, true), &element_token()).1.unwrap();
    assert!(
        admission.is_owner,
        "users_default 50 >= state_default 50 (users_default applies, as in UVS)"
    );
}

#[test]
fn test_homeserver_mode_refusals() {
    let levels = json!({"users": {}});
    let (base, _) = serve_routes(move |r| synapse_reply(r, "openid-1", levels.clone()));
    let v = homeserver_verifier(&base, ADMIN_TOKEN, true);
    let unknown =
        widget_token(json!({"token": "openid-2", "room_id": ROOM_ID, "server_name": "matrix.org"}));
    assert_eq!(login(&v, &unknown).1.unwrap_err(), MatrixError::Denied(Denial::InvalidToken));
    // Another server's token is checked at that server, never vouched for by this one: here
    // the name resolves nowhere (no network in tests), or federation is off.
    let other_server = widget_token(
        json!({"token": "openid-1", "room_id": ROOM_ID, "server_name": "evil.invalid"}),
    );
    let error = login(&v, &other_server).1.unwrap_err();
    assert!(matches!(&error, MatrixError::Denied(Denial::Federation(_))), "{error:?}");
    assert_eq!((error.condition(), error.reason()), ("access-denied", "federation_failed"));
    let config = Config { federation: false, ..Config::homeserver(&base, ADMIN_TOKEN.into()) };
    let local_only = Verifier::new(config).unwrap();
    assert_eq!(
        login(&local_only, &other_server).1.unwrap_err(),
        MatrixError::Denied(Denial::InvalidToken)
    );
    // Nor is a private address fetched on a token's say-so.
    let private = widget_token(
        json!({"token": "openid-1", "room_id": ROOM_ID, "server_name": "127.0.0.1:1"}),
    );
    let error = login(&v, &private).1.unwrap_err();
    assert!(error.to_string().contains("only private addresses"), "{error}");

    let wrong_admin = homeserver_verifier(&base, "not-an-admin", false);
    let error = login(&wrong_admin, &element_token()).1.unwrap_err();
    assert_eq!(
        error,
        MatrixError::Denied(Denial::HomeserverStatus { endpoint: "whoami", status: 401 })
    );
    assert_eq!(
        (error.condition(), error.text()),
        ("access-denied", "Token invalid or not in room")
    );
    assert!(error.to_string().contains("admin token"), "{error}");
}

#[test]
fn test_homeserver_mode_deadline_covers_all_calls_and_errors_never_show_the_token() {
    let (base, _) = serve_routes(|r| {
        let mut reply = synapse_reply(r, "openid-1", json!({}));
        reply.delay = Duration::from_millis(200);
        reply
    });
    let config = Config::homeserver(&base, ADMIN_TOKEN.into());
    let limits = Limits { timeout: Duration::from_millis(300), ..config.limits };
    let v = Verifier::new(Config { sync_power_levels: true, limits, ..config }).unwrap();
    let started = Instant::now();
    let error = login(&v, &element_token()).1.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(700), "{:?}", started.elapsed());
    assert_eq!(
        error,
        MatrixError::Unavailable(HttpError::Timeout { after: Duration::from_millis(300) })
    );

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let v = homeserver_verifier(&format!("http://127.0.0.1:{port}"), ADMIN_TOKEN, false);
    let error = login(&v, &element_token()).1.unwrap_err();
    assert!(matches!(error, MatrixError::Unavailable(HttpError::Transport(_))), "{error:?}");
    assert!(!error.to_string().contains("openid-1"), "{error}");
}
