//! Which MUC rooms a token lets its holder join (Jitsi's `verify_room`).
//!
//! The rules are jitsi-meet's (`token/util.lib.lua` at the pinned upstream commit), step by
//! step and with its error elements and texts. The caller (the Lua module) has already done the
//! parts that need Prosody's state: the room address has a node, the room exists on the main
//! MUC, and the empty-token case. Two deliberate fixes: names are lower-cased with Unicode rules
//! (upstream's byte-wise `string.lower` leaves `É` alone while Prosody's nodeprep lower-cases
//! it, so such rooms never matched), and pattern claims (`context.room.regex`) run in a matcher
//! with a hard cost budget.

use std::fmt;

use crate::lua_pattern::{self, Budget, PatternError};

/// The room options of a host, read once from Prosody's config.
#[derive(Debug, Clone)]
pub struct RoomPolicy {
    /// `enable_domain_verification`: `sub` must match the MUC domain or the tenant.
    /// Defaults to true, as upstream.
    pub domain_verification: bool,
    /// `muc_mapper_domain_base`, the main domain of the deployment. Defaults to none.
    pub muc_domain_base: Option<String>,
    /// `muc_mapper_domain_prefix`. Defaults to `conference`.
    pub muc_domain_prefix: String,
    /// `muc_mapper_domain`. Defaults to `{prefix}.{base}` when a base is set; unused without one.
    pub muc_domain: Option<String>,
    /// `asap_require_room_claim`: a token whose room claim matches nothing still enters when
    /// this is off (upstream's rule). Defaults to true.
    pub require_room_claim: bool,
    /// `token_regex_enabled`: whether `context.room.regex` claims are honoured. Defaults to true.
    pub patterns_enabled: bool,
    /// `token_regex_room_max_length` and `token_regex_max_quantifiers`, plus a step budget.
    pub pattern_budget: Budget,
}

impl Default for RoomPolicy {
    fn default() -> Self {
        RoomPolicy {
            domain_verification: true,
            muc_domain_base: None,
            muc_domain_prefix: "conference".into(),
            muc_domain: None,
            require_room_claim: true,
            patterns_enabled: true,
            pattern_budget: Budget::default(),
        }
    }
}

/// What the session's verified token says about rooms (all `None` without a verified token).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoomClaims<'a> {
    /// The `room` claim.
    pub room: Claim<'a>,
    /// The `sub` claim.
    pub sub: Claim<'a>,
    /// `context.room.regex` is true (or "true"): `room` is a Lua pattern.
    pub room_is_pattern: bool,
    /// `context.tenant`.
    pub tenant: Claim<'a>,
}

/// One claim as the token carries it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Claim<'a> {
    /// Absent (or JSON `null`).
    #[default]
    Absent,
    /// A string.
    Text(&'a str),
    /// Present with another type (number, boolean, array, object).
    Other,
}

impl<'a> From<Option<&'a str>> for Claim<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Claim::Absent, Claim::Text)
    }
}

/// The state of the join that matters besides the claims.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinContext<'a> {
    /// The tenant of the URL the client connected with (`session.jitsi_web_query_prefix`).
    pub url_tenant: &'a str,
    /// The room says `allowUnauthenticatedAccess = false`.
    pub closed_to_guests: bool,
}

/// The decision for one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCheck {
    /// Whether the session may join, and why not.
    pub verdict: RoomVerdict,
    /// The token's tenant differs from the URL's (upstream sets
    /// `session.jitsi_meet_tenant_mismatch` then, whatever the verdict).
    pub tenant_mismatch: bool,
}

/// Let the session in, or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomVerdict {
    /// Let the session in.
    Allow,
    /// Refuse with `not-allowed`.
    Deny(RoomDenial),
}

/// Why a room was refused; each is one of upstream's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomDenial {
    /// Without domain verification: the room is not the token's.
    Mismatch,
    /// The pattern claim is malformed or too costly.
    InvalidPattern(PatternError),
    /// With domain verification: the room claim (or pattern) yields no room name.
    NameNotMatched,
    /// A `[tenant]room` and no `muc_mapper_domain_base`.
    MissingConfig,
    /// With domain verification: the room, domain or tenant differs (upstream answers a bare
    /// `false`, which its module reports without an error element).
    AddressMismatch,
}

impl RoomDenial {
    /// The application-specific error child upstream adds (`http://jitsi.org/jitmeet`), if any.
    pub fn error_element(&self) -> Option<&'static str> {
        match self {
            RoomDenial::Mismatch => Some("room-mismatch"),
            RoomDenial::InvalidPattern(_) => Some("invalid-regex"),
            RoomDenial::NameNotMatched => Some("room-name-does-not-match"),
            RoomDenial::MissingConfig => Some("server-missing-config"),
            RoomDenial::AddressMismatch => None,
        }
    }

    /// Why, for the log (the client gets [`fmt::Display`], upstream's text).
    pub fn detail(&self) -> String {
        match self {
            RoomDenial::InvalidPattern(error) => format!("invalid room pattern: {error}"),
            RoomDenial::MissingConfig => "muc_mapper_domain_base is not set".into(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for RoomDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoomDenial::Mismatch => "Room does not match the room from token",
            RoomDenial::InvalidPattern(_) => "Room claim is not a valid Lua pattern",
            RoomDenial::NameNotMatched => "Room name cannot be matched to the one from token.",
            RoomDenial::MissingConfig => "Misconfiguration of server",
            RoomDenial::AddressMismatch => "Room and token mismatched",
        })
    }
}

impl RoomPolicy {
    /// Whether `claims` let their session into `room_jid` (`node@muc.domain`, as Prosody
    /// prepped it; a resource is ignored). A session without a verified token passes
    /// [`RoomClaims::default`]. The caller has checked that the room exists.
    pub fn verify(
        &self,
        claims: RoomClaims<'_>,
        room_jid: &str,
        join: JoinContext<'_>,
    ) -> RoomCheck {
        let mut tenant_mismatch = false;
        let verdict = self.decide(claims, room_jid, join, &mut tenant_mismatch);
        RoomCheck { verdict, tenant_mismatch }
    }

    fn decide(
        &self,
        claims: RoomClaims<'_>,
        room_jid: &str,
        join: JoinContext<'_>,
        tenant_mismatch: &mut bool,
    ) -> RoomVerdict {
        let bare = room_jid.split('/').next().unwrap_or(room_jid);
        let node = bare.split_once('@').map_or(bare, |(node, _)| node);
        // A room claim that is not a string never names a room (gatehouse refuses such tokens
        // at login; this covers claims bound by another provider).
        let auth_room = match claims.room {
            Claim::Absent => None,
            Claim::Text(room) => Some(room.to_lowercase()),
            Claim::Other => return RoomVerdict::Deny(self.no_match_denial()),
        };
        if !self.domain_verification {
            // No room claim means no token for this domain: upstream lets it through.
            return match auth_room {
                Some(a) if a != "*" && node != a && !node.ends_with(&format!("]{a}")) => {
                    RoomVerdict::Deny(RoomDenial::Mismatch)
                }
                _ => RoomVerdict::Allow,
            };
        }
        let (target_tenant, target_room) = split_tenant(node);
        let room_to_check = match auth_room.as_deref() {
            Some("*") => Some(target_room.to_string()),
            Some(claim) if claims.room_is_pattern && self.patterns_enabled => {
                match lua_pattern::matched(claim, target_room, &self.pattern_budget) {
                    Ok(found) => found,
                    Err(error) => return RoomVerdict::Deny(RoomDenial::InvalidPattern(error)),
                }
            }
            other => other.map(str::to_string),
        };
        let Some(room_to_check) = room_to_check else {
            if !self.require_room_claim {
                return RoomVerdict::Allow;
            }
            return RoomVerdict::Deny(RoomDenial::NameNotMatched);
        };
        let tenant_differs = match claims.tenant {
            Claim::Absent => false,
            Claim::Text(tenant) => tenant.to_lowercase() != join.url_tenant,
            Claim::Other => true,
        };
        if tenant_differs {
            *tenant_mismatch = true;
            if join.closed_to_guests {
                return RoomVerdict::Deny(RoomDenial::AddressMismatch);
            }
        }
        let Claim::Text(sub) = claims.sub else {
            return RoomVerdict::Deny(RoomDenial::AddressMismatch);
        };
        let auth_domain = sub.to_lowercase();
        let expected = match target_tenant {
            Some(tenant) => {
                let tenant = if auth_domain == "*" { tenant } else { auth_domain.as_str() };
                let Some(muc_domain) = self.muc_domain() else {
                    return RoomVerdict::Deny(RoomDenial::MissingConfig);
                };
                Some(format!("[{tenant}]{room_to_check}@{muc_domain}"))
            }
            None if auth_domain == "*" => {
                self.muc_domain().map(|muc_domain| format!("{room_to_check}@{muc_domain}"))
            }
            None => Some(format!("{room_to_check}@{}.{auth_domain}", self.muc_domain_prefix)),
        };
        if expected.as_deref() == Some(bare) {
            RoomVerdict::Allow
        } else {
            RoomVerdict::Deny(RoomDenial::AddressMismatch)
        }
    }

    fn no_match_denial(&self) -> RoomDenial {
        if self.domain_verification {
            RoomDenial::AddressMismatch
        } else {
            RoomDenial::Mismatch
        }
    }

    /// The main MUC's domain, where upstream looks rooms up: `muc_mapper_domain`, else
    /// `{prefix}.{base}`; none without `muc_mapper_domain_base`.
    pub fn muc_domain(&self) -> Option<String> {
        let base = self.muc_domain_base.as_ref()?;
        Some(
            self.muc_domain.clone().unwrap_or_else(|| format!("{}.{base}", self.muc_domain_prefix)),
        )
    }
}

/// `[tenant]room` → (Some(tenant), room); anything else → (None, node), as upstream's
/// `extract_subdomain` (`^%[([^%]]+)%](.+)$`).
fn split_tenant(node: &str) -> (Option<&str>, &str) {
    if let Some(rest) = node.strip_prefix('[') {
        if let Some((tenant, room)) = rest.split_once(']') {
            if !tenant.is_empty() && !room.is_empty() {
                return (Some(tenant), room);
            }
        }
    }
    (None, node)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUC: &str = "conference.meet.test";

    fn claims<'a>(room: &'a str, sub: &'a str) -> RoomClaims<'a> {
        RoomClaims { room: Claim::Text(room), sub: Claim::Text(sub), ..RoomClaims::default() }
    }

    fn pattern<'a>(room: &'a str, sub: &'a str) -> RoomClaims<'a> {
        RoomClaims { room_is_pattern: true, ..claims(room, sub) }
    }

    fn plain_policy() -> RoomPolicy {
        RoomPolicy { domain_verification: false, ..domain_policy() }
    }

    fn domain_policy() -> RoomPolicy {
        RoomPolicy { muc_domain_base: Some("meet.test".into()), ..RoomPolicy::default() }
    }

    fn check(policy: &RoomPolicy, c: RoomClaims<'_>, node: &str) -> RoomVerdict {
        policy.verify(c, &format!("{node}@{MUC}/nick"), JoinContext::default()).verdict
    }

    fn allowed(policy: &RoomPolicy, c: RoomClaims<'_>, node: &str) -> bool {
        check(policy, c, node) == RoomVerdict::Allow
    }

    #[test]
    fn test_domain_verification_is_on_by_default_as_upstream() {
        assert!(RoomPolicy::default().domain_verification);
    }

    #[test]
    fn test_plain_claim_matches_room_case_insensitively() {
        let p = plain_policy();
        assert!(allowed(&p, claims("Room1", "x"), "room1"));
        assert!(!allowed(&p, claims("room1", "x"), "room2"));
        assert!(!allowed(&p, claims("room1", "x"), "xroom1"));
        assert_eq!(check(&p, claims("a", "x"), "b"), RoomVerdict::Deny(RoomDenial::Mismatch));
    }

    #[test]
    fn test_unicode_names_lower_case_like_nodeprep() {
        for p in [plain_policy(), domain_policy()] {
            assert!(allowed(&p, claims("CAFÉ", "meet.test"), "café"));
            assert!(allowed(&p, claims("ΣΟΦΊΑ", "meet.test"), "σοφία"));
        }
    }

    #[test]
    fn test_star_and_tenant_forms_without_domain_verification() {
        let p = plain_policy();
        assert!(allowed(&p, claims("*", "x"), "anything"));
        assert!(allowed(&p, claims("room1", "x"), "[acme]room1"));
        assert!(!allowed(&p, claims("room1", "x"), "[acme]room2"));
    }

    #[test]
    fn test_session_without_room_claim() {
        // Without domain verification a session with no room claim is not checked (upstream).
        assert!(allowed(&plain_policy(), RoomClaims::default(), "room1"));
        // With it, upstream refuses it unless the room claim is optional.
        let p = domain_policy();
        assert_eq!(
            check(&p, RoomClaims::default(), "room1"),
            RoomVerdict::Deny(RoomDenial::NameNotMatched)
        );
        let optional = RoomPolicy { require_room_claim: false, ..domain_policy() };
        assert!(allowed(&optional, RoomClaims::default(), "room1"));
    }

    #[test]
    fn test_non_string_room_claim_never_matches() {
        let other = RoomClaims { room: Claim::Other, ..claims("", "meet.test") };
        assert!(!allowed(&plain_policy(), other, "room1"));
        assert!(!allowed(&domain_policy(), other, "room1"));
    }

    #[test]
    fn test_domain_verification_checks_sub_against_muc_domain() {
        let p = domain_policy();
        assert!(allowed(&p, claims("room1", "meet.test"), "room1"));
        assert!(allowed(&p, claims("room1", "MEET.test"), "room1"));
        assert!(!allowed(&p, claims("room1", "other.test"), "room1"));
        assert!(allowed(&p, claims("room1", "*"), "room1"));
        assert!(allowed(&p, claims("*", "meet.test"), "any"));
        let missing_sub = RoomClaims { sub: Claim::Absent, ..claims("room1", "") };
        assert_eq!(check(&p, missing_sub, "room1"), RoomVerdict::Deny(RoomDenial::AddressMismatch));
        // `sub = "*"` needs the main MUC domain, which needs muc_mapper_domain_base.
        let no_base = RoomPolicy::default();
        assert!(!allowed(&no_base, claims("room1", "*"), "room1"));
        assert!(allowed(&no_base, claims("room1", "meet.test"), "room1"));
    }

    #[test]
    fn test_domain_verification_checks_tenant() {
        let p = domain_policy();
        assert!(allowed(&p, claims("room1", "acme"), "[acme]room1"));
        assert!(allowed(&p, claims("room1", "ACME"), "[acme]room1"));
        assert!(!allowed(&p, claims("room1", "evil"), "[acme]room1"));
        assert!(allowed(&p, claims("*", "*"), "[acme]any"));
        let other_muc = p.verify(
            claims("room1", "acme"),
            "[acme]room1@conference.other.test",
            JoinContext::default(),
        );
        assert_eq!(other_muc.verdict, RoomVerdict::Deny(RoomDenial::AddressMismatch));
        let no_base = RoomPolicy::default();
        let verdict = check(&no_base, claims("room1", "acme"), "[acme]room1");
        assert_eq!(verdict, RoomVerdict::Deny(RoomDenial::MissingConfig));
        assert_eq!(RoomDenial::MissingConfig.error_element(), Some("server-missing-config"));
    }

    #[test]
    fn test_tenant_claim_differing_from_url_is_flagged_and_closes_guarded_rooms() {
        let p = domain_policy();
        let c = RoomClaims { tenant: Claim::Text("Acme"), ..claims("room1", "meet.test") };
        let room = format!("room1@{MUC}");
        let same = p.verify(c, &room, JoinContext { url_tenant: "acme", closed_to_guests: true });
        assert_eq!(same, RoomCheck { verdict: RoomVerdict::Allow, tenant_mismatch: false });
        let open = p.verify(c, &room, JoinContext { url_tenant: "", closed_to_guests: false });
        assert_eq!(open, RoomCheck { verdict: RoomVerdict::Allow, tenant_mismatch: true });
        let closed = p.verify(c, &room, JoinContext { url_tenant: "", closed_to_guests: true });
        assert_eq!(closed.verdict, RoomVerdict::Deny(RoomDenial::AddressMismatch));
        assert!(closed.tenant_mismatch);
    }

    #[test]
    fn test_pattern_claim_must_match_the_whole_room_name() {
        let p = domain_policy();
        assert!(allowed(&p, pattern("^team%d+$", "meet.test"), "team42"));
        assert!(!allowed(&p, pattern("^team%d+$", "meet.test"), "team"));
        // Unanchored patterns: what they match is compared with the name, as upstream does.
        assert!(allowed(&p, pattern("team%d+", "meet.test"), "team1"));
        assert!(!allowed(&p, pattern("team%d+", "meet.test"), "team1-secret-board"));
        assert!(!allowed(&p, pattern("a", "meet.test"), "banana"));
        assert!(allowed(&p, pattern("a", "meet.test"), "a"));
        assert!(!allowed(&p, pattern("^sales", "acme"), "[acme]sales-q3"));
        assert!(allowed(&p, pattern("^sales.*", "acme"), "[acme]sales-q3"));
        assert!(allowed(&p, pattern(".*", "meet.test"), "anything"));
        // A capture is what string.match returns.
        assert!(allowed(&p, pattern("^(team%d+)$", "meet.test"), "team7"));
        assert!(!allowed(&p, pattern("^(team)%d+$", "meet.test"), "team7"));
        // The claim is lower-cased before it is a pattern, as upstream: %D becomes %d.
        assert!(allowed(&p, pattern("^TEAM%D+$", "meet.test"), "team7"));
        // Without a match there is no room name: refused unless the room claim is optional.
        assert_eq!(
            check(&p, pattern("^x$", "meet.test"), "team7"),
            RoomVerdict::Deny(RoomDenial::NameNotMatched)
        );
    }

    #[test]
    fn test_pattern_claim_is_literal_when_patterns_are_disabled_or_without_domain_check() {
        let p = RoomPolicy { patterns_enabled: false, ..domain_policy() };
        assert!(!allowed(&p, pattern("^team%d+$", "meet.test"), "team42"));
        assert!(!allowed(&plain_policy(), pattern("^team%d+$", "meet.test"), "team42"));
    }

    #[test]
    fn test_costly_or_malformed_pattern_is_refused_as_invalid_regex() {
        let p = domain_policy();
        for bad in ["team[", "a*b*c*d*e*", &"x".repeat(200)] {
            match check(&p, pattern(bad, "meet.test"), "team") {
                RoomVerdict::Deny(denial) => {
                    assert_eq!(denial.error_element(), Some("invalid-regex"), "{bad}");
                    assert_eq!(denial.to_string(), "Room claim is not a valid Lua pattern");
                }
                RoomVerdict::Allow => panic!("{bad} allowed"),
            }
        }
    }

    #[test]
    fn test_denials_carry_upstream_elements_and_texts() {
        let cases = [
            (
                RoomDenial::Mismatch,
                Some("room-mismatch"),
                "Room does not match the room from token",
            ),
            (
                RoomDenial::NameNotMatched,
                Some("room-name-does-not-match"),
                "Room name cannot be matched to the one from token.",
            ),
            (RoomDenial::AddressMismatch, None, "Room and token mismatched"),
        ];
        for (denial, element, text) in cases {
            assert_eq!(denial.error_element(), element);
            assert_eq!(denial.to_string(), text);
        }
    }
}
