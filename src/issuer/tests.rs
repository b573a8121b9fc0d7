//! The issuer end to end in memory: bytes in, reply bytes out, tokens checked by gatehouse's
//! own verifier and room check.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::keys::{KeyCacheConfig, KeySourceConfig};
use crate::room::{JoinContext, RoomClaims, RoomPolicy, RoomVerdict};
use crate::token::{Check, Claims, Policy, TokenError, Verifier};

const NOW: UnixTime = UnixTime(1_700_000_000);
const SECRET: &str = "issuer-test-secret";

fn issuer_with(change: impl FnOnce(&mut IssuerConfig)) -> Arc<Issuer> {
    let mut config = IssuerConfig::new("app", SECRET, "meet.test");
    change(&mut config);
    Arc::new(Issuer::new(config).unwrap())
}

fn issuer() -> Arc<Issuer> {
    issuer_with(|_| {})
}

fn request(extra: Value) -> Vec<u8> {
    let mut base = json!({
        "cmd": "jwt_token", "displayName": "Ana", "channel": "r1", "moderator": false,
        "validFor": 60,
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
    base.to_string().into_bytes()
}

/// Splits the output into replies, checking each ends with `\n\0`.
fn replies(output: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(output).unwrap();
    assert!(text.ends_with("\n\0"), "{text:?}");
    text.split_terminator("\n\0").map(|r| serde_json::from_str(r).unwrap()).collect()
}

fn verify(token: &str, now: UnixTime) -> Result<Claims, TokenError> {
    let mut policy = Policy::new(Algorithm::HS256, "app");
    policy.accepted_audiences = vec!["jitsi".into()];
    let verifier = Verifier::new(
        policy,
        KeySourceConfig::Secret(SECRET.as_bytes().to_vec()),
        KeyCacheConfig::default(),
    )
    .unwrap();
    match verifier.check(token, now) {
        Check::Done(result) => result,
        Check::NeedsKey(_) => panic!("a secret needs no fetch"),
    }
}

fn feed_one(issuer: &Arc<Issuer>, frame: Vec<u8>) -> Value {
    let mut data = frame;
    data.push(0);
    let fed = issuer.connection().feed(&data, NOW);
    assert!(fed.closing.is_none());
    let mut replies = replies(&fed.output);
    assert_eq!(replies.len(), 1);
    replies.remove(0)
}

fn refusal(issuer: &Arc<Issuer>, frame: Vec<u8>) -> String {
    let reply = feed_one(issuer, frame);
    assert_eq!(reply["success"], json!(false), "{reply}");
    assert_eq!(reply["token"], json!(""));
    reply["message"].as_str().unwrap().to_string()
}

#[test]
fn test_reply_has_upstreams_exact_shape() {
    let mut data = request(json!({ "seq": 7 }));
    data.push(0);
    let fed = issuer().connection().feed(&data, NOW);
    let text = String::from_utf8(fed.output).unwrap();
    assert!(text.starts_with(r#"{"success":true,"message":"OK","token":"ey"#), "{text}");
    assert!(text.ends_with(",\"time\":1700000000,\"seq\":7}\n\0"), "{text}");
    assert_eq!(fed.answers.len(), 1);
    let grant = fed.answers[0].outcome.as_ref().unwrap();
    assert_eq!(
        (grant.channel.as_str(), grant.moderator, grant.expires),
        ("r1", false, 1_700_000_060)
    );
}

#[test]
fn test_seq_is_left_out_when_absent_and_echoed_verbatim_when_present() {
    let reply = feed_one(&issuer(), request(json!({})));
    assert!(reply.get("seq").is_none());
    let reply = feed_one(&issuer(), request(json!({ "seq": { "game": "abc", "n": [1] } })));
    assert_eq!(reply["seq"], json!({ "game": "abc", "n": [1] }));
}

#[test]
fn test_minted_token_verifies_with_every_claim_jitsi_needs() {
    let reply = feed_one(
        &issuer(),
        request(
            json!({ "email": "ana@example.com", "avatar": "https://x/a.png", "moderator": true }),
        ),
    );
    let claims = verify(reply["token"].as_str().unwrap(), NOW).unwrap();
    assert_eq!(
        Value::Object(claims.0),
        json!({
            "iss": "app", "aud": "jitsi", "sub": "meet.test", "room": "r1",
            "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "exp": 1_700_000_060,
            "moderator": true,
            "context": { "user": {
                "name": "Ana", "email": "ana@example.com", "avatar": "https://x/a.png",
                "moderator": true,
            } },
        })
    );
}

#[test]
fn test_valid_for_token_expires() {
    let reply = feed_one(&issuer(), request(json!({ "validFor": 2 })));
    let token = reply["token"].as_str().unwrap();
    assert!(verify(token, UnixTime(NOW.0 + 1)).is_ok());
    assert_eq!(
        verify(token, UnixTime(NOW.0 + 2)).unwrap_err(),
        TokenError::Expired { exp: 1_700_000_002, now: NOW.0 + 2, valid_for: Some(2) }
    );
    assert!(matches!(verify(token, UnixTime(NOW.0 - 1)), Err(TokenError::NotYetValid { .. })));
}

#[test]
fn test_valid_until_token_carries_that_exp() {
    let frame = request(json!({ "validFor": null, "validUntil": 1_700_000_600 }));
    let reply = feed_one(&issuer(), frame);
    let claims = verify(reply["token"].as_str().unwrap(), NOW).unwrap();
    assert_eq!(claims.0["exp"], json!(1_700_000_600));
}

#[test]
fn test_gatehouse_room_check_allows_the_channel_only() {
    let reply = feed_one(&issuer(), request(json!({ "channel": "R1" })));
    let claims = verify(reply["token"].as_str().unwrap(), NOW).unwrap();
    let policy = RoomPolicy::default();
    let room_claims = RoomClaims {
        room: claims.str("room").into(),
        sub: claims.str("sub").into(),
        ..RoomClaims::default()
    };
    let verdict = |room| policy.verify(room_claims, room, JoinContext::default()).verdict;
    assert_eq!(verdict("r1@conference.meet.test"), RoomVerdict::Allow);
    assert!(matches!(verdict("r2@conference.meet.test"), RoomVerdict::Deny(_)));
}

#[test]
fn test_legacy_user_string_token_verifies() {
    let issuer = issuer_with(|c| c.legacy_user_string = true);
    let reply = feed_one(&issuer, request(json!({ "email": "ana@example.com" })));
    let claims = verify(reply["token"].as_str().unwrap(), NOW).unwrap();
    assert_eq!(claims.0["context"], json!({ "user": "Ana", "email": "ana@example.com" }));
}

#[test]
fn test_every_bad_request_gets_a_precise_refusal_with_its_seq() {
    let issuer = issuer_with(|c| c.max_validity = 3600);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"cmd\":".to_vec(), "bad JSON: EOF while parsing a value at line 1 column 7"),
        (b"[1]".to_vec(), "request must be a JSON object"),
        (request(json!({ "cmd": "other" })), "unknown cmd 'other' (expected 'jwt_token')"),
        (request(json!({ "cmd": null })), "missing field 'cmd'"),
        (request(json!({ "displayName": null })), "missing field 'displayName'"),
        (request(json!({ "displayName": 5 })), "'displayName' must be a string"),
        (request(json!({ "email": 5 })), "'email' must be a string"),
        (request(json!({ "avatar": true })), "'avatar' must be a string"),
        (request(json!({ "channel": null })), "missing field 'channel'"),
        (request(json!({ "channel": "" })), "'channel' must not be empty"),
        (request(json!({ "moderator": null })), "missing field 'moderator'"),
        (request(json!({ "moderator": "yes" })), "'moderator' must be a boolean"),
        (request(json!({ "validFor": null })), "one of 'validUntil' or 'validFor' is required"),
        (
            request(json!({ "validUntil": 1_700_000_100 })),
            "give only one of 'validUntil' and 'validFor'",
        ),
        (request(json!({ "validFor": "60" })), "'validFor' must be a whole number of seconds"),
        (request(json!({ "validFor": 0 })), "'validFor' must be positive"),
        (
            request(json!({ "validFor": null, "validUntil": 1_699_999_999 })),
            "'validUntil' 1699999999 is not in the future (server time 1700000000)",
        ),
        (request(json!({ "validFor": 3601 })), "validity of 3601 s exceeds the maximum of 3600 s"),
        (
            request(json!({ "validFor": null, "validUntil": 1_700_003_601 })),
            "validity of 3601 s exceeds the maximum of 3600 s",
        ),
    ];
    for (frame, expected) in cases {
        let what = String::from_utf8_lossy(&frame).to_string();
        assert_eq!(refusal(&issuer, frame), expected, "{what}");
    }
    let reply = feed_one(&issuer, request(json!({ "seq": 9, "moderator": 1 })));
    assert_eq!((reply["seq"].clone(), reply["success"].clone()), (json!(9), json!(false)));
    assert_eq!(reply["time"], json!(NOW.0));
}

#[test]
fn test_shared_secret_is_required_and_checked_first() {
    let issuer = issuer_with(|c| c.shared_secret = Some("s3cret".into()));
    assert_eq!(refusal(&issuer, request(json!({}))), "missing field 'secret'");
    assert_eq!(refusal(&issuer, request(json!({ "secret": "nope" }))), "wrong 'secret'");
    // A wrong secret hides what else is wrong with the request.
    assert_eq!(
        refusal(&issuer, request(json!({ "secret": "nope", "moderator": "x" }))),
        "wrong 'secret'"
    );
    assert_eq!(refusal(&issuer, request(json!({ "secret": 1 }))), "'secret' must be a string");
    let reply = feed_one(&issuer, request(json!({ "secret": "s3cret" })));
    assert_eq!(reply["success"], json!(true));
}

#[test]
fn test_channel_allow_list() {
    let issuer = issuer_with(|c| c.channels = Some(vec!["R1".into(), "lobby".into()]));
    assert_eq!(feed_one(&issuer, request(json!({ "channel": "r1" })))["success"], json!(true));
    assert_eq!(
        refusal(&issuer, request(json!({ "channel": "r2" }))),
        "channel 'r2' is not allowed"
    );
    assert_eq!(refusal(&issuer, request(json!({ "channel": "*" }))), "channel '*' is not allowed");
}

#[test]
fn test_requests_split_and_merged_across_reads() {
    let issuer = issuer();
    let mut conn = issuer.connection();
    let mut stream = request(json!({ "seq": 1 }));
    stream.push(b'\n');
    stream.extend(request(json!({ "seq": 2 })));
    stream.push(0);
    stream.extend(request(json!({ "seq": 3 })));
    stream.push(b'\n');
    let (head, tail) = stream.split_at(10);
    let fed = conn.feed(head, NOW);
    assert!(fed.output.is_empty() && fed.answers.is_empty());
    let fed = conn.feed(tail, NOW);
    let seqs: Vec<Value> = replies(&fed.output).iter().map(|r| r["seq"].clone()).collect();
    assert_eq!(seqs, vec![json!(1), json!(2), json!(3)]);
    // One byte at a time works too.
    let mut conn = issuer.connection();
    let mut out = Vec::new();
    for byte in request(json!({ "seq": 4 })).into_iter().chain([0]) {
        out.extend(conn.feed(&[byte], NOW).output);
    }
    assert_eq!(replies(&out)[0]["seq"], json!(4));
}

#[test]
fn test_oversized_frame_is_refused_and_closes_after_earlier_replies() {
    let issuer = issuer_with(|c| c.max_frame_bytes = 200);
    let mut conn = issuer.connection();
    let mut data = request(json!({ "seq": 1 }));
    data.push(0);
    data.extend(vec![b'x'; 201]);
    let fed = conn.feed(&data, NOW);
    assert_eq!(fed.closing, Some(FrameTooLarge { max: 200 }));
    let replies = replies(&fed.output);
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0]["success"], json!(true));
    assert_eq!(
        replies[1],
        json!({
            "success": false, "message": "request frame exceeds 200 bytes; closing the connection",
            "token": "", "time": NOW.0,
        })
    );
}

#[test]
fn test_hostile_bytes_never_panic() {
    let issuer = issuer();
    let mut conn = issuer.connection();
    let junk: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
    let fed = conn.feed(&junk, NOW);
    for reply in replies(&fed.output) {
        assert_eq!(reply["success"], json!(false));
    }
    let deep = "[".repeat(5000) + "\n";
    let fed = issuer.connection().feed(deep.as_bytes(), NOW);
    assert!(replies(&fed.output)[0]["message"].as_str().unwrap().starts_with("bad JSON"));
}

#[test]
fn test_bad_settings_are_refused() {
    let build = |change: fn(&mut IssuerConfig)| {
        let mut config = IssuerConfig::new("app", SECRET, "meet.test");
        change(&mut config);
        Issuer::new(config).err().map(|e| e.to_string())
    };
    assert_eq!(build(|c| c.app_id.clear()), Some("app_id must not be empty".into()));
    assert_eq!(build(|c| c.secret.clear()), Some("app_secret must not be empty".into()));
    assert_eq!(build(|c| c.domain.clear()), Some("domain must not be empty".into()));
    assert_eq!(build(|c| c.max_validity = 0), Some("max_validity must be positive".into()));
    assert_eq!(build(|c| c.max_frame_bytes = 0), Some("max_frame_size must be positive".into()));
    assert_eq!(
        build(|c| c.shared_secret = Some(String::new())),
        Some("shared_secret must not be empty".into())
    );
    assert_eq!(build(|_| {}), None);
}

#[test]
fn test_debug_output_hides_secrets_and_tokens() {
    let config = IssuerConfig {
        shared_secret: Some("shared-xyz".into()),
        ..IssuerConfig::new("app", SECRET, "meet.test")
    };
    let text = format!("{config:?}");
    assert!(!text.contains(SECRET) && !text.contains("shared-xyz"), "{text}");
    let answer = issuer().answer(&request(json!({})), NOW);
    let token = answer.outcome.as_ref().unwrap().token().to_string();
    assert!(!format!("{answer:?}").contains(&token));
}
