//! The widget token checks in upstream order, room-name decoding, and every UVS reply shape
//! (REFERENCE §6). The UVS call itself is tested against a canned server in tests/matrix_uvs.rs.

use serde_json::json;

use super::*;
use crate::token::{sign, SigningKey};

const NOW: UnixTime = UnixTime(1_700_000_000);
const ROOM_ID: &str = "!qwertyasdfgh:matrix.org";
/// base32(ROOM_ID) as Element writes it: upper case, no padding.
const ROOM_NAME: &str = "EFYXOZLSOR4WC43EMZTWQOTNMF2HE2LYFZXXEZY";

fn widget_token(claims: Value) -> String {
    token_with_secret(claims, WIDGET_SECRET)
}

fn token_with_secret(claims: Value, secret: &[u8]) -> String {
    let key = SigningKey::secret(Algorithm::HS256, secret, None).unwrap();
    sign(claims.as_object().unwrap(), &key).unwrap()
}

/// What Element's widget sends: no `exp`, `aud` = https://<domain>, `room` = "*".
fn element_claims() -> Value {
    json!({
        "iss": "meet.example", "sub": "meet.example", "aud": "https://meet.example", "room": "*",
        "context": {
            "user": { "name": "Ana", "avatar": "https://example/a.png" },
            "matrix": { "token": "openid-token-1", "room_id": ROOM_ID, "server_name": "matrix.org" },
        },
    })
}

fn verifier_with(adjust: impl FnOnce(&mut Config)) -> Verifier {
    let mut config = Config::uvs("http://127.0.0.1:1/", None);
    adjust(&mut config);
    Verifier::new(config).unwrap()
}

fn verifier() -> Verifier {
    verifier_with(|_| {})
}

fn prepare(v: &Verifier, token: Option<&str>, room: Option<&str>) -> Result<UvsCall, MatrixError> {
    match v.check(token, room, NOW, Instant::now()) {
        Check::Ask(call) => Ok(call),
        Check::Done(Err(error)) => Err(error),
        Check::Done(Ok(admission)) => panic!("unexpected cached admission {admission:?}"),
    }
}

fn refusal(v: &Verifier, token: Option<&str>, room: Option<&str>) -> MatrixError {
    prepare(v, token, room).expect_err("should be refused")
}

#[test]
fn test_room_names_decode_in_any_case_with_or_without_padding() {
    assert_eq!(room_id_from_name(ROOM_NAME).as_deref(), Some(ROOM_ID));
    assert_eq!(room_id_from_name(&ROOM_NAME.to_lowercase()).as_deref(), Some(ROOM_ID));
    assert_eq!(room_id_from_name(&format!("{ROOM_NAME}=")).as_deref(), Some(ROOM_ID));
    assert_eq!(
        room_id_from_name(&format!("{}=", ROOM_NAME.to_lowercase())).as_deref(),
        Some(ROOM_ID)
    );
    assert_eq!(room_id_from_name("MZXW6===").as_deref(), Some("foo"));
    assert_eq!(room_id_from_name("mzxw6").as_deref(), Some("foo"));
}

#[test]
fn test_room_names_that_are_not_base32_of_text_decode_to_nothing() {
    assert_eq!(room_id_from_name("room1"), None, "'1' is not in the alphabet");
    assert_eq!(room_id_from_name("MZXW6Y"), None, "impossible length");
    assert_eq!(room_id_from_name("74"), None, "0xff is not UTF-8");
    assert_eq!(room_id_from_name(&"A".repeat(MAX_ROOM_NAME + 8)), None, "too long");
    assert_eq!(room_id_from_name("").as_deref(), Some(""), "empty decodes to empty");
}

#[test]
fn test_only_the_canonical_room_name_stands_for_its_room_at_join() {
    let canonical = ROOM_NAME.to_lowercase();
    assert_eq!(room_name(ROOM_ID), canonical);
    assert_eq!(room_id_from_canonical_name(&canonical).as_deref(), Some(ROOM_ID));
    for alias in [format!("{canonical}="), format!("{canonical}=="), ROOM_NAME.to_string()] {
        assert_eq!(
            room_id_from_name(&alias).as_deref(),
            Some(ROOM_ID),
            "the login accepts {alias}"
        );
        assert_eq!(room_id_from_canonical_name(&alias), None, "{alias} is not the canonical name");
    }
    assert_eq!(room_id_from_canonical_name("mzxw6"), Some("foo".into()));
    assert_eq!(room_id_from_canonical_name("mzxw6==="), None);
    assert_eq!(room_id_from_canonical_name(""), None, "no room ID is empty");
    assert_eq!(room_id_from_canonical_name("__jicofo-health-check-x"), None);
}

#[test]
fn test_element_token_passes_every_check_and_asks_uvs() {
    let v = verifier();
    let call = prepare(&v, Some(&widget_token(element_claims())), Some(&ROOM_NAME.to_lowercase()))
        .unwrap();
    assert_eq!(
        call.request(),
        &UvsRequest {
            token: "openid-token-1".into(),
            room_id: ROOM_ID.into(),
            server_name: Some("matrix.org".into())
        }
    );
    assert_eq!(
        call.request().body(),
        json!({"token": "openid-token-1", "room_id": ROOM_ID, "matrix_server_name": "matrix.org"})
    );
}

#[test]
fn test_request_body_leaves_out_an_absent_server_name() {
    let mut claims = element_claims();
    claims["context"]["matrix"].as_object_mut().unwrap().remove("server_name");
    let call = prepare(&verifier(), Some(&widget_token(claims)), Some(ROOM_NAME)).unwrap();
    assert_eq!(call.request().body(), json!({"token": "openid-token-1", "room_id": ROOM_ID}));
}

#[test]
fn test_checks_run_in_upstream_order_with_upstream_errors() {
    let v = verifier();
    // No token at all comes first, whatever the room.
    assert_eq!(refusal(&v, None, None), MatrixError::MissingToken);
    // A token that does not decode, even with no room.
    let error = refusal(&v, Some("not.a.jwt"), None);
    assert!(matches!(error, MatrixError::Undecodable(_)), "{error:?}");
    // A token without context.matrix.room_id, even with no room.
    let no_context = widget_token(json!({"iss": "x"}));
    assert_eq!(refusal(&v, Some(&no_context), None), MatrixError::MissingRoomId);
    // Then the room.
    assert_eq!(refusal(&v, Some(&widget_token(element_claims())), None), MatrixError::RoomMismatch);

    let table = [
        (
            MatrixError::MissingToken,
            "bad-request",
            "JWT token must be provided with OpenID token and room ID",
        ),
        (
            MatrixError::Undecodable(TokenError::InvalidSignature),
            "bad-request",
            "JWT token cannot be decoded",
        ),
        (MatrixError::MissingRoomId, "bad-request", "Matrix room ID must be given."),
        (MatrixError::RoomMismatch, "access-denied", "Jitsi room does not match Matrix room"),
        (MatrixError::Denied(Denial::NotInRoom), "access-denied", "Token invalid or not in room"),
        (MatrixError::Denied(Denial::Status(403)), "access-denied", "Token invalid or not in room"),
    ];
    for (error, condition, text) in table {
        assert_eq!((error.condition(), error.text()), (condition, text), "{error:?}");
    }
}

#[test]
fn test_undecodable_tokens_are_bad_requests() {
    let v = verifier();
    let other_secret = token_with_secret(element_claims(), b"not-the-widget-secret");
    let mut expired = element_claims();
    expired["exp"] = json!(NOW.0 - 1);
    let mut not_yet = element_claims();
    not_yet["nbf"] = json!(NOW.0 + 600);
    let unsigned = format!(
        "{}.{}.",
        data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        data_encoding::BASE64URL_NOPAD.encode(element_claims().to_string().as_bytes())
    );
    for (what, token) in [
        ("other secret", other_secret),
        ("expired", widget_token(expired)),
        ("not yet valid", widget_token(not_yet)),
        ("alg none", unsigned),
        ("empty", String::new()),
        ("huge", "a".repeat(20_000)),
    ] {
        let error = refusal(&v, Some(&token), Some(ROOM_NAME));
        assert!(matches!(error, MatrixError::Undecodable(_)), "{what}: {error:?}");
        assert_eq!(error.condition(), "bad-request", "{what}");
    }
}

#[test]
fn test_exp_in_the_future_is_accepted() {
    let mut claims = element_claims();
    claims["exp"] = json!(NOW.0 + 60);
    assert!(prepare(&verifier(), Some(&widget_token(claims)), Some(ROOM_NAME)).is_ok());
}

#[test]
fn test_no_jitsi_claim_is_required() {
    let claims = json!({"context": {"matrix": {"token": "t", "room_id": ROOM_ID}}});
    assert!(prepare(&verifier(), Some(&widget_token(claims)), Some(ROOM_NAME)).is_ok());
}

#[test]
fn test_missing_context_or_room_id_is_refused_not_crashed() {
    let v = verifier();
    for context in [
        json!(null),
        json!("text"),
        json!({}),
        json!({"matrix": null}),
        json!({"matrix": {"token": "t"}}),
        json!({"matrix": {"token": "t", "room_id": null}}),
    ] {
        let token = widget_token(json!({"iss": "x", "context": context}));
        assert_eq!(
            refusal(&v, Some(&token), Some(ROOM_NAME)),
            MatrixError::MissingRoomId,
            "{context}"
        );
    }
    let numeric = widget_token(json!({"context": {"matrix": {"token": "t", "room_id": 7}}}));
    assert_eq!(refusal(&v, Some(&numeric), Some(ROOM_NAME)), MatrixError::RoomMismatch);
}

#[test]
fn test_room_mismatch_covers_other_rooms_and_undecodable_names() {
    let v = verifier();
    let token = widget_token(element_claims());
    for room in ["MZXW6", "room1", "", "EFXXI2DFOI5G2YLUOJUXQLTPOJTQ"] {
        assert_eq!(refusal(&v, Some(&token), Some(room)), MatrixError::RoomMismatch, "{room}");
    }
}

#[test]
fn test_missing_openid_token_is_denied_without_asking_uvs() {
    let mut claims = element_claims();
    claims["context"]["matrix"]["token"] = json!(null);
    let error = refusal(&verifier(), Some(&widget_token(claims)), Some(ROOM_NAME));
    assert_eq!(error, MatrixError::Denied(Denial::NoOpenIdToken));
    assert_eq!(error.text(), "Token invalid or not in room");
}

#[test]
fn test_issuer_check_is_off_by_default_and_compares_with_app_id_when_on() {
    let mut claims = element_claims();
    claims["iss"] = json!("someone");
    let token = widget_token(claims);
    assert!(prepare(&verifier(), Some(&token), Some(ROOM_NAME)).is_ok(), "off by default");

    let checking = verifier_with(|c| {
        c.check_issuer = true;
        c.app_id = Some("meet.example".into());
    });
    let error = refusal(&checking, Some(&token), Some(ROOM_NAME));
    assert_eq!(error, MatrixError::WrongIssuer { found: Some("someone".into()) });
    assert_eq!(
        (error.condition(), error.text()),
        ("access-denied", "JWT issuer does not match app_id")
    );
    let mut no_iss = element_claims();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        refusal(&checking, Some(&widget_token(no_iss)), Some(ROOM_NAME)),
        MatrixError::WrongIssuer { found: None }
    );
    assert!(prepare(&checking, Some(&widget_token(element_claims())), Some(ROOM_NAME)).is_ok());
    // The issuer is checked before the room, as it is part of reading the token.
    assert!(matches!(refusal(&checking, Some(&token), None), MatrixError::WrongIssuer { .. }));
}

#[test]
fn test_config_that_cannot_work_is_refused() {
    assert!(matches!(Verifier::new(Config::uvs("uvs.example", None)), Err(MatrixError::Config(_))));
    let mut config = Config::uvs("https://uvs.example/", None);
    assert_eq!(config.backend.base_url(), "https://uvs.example", "trailing slash dropped");
    config.check_issuer = true;
    assert!(
        matches!(Verifier::new(config), Err(MatrixError::Config(_))),
        "issuer check without app_id"
    );
}

// ---- UVS replies, exactly as UVS sends them (REFERENCE §6) ----

const BAD_TOKEN: &str =
    r#"{"results":{"user":false,"room_membership":null},"user_id":null,"power_levels":null}"#;
const NOT_IN_ROOM: &str =
    r#"{"results":{"user":true,"room_membership":false},"user_id":"@u:hs","power_levels":null}"#;
const MEMBER_NO_LEVELS: &str =
    r#"{"results":{"user":true,"room_membership":true},"user_id":"@u:hs","power_levels":null}"#;

fn ok_reply(user_power: Value, state_default: Value) -> String {
    let mut room = json!({"ban": 50, "events_default": 0, "invite": 0, "kick": 50, "redact": 50,
        "users_default": 0, "events": {"m.room.name": 50}});
    if !state_default.is_null() {
        room["state_default"] = state_default;
    }
    json!({"results": {"user": true, "room_membership": true}, "user_id": "@u:hs",
        "power_levels": {"room": room, "user": user_power}})
    .to_string()
}

fn allow(user_id: &str, is_owner: bool) -> Decision {
    Decision::Allow { user_id: Some(user_id.into()), is_owner }
}

#[test]
fn test_member_with_power_at_least_state_default_is_owner_when_syncing() {
    assert_eq!(decide(200, ok_reply(json!(50), json!(50)).as_bytes(), true), allow("@u:hs", true));
    assert_eq!(decide(200, ok_reply(json!(100), json!(50)).as_bytes(), true), allow("@u:hs", true));
    assert_eq!(decide(200, ok_reply(json!(49), json!(50)).as_bytes(), true), allow("@u:hs", false));
    assert_eq!(decide(200, ok_reply(json!(0), json!(0)).as_bytes(), true), allow("@u:hs", true));
}

#[test]
fn test_without_sync_nobody_is_owner_and_power_levels_are_ignored() {
    assert_eq!(
        decide(200, ok_reply(json!(100), json!(50)).as_bytes(), false),
        allow("@u:hs", false)
    );
    assert_eq!(decide(200, MEMBER_NO_LEVELS.as_bytes(), false), allow("@u:hs", false));
    // UVS before power levels existed sent no such field.
    let old = r#"{"results":{"user":true,"room_membership":true},"user_id":"@u:hs"}"#;
    assert_eq!(decide(200, old.as_bytes(), false), allow("@u:hs", false));
}

#[test]
fn test_state_default_falls_back_to_50_and_string_levels_are_read() {
    assert_eq!(
        decide(200, ok_reply(json!(50), json!(null)).as_bytes(), true),
        allow("@u:hs", true)
    );
    assert_eq!(
        decide(200, ok_reply(json!(49), json!(null)).as_bytes(), true),
        allow("@u:hs", false)
    );
    assert_eq!(
        decide(200, ok_reply(json!("75"), json!("50")).as_bytes(), true),
        allow("@u:hs", true)
    );
    let no_room = r#"{"results":{"user":true,"room_membership":true},"user_id":"@u:hs","power_levels":{"user":50}}"#;
    assert_eq!(decide(200, no_room.as_bytes(), true), allow("@u:hs", true));
}

#[test]
fn test_null_power_levels_refuse_cleanly_when_syncing() {
    assert_eq!(
        decide(200, MEMBER_NO_LEVELS.as_bytes(), true),
        Decision::Deny(Denial::NoPowerLevels)
    );
    let error = MatrixError::Denied(Denial::NoPowerLevels);
    assert_eq!(
        (error.condition(), error.text()),
        ("access-denied", "Token invalid or not in room")
    );
}

#[test]
fn test_denials_for_bad_token_and_non_member() {
    assert_eq!(decide(200, BAD_TOKEN.as_bytes(), true), Decision::Deny(Denial::InvalidToken));
    assert_eq!(decide(200, NOT_IN_ROOM.as_bytes(), true), Decision::Deny(Denial::NotInRoom));
    assert_eq!(decide(200, NOT_IN_ROOM.as_bytes(), false), Decision::Deny(Denial::NotInRoom));
}

#[test]
fn test_error_statuses_and_garbage_are_denials() {
    assert_eq!(decide(403, b"{}", false), Decision::Deny(Denial::Status(403)));
    let text = b"Invalid request: room_id not found or with empty value in the JSON payload.";
    assert_eq!(decide(400, text, false), Decision::Deny(Denial::Status(400)));
    assert_eq!(
        decide(500, MEMBER_NO_LEVELS.as_bytes(), false),
        Decision::Deny(Denial::Status(500))
    );
    assert_eq!(
        decide(201, MEMBER_NO_LEVELS.as_bytes(), false),
        Decision::Deny(Denial::Status(201)),
        "200 only, as upstream"
    );
    for body in [
        "",
        "<html>oops</html>",
        "null",
        "[]",
        "{}",
        r#"{"results":null}"#,
        r#"{"results":{"user":"true","room_membership":true}}"#,
        r#"{"results":{"user":true,"room_membership":null}}"#,
        r#"{"results":{"user":true,"room_membership":true},"user_id":7}"#,
    ] {
        assert!(
            matches!(decide(200, body.as_bytes(), false), Decision::Deny(Denial::BadReply(_))),
            "{body}"
        );
    }
    let huge = format!(
        r#"{{"results":{{"user":true,"room_membership":true}},"pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    assert_eq!(
        decide(200, huge.as_bytes(), false),
        Decision::Allow { user_id: None, is_owner: false },
        "size is http's job"
    );
}

#[test]
fn test_malformed_power_levels_are_bad_replies_when_syncing() {
    for levels in [
        json!("high"),
        json!({"user": "high"}),
        json!({"user": null}),
        json!({"user": 50, "room": 3}),
        json!({"user": 50, "room": {"state_default": "x"}}),
    ] {
        let body = json!({"results": {"user": true, "room_membership": true}, "user_id": "@u:hs", "power_levels": levels});
        assert!(
            matches!(
                decide(200, body.to_string().as_bytes(), true),
                Decision::Deny(Denial::BadReply(_))
            ),
            "{levels}"
        );
    }
}

/// Puts a positive answer for `token` in the cache as if UVS had given it at `t0`.
fn cache_answer(v: &Verifier, token: &str, is_owner: bool, t0: Instant) {
    let Check::Ask(call) = v.check(Some(token), Some(ROOM_NAME), NOW, t0) else {
        panic!("nothing cached yet")
    };
    let answer = Allowed { user_id: Some("@u:hs".into()), is_owner, answered: t0 };
    v.lock_cache().insert(call.request.clone(), answer, v.config.cache_ttl, t0);
}

#[test]
fn test_cached_membership_is_reused_until_its_ttl_for_the_same_token_and_room() {
    let v = verifier_with(|c| c.cache_ttl = Duration::from_secs(30));
    let token = widget_token(element_claims());
    let t0 = Instant::now();
    cache_answer(&v, &token, false, t0);

    match v.check(Some(&token), Some(&ROOM_NAME.to_lowercase()), NOW, t0 + Duration::from_secs(29))
    {
        Check::Done(Ok(admission)) => {
            assert!(admission.cached && !admission.is_owner);
            assert_eq!(admission.user_id.as_deref(), Some("@u:hs"));
            assert_eq!(admission.claims.0["context"]["user"]["name"], "Ana");
        }
        other => panic!("expected a cached admission, got {other:?}"),
    }
    assert!(
        matches!(
            v.check(Some(&token), Some(ROOM_NAME), NOW, t0 + Duration::from_secs(30)),
            Check::Ask(_)
        ),
        "expired"
    );

    // Another OpenID token for the same room is not covered.
    let mut other = element_claims();
    other["context"]["matrix"]["token"] = json!("openid-token-2");
    assert!(matches!(v.check(Some(&widget_token(other)), Some(ROOM_NAME), NOW, t0), Check::Ask(_)));
}

#[test]
fn test_cached_ownership_is_reused_only_while_a_few_seconds_old() {
    let v = verifier_with(|c| c.cache_ttl = Duration::from_secs(30));
    let token = widget_token(element_claims());
    let t0 = Instant::now();
    cache_answer(&v, &token, true, t0);
    match v.check(Some(&token), Some(ROOM_NAME), NOW, t0 + OWNER_ANSWER_MAX_AGE) {
        Check::Done(Ok(admission)) => assert!(admission.cached && admission.is_owner),
        other => panic!("a fresh owner answer is reused, got {other:?}"),
    }
    // Older: asked again, so a user demoted in Matrix meanwhile is not made owner from memory.
    let later = t0 + OWNER_ANSWER_MAX_AGE + Duration::from_millis(1);
    assert!(matches!(v.check(Some(&token), Some(ROOM_NAME), NOW, later), Check::Ask(_)));
}

#[test]
fn test_cache_never_skips_the_token_checks() {
    let v = verifier();
    let mut claims = element_claims();
    claims["exp"] = json!(NOW.0 + 10);
    let token = widget_token(claims);
    let Check::Ask(call) = v.check(Some(&token), Some(ROOM_NAME), NOW, Instant::now()) else {
        panic!()
    };
    v.lock_cache().insert(
        call.request.clone(),
        Allowed { user_id: None, is_owner: false, answered: Instant::now() },
        Duration::from_secs(60),
        Instant::now(),
    );
    let later = UnixTime(NOW.0 + 10);
    assert!(matches!(
        v.check(Some(&token), Some(ROOM_NAME), later, Instant::now()),
        Check::Done(Err(MatrixError::Undecodable(_)))
    ));
    assert!(matches!(
        v.check(Some(&token), Some("MZXW6"), NOW, Instant::now()),
        Check::Done(Err(MatrixError::RoomMismatch))
    ));
}

#[test]
fn test_debug_output_never_shows_the_openid_token() {
    let call =
        prepare(&verifier(), Some(&widget_token(element_claims())), Some(ROOM_NAME)).unwrap();
    assert!(!format!("{call:?}").contains("openid-token-1"));
    for error in [
        MatrixError::Denied(Denial::InvalidToken),
        MatrixError::Unavailable(HttpError::Timeout { after: Duration::from_secs(5) }),
    ] {
        assert!(!error.to_string().contains("openid-token-1"));
    }
}

#[test]
fn test_homeserver_mode_refuses_a_token_without_server_name_before_asking() {
    let v = Verifier::new(Config::homeserver("http://127.0.0.1:1", "admin-token".into())).unwrap();
    let mut claims = element_claims();
    claims["context"]["matrix"].as_object_mut().unwrap().remove("server_name");
    let error = refusal(&v, Some(&widget_token(claims)), Some(ROOM_NAME));
    assert_eq!(error, MatrixError::Denied(Denial::NoServerName));
    assert_eq!(
        (error.condition(), error.text()),
        ("access-denied", "Token invalid or not in room")
    );
    assert_eq!(error.reason(), "missing_server_name");
    // UVS mode sends the request without matrix_server_name, as upstream does.
    assert!(prepare(&verifier(), Some(&widget_token(element_claims())), Some(ROOM_NAME)).is_ok());
}

#[test]
fn test_forget_drops_a_users_cached_answers_for_that_room_only() {
    let v = verifier_with(|c| c.cache_ttl = Duration::from_secs(30));
    let token = widget_token(element_claims());
    let t0 = Instant::now();
    cache_answer(&v, &token, false, t0);
    v.forget("!other:matrix.org", "@u:hs");
    v.forget(ROOM_ID, "@someone-else:hs");
    assert!(matches!(v.check(Some(&token), Some(ROOM_NAME), NOW, t0), Check::Done(Ok(_))));
    v.forget(ROOM_ID, "@u:hs");
    assert!(matches!(v.check(Some(&token), Some(ROOM_NAME), NOW, t0), Check::Ask(_)));
}
