//! Single-use, expiring challenges: the nonces the server puts into SIWE messages.
//!
//! The original fork had one public challenge per room that never changed, so any captured
//! signature could be replayed. Here every challenge is random, bound to the user who asked for
//! it, one room and one address, expires, and is spent once: by an admission or a final refusal.
//!
//! Nobody can make another user's live challenge fail: a user holds at most
//! [`ChallengeStore::per_requester`] challenges (asking for one more drops that user's own
//! oldest), at most one per room and address, and when the whole store is full a new challenge
//! is refused rather than someone else's evicted. Memory is bounded by the capacity; every
//! operation is O(1) or O(log n) (expired entries leave through an ordered deadline index).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::Address;
use crate::clock::UnixTime;

/// The challenges a server has handed out and not yet forgotten.
#[derive(Debug)]
pub struct ChallengeStore {
    ttl: Duration,
    capacity: usize,
    per_requester: usize,
    inner: Mutex<Inner>,
}

/// A challenge just handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// 32 lower-case hex digits from the system's secure random source.
    pub nonce: String,
    /// When it stops being accepted.
    pub expires: UnixTime,
}

/// Who a challenge is for: the user who asked, the room, the address that will sign.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The asking user's bare JID; only joins from that user can spend it.
    pub requester: &'a str,
    /// The room's JID.
    pub room: &'a str,
    /// The address that must sign.
    pub address: &'a Address,
}

/// Challenges one user may hold at once, unless configured otherwise.
pub const DEFAULT_PER_REQUESTER: usize = 8;

impl ChallengeStore {
    /// A store whose challenges live `ttl`, which holds at most `capacity` of them and at most
    /// `per_requester` per user (both at least 1).
    pub fn new(ttl: Duration, capacity: usize, per_requester: usize) -> Self {
        ChallengeStore {
            ttl,
            capacity: capacity.max(1),
            per_requester: per_requester.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The lifetime of a challenge.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How many challenges one user may hold.
    pub fn per_requester(&self) -> usize {
        self.per_requester
    }

    /// Challenges currently remembered (live or spent, not yet expired).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no challenge is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh challenge for `binding`. Replaces the requester's earlier challenge for the same
    /// room and address, drops the requester's own oldest one past the per-user budget, and is
    /// refused with [`ChallengeError::Full`] when the store is full of other users' challenges.
    pub fn issue(
        &self,
        binding: Binding<'_>,
        now: UnixTime,
        instant: Instant,
    ) -> Result<Issued, ChallengeError> {
        let expires = UnixTime(now.0.saturating_add(self.ttl.as_secs().max(1)));
        let mut inner = self.lock();
        inner.purge(instant);
        let own = inner.by_requester.get(binding.requester).cloned().unwrap_or_default();
        // At most one challenge per room and address: the previous one is replaced.
        for old in &own {
            if inner
                .entries
                .get(old)
                .is_some_and(|c| c.room == binding.room && c.address == *binding.address)
            {
                inner.remove(old);
            }
        }
        while inner.by_requester.get(binding.requester).map_or(0, VecDeque::len)
            >= self.per_requester
        {
            let oldest = inner.by_requester.get(binding.requester).and_then(|q| q.front().cloned());
            match oldest {
                Some(oldest) => inner.remove(&oldest),
                None => break,
            }
        }
        if inner.entries.len() >= self.capacity {
            return Err(ChallengeError::Full);
        }
        let mut bytes = [0u8; 16];
        SystemRandom::new().fill(&mut bytes).map_err(|_| ChallengeError::Random)?;
        let nonce = super::encode_hex(&bytes);
        let challenge = Challenge {
            requester: binding.requester.to_string(),
            room: binding.room.to_string(),
            address: *binding.address,
            expires,
            forget_at: (instant + self.ttl.max(Duration::from_secs(1)), inner.next_seq()),
            used: false,
        };
        inner.insert(nonce.clone(), challenge);
        Ok(Issued { nonce, expires })
    }

    /// Whether `nonce` may be used now for `binding`, without spending it.
    pub fn check(
        &self,
        nonce: &str,
        binding: Binding<'_>,
        now: UnixTime,
        instant: Instant,
    ) -> Result<(), ChallengeError> {
        let mut inner = self.lock();
        inner.purge(instant);
        judge(inner.entries.get(nonce), binding, now)
    }

    /// Spends `nonce`: the same checks as [`ChallengeStore::check`], then marks it used, under
    /// one lock so two joins racing with one proof cannot both pass. A spent challenge is
    /// remembered until it expires, so a replay is told so.
    pub fn spend(
        &self,
        nonce: &str,
        binding: Binding<'_>,
        now: UnixTime,
        instant: Instant,
    ) -> Result<(), ChallengeError> {
        let mut inner = self.lock();
        inner.purge(instant);
        judge(inner.entries.get(nonce), binding, now)?;
        if let Some(challenge) = inner.entries.get_mut(nonce) {
            challenge.used = true;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every method leaves the indexes consistent before it can panic (no panicking code
        // runs between their paired updates), so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One challenge as the server remembers it.
#[derive(Debug, Clone)]
struct Challenge {
    requester: String,
    room: String,
    address: Address,
    expires: UnixTime,
    /// When it is forgotten (its expiry), with a sequence number so keys are unique.
    forget_at: (Instant, u64),
    used: bool,
}

/// Three indexes over the same challenges, always updated together.
#[derive(Debug, Default)]
struct Inner {
    /// nonce → challenge.
    entries: HashMap<String, Challenge>,
    /// requester → their nonces, oldest first (at most `per_requester`).
    by_requester: HashMap<String, VecDeque<String>>,
    /// forget time → nonce, to drop expired challenges in order.
    deadlines: BTreeMap<(Instant, u64), String>,
    seq: u64,
}

impl Inner {
    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn insert(&mut self, nonce: String, challenge: Challenge) {
        self.deadlines.insert(challenge.forget_at, nonce.clone());
        self.by_requester.entry(challenge.requester.clone()).or_default().push_back(nonce.clone());
        self.entries.insert(nonce, challenge);
    }

    /// Removes one challenge from every index: O(log n) plus the requester's few entries.
    fn remove(&mut self, nonce: &str) {
        let Some(challenge) = self.entries.remove(nonce) else { return };
        self.deadlines.remove(&challenge.forget_at);
        if let Some(queue) = self.by_requester.get_mut(&challenge.requester) {
            queue.retain(|n| n != nonce);
            if queue.is_empty() {
                self.by_requester.remove(&challenge.requester);
            }
        }
    }

    /// Drops every challenge whose time is up.
    fn purge(&mut self, instant: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > instant {
                break;
            }
            let nonce = entry.remove();
            self.remove(&nonce);
        }
    }
}

fn judge(
    challenge: Option<&Challenge>,
    binding: Binding<'_>,
    now: UnixTime,
) -> Result<(), ChallengeError> {
    let challenge = challenge.ok_or(ChallengeError::Unknown)?;
    if challenge.used {
        return Err(ChallengeError::Used);
    }
    if now >= challenge.expires {
        return Err(ChallengeError::Expired);
    }
    if challenge.requester != binding.requester {
        return Err(ChallengeError::WrongRequester);
    }
    if challenge.room != binding.room {
        return Err(ChallengeError::WrongRoom);
    }
    if &challenge.address != binding.address {
        return Err(ChallengeError::WrongAddress);
    }
    Ok(())
}

/// Why a challenge was not accepted, or not issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeError {
    /// The server never issued this nonce, or forgot it (expired, or replaced by a newer one).
    Unknown,
    /// The challenge's lifetime has passed.
    Expired,
    /// The challenge was already spent by an earlier join.
    Used,
    /// The challenge was issued to another user.
    WrongRequester,
    /// The challenge was issued for another room.
    WrongRoom,
    /// The challenge was issued to another address.
    WrongAddress,
    /// The store holds as many live challenges as it may; none was made.
    Full,
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
            ChallengeError::WrongRequester => "challenge-wrong-user",
            ChallengeError::WrongRoom => "challenge-wrong-room",
            ChallengeError::WrongAddress => "challenge-wrong-address",
            ChallengeError::Full => "challenges-exhausted",
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
            ChallengeError::WrongRequester => "challenge was issued to another user",
            ChallengeError::WrongRoom => "challenge was issued for another room",
            ChallengeError::WrongAddress => "challenge was issued to another address",
            ChallengeError::Full => "too many live challenges, try again later",
            ChallengeError::Random => "secure random source failed",
        })
    }
}

impl std::error::Error for ChallengeError {}
