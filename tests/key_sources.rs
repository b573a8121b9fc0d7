//! Remote key sources against a local stand-in key server (a few lines of std HTTP on
//! 127.0.0.1 serving canned replies): ASAP PEM files, JWKS documents, and the ways such a
//! server goes wrong (errors, hangs, redirects, huge bodies).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use gatehouse::clock::UnixTime;
use gatehouse::http::Limits;
use gatehouse::keys::{asap_url, KeyCacheConfig, KeySourceConfig};
use gatehouse::token::{Algorithm, Check, Claims, Policy, TokenError, Verifier};

const TOKENS: &str = include_str!("fixtures/tokens.json");
const RSA_PUBLIC: &str = include_str!("fixtures/keys/rsa_public.pem");
const NOW: UnixTime = UnixTime(1_700_000_000);

fn fixture(name: &str) -> serde_json::Value {
    let all: serde_json::Value = serde_json::from_str(TOKENS).unwrap();
    all[name].clone()
}

/// One canned reply: status line, extra headers, body, and an optional delay before answering.
#[derive(Clone)]
struct Canned {
    status: &'static str,
    headers: String,
    body: Vec<u8>,
    delay: Duration,
}

fn ok(body: impl Into<Vec<u8>>, headers: &str) -> Canned {
    Canned { status: "200 OK", headers: headers.into(), body: body.into(), delay: Duration::ZERO }
}

/// Serves `route(path)` for each request on a loopback port; counts requests.
fn serve(route: impl Fn(&str) -> Canned + Send + Sync + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let route = Arc::new(route);
    thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let route = Arc::clone(&route);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let reply = route(&path);
                thread::sleep(reply.delay);
                let head = format!(
                    "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
                    reply.status,
                    reply.body.len(),
                    reply.headers
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&reply.body);
            });
        }
    });
    (base, hits)
}

fn rs256_verifier(source: KeySourceConfig, timeout: Duration) -> Verifier {
    let mut policy = Policy::new(Algorithm::RS256, "gatehouse-test");
    policy.accepted_audiences = vec!["jitsi".into()];
    let cache = KeyCacheConfig {
        http: Limits { timeout, max_body: 64 * 1024 },
        ..KeyCacheConfig::default()
    };
    Verifier::new(policy, source, cache).unwrap()
}

/// What Prosody does: check, and if a key is needed, fetch (on a worker) and check again.
fn verify_like_prosody(v: &Verifier, token: &str) -> (bool, Result<Claims, TokenError>) {
    match v.check(token, NOW) {
        Check::Done(result) => (false, result),
        Check::NeedsKey(fetch) => (true, v.check_after_fetch(fetch, token, NOW)),
    }
}

#[test]
fn test_asap_key_is_fetched_once_then_cached() {
    let token = fixture("RS256").as_str().unwrap().to_string();
    let expected_path = asap_url("", "rsa1");
    let (base, hits) = serve(move |path| {
        if path == expected_path {
            ok(RSA_PUBLIC, "Content-Type: application/x-pem-file\r\n")
        } else {
            Canned {
                status: "404 Not Found",
                headers: String::new(),
                body: b"no".to_vec(),
                delay: Duration::ZERO,
            }
        }
    });
    let v = rs256_verifier(KeySourceConfig::AsapServer(format!("{base}/")), Duration::from_secs(5));
    let (fetched, result) = verify_like_prosody(&v, &token);
    assert!(fetched, "first use fetches");
    assert_eq!(result.unwrap().str("room"), Some("room1"));
    let (fetched, result) = verify_like_prosody(&v, &token);
    assert!(!fetched && result.is_ok(), "second use is served from the cache");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn test_asap_server_errors_refuse_the_token_with_the_reason() {
    let token = fixture("RS256").as_str().unwrap().to_string();
    let (base, _) = serve(|_| Canned {
        status: "500 Internal Server Error",
        headers: String::new(),
        body: b"oops".to_vec(),
        delay: Duration::ZERO,
    });
    let v = rs256_verifier(KeySourceConfig::AsapServer(base), Duration::from_secs(5));
    let err = verify_like_prosody(&v, &token).1.unwrap_err();
    assert_eq!(err.condition(), "not-allowed");
    assert_eq!(err.detail(), "could not obtain public key: http status: 500");
}

#[test]
fn test_hanging_key_server_times_out() {
    let token = fixture("RS256").as_str().unwrap().to_string();
    let (base, _) = serve(|_| Canned { delay: Duration::from_secs(3), ..ok(RSA_PUBLIC, "") });
    let v = rs256_verifier(KeySourceConfig::AsapServer(base), Duration::from_millis(300));
    let started = Instant::now();
    let err = verify_like_prosody(&v, &token).1.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "gave up at the timeout");
    assert!(err.detail().contains("timed out"), "{err}");
}

#[test]
fn test_redirects_and_huge_or_garbage_bodies_are_refused() {
    let token = fixture("RS256").as_str().unwrap().to_string();
    let cases: Vec<(Canned, &str)> = vec![
        (
            Canned {
                status: "302 Found",
                headers: "Location: http://127.0.0.1:1/\r\n".into(),
                body: vec![],
                delay: Duration::ZERO,
            },
            "redirects are not followed",
        ),
        (ok(vec![b'A'; 200 * 1024], ""), "reply larger than"),
        (
            ok("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n", ""),
            "bad public key",
        ),
    ];
    for (reply, expected) in cases {
        let (base, _) = serve(move |_| reply.clone());
        let v = rs256_verifier(KeySourceConfig::AsapServer(base), Duration::from_secs(5));
        let err = verify_like_prosody(&v, &token).1.unwrap_err();
        assert!(err.detail().contains(expected), "{err} should mention {expected}");
    }
}

#[test]
fn test_jwks_max_age_zero_still_caches_for_the_retry_interval() {
    let jwks = fixture("jwks").to_string();
    let (base, hits) = serve(move |_| ok(jwks.clone(), "Cache-Control: public, max-age=0\r\n"));
    let v =
        rs256_verifier(KeySourceConfig::Jwks(format!("{base}/jwks.json")), Duration::from_secs(5));
    let token = fixture("RS256").as_str().unwrap().to_string();
    let (fetched, result) = verify_like_prosody(&v, &token);
    assert!(fetched, "first use fetches");
    assert_eq!(result.unwrap().str("sub"), Some("meet.test"));
    // max-age=0 would mean one fetch per login; the 30 s floor keeps the document a while.
    let (fetched_again, result) = verify_like_prosody(&v, &token);
    assert!(!fetched_again && result.is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn test_jwks_verifies_ec_and_ed_keys_too() {
    let jwks = fixture("jwks").to_string();
    for (alg, name) in [(Algorithm::ES256, "ES256"), (Algorithm::EdDSA, "EdDSA")] {
        let jwks = jwks.clone();
        let (base, _) = serve(move |_| ok(jwks.clone(), ""));
        let mut policy = Policy::new(alg, "gatehouse-test");
        policy.accepted_audiences = vec!["jitsi".into()];
        let v =
            Verifier::new(policy, KeySourceConfig::Jwks(base), KeyCacheConfig::default()).unwrap();
        let token = fixture(name).as_str().unwrap().to_string();
        assert!(verify_like_prosody(&v, &token).1.is_ok(), "{name}");
    }
}

#[test]
fn test_jwks_with_long_max_age_is_cached_and_unknown_kid_refused() {
    let jwks = fixture("jwks").to_string();
    let (base, hits) = serve(move |_| ok(jwks.clone(), "Cache-Control: max-age=600\r\n"));
    let v = rs256_verifier(KeySourceConfig::Jwks(base), Duration::from_secs(5));
    let token = fixture("RS256").as_str().unwrap().to_string();
    assert!(verify_like_prosody(&v, &token).1.is_ok());
    let (fetched, result) = verify_like_prosody(&v, &token);
    assert!(!fetched && result.is_ok(), "cached");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // A token naming a kid the fresh document lacks is refused without another fetch.
    let key = gatehouse::token::SigningKey::private_pem(
        Algorithm::RS256,
        include_bytes!("fixtures/keys/rsa2_private.pem"),
        Some("rotated".into()),
    )
    .unwrap();
    let claims = fixture("payload").as_object().unwrap().clone();
    let other = gatehouse::token::sign(&claims, &key).unwrap();
    let err = verify_like_prosody(&v, &other).1.unwrap_err();
    assert_eq!(err.detail(), "no public key for kid 'rotated'");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn test_static_pem_needs_no_fetch() {
    let v =
        rs256_verifier(KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into()), Duration::from_secs(1));
    let token = fixture("RS256").as_str().unwrap().to_string();
    let (fetched, result) = verify_like_prosody(&v, &token);
    assert!(!fetched && result.is_ok());
}

fn signed_with_kid(kid: &str) -> String {
    let key = gatehouse::token::SigningKey::private_pem(
        Algorithm::RS256,
        include_bytes!("fixtures/keys/rsa_private.pem"),
        Some(kid.into()),
    )
    .unwrap();
    let claims = fixture("payload").as_object().unwrap().clone();
    gatehouse::token::sign(&claims, &key).unwrap()
}

fn verifier_with(source: KeySourceConfig, cache: KeyCacheConfig) -> Verifier {
    let mut policy = Policy::new(Algorithm::RS256, "gatehouse-test");
    policy.accepted_audiences = vec!["jitsi".into()];
    Verifier::new(policy, source, cache).unwrap()
}

#[test]
fn test_jwks_with_an_absurd_max_age_neither_panics_nor_poisons_the_keys() {
    // u64::MAX seconds: added to a clock reading it overflowed, panicked the worker and left
    // the JWKS state half-written, so every later login failed.
    for max_age in ["18446744073709551615", "18446744073709551616", "99999999999999999999999"] {
        let jwks = fixture("jwks").to_string();
        let header = format!("Cache-Control: public, max-age={max_age}\r\n");
        let (base, hits) = serve(move |_| ok(jwks.clone(), &header));
        let v = rs256_verifier(KeySourceConfig::Jwks(base), Duration::from_secs(5));
        let token = fixture("RS256").as_str().unwrap().to_string();
        for _ in 0..3 {
            let (_, result) = verify_like_prosody(&v, &token);
            assert_eq!(result.unwrap().str("sub"), Some("meet.test"), "max-age={max_age}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "cached, max-age={max_age}");
    }
}

#[test]
fn test_jwks_unknown_kids_cause_one_fetch_per_interval_counted_from_its_start() {
    let jwks = fixture("jwks").to_string();
    let (base, hits) = serve(move |_| ok(jwks.clone(), "Cache-Control: max-age=600\r\n"));
    let cache =
        KeyCacheConfig { retry_after: Duration::from_millis(300), ..KeyCacheConfig::default() };
    let v = verifier_with(KeySourceConfig::Jwks(base), cache);
    assert!(verify_like_prosody(&v, fixture("RS256").as_str().unwrap()).1.is_ok());
    thread::sleep(Duration::from_millis(350));
    // A burst of logins with kids the fresh document lacks, all before any fetch finished: the
    // first starts a fetch, the others are sent to that same fetch (same URL: one shared job).
    let tokens: Vec<String> = (0..20).map(|n| signed_with_kid(&format!("forged-{n}"))).collect();
    let mut fetches = Vec::new();
    for token in &tokens {
        match v.check(token, NOW) {
            Check::NeedsKey(fetch) => fetches.push(fetch),
            Check::Done(result) => panic!("expected to wait for the fetch: {result:?}"),
        }
    }
    let url = fetches[0].url().to_string();
    assert!(fetches.iter().all(|f| f.url() == url), "one document, one URL");
    let fetched = fetches.remove(0).run();
    for token in &tokens {
        let err = v.check_fetched(&fetched, token, NOW).unwrap_err();
        assert!(err.detail().starts_with("no public key for kid"), "{err}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "twenty forged kids, one re-fetch");
    // Right after: refused at once, no fetch (the mark was set when the fetch started).
    assert!(matches!(v.check(&tokens[0], NOW), Check::Done(Err(_))));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn test_asap_new_kids_are_rate_limited_and_unknown_ones_remembered() {
    let (base, hits) = serve(|_| Canned {
        status: "404 Not Found",
        headers: String::new(),
        body: b"no".to_vec(),
        delay: Duration::ZERO,
    });
    let cache = KeyCacheConfig { fetch_rate: 2.0, ..KeyCacheConfig::default() };
    let v = verifier_with(KeySourceConfig::AsapServer(base), cache);
    let mut fetched = 0;
    let mut throttled = 0;
    let started = std::time::Instant::now();
    for n in 0..30 {
        let token = signed_with_kid(&format!("forged-{n}"));
        match verify_like_prosody(&v, &token) {
            (true, _) => fetched += 1,
            (false, Err(err)) if err.detail().contains("too many new key ids") => throttled += 1,
            other => panic!("unexpected {:?}", other.1),
        }
    }
    // The bucket refills at 2/s on the real clock: a loaded machine that takes longer over the
    // loop earns one more fetch per half second, and no more.
    let refilled = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        (8..=8 + refilled).contains(&fetched),
        "a burst of four seconds' worth at 2/s, plus {refilled} refilled: {fetched} fetched"
    );
    assert_eq!(throttled, 30 - fetched);
    assert_eq!(hits.load(Ordering::SeqCst), fetched);
    // A kid the server said it does not know is not asked about again for a while.
    let (again, result) = verify_like_prosody(&v, &signed_with_kid("forged-0"));
    assert!(!again, "remembered");
    assert_eq!(result.unwrap_err().detail(), "no public key for kid 'forged-0'");
    assert_eq!(hits.load(Ordering::SeqCst), fetched);
}
