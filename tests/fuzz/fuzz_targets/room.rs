//! Room names and pattern claims: the bounded Lua-pattern matcher and Jitsi's room rules.
//! Input: pattern, subject and room address separated by NUL bytes.
#![no_main]

use gatehouse::lua_pattern::{self, Budget};
use gatehouse::room::{Claim, JoinContext, RoomClaims, RoomPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let pattern = parts.next().unwrap_or("");
    let subject = parts.next().unwrap_or("");
    let room_jid = parts.next().unwrap_or("room@conference.meet.test");
    let _ = lua_pattern::is_match(pattern, subject, &Budget::default());
    let _ = lua_pattern::count_quantifiers(pattern);
    let policy = RoomPolicy {
        domain_verification: true,
        muc_domain_base: Some("meet.test".into()),
        ..RoomPolicy::default()
    };
    for room_is_pattern in [false, true] {
        let claims = RoomClaims {
            room: Claim::Text(pattern),
            sub: Claim::Text(subject),
            room_is_pattern,
            tenant: Claim::Text(subject),
        };
        let join = JoinContext { url_tenant: subject, closed_to_guests: room_is_pattern };
        let _ = policy.verify(claims, room_jid, join);
        let _ = RoomPolicy::default().verify(claims, room_jid, JoinContext::default());
    }
});
