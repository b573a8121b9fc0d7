//! The claims of a minted token, and the checks on what a request may ask for.
//!
//! Claims follow Jitsi's token format (lib-jitsi-meet `doc/tokens.md`) and fix upstream's
//! mint: `validFor` now yields an `exp` (upstream passed it as an unknown claim, so those
//! tokens never expired), `nbf` is set, and `context.user` is the object Jitsi expects rather
//! than a bare display-name string (kept behind an option for clients that relied on it).

use serde_json::{json, Map, Value};

use super::request::{Request, RequestError, Validity};
use crate::clock::UnixTime;

/// The audience upstream writes and Jitsi deployments accept.
pub const AUDIENCE: &str = "jitsi";

/// What goes into every token besides the request's own fields.
pub(crate) struct Minting<'a> {
    pub app_id: &'a str,
    pub domain: &'a str,
    pub legacy_user_string: bool,
}

/// The `exp` for `validity`, checked against the server's clock and the longest lifetime.
pub(crate) fn expiry(validity: Validity, now: UnixTime, max: u64) -> Result<i64, RequestError> {
    let now_s = i64::try_from(now.0).unwrap_or(i64::MAX);
    let max_s = i64::try_from(max).unwrap_or(i64::MAX);
    let (exp, seconds) = match validity {
        Validity::Until(until) if until <= now_s => {
            return Err(RequestError::InPast { valid_until: until, now: now.0 })
        }
        Validity::Until(until) => (until, until - now_s),
        Validity::For(seconds) => (now_s.saturating_add(seconds), seconds),
    };
    if seconds > max_s {
        return Err(RequestError::TooLong { seconds, max });
    }
    Ok(exp)
}

/// Whether `channel` is on the allow-list (lower-cased, as Jitsi compares room names); no
/// list allows every channel. `*` must be listed itself to be allowed.
pub(crate) fn check_channel(channel: &str, allowed: Option<&[String]>) -> Result<(), RequestError> {
    match allowed {
        None => Ok(()),
        Some(list) if list.iter().any(|c| *c == channel.to_lowercase()) => Ok(()),
        Some(_) => Err(RequestError::ChannelNotAllowed(channel.to_string())),
    }
}

/// The token's claims.
pub(crate) fn claims(
    request: &Request,
    minting: &Minting<'_>,
    now: UnixTime,
    exp: i64,
) -> Map<String, Value> {
    let context = if minting.legacy_user_string {
        // Upstream's shape: the display name as a string, email and avatar beside it.
        let mut context = Map::new();
        context.insert("user".into(), Value::String(request.display_name.clone()));
        insert_opt(&mut context, "email", &request.email);
        insert_opt(&mut context, "avatar", &request.avatar);
        context
    } else {
        let mut user = Map::new();
        user.insert("name".into(), Value::String(request.display_name.clone()));
        insert_opt(&mut user, "email", &request.email);
        insert_opt(&mut user, "avatar", &request.avatar);
        // jitsi-meet's mod_token_affiliation reads this one; token moderation the top-level one.
        user.insert("moderator".into(), Value::Bool(request.moderator));
        let mut context = Map::new();
        context.insert("user".into(), Value::Object(user));
        context
    };
    let claims = json!({
        "iss": minting.app_id,
        "aud": AUDIENCE,
        "sub": minting.domain,
        "room": request.channel,
        "iat": now.0,
        "nbf": now.0,
        "exp": exp,
        "moderator": request.moderator,
        "context": context,
    });
    match claims {
        Value::Object(map) => map,
        // `json!` with braces always builds an object.
        _ => Map::new(),
    }
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        map.insert(key.into(), Value::String(value.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn request() -> Request {
        Request {
            display_name: "Ana".into(),
            email: Some("ana@example.com".into()),
            avatar: None,
            channel: "r1".into(),
            moderator: true,
            validity: Validity::For(60),
        }
    }

    const MINTING: Minting<'static> =
        Minting { app_id: "app", domain: "meet.test", legacy_user_string: false };

    #[test]
    fn test_valid_for_always_yields_an_exp() {
        assert_eq!(expiry(Validity::For(60), NOW, 3600), Ok(1_700_000_060));
    }

    #[test]
    fn test_valid_until_is_used_as_is() {
        assert_eq!(expiry(Validity::Until(1_700_000_500), NOW, 3600), Ok(1_700_000_500));
    }

    #[test]
    fn test_valid_until_now_or_earlier_is_refused() {
        for until in [1_700_000_000, 1_600_000_000, -1] {
            assert_eq!(
                expiry(Validity::Until(until), NOW, 3600),
                Err(RequestError::InPast { valid_until: until, now: NOW.0 })
            );
        }
        assert_eq!(
            RequestError::InPast { valid_until: 5, now: 9 }.to_string(),
            "'validUntil' 5 is not in the future (server time 9)"
        );
    }

    #[test]
    fn test_validity_above_the_maximum_is_refused_either_way() {
        assert_eq!(
            expiry(Validity::For(3601), NOW, 3600),
            Err(RequestError::TooLong { seconds: 3601, max: 3600 })
        );
        assert_eq!(
            expiry(Validity::Until(1_700_003_601), NOW, 3600),
            Err(RequestError::TooLong { seconds: 3601, max: 3600 })
        );
        assert_eq!(expiry(Validity::For(3600), NOW, 3600), Ok(1_700_003_600));
        assert_eq!(
            RequestError::TooLong { seconds: 3601, max: 3600 }.to_string(),
            "validity of 3601 s exceeds the maximum of 3600 s"
        );
        // No overflow on absurd input.
        assert!(expiry(Validity::For(i64::MAX), NOW, u64::MAX).is_ok());
    }

    #[test]
    fn test_allow_list_is_case_insensitive_and_star_must_be_listed() {
        let list = vec!["r1".to_string(), "lobby".to_string()];
        assert_eq!(check_channel("R1", Some(&list)), Ok(()));
        assert_eq!(
            check_channel("r2", Some(&list)),
            Err(RequestError::ChannelNotAllowed("r2".into()))
        );
        assert!(check_channel("*", Some(&list)).is_err());
        assert!(check_channel("*", Some(&["*".to_string()])).is_ok());
        assert!(check_channel("anything", None).is_ok());
    }

    #[test]
    fn test_claims_carry_every_field_jitsi_needs() {
        let claims = Value::Object(claims(&request(), &MINTING, NOW, 1_700_000_060));
        assert_eq!(
            claims,
            json!({
                "iss": "app", "aud": "jitsi", "sub": "meet.test", "room": "r1",
                "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "exp": 1_700_000_060,
                "moderator": true,
                "context": { "user": { "name": "Ana", "email": "ana@example.com", "moderator": true } },
            })
        );
    }

    #[test]
    fn test_legacy_context_user_is_the_bare_display_name() {
        let legacy = Minting { legacy_user_string: true, ..MINTING };
        let mut request = request();
        request.avatar = Some("https://example.com/a.png".into());
        let claims = claims(&request, &legacy, NOW, 1_700_000_060);
        assert_eq!(
            claims["context"],
            json!({ "user": "Ana", "email": "ana@example.com", "avatar": "https://example.com/a.png" })
        );
        assert_eq!(claims["moderator"], json!(true));
    }
}
