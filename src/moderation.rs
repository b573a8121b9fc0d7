//! Token moderation: which room affiliation a token holder gets, and who may make owners.
//!
//! The rule is nvonahsen's `mod_token_moderation`: the top-level claim `moderator` set to the
//! boolean `true`, or being a server admin, makes an owner; every other token holder is a
//! member, and an explicit `moderator: false` is a member whatever else the token says. Behind
//! an option (on by default) jitsi-meet's newer convention also makes owners:
//! `context.user.moderator` true (or `"true"`) and `context.user.affiliation` `owner`,
//! `moderator` or `teacher`.
//!
//! Nobody else makes owners: [`owner_grant`] decides what happens to an owner (or admin) grant
//! that does not come from the token, with one fix over upstream, which refused Jicofo too and
//! so filled its log with "Failed to grant owner": Jicofo's grants are answered without an
//! error. Upstream guarded the owner affiliation so that only tokens make moderators; the
//! moderator *role* (and the admin affiliation, whose default role is moderator) reach the same
//! result by another path, so [`moderator_role_grant`] guards the role the same way.

use serde_json::Value;

/// How token claims are read. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModerationPolicy {
    /// `token_moderation_accept_context_user`: honour `context.user.moderator` and
    /// `context.user.affiliation` as well as the top-level `moderator`. Defaults to true.
    pub accept_context_user: bool,
}

impl Default for ModerationPolicy {
    fn default() -> Self {
        ModerationPolicy { accept_context_user: true }
    }
}

/// The affiliation a token gives its holder in every room of the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affiliation {
    /// Room owner (Jitsi's moderator).
    Owner,
    /// Room member: a participant, never a moderator by token.
    Member,
}

impl Affiliation {
    /// The XEP-0045 name Prosody uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Member => "member",
        }
    }
}

/// The claims moderation reads, parsed once from the verified claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModerationClaims {
    /// The top-level `moderator` claim, when it is a real boolean (`"true"` is not).
    pub moderator: Option<bool>,
    /// `context.user.moderator` is `true` or `"true"`.
    pub user_moderator: bool,
    /// `context.user.affiliation` is `owner`, `moderator` or `teacher`.
    pub user_owner_affiliation: bool,
}

impl ModerationClaims {
    /// Reads the claims object of a verified token; other shapes claim nothing.
    pub fn from_claims(claims: &Value) -> ModerationClaims {
        let user = claims.get("context").and_then(|context| context.get("user"));
        let user_field = |name: &str| user.and_then(|user| user.get(name));
        ModerationClaims {
            moderator: claims.get("moderator").and_then(Value::as_bool),
            user_moderator: matches!(user_field("moderator"), Some(Value::Bool(true)))
                || user_field("moderator").and_then(Value::as_str) == Some("true"),
            user_owner_affiliation: matches!(
                user_field("affiliation").and_then(Value::as_str),
                Some("owner" | "moderator" | "teacher")
            ),
        }
    }
}

impl ModerationPolicy {
    /// The affiliation of a token holder with `claims`; `is_admin` for a server admin.
    pub fn affiliation(&self, claims: &ModerationClaims, is_admin: bool) -> Affiliation {
        if is_admin || claims.moderator == Some(true) {
            return Affiliation::Owner;
        }
        if claims.moderator == Some(false) {
            // The operator said no in the claim upstream defines; the newer claims cannot
            // overrule it.
            return Affiliation::Member;
        }
        if self.accept_context_user && (claims.user_moderator || claims.user_owner_affiliation) {
            return Affiliation::Owner;
        }
        Affiliation::Member
    }
}

/// Who asks to make someone an owner, as far as moderation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantor {
    /// Jicofo's `focus` user (a server admin), whose automatic owner election must not
    /// overrule the tokens.
    Focus,
    /// Any other server admin: a person the operator trusts, deciding on purpose.
    Admin,
    /// Everyone else: room owners, other modules, the room creating its first owner.
    Other,
}

/// What happens to an owner grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerGrant {
    /// Let it through.
    Apply,
    /// Answer success without changing anything, so Jicofo neither logs an error nor retries.
    Acknowledge,
    /// Refuse with `not-acceptable` (upstream's answer).
    Refuse,
}

impl OwnerGrant {
    /// The name the binding hands to Lua.
    pub fn as_str(&self) -> &'static str {
        match self {
            OwnerGrant::Apply => "apply",
            OwnerGrant::Acknowledge => "acknowledge",
            OwnerGrant::Refuse => "refuse",
        }
    }
}

/// Decides an owner grant by `grantor` for a target whose own token (or admin status) already
/// makes them an owner (`target_is_owner_by_token`).
pub fn owner_grant(grantor: Grantor, target_is_owner_by_token: bool) -> OwnerGrant {
    match grantor {
        _ if target_is_owner_by_token => OwnerGrant::Apply,
        Grantor::Admin => OwnerGrant::Apply,
        Grantor::Focus => OwnerGrant::Acknowledge,
        Grantor::Other => OwnerGrant::Refuse,
    }
}

/// Decides a grant of the moderator role to an occupant whose affiliation is below admin, by
/// `grantor`. Server admins (Jicofo included) decide on purpose; anyone else may only confirm
/// what the target's token already says.
pub fn moderator_role_grant(grantor: Grantor, target_is_owner_by_token: bool) -> OwnerGrant {
    match grantor {
        _ if target_is_owner_by_token => OwnerGrant::Apply,
        Grantor::Admin | Grantor::Focus => OwnerGrant::Apply,
        Grantor::Other => OwnerGrant::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn affiliation(claims: Value) -> Affiliation {
        ModerationPolicy::default().affiliation(&ModerationClaims::from_claims(&claims), false)
    }

    #[test]
    fn test_moderator_true_makes_an_owner() {
        assert_eq!(affiliation(json!({ "moderator": true })), Affiliation::Owner);
    }

    #[test]
    fn test_moderator_false_absent_or_not_boolean_makes_a_member() {
        for claims in [
            json!({ "moderator": false }),
            json!({}),
            json!({ "moderator": "true" }),
            json!({ "moderator": 1 }),
            json!({ "moderator": null }),
        ] {
            assert_eq!(affiliation(claims.clone()), Affiliation::Member, "{claims}");
        }
    }

    #[test]
    fn test_admin_is_an_owner_whatever_the_token_says() {
        let policy = ModerationPolicy::default();
        let refused = ModerationClaims::from_claims(&json!({ "moderator": false }));
        assert_eq!(policy.affiliation(&refused, true), Affiliation::Owner);
        assert_eq!(policy.affiliation(&ModerationClaims::default(), true), Affiliation::Owner);
    }

    #[test]
    fn test_context_user_convention_makes_owners() {
        for user in [
            json!({ "moderator": true }),
            json!({ "moderator": "true" }),
            json!({ "affiliation": "owner" }),
            json!({ "affiliation": "moderator" }),
            json!({ "affiliation": "teacher" }),
        ] {
            assert_eq!(
                affiliation(json!({ "context": { "user": user } })),
                Affiliation::Owner,
                "{user}"
            );
        }
        for user in [
            json!({ "moderator": "yes" }),
            json!({ "moderator": false }),
            json!({ "affiliation": "member" }),
            json!({ "affiliation": "Owner" }),
            json!("owner"),
        ] {
            assert_eq!(
                affiliation(json!({ "context": { "user": user } })),
                Affiliation::Member,
                "{user}"
            );
        }
    }

    #[test]
    fn test_explicit_moderator_false_overrules_context_user() {
        let claims =
            json!({ "moderator": false, "context": { "user": { "affiliation": "owner" } } });
        assert_eq!(affiliation(claims), Affiliation::Member);
    }

    #[test]
    fn test_context_user_ignored_when_option_is_off() {
        let policy = ModerationPolicy { accept_context_user: false };
        let claims =
            ModerationClaims::from_claims(&json!({ "context": { "user": { "moderator": true } } }));
        assert_eq!(policy.affiliation(&claims, false), Affiliation::Member);
        let top = ModerationClaims::from_claims(&json!({ "moderator": true }));
        assert_eq!(policy.affiliation(&top, false), Affiliation::Owner);
    }

    #[test]
    fn test_claims_of_the_wrong_shape_claim_nothing() {
        for claims in [
            json!(null),
            json!("moderator"),
            json!([true]),
            json!({ "context": "user" }),
            json!({ "context": { "user": [1, 2] } }),
        ] {
            assert_eq!(
                ModerationClaims::from_claims(&claims),
                ModerationClaims::default(),
                "{claims}"
            );
        }
    }

    #[test]
    fn test_owner_grants_to_token_owners_always_apply() {
        for grantor in [Grantor::Focus, Grantor::Admin, Grantor::Other] {
            assert_eq!(owner_grant(grantor, true), OwnerGrant::Apply);
        }
    }

    #[test]
    fn test_owner_grants_to_token_members() {
        assert_eq!(owner_grant(Grantor::Admin, false), OwnerGrant::Apply);
        assert_eq!(owner_grant(Grantor::Focus, false), OwnerGrant::Acknowledge);
        assert_eq!(owner_grant(Grantor::Other, false), OwnerGrant::Refuse);
    }

    #[test]
    fn test_moderator_role_only_from_admins_or_the_token() {
        for grantor in [Grantor::Focus, Grantor::Admin, Grantor::Other] {
            assert_eq!(moderator_role_grant(grantor, true), OwnerGrant::Apply);
        }
        assert_eq!(moderator_role_grant(Grantor::Admin, false), OwnerGrant::Apply);
        assert_eq!(moderator_role_grant(Grantor::Focus, false), OwnerGrant::Apply);
        assert_eq!(moderator_role_grant(Grantor::Other, false), OwnerGrant::Refuse);
    }
}
