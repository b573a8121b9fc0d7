//! Token verification against tokens signed by Node's crypto (tests/fixtures/tokens.json) and
//! against hostile tokens built here.

use serde_json::json;

use super::*;
use crate::keys::{KeyCacheConfig, KeyError, KeySourceConfig};

const TOKENS: &str = include_str!("../../tests/fixtures/tokens.json");
const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/keys/rsa_public.pem");
const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/keys/rsa_private.pem");
const EC256_PUBLIC: &str = include_str!("../../tests/fixtures/keys/ec256_public.pem");
const EC256_PRIVATE: &str = include_str!("../../tests/fixtures/keys/ec256_private.pem");
const EC384_PUBLIC: &str = include_str!("../../tests/fixtures/keys/ec384_public.pem");
const ED_PUBLIC: &str = include_str!("../../tests/fixtures/keys/ed25519_public.pem");
const ED_PRIVATE: &str = include_str!("../../tests/fixtures/keys/ed25519_private.pem");
const SECRET: &[u8] = b"test-secret";
const NOW: UnixTime = UnixTime(1_700_000_000);

fn vector(name: &str) -> String {
    let all: Value = serde_json::from_str(TOKENS).unwrap();
    all[name].as_str().unwrap().to_string()
}

fn policy(algorithm: Algorithm) -> Policy {
    let mut policy = Policy::new(algorithm, "gatehouse-test");
    policy.accepted_audiences = vec!["jitsi".into()];
    policy
}

fn verifier(algorithm: Algorithm, source: KeySourceConfig) -> Verifier {
    Verifier::new(policy(algorithm), source, KeyCacheConfig::default()).unwrap()
}

fn hs256() -> Verifier {
    verifier(Algorithm::HS256, KeySourceConfig::Secret(SECRET.to_vec()))
}

fn verify(v: &Verifier, token: &str) -> Result<Claims, TokenError> {
    match v.check(token, NOW) {
        Check::Done(result) => result,
        Check::NeedsKey(_) => panic!("static keys never need a fetch"),
    }
}

fn claims(extra: Value) -> Map<String, Value> {
    let mut base =
        json!({"iss": "gatehouse-test", "aud": "jitsi", "sub": "meet.test", "room": "room1"});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base.as_object().unwrap().clone()
}

fn hs256_token(extra: Value) -> String {
    sign(&claims(extra), &SigningKey::secret(Algorithm::HS256, SECRET, None).unwrap()).unwrap()
}

fn b64(json: &str) -> String {
    BASE64URL_NOPAD.encode(json.as_bytes())
}

#[test]
fn test_every_algorithm_verifies_tokens_signed_by_node() {
    let cases: Vec<(&str, Algorithm, KeySourceConfig)> = vec![
        ("HS256", Algorithm::HS256, KeySourceConfig::Secret(SECRET.to_vec())),
        ("HS384", Algorithm::HS384, KeySourceConfig::Secret(SECRET.to_vec())),
        ("HS512", Algorithm::HS512, KeySourceConfig::Secret(SECRET.to_vec())),
        ("RS256", Algorithm::RS256, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into())),
        ("RS384", Algorithm::RS384, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into())),
        ("RS512", Algorithm::RS512, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into())),
        ("PS256", Algorithm::PS256, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into())),
        ("ES256", Algorithm::ES256, KeySourceConfig::PublicKeyPem(EC256_PUBLIC.into())),
        ("ES384", Algorithm::ES384, KeySourceConfig::PublicKeyPem(EC384_PUBLIC.into())),
        ("EdDSA", Algorithm::EdDSA, KeySourceConfig::PublicKeyPem(ED_PUBLIC.into())),
    ];
    for (name, algorithm, source) in cases {
        let claims = verify(&verifier(algorithm, source), &vector(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims.str("room"), Some("room1"), "{name}");
        assert_eq!(claims.0["context"]["user"]["name"], "Ana", "{name}");
    }
}

#[test]
fn test_token_signed_by_another_key_is_refused() {
    let v = verifier(Algorithm::RS256, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into()));
    assert_eq!(verify(&v, &vector("RS256_wrong_key")), Err(TokenError::InvalidSignature));
}

#[test]
fn test_tampered_payload_is_refused() {
    let token = vector("HS256");
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(r#"{"iss":"gatehouse-test","aud":"jitsi","sub":"meet.test","room":"*"}"#);
    parts[1] = &forged;
    assert_eq!(verify(&hs256(), &parts.join(".")), Err(TokenError::InvalidSignature));
}

#[test]
fn test_alg_none_is_refused_even_without_signature() {
    let payload = b64(r#"{"iss":"gatehouse-test","aud":"jitsi","sub":"meet.test","room":"room1"}"#);
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"","typ":"JWT"}"#, r#"{"typ":"JWT"}"#]
    {
        // An empty signature segment is "Invalid token" upstream (it splits on runs of dots);
        // with a signature the algorithm is refused.
        let unsigned = format!("{}.{payload}.", b64(header));
        let err = verify(&hs256(), &unsigned).unwrap_err();
        assert_eq!(err.to_string(), "Invalid token", "{header}");
        let signed = format!("{unsigned}c2ln");
        let err = verify(&hs256(), &signed).unwrap_err();
        assert!(matches!(err, TokenError::AlgorithmMismatch { .. }), "{header}: {err}");
        assert_eq!(err.condition(), "not-allowed");
        assert_eq!(err.to_string(), "Invalid or incorrect alg");
    }
}

#[test]
fn test_refusals_read_as_upstream_and_logs_get_a_bounded_escaped_detail() {
    let v = hs256();
    let cases: [(serde_json::Value, &str); 8] = [
        (json!({"exp": "soon"}), "exp must be number"),
        (json!({"nbf": 4_000_000_000_u64}), "Not acceptable by nbf"),
        (json!({"iss": "other"}), "invalid 'iss' claim"),
        (json!({"aud": 7}), "invalid 'aud' claim"),
        (json!({"room": 7}), "room claim must be a string"),
        (json!({"room": ["room1"]}), "room claim must be a string"),
        (json!({"room": null}), "room claim must be a string"),
        (json!({"iat": 1_000, "exp": 1_060}), "Not acceptable by exp ("),
    ];
    for (extra, text) in cases {
        let mut claims = json!({"iss": "gatehouse-test", "aud": "jitsi", "sub": "meet.test",
            "room": "room1"});
        for (k, val) in extra.as_object().unwrap() {
            claims[k] = val.clone();
        }
        let key = SigningKey::secret(Algorithm::HS256, SECRET, None).unwrap();
        let token = sign(claims.as_object().unwrap(), &key).unwrap();
        let err = verify(&v, &token).unwrap_err();
        assert!(err.to_string().starts_with(text), "{err} is not {text}");
    }
    let expired = TokenError::Expired { exp: 1_060, now: 1_070, valid_for: Some(60) };
    assert_eq!(
        expired.to_string(),
        "Not acceptable by exp (10.0 sec since expired, valid for:60.0 sec)"
    );
    let kid = format!("evil\nFAKE LOG LINE{}", "x".repeat(9000));
    let unknown = TokenError::Key(KeyError::UnknownKeyId(kid));
    assert_eq!(unknown.to_string(), "could not obtain public key", "no kid in the client's text");
    let detail = unknown.detail();
    assert!(!detail.contains('\n') && detail.contains("evil\\nFAKE"), "{detail}");
    assert!(detail.chars().count() <= 201, "bounded: {} chars", detail.chars().count());
}

#[test]
fn test_hs256_signed_with_rsa_public_key_is_refused_by_rs256_server() {
    // The classic confusion: the attacker uses the server's public key as an HMAC secret.
    let key =
        SigningKey::secret(Algorithm::HS256, RSA_PUBLIC.as_bytes(), Some("rsa1".into())).unwrap();
    let token = sign(&claims(json!({})), &key).unwrap();
    let v = verifier(Algorithm::RS256, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into()));
    assert!(matches!(verify(&v, &token), Err(TokenError::AlgorithmMismatch { .. })));
}

#[test]
fn test_rs256_token_is_refused_by_hs256_server() {
    assert!(matches!(
        verify(&hs256(), &vector("RS256")),
        Err(TokenError::AlgorithmMismatch { .. })
    ));
}

#[test]
fn test_expiry_honours_leeway() {
    let token = hs256_token(json!({"exp": NOW.0 - 10}));
    let err = verify(&hs256(), &token).unwrap_err();
    assert!(matches!(err, TokenError::Expired { .. }));
    assert!(err.to_string().starts_with("Not acceptable by exp"), "{err}");
    let mut lenient = policy(Algorithm::HS256);
    lenient.leeway = 30;
    let v =
        Verifier::new(lenient, KeySourceConfig::Secret(SECRET.to_vec()), KeyCacheConfig::default())
            .unwrap();
    assert!(verify(&v, &token).is_ok());
    // exp equal to now is already expired, as in luajwtjitsi.
    assert!(verify(&hs256(), &hs256_token(json!({"exp": NOW.0}))).is_err());
}

#[test]
fn test_not_before_in_the_future_is_refused() {
    let err = verify(&hs256(), &hs256_token(json!({"nbf": NOW.0 + 60}))).unwrap_err();
    assert!(matches!(err, TokenError::NotYetValid { .. }));
    assert!(verify(&hs256(), &hs256_token(json!({"nbf": NOW.0}))).is_ok());
}

#[test]
fn test_time_claims_must_be_numbers() {
    let err = verify(&hs256(), &hs256_token(json!({"exp": "2000000000"}))).unwrap_err();
    assert_eq!(err, TokenError::BadTimeClaim("exp"));
    assert!(verify(&hs256(), &hs256_token(json!({"exp": 1.9e9 + 0.5}))).is_ok());
}

#[test]
fn test_issuer_must_be_accepted() {
    assert_eq!(
        verify(&hs256(), &hs256_token(json!({"iss": "other"}))),
        Err(TokenError::InvalidIssuer)
    );
    assert_eq!(
        verify(&hs256(), &hs256_token(json!({"iss": null}))),
        Err(TokenError::MissingClaim("iss"))
    );
    let mut any = policy(Algorithm::HS256);
    any.accepted_issuers = vec!["*".into()];
    let v = Verifier::new(any, KeySourceConfig::Secret(SECRET.to_vec()), KeyCacheConfig::default())
        .unwrap();
    assert!(verify(&v, &hs256_token(json!({"iss": "other"}))).is_ok());
}

#[test]
fn test_audience_may_be_a_string_or_an_array() {
    assert!(verify(&hs256(), &hs256_token(json!({"aud": ["x", "jitsi"]}))).is_ok());
    assert_eq!(
        verify(&hs256(), &hs256_token(json!({"aud": ["x", "y"]}))),
        Err(TokenError::InvalidAudience)
    );
    assert_eq!(
        verify(&hs256(), &hs256_token(json!({"aud": "other"}))),
        Err(TokenError::InvalidAudience)
    );
    assert_eq!(verify(&hs256(), &hs256_token(json!({"aud": 5}))), Err(TokenError::InvalidAudience));
    assert_eq!(
        verify(&hs256(), &hs256_token(json!({"aud": null}))),
        Err(TokenError::MissingClaim("aud"))
    );
}

#[test]
fn test_missing_room_or_sub_is_not_authorized() {
    let err = verify(&hs256(), &hs256_token(json!({"room": null}))).unwrap_err();
    assert_eq!(
        (err.condition(), err.to_string().as_str()),
        ("not-authorized", "room claim is missing")
    );
    let err = verify(&hs256(), &hs256_token(json!({"sub": null}))).unwrap_err();
    assert_eq!(err.condition(), "not-authorized");
    let mut no_room = policy(Algorithm::HS256);
    no_room.require_room_claim = false;
    let v =
        Verifier::new(no_room, KeySourceConfig::Secret(SECRET.to_vec()), KeyCacheConfig::default())
            .unwrap();
    assert!(verify(&v, &hs256_token(json!({"room": null}))).is_ok());
}

#[test]
fn test_garbage_and_oversized_tokens_are_errors() {
    let v = hs256();
    let header = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    let cases = [
        String::new(),
        "abc".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "!!!.???.***".into(),
        format!("{header}.bm90IGpzb24.sig"),
        format!("{}.e30.sig", b64("[1,2]")),
        format!("{header}.{}.sig", b64("\"string\"")),
        format!("{header}.e30.%%%"),
        "\u{0}\u{ffff}.\u{1F600}.x".into(),
    ];
    for token in cases {
        let err = verify(&v, &token).unwrap_err();
        assert_eq!(err.condition(), "not-allowed", "{token:?}: {err}");
    }
    let huge = format!("{header}.{}.sig", "A".repeat(20_000));
    assert!(matches!(verify(&v, &huge), Err(TokenError::TooLarge { .. })));
}

#[test]
fn test_typ_other_than_jwt_is_refused() {
    let key = SigningKey::secret(Algorithm::HS256, SECRET, None).unwrap();
    let good = sign(&claims(json!({})), &key).unwrap();
    let sig = good.rsplit('.').next().unwrap();
    let token = format!("{}.{}.{sig}", b64(r#"{"alg":"HS256","typ":"JOSE+JSON"}"#), b64("{}"));
    assert_eq!(verify(&hs256(), &token), Err(TokenError::BadType));
}

#[test]
fn test_signing_round_trips_for_asymmetric_algorithms() {
    let cases = [
        (Algorithm::RS256, RSA_PRIVATE, RSA_PUBLIC),
        (Algorithm::PS256, RSA_PRIVATE, RSA_PUBLIC),
        (Algorithm::ES256, EC256_PRIVATE, EC256_PUBLIC),
        (Algorithm::EdDSA, ED_PRIVATE, ED_PUBLIC),
    ];
    for (algorithm, private, public) in cases {
        let key = SigningKey::private_pem(algorithm, private.as_bytes(), Some("k".into())).unwrap();
        let token = sign(&claims(json!({"exp": NOW.0 + 60})), &key).unwrap();
        let v = verifier(algorithm, KeySourceConfig::PublicKeyPem(public.into()));
        assert!(verify(&v, &token).is_ok(), "{algorithm:?}");
        let (header, _) = decode_unverified(&token).unwrap();
        assert_eq!(header["kid"], "k");
        assert_eq!(header["typ"], "JWT");
    }
}

#[test]
fn test_session_public_key_overrides_configured_source() {
    let v = verifier(Algorithm::RS256, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into()));
    let other = include_str!("../../tests/fixtures/keys/rsa2_public.pem");
    assert!(v.check_with_pem(&vector("RS256"), RSA_PUBLIC, NOW).is_ok());
    assert_eq!(v.check_with_pem(&vector("RS256"), other, NOW), Err(TokenError::InvalidSignature));
    let err = v.check_with_pem(&vector("RS256"), "not a pem", NOW).unwrap_err();
    assert_eq!(err.condition(), "internal-server-error");
}

#[test]
fn test_decode_unverified_reads_any_well_formed_token() {
    let (header, payload) = decode_unverified(&vector("RS256_wrong_key")).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(payload["sub"], "meet.test");
    assert!(decode_unverified("x.y").is_err());
}

#[test]
fn test_algorithm_names_round_trip() {
    for name in ["HS256", "RS512", "PS256", "ES384", "EdDSA"] {
        assert_eq!(algorithm_name(parse_algorithm(name).unwrap()), name);
    }
    assert_eq!(parse_algorithm("none"), None);
    assert_eq!(parse_algorithm("hs256"), None);
}

#[test]
fn test_without_jitsi_claims_required_absent_claims_pass_but_present_ones_are_checked() {
    let mut relaxed = policy(Algorithm::HS256);
    relaxed.require_jitsi_claims = false;
    relaxed.require_room_claim = false;
    let v =
        Verifier::new(relaxed, KeySourceConfig::Secret(SECRET.to_vec()), KeyCacheConfig::default())
            .unwrap();
    let bare = hs256_token(json!({"iss": null, "aud": null, "sub": null, "room": null}));
    assert!(verify(&v, &bare).is_ok(), "iss, aud, sub and room may all be absent");
    let wrong_iss = hs256_token(json!({"iss": "someone-else"}));
    assert_eq!(verify(&v, &wrong_iss).unwrap_err(), TokenError::InvalidIssuer);
    let wrong_aud = hs256_token(json!({"aud": "elsewhere"}));
    assert_eq!(verify(&v, &wrong_aud).unwrap_err(), TokenError::InvalidAudience);
    assert_eq!(
        verify(&hs256(), &bare).unwrap_err(),
        TokenError::MissingClaim("iss"),
        "Jitsi's default requires them"
    );
}
