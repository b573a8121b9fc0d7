//! Sign-In with Ethereum (EIP-4361) messages: built from fields, parsed strictly, verified
//! field by field against what the server expects.
//!
//! The server builds the message it wants signed; the client sends back the text it signed.
//! Parsing it again (rather than trusting the server's copy) means a client that changed a
//! field, or a wallet that reformatted the text, is caught with an error naming the field.

use std::fmt;

use super::Address;
use crate::clock::UnixTime;

/// The fields of a SIWE message this server builds and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// The optional RFC 3986 scheme written before the domain (`https` in
    /// `https://meet.example.org wants you to …`). The server's own challenges carry none.
    pub scheme: Option<String>,
    /// The RFC 3986 authority asking for the signature (the Jitsi domain).
    pub domain: String,
    /// The signing account.
    pub address: Address,
    /// Human-readable text, one line.
    pub statement: Option<String>,
    /// RFC 3986 URI the signature is for (the room's address).
    pub uri: String,
    /// EIP-155 chain id. Defaults to 1 (Ethereum mainnet) in the server's configuration.
    pub chain_id: u64,
    /// At least 8 alphanumerics, chosen by the server.
    pub nonce: String,
    /// When the message was made.
    pub issued_at: UnixTime,
    /// After this the signature is worthless.
    pub expiration_time: Option<UnixTime>,
    /// Before this the signature is not yet valid.
    pub not_before: Option<UnixTime>,
    /// An opaque request identifier.
    pub request_id: Option<String>,
    /// URIs the user also grants access to.
    pub resources: Vec<String>,
}

/// What the verifier expects every field to be.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The Jitsi domain.
    pub domain: &'a str,
    /// The room's URI.
    pub uri: &'a str,
    /// The configured chain id.
    pub chain_id: u64,
    /// The address the client claims.
    pub address: &'a Address,
    /// The nonce of the challenge, when known before parsing.
    pub nonce: Option<&'a str>,
    /// The time to judge validity at.
    pub now: UnixTime,
}

/// Clock difference tolerated for `Issued At` in the future, in seconds.
const ISSUED_AT_SKEW: u64 = 60;

const HEADER_SUFFIX: &str = " wants you to sign in with your Ethereum account:";

impl SiweMessage {
    /// The message text, exactly as the wallet shows and signs it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(scheme) = &self.scheme {
            out.push_str(scheme);
            out.push_str("://");
        }
        out.push_str(&format!(
            "{}{HEADER_SUFFIX}\n{}\n\n",
            self.domain,
            self.address.to_checksum()
        ));
        if let Some(statement) = &self.statement {
            out.push_str(statement);
            out.push('\n');
        }
        out.push_str(&format!("\nURI: {}\nVersion: 1\nChain ID: {}\n", self.uri, self.chain_id));
        out.push_str(&format!("Nonce: {}\nIssued At: {}", self.nonce, format_time(self.issued_at)));
        if let Some(t) = self.expiration_time {
            out.push_str(&format!("\nExpiration Time: {}", format_time(t)));
        }
        if let Some(t) = self.not_before {
            out.push_str(&format!("\nNot Before: {}", format_time(t)));
        }
        if let Some(id) = &self.request_id {
            out.push_str(&format!("\nRequest ID: {id}"));
        }
        if !self.resources.is_empty() {
            out.push_str("\nResources:");
            for resource in &self.resources {
                out.push_str(&format!("\n- {resource}"));
            }
        }
        out
    }

    /// Parses a message strictly: fields in EIP-4361 order, LF line ends, nothing extra.
    pub fn parse(text: &str) -> Result<SiweMessage, SiweError> {
        if text.contains('\r') {
            return Err(SiweError::CarriageReturn);
        }
        let mut lines = text.split('\n').peekable();
        let header = lines.next().unwrap_or_default();
        let origin = header.strip_suffix(HEADER_SUFFIX).ok_or(SiweError::BadHeader)?;
        // EIP-4361: `[ scheme "://" ] domain`.
        let (scheme, domain) = match origin.split_once("://") {
            Some((scheme, domain)) if is_scheme(scheme) => (Some(scheme.to_string()), domain),
            Some(_) => return Err(SiweError::BadDomain),
            None => (None, origin),
        };
        if !is_authority(domain) {
            return Err(SiweError::BadDomain);
        }
        let address_line = lines.next().ok_or(SiweError::BadAddress)?;
        let address = Address::parse(address_line).map_err(|_| SiweError::BadAddress)?;
        if address.to_checksum() != address_line {
            return Err(SiweError::BadAddress); // EIP-4361 requires the EIP-55 form
        }
        if lines.next() != Some("") {
            return Err(SiweError::BadStatement);
        }
        let statement = match lines.next() {
            Some("") => None,
            Some(line) if !line.starts_with("URI: ") => {
                if !is_statement(line) || lines.next() != Some("") {
                    return Err(SiweError::BadStatement);
                }
                Some(line.to_string())
            }
            _ => return Err(SiweError::BadStatement),
        };
        let uri = field(lines.next(), "URI: ", SiweError::BadUri)?;
        if !is_uri(uri) {
            return Err(SiweError::BadUri);
        }
        if field(lines.next(), "Version: ", SiweError::BadVersion)? != "1" {
            return Err(SiweError::BadVersion);
        }
        let chain = field(lines.next(), "Chain ID: ", SiweError::BadChainId)?;
        let chain_id = parse_decimal(chain).ok_or(SiweError::BadChainId)?;
        let nonce = field(lines.next(), "Nonce: ", SiweError::BadNonce)?;
        if nonce.len() < 8 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SiweError::BadNonce);
        }
        let issued = field(lines.next(), "Issued At: ", SiweError::BadIssuedAt)?;
        let issued_at = parse_time(issued).ok_or(SiweError::BadIssuedAt)?;
        let mut message = SiweMessage {
            scheme,
            domain: domain.to_string(),
            address,
            statement,
            uri: uri.to_string(),
            chain_id,
            nonce: nonce.to_string(),
            issued_at,
            expiration_time: None,
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        };
        if let Some(value) = optional(&mut lines, "Expiration Time: ") {
            message.expiration_time = Some(parse_time(value).ok_or(SiweError::BadExpirationTime)?);
        }
        if let Some(value) = optional(&mut lines, "Not Before: ") {
            message.not_before = Some(parse_time(value).ok_or(SiweError::BadNotBefore)?);
        }
        if let Some(value) = optional(&mut lines, "Request ID: ") {
            if value.bytes().any(|b| b.is_ascii_control()) {
                return Err(SiweError::BadRequestId);
            }
            message.request_id = Some(value.to_string());
        }
        if lines.peek() == Some(&"Resources:") {
            lines.next();
            for line in lines.by_ref() {
                match line.strip_prefix("- ") {
                    Some(resource) if is_uri(resource) => {
                        message.resources.push(resource.to_string())
                    }
                    _ => return Err(SiweError::BadResources),
                }
            }
        }
        if lines.next().is_some() {
            return Err(SiweError::TrailingText);
        }
        Ok(message)
    }

    /// Checks every field against what the server expects, then the validity window.
    pub fn verify(&self, expected: &Expected<'_>) -> Result<(), SiweError> {
        if self.domain != expected.domain {
            return Err(SiweError::Mismatch { field: "domain" });
        }
        // A scheme, when the wallet wrote one, is the site's: the scheme of the room's URI.
        let site_scheme = expected.uri.split_once(':').map(|(scheme, _)| scheme);
        if self.scheme.as_deref().is_some_and(|s| Some(s) != site_scheme) {
            return Err(SiweError::Mismatch { field: "scheme" });
        }
        if &self.address != expected.address {
            return Err(SiweError::Mismatch { field: "address" });
        }
        if self.uri != expected.uri {
            return Err(SiweError::Mismatch { field: "URI" });
        }
        if self.chain_id != expected.chain_id {
            return Err(SiweError::Mismatch { field: "Chain ID" });
        }
        if expected.nonce.is_some_and(|nonce| nonce != self.nonce) {
            return Err(SiweError::Mismatch { field: "Nonce" });
        }
        let now = expected.now.0;
        if self.expiration_time.is_some_and(|t| t.0 <= now) {
            return Err(SiweError::Expired);
        }
        if self.not_before.is_some_and(|t| t.0 > now)
            || self.issued_at.0 > now.saturating_add(ISSUED_AT_SKEW)
        {
            return Err(SiweError::NotYetValid);
        }
        Ok(())
    }
}

/// Why a SIWE message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiweError {
    /// The text has a CR: EIP-4361 lines end with LF only.
    CarriageReturn,
    /// The first line is not `[scheme://]<domain> wants you to sign in with your Ethereum account:`.
    BadHeader,
    /// The domain is empty or not an RFC 3986 authority, or the scheme before it is malformed.
    BadDomain,
    /// The second line is not an EIP-55 address.
    BadAddress,
    /// The blank lines around the statement are wrong, or the statement has a character
    /// EIP-4361 forbids there (only RFC 3986 reserved and unreserved characters and spaces).
    BadStatement,
    /// The `URI:` line is missing or not an absolute URI.
    BadUri,
    /// The `Version:` line is missing or not `1`.
    BadVersion,
    /// The `Chain ID:` line is missing or not a decimal number.
    BadChainId,
    /// The `Nonce:` line is missing or not 8+ alphanumerics.
    BadNonce,
    /// The `Issued At:` line is missing or not RFC 3339.
    BadIssuedAt,
    /// The `Expiration Time:` line is not RFC 3339.
    BadExpirationTime,
    /// The `Not Before:` line is not RFC 3339.
    BadNotBefore,
    /// The `Request ID:` line has control characters.
    BadRequestId,
    /// A `Resources:` item is not `- <uri>`.
    BadResources,
    /// Lines follow the last field.
    TrailingText,
    /// A field differs from what the server asked for.
    Mismatch {
        /// The field's name as it appears in the message.
        field: &'static str,
    },
    /// The expiration time has passed.
    Expired,
    /// The not-before time (or the issue time) is still in the future.
    NotYetValid,
}

impl SiweError {
    /// A stable kebab-case code for Lua.
    pub fn code(&self) -> &'static str {
        match self {
            SiweError::Mismatch { .. } => "siwe-mismatch",
            SiweError::Expired => "siwe-expired",
            SiweError::NotYetValid => "siwe-not-yet-valid",
            _ => "siwe-malformed",
        }
    }
}

impl fmt::Display for SiweError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            SiweError::CarriageReturn => "SIWE message has CR line ends",
            SiweError::BadHeader => "SIWE message has no valid first line",
            SiweError::BadDomain => "SIWE message has a bad domain",
            SiweError::BadAddress => "SIWE message has no EIP-55 address",
            SiweError::BadStatement => "SIWE message has a bad statement",
            SiweError::BadUri => "SIWE message has a bad URI",
            SiweError::BadVersion => "SIWE message version is not 1",
            SiweError::BadChainId => "SIWE message has a bad chain ID",
            SiweError::BadNonce => "SIWE message has a bad nonce",
            SiweError::BadIssuedAt => "SIWE message has a bad issued-at time",
            SiweError::BadExpirationTime => "SIWE message has a bad expiration time",
            SiweError::BadNotBefore => "SIWE message has a bad not-before time",
            SiweError::BadRequestId => "SIWE message has a bad request ID",
            SiweError::BadResources => "SIWE message has a bad resources list",
            SiweError::TrailingText => "SIWE message has text after its last field",
            SiweError::Mismatch { field } => {
                return write!(f, "SIWE message {field} is not the one asked for")
            }
            SiweError::Expired => "SIWE message has expired",
            SiweError::NotYetValid => "SIWE message is not valid yet",
        };
        f.write_str(text)
    }
}

impl std::error::Error for SiweError {}

fn field<'a>(line: Option<&'a str>, prefix: &str, error: SiweError) -> Result<&'a str, SiweError> {
    line.and_then(|l| l.strip_prefix(prefix)).ok_or(error)
}

fn optional<'a, I: Iterator<Item = &'a str>>(
    lines: &mut std::iter::Peekable<I>,
    prefix: &str,
) -> Option<&'a str> {
    let value = lines.peek().and_then(|l| l.strip_prefix(prefix))?;
    lines.next();
    Some(value)
}

fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// EIP-4361's statement: `*( reserved / unreserved / " " )` of RFC 3986 (ASCII only: no `%`,
/// no line break, no control character).
pub fn is_statement(text: &str) -> bool {
    text.bytes().all(|b| is_unreserved(b) || is_reserved(b) || b == b' ')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn is_reserved(b: u8) -> bool {
    b":/?#[]@!$&'()*+,;=".contains(&b)
}

/// An RFC 3986 authority as a host would write it: no spaces, no path, no controls.
fn is_authority(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:[]@!$&'()*+,;=%".contains(&b))
}

/// An absolute URI: a scheme, a colon, then only RFC 3986 characters, every `%` starting a
/// percent-encoded octet.
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else { return false };
    if !is_scheme(scheme) || rest.is_empty() {
        return false;
    }
    let bytes = rest.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'%' => bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
        _ => is_unreserved(b) || is_reserved(b),
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC.
pub fn format_time(time: UnixTime) -> String {
    let days = (time.0 / 86_400) as i64;
    let secs = time.0 % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// RFC 3339 date-time (`T` or `t`, fraction allowed and dropped, `Z` or `±HH:MM`).
pub fn parse_time(text: &str) -> Option<UnixTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || !matches!(ob[0], b'+' | b'-') || ob[3] != b':' {
                return None;
            }
            // Positions 19.. of an ASCII-checked prefix; `num` refuses signs and non-digits.
            let base = text.len() - 6;
            let (oh, om) = (num(base + 1..base + 3)?, num(base + 4..base + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if ob[0] == b'+' { 1 } else { -1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset;
    u64::try_from(seconds).ok().map(UnixTime)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian, days since 1970-01-01).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}
