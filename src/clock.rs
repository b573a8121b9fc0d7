//! Time as the token checks see it.
//!
//! Token expiry is judged in whole Unix seconds, like Jitsi does. The clock is passed in
//! rather than read inside the checks, so tests of `exp`/`nbf` need no sleeping.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as JWT `exp`, `nbf` and `iat` claims count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The current wall-clock time. A clock set before 1970 reads as 0 rather than failing:
    /// every token would then look not-yet-valid, which fails closed.
    pub fn now() -> Self {
        UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}
