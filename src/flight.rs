//! Single flight for lookups made inside a job: concurrent identical lookups share one call.
//!
//! [`crate::jobs`] already shares whole jobs with the same key. Some jobs make a second,
//! shared lookup on the way (every membership check of one guild first resolves that guild);
//! a [`Flight`] lets the first caller fetch while the others wait for its answer instead of
//! asking the same question again. Waiting ends at the job's deadline
//! ([`crate::jobs::current_deadline`]), so a hanging leader delays nobody past their own.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::jobs;

/// Calls in progress by key. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Flight<K, V> {
    calls: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

#[derive(Debug)]
struct Slot<V> {
    answer: Mutex<Answer<V>>,
    done: Condvar,
}

#[derive(Debug)]
enum Answer<V> {
    Pending,
    Ready(V),
    /// The leader ended without an answer (it panicked).
    Lost,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Flight<K, V> {
    fn default() -> Self {
        Flight { calls: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Flight<K, V> {
    /// Runs `fetch` for `key`, unless a call for `key` is already in progress: then waits for
    /// that one's answer. A follower whose deadline passes first, or whose leader is lost, gets
    /// `gave_up()` instead.
    pub fn run(&self, key: K, fetch: impl FnOnce() -> V, gave_up: impl FnOnce() -> V) -> V {
        let (slot, leader) = {
            let mut calls = lock(&self.calls);
            match calls.get(&key) {
                Some(slot) => (Arc::clone(slot), false),
                None => {
                    let slot = Arc::new(Slot {
                        answer: Mutex::new(Answer::Pending),
                        done: Condvar::new(),
                    });
                    calls.insert(key.clone(), Arc::clone(&slot));
                    (slot, true)
                }
            }
        };
        if leader {
            // Dropped even if `fetch` panics: followers are released and the key freed.
            let finish = Finish { flight: self, key, slot: &slot, answer: None };
            let answer = fetch();
            let mut finish = finish;
            finish.answer = Some(answer.clone());
            drop(finish);
            return answer;
        }
        let mut answer = lock(&slot.answer);
        loop {
            match &*answer {
                Answer::Ready(value) => return value.clone(),
                Answer::Lost => return gave_up(),
                Answer::Pending => {}
            }
            answer = match jobs::current_deadline() {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        drop(answer);
                        return gave_up();
                    }
                    slot.done.wait_timeout(answer, left).unwrap_or_else(|p| p.into_inner()).0
                }
                None => slot.done.wait(answer).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// Calls in progress (for tests).
    pub fn in_progress(&self) -> usize {
        lock(&self.calls).len()
    }
}

/// Publishes the leader's answer (or its loss) and frees the key.
struct Finish<'a, K: Eq + Hash, V> {
    flight: &'a Flight<K, V>,
    key: K,
    slot: &'a Slot<V>,
    answer: Option<V>,
}

impl<K: Eq + Hash, V> Drop for Finish<'_, K, V> {
    fn drop(&mut self) {
        lock(&self.flight.calls).remove(&self.key);
        *lock(&self.slot.answer) = match self.answer.take() {
            Some(value) => Answer::Ready(value),
            None => Answer::Lost,
        };
        self.slot.done.notify_all();
    }
}

/// A poisoned lock only means a panic elsewhere; the map and answers are whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    #[test]
    fn test_concurrent_calls_share_one_fetch() {
        let flight = Arc::new(Flight::<String, u32>::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (flight, fetches) = (Arc::clone(&flight), Arc::clone(&fetches));
                thread::spawn(move || {
                    flight.run(
                        "guild".into(),
                        || {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            thread::sleep(Duration::from_millis(200));
                            7
                        },
                        || 0,
                    )
                })
            })
            .collect();
        let answers: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(answers, vec![7; 16]);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(flight.in_progress(), 0);
        // Finished: the next call fetches again.
        assert_eq!(flight.run("guild".into(), || 8, || 0), 8);
    }

    #[test]
    fn test_a_follower_gives_up_at_its_deadline() {
        let flight = Arc::new(Flight::<u8, u32>::default());
        let leader = spawn_leader(&flight, || {
            thread::sleep(Duration::from_millis(400));
            1
        });
        thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        let deadline = started + Duration::from_millis(50);
        let answer = jobs::with_deadline(deadline, || flight.run(1, || 2, || 99));
        assert_eq!(answer, 99);
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(leader.join().unwrap(), 1);
    }

    #[test]
    fn test_a_panicking_leader_releases_followers_and_the_key() {
        let flight = Arc::new(Flight::<u8, u32>::default());
        let leader = spawn_leader(&flight, || {
            thread::sleep(Duration::from_millis(100));
            panic!("boom")
        });
        thread::sleep(Duration::from_millis(20));
        assert_eq!(flight.run(1, || 2, || 99), 99);
        assert!(leader.join().is_err());
        assert_eq!(flight.in_progress(), 0);
        assert_eq!(flight.run(1, || 3, || 99), 3);
    }

    /// Starts a call of key 1 on another thread that leads the flight while `work` runs.
    fn spawn_leader(flight: &Arc<Flight<u8, u32>>, work: fn() -> u32) -> thread::JoinHandle<u32> {
        let flight = Arc::clone(flight);
        thread::spawn(move || flight.run(1, work, || 0))
    }
}
