//! Which MUC rooms a token lets its holder create or join (Jitsi's `verify_room`).
//!
//! The rules are jitsi-meet's (`token/util.lib.lua`, `mod_token_verification`), with two
//! fixes: names are lower-cased with Unicode rules (upstream's byte-wise `string.lower` leaves
//! `É` alone while Prosody's nodeprep lower-cases it, so such rooms never matched), and
//! pattern claims (`context.room.regex`) run in a matcher with a hard cost budget.

use std::fmt;

use crate::lua_pattern::{self, Budget, PatternError};

/// The room options of a host, read once from Prosody's config.
#[derive(Debug, Clone)]
pub struct RoomPolicy {
    /// `enable_domain_verification`: `sub` must match the MUC domain or the tenant.
    /// Defaults to false.
    pub domain_verification: bool,
    /// `muc_mapper_domain_base`, the main domain of the deployment. Defaults to none.
    pub muc_domain_base: Option<String>,
    /// `muc_mapper_domain_prefix`. Defaults to `conference`.
    pub muc_domain_prefix: String,
    /// `muc_mapper_domain`. Defaults to `{prefix}.{base}` when a base is set.
    pub muc_domain: Option<String>,
    /// `token_regex_enabled`: whether `context.room.regex` claims are honoured. Defaults to true.
    pub patterns_enabled: bool,
    /// `token_regex_room_max_length` and `token_regex_max_quantifiers`, plus a step budget.
    pub pattern_budget: Budget,
}

impl Default for RoomPolicy {
    fn default() -> Self {
        RoomPolicy {
            domain_verification: false,
            muc_domain_base: None,
            muc_domain_prefix: "conference".into(),
            muc_domain: None,
            patterns_enabled: true,
            pattern_budget: Budget::default(),
        }
    }
}

/// What the session's verified token says about rooms.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoomClaims<'a> {
    /// The `room` claim (`session.jitsi_meet_room`); `None` for sessions without a token.
    pub room: Option<&'a str>,
    /// The `sub` claim (`session.jitsi_meet_domain`).
    pub sub: Option<&'a str>,
    /// `context.room.regex` is true (or "true"): `room` is a Lua pattern.
    pub room_is_pattern: bool,
}

/// The decision for one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomVerdict {
    /// Let the session in.
    Allow,
    /// Refuse with `not-allowed`.
    Deny(RoomDenial),
}

/// Why a room was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomDenial {
    /// The room is not the one (or the tenant) the token names.
    Mismatch,
    /// Domain verification needs `muc_mapper_domain_base` (or a `sub` claim) and it is missing.
    Unconfigured(&'static str),
    /// The pattern claim is malformed or too costly.
    InvalidPattern(PatternError),
}

impl RoomDenial {
    /// The application-specific error child upstream adds (`http://jitsi.org/jitmeet`).
    pub fn error_element(&self) -> &'static str {
        match self {
            RoomDenial::InvalidPattern(_) => "invalid-regex",
            _ => "room-mismatch",
        }
    }
}

impl fmt::Display for RoomDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomDenial::Mismatch => write!(f, "Room and token mismatched"),
            RoomDenial::Unconfigured(what) => write!(f, "Room and token mismatched ({what})"),
            RoomDenial::InvalidPattern(error) => write!(f, "Invalid room pattern: {error}"),
        }
    }
}

impl RoomPolicy {
    /// Whether `claims` allow the room `room_jid` (`node@muc.domain`, a resource is ignored).
    pub fn verify(&self, claims: RoomClaims<'_>, room_jid: &str) -> RoomVerdict {
        let Some(auth_room) = claims.room else {
            // No token on this session: upstream lets it through (Jicofo decides creation).
            return RoomVerdict::Allow;
        };
        let bare = room_jid.split('/').next().unwrap_or(room_jid);
        let Some((node, domain)) = bare.split_once('@') else {
            return RoomVerdict::Allow; // not a room address: nothing to check, as upstream
        };
        let (tenant, room_name) = split_tenant(node);
        let room_ok =
            match self.room_part(auth_room, claims.room_is_pattern, room_name.unwrap_or(node)) {
                Ok(ok) => ok,
                Err(error) => return RoomVerdict::Deny(RoomDenial::InvalidPattern(error)),
            };
        if !self.domain_verification {
            // Plain rule: the node is the claim, or `[tenant]claim`, or the claim is `*`.
            let claim = auth_room.to_lowercase();
            let plain = auth_room == "*"
                || room_ok == PartMatch::Pattern
                || node == claim
                || node.strip_suffix(claim.as_str()).is_some_and(|head| head.ends_with(']'));
            return verdict(plain);
        }
        if room_ok == PartMatch::No {
            return RoomVerdict::Deny(RoomDenial::Mismatch);
        }
        let Some(sub) = claims.sub else {
            return RoomVerdict::Deny(RoomDenial::Unconfigured("the token has no 'sub'"));
        };
        match tenant {
            Some(tenant) => {
                if self.muc_domain_base.is_none() {
                    return RoomVerdict::Deny(RoomDenial::Unconfigured(
                        "muc_mapper_domain_base is not set",
                    ));
                }
                let tenant_ok = sub == "*" || tenant == sub.to_lowercase();
                let domain_ok = self.muc_domain().is_some_and(|d| d.to_lowercase() == domain);
                verdict(tenant_ok && domain_ok)
            }
            None => {
                let expected = if sub == "*" {
                    match self.muc_domain() {
                        Some(d) => d,
                        None => {
                            return RoomVerdict::Deny(RoomDenial::Unconfigured(
                                "muc_mapper_domain_base is not set",
                            ))
                        }
                    }
                } else {
                    format!("{}.{}", self.muc_domain_prefix, sub)
                };
                verdict(expected.to_lowercase() == domain)
            }
        }
    }

    fn muc_domain(&self) -> Option<String> {
        self.muc_domain.clone().or_else(|| {
            self.muc_domain_base.as_ref().map(|base| format!("{}.{}", self.muc_domain_prefix, base))
        })
    }

    /// Does the room-name part of the claim cover `room_name`?
    fn room_part(
        &self,
        claim: &str,
        is_pattern: bool,
        room_name: &str,
    ) -> Result<PartMatch, PatternError> {
        if claim == "*" {
            return Ok(PartMatch::Yes);
        }
        if is_pattern && self.patterns_enabled && self.domain_verification {
            return Ok(if lua_pattern::is_match(claim, room_name, &self.pattern_budget)? {
                PartMatch::Pattern
            } else {
                PartMatch::No
            });
        }
        Ok(if claim.to_lowercase() == room_name { PartMatch::Yes } else { PartMatch::No })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartMatch {
    Yes,
    Pattern,
    No,
}

fn verdict(allowed: bool) -> RoomVerdict {
    if allowed {
        RoomVerdict::Allow
    } else {
        RoomVerdict::Deny(RoomDenial::Mismatch)
    }
}

/// `[tenant]room` → (Some(tenant), Some(room)); anything else → (None, None).
fn split_tenant(node: &str) -> (Option<&str>, Option<&str>) {
    let Some(rest) = node.strip_prefix('[') else { return (None, None) };
    match rest.split_once(']') {
        Some((tenant, room)) if !tenant.is_empty() && !room.is_empty() => {
            (Some(tenant), Some(room))
        }
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims<'a>(room: &'a str, sub: &'a str) -> RoomClaims<'a> {
        RoomClaims { room: Some(room), sub: Some(sub), room_is_pattern: false }
    }

    fn domain_policy() -> RoomPolicy {
        RoomPolicy {
            domain_verification: true,
            muc_domain_base: Some("meet.test".into()),
            ..RoomPolicy::default()
        }
    }

    fn allowed(policy: &RoomPolicy, c: RoomClaims<'_>, jid: &str) -> bool {
        policy.verify(c, jid) == RoomVerdict::Allow
    }

    #[test]
    fn test_plain_claim_matches_room_case_insensitively() {
        let p = RoomPolicy::default();
        assert!(allowed(&p, claims("Room1", "meet.test"), "room1@conference.meet.test"));
        assert!(allowed(&p, claims("room1", "x"), "room1@conference.meet.test/nick"));
        assert!(!allowed(&p, claims("room1", "x"), "room2@conference.meet.test"));
        assert!(!allowed(&p, claims("room1", "x"), "xroom1@conference.meet.test"));
    }

    #[test]
    fn test_unicode_names_lower_case_like_nodeprep() {
        let p = RoomPolicy::default();
        assert!(allowed(&p, claims("CAFÉ", "x"), "café@conference.meet.test"));
        assert!(allowed(&p, claims("ΣΟΦΊΑ", "x"), "σοφία@conference.meet.test"));
    }

    #[test]
    fn test_star_and_tenant_forms_without_domain_verification() {
        let p = RoomPolicy::default();
        assert!(allowed(&p, claims("*", "x"), "anything@conference.meet.test"));
        assert!(allowed(&p, claims("room1", "x"), "[acme]room1@conference.meet.test"));
        assert!(!allowed(&p, claims("room1", "x"), "[acme]room2@conference.meet.test"));
    }

    #[test]
    fn test_session_without_token_is_not_checked() {
        let p = domain_policy();
        assert!(allowed(&p, RoomClaims::default(), "room1@conference.meet.test"));
    }

    #[test]
    fn test_domain_verification_checks_sub_against_muc_domain() {
        let p = domain_policy();
        assert!(allowed(&p, claims("room1", "meet.test"), "room1@conference.meet.test"));
        assert!(!allowed(&p, claims("room1", "other.test"), "room1@conference.meet.test"));
        assert!(allowed(&p, claims("room1", "*"), "room1@conference.meet.test"));
        assert!(allowed(&p, claims("*", "meet.test"), "any@conference.meet.test"));
        let missing_sub = RoomClaims { room: Some("room1"), sub: None, room_is_pattern: false };
        assert!(!allowed(&p, missing_sub, "room1@conference.meet.test"));
    }

    #[test]
    fn test_domain_verification_checks_tenant() {
        let p = domain_policy();
        assert!(allowed(&p, claims("room1", "acme"), "[acme]room1@conference.meet.test"));
        assert!(allowed(&p, claims("room1", "ACME"), "[acme]room1@conference.meet.test"));
        assert!(!allowed(&p, claims("room1", "evil"), "[acme]room1@conference.meet.test"));
        assert!(allowed(&p, claims("*", "*"), "[acme]any@conference.meet.test"));
        assert!(!allowed(&p, claims("room1", "acme"), "[acme]room1@conference.other.test"));
        let no_base = RoomPolicy { domain_verification: true, ..RoomPolicy::default() };
        assert_eq!(
            no_base.verify(claims("room1", "acme"), "[acme]room1@conference.meet.test"),
            RoomVerdict::Deny(RoomDenial::Unconfigured("muc_mapper_domain_base is not set"))
        );
    }

    #[test]
    fn test_pattern_claim_matches_with_domain_verification() {
        let p = domain_policy();
        let pattern =
            RoomClaims { room: Some("^team%d+$"), sub: Some("meet.test"), room_is_pattern: true };
        assert!(allowed(&p, pattern, "team42@conference.meet.test"));
        assert!(!allowed(&p, pattern, "team@conference.meet.test"));
        assert!(!allowed(&p, pattern, "team42@conference.other.test"));
        let tenant = RoomClaims { room: Some("^sales"), sub: Some("acme"), room_is_pattern: true };
        assert!(allowed(&p, tenant, "[acme]sales-q3@conference.meet.test"));
    }

    #[test]
    fn test_pattern_claim_is_literal_when_patterns_are_disabled() {
        let p = RoomPolicy { patterns_enabled: false, ..domain_policy() };
        let pattern =
            RoomClaims { room: Some("^team%d+$"), sub: Some("meet.test"), room_is_pattern: true };
        assert!(!allowed(&p, pattern, "team42@conference.meet.test"));
    }

    #[test]
    fn test_costly_or_malformed_pattern_is_refused_as_invalid_regex() {
        let p = domain_policy();
        for bad in ["team[", "a*b*c*d*e*", &"x".repeat(200)] {
            let c = RoomClaims { room: Some(bad), sub: Some("meet.test"), room_is_pattern: true };
            match p.verify(c, "team@conference.meet.test") {
                RoomVerdict::Deny(denial) => {
                    assert_eq!(denial.error_element(), "invalid-regex", "{bad}")
                }
                RoomVerdict::Allow => panic!("{bad} allowed"),
            }
        }
    }

    #[test]
    fn test_mismatch_names_the_upstream_error() {
        let p = RoomPolicy::default();
        let RoomVerdict::Deny(denial) = p.verify(claims("a", "x"), "b@conference.meet.test") else {
            panic!("allowed");
        };
        assert_eq!(denial.error_element(), "room-mismatch");
        assert_eq!(denial.to_string(), "Room and token mismatched");
    }
}
