//! The room-dependent parts of a challenge: the URI and the statement of its SIWE message.
//!
//! A room's JID node is whatever Jitsi made of the name a user typed: percent-encoded
//! (`my%20meeting`, `caf%c3%a9`: jitsi-meet's `getBackendSafeRoomName`), raw Unicode (`café`,
//! older and mobile clients), or anything else nodeprep lets through (`100%`). EIP-4361 allows
//! neither `%` nor non-ASCII in a statement and wants an RFC 3986 URI, so both are derived here,
//! from the node's bytes once percent-decoded, and are valid for every node.

use std::fmt;

/// The longest room name quoted in a statement; longer names are named by the URI only.
const MAX_QUOTED_NAME: usize = 64;

/// The room's URI: `template` with its one `%s` replaced by the node as one path segment.
/// Percent-escapes in the node are decoded first, then every byte that is not an RFC 3986
/// `pchar` is encoded (upper-case hex), so `caf%c3%a9` and `café` both give `caf%C3%A9` and a
/// stray `%` gives `%25`.
pub fn room_uri(template: &str, node: &str) -> Result<String, RoomTextError> {
    let (before, after) = template.split_once("%s").ok_or(RoomTextError::NoPlaceholder)?;
    if after.contains("%s") {
        return Err(RoomTextError::NoPlaceholder);
    }
    let mut out = String::with_capacity(template.len() + node.len() * 3);
    out.push_str(before);
    for byte in percent_decode(node) {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out.push_str(after);
    Ok(out)
}

/// The statement a wallet shows: the room's name as typed when EIP-4361 allows it there
/// (ASCII reserved and unreserved characters and spaces), else a pointer to the URI; and the
/// guild (url names are `[a-z0-9-]`).
pub fn statement(node: &str, guild: &str) -> String {
    let guild = if super::siwe::is_statement(guild) { guild } else { "named by the room" };
    let decoded = String::from_utf8(percent_decode(node)).unwrap_or_default();
    let quotable = !decoded.trim().is_empty()
        && decoded.len() <= MAX_QUOTED_NAME
        && super::siwe::is_statement(&decoded);
    if quotable {
        format!("Join the room {decoded}, open to members of the guild {guild}.")
    } else {
        format!("Join the room at the URI below, open to members of the guild {guild}.")
    }
}

/// Why a room's URI cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomTextError {
    /// The URI template does not hold exactly one `%s`.
    NoPlaceholder,
}

impl fmt::Display for RoomTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomTextError::NoPlaceholder => write!(f, "room URL must contain %s exactly once"),
        }
    }
}

impl std::error::Error for RoomTextError {}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays a literal `%`.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::siwe::is_statement;

    const SITE: &str = "https://meet.example.org/%s";

    #[test]
    fn test_uri_is_one_encoded_path_segment_for_every_jitsi_room_name() {
        let cases = [
            ("standup", "https://meet.example.org/standup"),
            ("my%20meeting", "https://meet.example.org/my%20meeting"),
            ("caf%c3%a9", "https://meet.example.org/caf%C3%A9"),
            ("café", "https://meet.example.org/caf%C3%A9"),
            ("100%", "https://meet.example.org/100%25"),
            ("a%2fb", "https://meet.example.org/a%2Fb"),
            ("a%zz", "https://meet.example.org/a%25zz"),
            ("x\\20y", "https://meet.example.org/x%5C20y"),
            ("日本", "https://meet.example.org/%E6%97%A5%E6%9C%AC"),
            ("it's(fine)!", "https://meet.example.org/it's(fine)!"),
        ];
        for (node, uri) in cases {
            assert_eq!(room_uri(SITE, node).unwrap(), uri, "{node}");
        }
        assert_eq!(
            room_uri("https://x.example/r?name=%s&x=1", "a b").unwrap(),
            "https://x.example/r?name=a%20b&x=1"
        );
        assert_eq!(room_uri("https://x.example/", "a"), Err(RoomTextError::NoPlaceholder));
        assert_eq!(room_uri("https://x.example/%s/%s", "a"), Err(RoomTextError::NoPlaceholder));
    }

    #[test]
    fn test_statement_quotes_the_name_only_when_eip4361_allows_it() {
        assert_eq!(
            statement("my%20meeting", "our-guild"),
            "Join the room my meeting, open to members of the guild our-guild."
        );
        assert_eq!(
            statement("standup", "our-guild"),
            "Join the room standup, open to members of the guild our-guild."
        );
        let pointer = "Join the room at the URI below, open to members of the guild our-guild.";
        for node in ["caf%c3%a9", "café", "100%", "%0a", "x\\20y", "%20", &"a".repeat(65)] {
            assert_eq!(statement(node, "our-guild"), pointer, "{node}");
        }
        for node in ["caf%c3%a9", "a%0d%0ab", "100%", "%ff%fe", "my%20meeting", "x\"y"] {
            assert!(is_statement(&statement(node, "our-guild")), "{node}");
            assert!(is_statement(&statement(node, "bad guild\n%")), "{node}");
        }
    }
}
