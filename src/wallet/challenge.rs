//! Single-use, expiring challenges: the nonces the server puts into SIWE messages.
//!
//! The original fork had one public challenge per room that never changed, so any captured
//! signature could be replayed. Here every challenge is random, bound to one room and one
//! address, expires, and is spent by its first successful use. Spent and expired challenges
//! are remembered a while longer so the refusal can say which it was.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::Address;
use crate::cache::TtlCache;
use crate::clock::UnixTime;

/// The challenges a server has handed out and not yet forgotten.
#[derive(Debug)]
pub struct ChallengeStore {
    ttl: Duration,
    entries: Mutex<TtlCache<String, Challenge>>,
}

/// One challenge as the server remembers it.
#[derive(Debug, Clone)]
struct Challenge {
    room: String,
    address: Address,
    expires: UnixTime,
    used: bool,
}

/// A challenge just handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// 32 lower-case hex digits from the system's secure random source.
    pub nonce: String,
    /// When it stops being accepted.
    pub expires: UnixTime,
}

/// How long a spent or expired challenge is remembered, to name the refusal.
const REMEMBER_AFTER_EXPIRY: Duration = Duration::from_secs(600);

impl ChallengeStore {
    /// A store whose challenges live `ttl` and which holds at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        ChallengeStore { ttl, entries: Mutex::new(TtlCache::new(capacity)) }
    }

    /// The lifetime of a challenge.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A fresh challenge for `address` joining `room`.
    pub fn issue(
        &self,
        room: &str,
        address: Address,
        now: UnixTime,
        instant: Instant,
    ) -> Result<Issued, ChallengeError> {
        let mut bytes = [0u8; 16];
        SystemRandom::new().fill(&mut bytes).map_err(|_| ChallengeError::Random)?;
        let nonce = super::encode_hex(&bytes);
        let expires = UnixTime(now.0.saturating_add(self.ttl.as_secs().max(1)));
        let challenge = Challenge { room: room.to_string(), address, expires, used: false };
        self.lock().insert(nonce.clone(), challenge, self.ttl + REMEMBER_AFTER_EXPIRY, instant);
        Ok(Issued { nonce, expires })
    }

    /// Whether `nonce` may be used now by `address` for `room`, without spending it.
    pub fn check(
        &self,
        nonce: &str,
        room: &str,
        address: &Address,
        now: UnixTime,
        instant: Instant,
    ) -> Result<(), ChallengeError> {
        let challenge = self.lock().get(&nonce.to_string(), instant);
        judge(challenge.as_ref(), room, address, now)
    }

    /// Spends `nonce`: the same checks as [`ChallengeStore::check`], then marks it used, under
    /// one lock so two joins racing with one proof cannot both pass.
    pub fn consume(
        &self,
        nonce: &str,
        room: &str,
        address: &Address,
        now: UnixTime,
        instant: Instant,
    ) -> Result<(), ChallengeError> {
        let mut entries = self.lock();
        let key = nonce.to_string();
        let mut challenge = entries.get(&key, instant);
        judge(challenge.as_ref(), room, address, now)?;
        if let Some(challenge) = challenge.as_mut() {
            challenge.used = true;
            entries.insert(key, challenge.clone(), REMEMBER_AFTER_EXPIRY, instant);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TtlCache<String, Challenge>> {
        // A panic while holding the lock leaves a cache that is still consistent (every
        // operation on it is a single map update), so a poisoned lock is used as is.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn judge(
    challenge: Option<&Challenge>,
    room: &str,
    address: &Address,
    now: UnixTime,
) -> Result<(), ChallengeError> {
    let challenge = challenge.ok_or(ChallengeError::Unknown)?;
    if challenge.used {
        return Err(ChallengeError::Used);
    }
    if now >= challenge.expires {
        return Err(ChallengeError::Expired);
    }
    if challenge.room != room {
        return Err(ChallengeError::WrongRoom);
    }
    if &challenge.address != address {
        return Err(ChallengeError::WrongAddress);
    }
    Ok(())
}

/// Why a challenge was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeError {
    /// The server never issued this nonce, or forgot it long ago.
    Unknown,
    /// The challenge's lifetime has passed.
    Expired,
    /// The challenge was already spent by an earlier join.
    Used,
    /// The challenge was issued for another room.
    WrongRoom,
    /// The challenge was issued to another address.
    WrongAddress,
    /// The system's random source failed; no challenge was made.
    Random,
}

impl ChallengeError {
    /// A stable kebab-case code for Lua.
    pub fn code(&self) -> &'static str {
        match self {
            ChallengeError::Unknown => "unknown-challenge",
            ChallengeError::Expired => "expired-challenge",
            ChallengeError::Used => "used-challenge",
            ChallengeError::WrongRoom => "challenge-wrong-room",
            ChallengeError::WrongAddress => "challenge-wrong-address",
            ChallengeError::Random => "random-failed",
        }
    }
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChallengeError::Unknown => "unknown challenge",
            ChallengeError::Expired => "challenge expired",
            ChallengeError::Used => "challenge already used",
            ChallengeError::WrongRoom => "challenge was issued for another room",
            ChallengeError::WrongAddress => "challenge was issued to another address",
            ChallengeError::Random => "secure random source failed",
        })
    }
}

impl std::error::Error for ChallengeError {}
