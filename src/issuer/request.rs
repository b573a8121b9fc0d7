//! One request frame parsed into a typed [`Request`], or the precise reason it is refused.
//!
//! Upstream silently dropped bad JSON and crashed on a bad `validUntil`; every bad request here
//! gets a `success: false` reply whose message names the field and what was expected.

use std::fmt;

use serde_json::{Map, Value};

/// The one command the protocol knows.
pub const JWT_TOKEN: &str = "jwt_token";

/// Why a request was refused. The `Display` text is the reply's `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The frame is not JSON (or not UTF-8).
    BadJson(String),
    /// The frame is JSON but not an object.
    NotAnObject,
    /// A mandatory field is absent (or `null`).
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// `cmd` is not `jwt_token`.
    UnknownCommand(String),
    /// `channel` is the empty string.
    EmptyChannel,
    /// Both `validUntil` and `validFor` are given.
    BothValidities,
    /// Neither `validUntil` nor `validFor` is given.
    NoValidity,
    /// `validFor` is zero or negative.
    NotPositive,
    /// `validUntil` is not after the server's time.
    InPast {
        /// The requested expiry.
        valid_until: i64,
        /// The server's time.
        now: u64,
    },
    /// The token would live longer than the configured maximum.
    TooLong {
        /// The requested lifetime, in seconds.
        seconds: i64,
        /// The maximum, in seconds.
        max: u64,
    },
    /// An allow-list is configured and the channel is not on it.
    ChannelNotAllowed(String),
    /// A shared secret is configured and the request's `secret` does not match it.
    WrongSecret,
    /// The token could not be signed (a server fault, not the client's).
    Signing(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::BadJson(detail) => write!(f, "bad JSON: {detail}"),
            RequestError::NotAnObject => write!(f, "request must be a JSON object"),
            RequestError::MissingField(field) => write!(f, "missing field '{field}'"),
            RequestError::WrongType { field, expected } => {
                write!(f, "'{field}' must be {expected}")
            }
            RequestError::UnknownCommand(cmd) => {
                write!(f, "unknown cmd '{}' (expected '{JWT_TOKEN}')", shorten(cmd))
            }
            RequestError::EmptyChannel => write!(f, "'channel' must not be empty"),
            RequestError::BothValidities => {
                write!(f, "give only one of 'validUntil' and 'validFor'")
            }
            RequestError::NoValidity => write!(f, "one of 'validUntil' or 'validFor' is required"),
            RequestError::NotPositive => write!(f, "'validFor' must be positive"),
            RequestError::InPast { valid_until, now } => {
                write!(f, "'validUntil' {valid_until} is not in the future (server time {now})")
            }
            RequestError::TooLong { seconds, max } => {
                write!(f, "validity of {seconds} s exceeds the maximum of {max} s")
            }
            RequestError::ChannelNotAllowed(channel) => {
                write!(f, "channel '{}' is not allowed", shorten(channel))
            }
            RequestError::WrongSecret => write!(f, "wrong 'secret'"),
            RequestError::Signing(detail) => write!(f, "cannot sign token: {detail}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// How long the token lives, as the client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// `validUntil`: an absolute expiry, in Unix seconds.
    Until(i64),
    /// `validFor`: seconds from now.
    For(i64),
}

/// A well-formed `jwt_token` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `displayName`, the user's name in the meeting.
    pub display_name: String,
    /// `email`, if given.
    pub email: Option<String>,
    /// `avatar` (a URL), if given.
    pub avatar: Option<String>,
    /// `channel`, the room; `*` for every room.
    pub channel: String,
    /// `moderator`.
    pub moderator: bool,
    /// `validUntil` or `validFor`.
    pub validity: Validity,
}

/// A frame decoded as a JSON object, before its fields are read.
#[derive(Debug, Clone)]
pub struct Envelope {
    fields: Map<String, Value>,
}

impl Envelope {
    /// Decodes one frame. Fails when it is not a JSON object.
    pub fn parse(frame: &[u8]) -> Result<Envelope, RequestError> {
        match serde_json::from_slice::<Value>(frame) {
            Ok(Value::Object(fields)) => Ok(Envelope { fields }),
            Ok(_) => Err(RequestError::NotAnObject),
            Err(error) => Err(RequestError::BadJson(error.to_string())),
        }
    }

    /// `seq`, echoed back verbatim (any JSON value, as upstream did), if present.
    pub fn seq(&self) -> Option<&Value> {
        self.fields.get("seq")
    }

    /// The `secret` field, if it is a string.
    pub fn secret(&self) -> Result<&str, RequestError> {
        required_str(&self.fields, "secret")
    }

    /// Reads the request's fields. Unknown fields are ignored, as upstream did.
    pub fn request(&self) -> Result<Request, RequestError> {
        let fields = &self.fields;
        let cmd = required_str(fields, "cmd")?;
        if cmd != JWT_TOKEN {
            return Err(RequestError::UnknownCommand(cmd.to_string()));
        }
        let display_name = required_str(fields, "displayName")?.to_string();
        let email = optional_str(fields, "email")?;
        let avatar = optional_str(fields, "avatar")?;
        let channel = required_str(fields, "channel")?.to_string();
        if channel.is_empty() {
            return Err(RequestError::EmptyChannel);
        }
        let moderator = match fields.get("moderator") {
            None | Some(Value::Null) => return Err(RequestError::MissingField("moderator")),
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(RequestError::WrongType { field: "moderator", expected: "a boolean" })
            }
        };
        let until = optional_seconds(fields, "validUntil")?;
        let valid_for = optional_seconds(fields, "validFor")?;
        let validity = match (until, valid_for) {
            (Some(_), Some(_)) => return Err(RequestError::BothValidities),
            (None, None) => return Err(RequestError::NoValidity),
            (Some(until), None) => Validity::Until(until),
            (None, Some(seconds)) if seconds <= 0 => return Err(RequestError::NotPositive),
            (None, Some(seconds)) => Validity::For(seconds),
        };
        Ok(Request { display_name, email, avatar, channel, moderator, validity })
    }
}

fn required_str<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, RequestError> {
    optional_str_ref(fields, field)?.ok_or(RequestError::MissingField(field))
}

fn optional_str(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, RequestError> {
    Ok(optional_str_ref(fields, field)?.map(str::to_string))
}

/// `null` counts as absent: some JSON encoders write every field of a record.
fn optional_str_ref<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, RequestError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RequestError::WrongType { field, expected: "a string" }),
    }
}

/// Whole seconds. `60.0` is accepted (some encoders, DGD's among them, write floats), `60.5`
/// and `"60"` are not.
fn optional_seconds(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<i64>, RequestError> {
    let wrong = RequestError::WrongType { field, expected: "a whole number of seconds" };
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => match n.as_f64() {
                // The bounds keep the cast exact; anything beyond them is nonsense anyway.
                Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
                _ => Err(wrong),
            },
        },
        Some(_) => Err(wrong),
    }
}

/// Client text quoted in a message is cut short, so a reply stays small.
fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"cmd":"jwt_token","displayName":"Ana","email":"ana@example.com",
        "channel":"r1","moderator":false,"avatar":"https://example.com/a.png","validFor":60}"#;

    fn parse(text: &str) -> Result<Request, RequestError> {
        Envelope::parse(text.as_bytes())?.request()
    }

    /// GOOD with `field` replaced by `value` (raw JSON), or removed when `value` is None.
    fn with(field: &str, value: Option<&str>) -> String {
        let mut map: Map<String, Value> = serde_json::from_str(GOOD).unwrap();
        match value {
            Some(raw) => map.insert(field.into(), serde_json::from_str(raw).unwrap()),
            None => map.remove(field),
        };
        Value::Object(map).to_string()
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn test_good_request_is_read_field_by_field() {
        let request = parse(GOOD).unwrap();
        assert_eq!(
            request,
            Request {
                display_name: "Ana".into(),
                email: Some("ana@example.com".into()),
                avatar: Some("https://example.com/a.png".into()),
                channel: "r1".into(),
                moderator: false,
                validity: Validity::For(60),
            }
        );
    }

    #[test]
    fn test_email_and_avatar_are_optional_and_null_counts_as_absent() {
        let request = parse(&with("email", None)).unwrap();
        assert_eq!(request.email, None);
        let request = parse(&with("avatar", Some("null"))).unwrap();
        assert_eq!(request.avatar, None);
    }

    #[test]
    fn test_star_channel_and_unknown_fields_are_accepted() {
        let request = parse(&with("channel", Some(r#""*""#))).unwrap();
        assert_eq!(request.channel, "*");
        assert!(parse(&with("somethingNew", Some("[1,2]"))).is_ok());
    }

    #[test]
    fn test_bad_json_is_refused_with_the_parser_position() {
        let text = message(r#"{"cmd":"jwt_token","#);
        assert!(text.starts_with("bad JSON: "), "{text}");
        assert!(text.contains("line 1"), "{text}");
        assert!(message("\u{0}\u{1}").starts_with("bad JSON: "));
        let bytes: &[u8] = b"{\"cmd\":\"\xff\"}";
        assert!(matches!(Envelope::parse(bytes), Err(RequestError::BadJson(_))));
    }

    #[test]
    fn test_json_that_is_not_an_object_is_refused() {
        for text in ["[]", "42", "\"jwt_token\"", "null", "true"] {
            assert_eq!(message(text), "request must be a JSON object", "{text}");
        }
    }

    #[test]
    fn test_cmd_missing_mistyped_or_unknown() {
        assert_eq!(message(&with("cmd", None)), "missing field 'cmd'");
        assert_eq!(message(&with("cmd", Some("1"))), "'cmd' must be a string");
        assert_eq!(
            message(&with("cmd", Some(r#""make_coffee""#))),
            "unknown cmd 'make_coffee' (expected 'jwt_token')"
        );
    }

    #[test]
    fn test_each_mandatory_field_missing_is_named() {
        for field in ["displayName", "channel", "moderator"] {
            assert_eq!(message(&with(field, None)), format!("missing field '{field}'"));
            assert_eq!(message(&with(field, Some("null"))), format!("missing field '{field}'"));
        }
    }

    #[test]
    fn test_each_mistyped_field_is_named_with_its_type() {
        let cases = [
            ("displayName", "42", "'displayName' must be a string"),
            ("email", "false", "'email' must be a string"),
            ("avatar", "{}", "'avatar' must be a string"),
            ("channel", "[\"r1\"]", "'channel' must be a string"),
            ("moderator", "\"true\"", "'moderator' must be a boolean"),
            ("moderator", "1", "'moderator' must be a boolean"),
            ("validFor", "\"60\"", "'validFor' must be a whole number of seconds"),
            ("validFor", "60.5", "'validFor' must be a whole number of seconds"),
            ("validFor", "1e300", "'validFor' must be a whole number of seconds"),
        ];
        for (field, value, expected) in cases {
            assert_eq!(message(&with(field, Some(value))), expected, "{field} = {value}");
        }
        let text = with("validFor", None);
        let text = text.replacen('{', r#"{"validUntil":true,"#, 1);
        assert_eq!(message(&text), "'validUntil' must be a whole number of seconds");
    }

    #[test]
    fn test_empty_channel_is_refused() {
        assert_eq!(message(&with("channel", Some("\"\""))), "'channel' must not be empty");
    }

    #[test]
    fn test_exactly_one_validity_field() {
        let both = with("validUntil", Some("4000000000"));
        assert_eq!(message(&both), "give only one of 'validUntil' and 'validFor'");
        assert_eq!(
            message(&with("validFor", None)),
            "one of 'validUntil' or 'validFor' is required"
        );
        assert_eq!(
            message(&with("validFor", Some("null"))),
            "one of 'validUntil' or 'validFor' is required"
        );
        let until = with("validFor", None).replacen('{', r#"{"validUntil":4000000000,"#, 1);
        assert_eq!(parse(&until).unwrap().validity, Validity::Until(4_000_000_000));
    }

    #[test]
    fn test_valid_for_must_be_positive_and_float_seconds_are_whole() {
        assert_eq!(message(&with("validFor", Some("0"))), "'validFor' must be positive");
        assert_eq!(message(&with("validFor", Some("-5"))), "'validFor' must be positive");
        assert_eq!(parse(&with("validFor", Some("60.0"))).unwrap().validity, Validity::For(60));
    }

    #[test]
    fn test_seq_is_kept_whatever_its_type() {
        let envelope = Envelope::parse(br#"{"seq":"abc-7"}"#).unwrap();
        assert_eq!(envelope.seq(), Some(&Value::String("abc-7".into())));
        let envelope = Envelope::parse(br#"{"seq":7}"#).unwrap();
        assert_eq!(envelope.seq(), Some(&Value::from(7)));
        assert_eq!(Envelope::parse(b"{}").unwrap().seq(), None);
    }

    #[test]
    fn test_quoted_client_text_is_shortened() {
        let long = "x".repeat(500);
        let text = message(&with("cmd", Some(&format!("\"{long}\""))));
        assert!(text.len() < 120, "{text}");
    }
}
