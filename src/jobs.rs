//! Background jobs: run blocking work (HTTP calls) off Prosody's thread and say when it is done.
//!
//! Prosody is single-threaded; a blocking call there freezes every session. A [`JobPool`] runs
//! each job on a worker thread. Finishing a job stores its result and writes one byte to a
//! socket pair whose reading end ([`JobPool::notify_fd`]) Prosody's event loop watches
//! (`server.watchfd`), so the Lua side learns of results without polling. Worker threads never
//! touch Lua: results are plain Rust values, converted on Prosody's thread.
//!
//! The pool scales like an evented client would, within bounds:
//! - **Threads grow with demand** up to [`Limits::max_threads`] and go away after
//!   [`Limits::idle`] without work, so a quiet server holds none.
//! - **Each remote source has its own cap** ([`Limits::per_source`]): a slow or flooded service
//!   queues its own calls and cannot take every thread from the others.
//! - **Identical calls share one run** (single flight): a job submitted with the
//!   [`Call::key`] of one queued or running gets that run's result, no second request.
//! - **Every job has a deadline** fixed when it is submitted. Time spent waiting for a thread
//!   counts against it; a job still queued at its deadline is never run, and while it runs
//!   [`current_deadline`] bounds every HTTP request it makes (see [`crate::http`]).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Identifies one submitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// How far a pool may grow. Read once from Prosody's config; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Worker threads at most, i.e. remote calls in progress at once across every service
    /// (`gatehouse_max_remote_calls`). Defaults to 512.
    pub max_threads: usize,
    /// Calls in progress at most for one remote source (a URL origin), so one slow or
    /// flooded service leaves threads for the others (`gatehouse_max_remote_calls_per_source`).
    /// Defaults to 256.
    pub per_source: usize,
    /// Calls waiting for their source's turn, beyond which [`JobPool::submit`] refuses.
    /// Defaults to 4096.
    pub queue_per_source: usize,
    /// A worker with nothing to do for this long exits. Defaults to 10 seconds.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_threads: 512,
            per_source: 256,
            queue_per_source: 4096,
            idle: Duration::from_secs(10),
        }
    }
}

/// What a job is, for scheduling: where it goes, what makes it the same as another, and when
/// its caller stops waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The remote service it talks to, e.g. a URL origin (`https://keys.example:443`).
    pub source: String,
    /// Jobs with the same source and key while one is queued or running share that run.
    /// `None`: never shared.
    pub key: Option<String>,
    /// When the caller gives up. The job never starts after it, and its HTTP requests end by it.
    pub deadline: Instant,
}

/// Why a job has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The source's queue is full: too many calls to that service are already waiting.
    Busy,
    /// The deadline passed before a worker was free to start the job.
    Expired,
    /// The job panicked; the worker survived it.
    Panicked,
    /// The pool's threads or notification socket could not be created.
    Io(String),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Busy => write!(f, "too many remote calls waiting for this service"),
            JobError::Expired => write!(f, "no worker was free before the deadline"),
            JobError::Panicked => write!(f, "background job failed unexpectedly"),
            JobError::Io(text) => write!(f, "background jobs unavailable: {text}"),
        }
    }
}

impl std::error::Error for JobError {}

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline of the job running on this thread, if any: remote calls end by it.
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.with(Cell::get)
}

/// Runs `work` as if it were a job with `deadline` (what workers do; tests use it directly).
pub fn with_deadline<R>(deadline: Instant, work: impl FnOnce() -> R) -> R {
    let outer = DEADLINE.with(|d| d.replace(Some(deadline)));
    let result = work();
    DEADLINE.with(|d| d.set(outer));
    result
}

type Work<T> = Box<dyn FnOnce() -> T + Send>;

/// Worker threads that come and go with demand, per-source queues and a readable-when-done
/// socket.
pub struct JobPool<T> {
    inner: Arc<Inner<T>>,
    next_id: AtomicU64,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    /// Signalled when a task becomes runnable; idle workers wait on it.
    wake: Condvar,
    notify_rx: UnixStream,
    notify_tx: UnixStream,
}

struct State<T> {
    limits: Limits,
    tasks: HashMap<u64, Task<T>>,
    next_task: u64,
    /// (source, key) → the task that runs it, while queued or running.
    flights: HashMap<(String, String), u64>,
    sources: HashMap<String, Source>,
    /// Tasks their source admitted, waiting for a thread, oldest first.
    runnable: VecDeque<u64>,
    threads: usize,
    idle: usize,
    running: usize,
    /// Unfinished job → its task.
    owners: HashMap<JobId, u64>,
    finished: HashMap<JobId, Result<T, JobError>>,
    ready: Vec<JobId>,
}

/// One run of some work, shared by every job waiting for it.
struct Task<T> {
    source: String,
    flight: Option<(String, String)>,
    waiters: Vec<JobId>,
    deadline: Instant,
    work: Option<Work<T>>,
}

#[derive(Default)]
struct Source {
    /// Tasks admitted: runnable or running.
    active: usize,
    /// Tasks over the cap, oldest first.
    waiting: VecDeque<u64>,
}

impl<T: Clone + Send + 'static> JobPool<T> {
    /// A pool with no threads yet; they start with the first jobs.
    pub fn new(limits: Limits) -> Result<Self, JobError> {
        let (notify_rx, notify_tx) = UnixStream::pair().map_err(io_error)?;
        // Neither end may ever block Prosody's thread or a worker: a full socket buffer just
        // means a wake-up is already pending.
        notify_rx.set_nonblocking(true).map_err(io_error)?;
        notify_tx.set_nonblocking(true).map_err(io_error)?;
        let state = State {
            limits: sane(limits),
            tasks: HashMap::new(),
            next_task: 0,
            flights: HashMap::new(),
            sources: HashMap::new(),
            runnable: VecDeque::new(),
            threads: 0,
            idle: 0,
            running: 0,
            owners: HashMap::new(),
            finished: HashMap::new(),
            ready: Vec::new(),
        };
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            wake: Condvar::new(),
            notify_rx,
            notify_tx,
        });
        Ok(JobPool { inner, next_id: AtomicU64::new(1) })
    }

    /// Changes the limits; jobs already admitted keep running.
    pub fn set_limits(&self, limits: Limits) {
        self.inner.lock().limits = sane(limits);
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.inner.lock().limits
    }

    /// A fresh id for a job about to be submitted.
    pub fn new_id(&self) -> JobId {
        JobId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Schedules `work` as job `id` (from [`JobPool::new_id`]). When a job with the same source
    /// and key is queued or running, `id` waits for that one's result and `work` is dropped
    /// unrun. Refuses with [`JobError::Busy`] when the source's queue is full.
    pub fn submit<F>(&self, id: JobId, call: Call, work: F) -> Result<(), JobError>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let mut state = self.inner.lock();
        let flight = call.key.map(|key| (call.source.clone(), key));
        if let Some(task_id) = flight.as_ref().and_then(|f| state.flights.get(f)).copied() {
            if let Some(task) = state.tasks.get_mut(&task_id) {
                task.waiters.push(id);
                if task.work.is_some() {
                    // Not started yet: wait for the latest of its callers.
                    task.deadline = task.deadline.max(call.deadline);
                }
                state.owners.insert(id, task_id);
                return Ok(());
            }
        }
        let limits = state.limits;
        let source = state.sources.entry(call.source.clone()).or_default();
        let admitted = source.active < limits.per_source;
        if !admitted && source.waiting.len() >= limits.queue_per_source {
            return Err(JobError::Busy);
        }
        let task_id = state.next_task;
        state.next_task += 1;
        let source = state.sources.entry(call.source.clone()).or_default();
        if admitted {
            source.active += 1;
        } else {
            source.waiting.push_back(task_id);
        }
        let task = Task {
            source: call.source,
            flight: flight.clone(),
            waiters: vec![id],
            deadline: call.deadline,
            work: Some(Box::new(work)),
        };
        state.tasks.insert(task_id, task);
        if let Some(flight) = flight {
            state.flights.insert(flight, task_id);
        }
        state.owners.insert(id, task_id);
        if admitted {
            state.runnable.push_back(task_id);
            if let Err(error) = self.inner.wake_worker(&mut state) {
                // No thread at all to run it: undo, so nothing waits forever.
                state.runnable.retain(|t| *t != task_id);
                self.inner.complete(&mut state, task_id, None);
                return Err(error);
            }
        }
        Ok(())
    }

    /// The descriptor that becomes readable when a job finishes; hand it to `server.watchfd`.
    pub fn notify_fd(&self) -> RawFd {
        self.inner.notify_rx.as_raw_fd()
    }

    /// Empties the notification socket and returns the jobs finished since the last call.
    pub fn take_ready(&self) -> Vec<JobId> {
        let mut sink = [0u8; 256];
        // Drain until the non-blocking read reports nothing left (or the socket is gone).
        while let Ok(n) = (&self.inner.notify_rx).read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        std::mem::take(&mut self.inner.lock().ready)
    }

    /// Takes a finished job's result, once. `None` while it is queued or running.
    pub fn take_result(&self, id: JobId) -> Option<Result<T, JobError>> {
        self.inner.lock().finished.remove(&id)
    }

    /// Drops a job's result, now or whenever it finishes (its waiter gave up). A run nobody
    /// waits for any more is skipped if it has not started.
    pub fn forget(&self, id: JobId) {
        let mut state = self.inner.lock();
        if state.finished.remove(&id).is_some() {
            return;
        }
        if let Some(task_id) = state.owners.remove(&id) {
            if let Some(task) = state.tasks.get_mut(&task_id) {
                task.waiters.retain(|w| *w != id);
            }
        }
    }

    /// How busy the pool is: for metrics, benchmarks and leak tests.
    pub fn load(&self) -> PoolLoad {
        let state = self.inner.lock();
        PoolLoad {
            running: state.running,
            queued: state.tasks.len().saturating_sub(state.running),
            threads: state.threads,
            unclaimed: state.finished.len(),
        }
    }
}

/// A snapshot of how busy a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLoad {
    /// Jobs a worker is executing now.
    pub running: usize,
    /// Runs waiting for a thread or for their source's turn.
    pub queued: usize,
    /// Worker threads alive, busy or idle.
    pub threads: usize,
    /// Finished results nobody has taken yet.
    pub unclaimed: usize,
}

impl<T: Clone + Send + 'static> Inner<T> {
    /// A poisoned lock only means a thread panicked while holding it; every update below keeps
    /// the maps consistent step by step, so carry on with the data.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes sure some thread will pick up the runnable queue: an idle one, or a new one while
    /// under the limit. Fails only if there is no thread at all and none can be started.
    fn wake_worker(self: &Arc<Self>, state: &mut State<T>) -> Result<(), JobError> {
        // A notified thread counts as idle until it takes the lock again, and each runnable
        // task needs its own thread: compare the two counts, not "is anyone idle".
        if state.runnable.len() > state.idle && state.threads < state.limits.max_threads {
            let inner = Arc::clone(self);
            let spawned =
                thread::Builder::new().name("gatehouse-worker".into()).spawn(move || inner.work());
            match spawned {
                Ok(_) => state.threads += 1,
                Err(error) if state.threads == 0 => return Err(io_error(error)),
                // Out of threads for now: the tasks wait for a busy worker to come back.
                Err(_) => {}
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    /// A worker: run tasks until idle for too long.
    fn work(self: Arc<Self>) {
        let mut state = self.lock();
        loop {
            if let Some(task_id) = state.runnable.pop_front() {
                let Some(task) = state.tasks.get_mut(&task_id) else { continue };
                let deadline = task.deadline;
                let abandoned = task.waiters.is_empty();
                let result = match task.work.take() {
                    // Everyone gave up waiting: do not call the service for nobody.
                    _ if abandoned => None,
                    None => None,
                    Some(_) if Instant::now() >= deadline => Some(Err(JobError::Expired)),
                    Some(work) => {
                        state.running += 1;
                        drop(state);
                        let result = with_deadline(deadline, || {
                            catch_unwind(AssertUnwindSafe(work)).map_err(|_| JobError::Panicked)
                        });
                        state = self.lock();
                        state.running -= 1;
                        Some(result)
                    }
                };
                self.complete(&mut state, task_id, result);
                continue;
            }
            state.idle += 1;
            let idle = state.limits.idle;
            let (guard, wait) = self
                .wake
                .wait_timeout(state, idle)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = guard;
            state.idle -= 1;
            if wait.timed_out() && state.runnable.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }

    /// Ends a task: hands `result` (if any) to every job still waiting for it, and lets the
    /// next task of its source in.
    fn complete(
        self: &Arc<Self>,
        state: &mut State<T>,
        task_id: u64,
        result: Option<Result<T, JobError>>,
    ) {
        let Some(task) = state.tasks.remove(&task_id) else { return };
        if let Some(flight) = &task.flight {
            if state.flights.get(flight) == Some(&task_id) {
                state.flights.remove(flight);
            }
        }
        self.admit_next(state, &task.source);
        let mut notify = false;
        for waiter in task.waiters {
            state.owners.remove(&waiter);
            if let Some(result) = &result {
                state.finished.insert(waiter, result.clone());
                state.ready.push(waiter);
                notify = true;
            }
        }
        if notify {
            // WouldBlock means the buffer is full of wake-ups already; any other error means
            // nobody is listening any more. Neither changes what the reader will find.
            let _ = (&self.notify_tx).write(&[1]);
        }
    }

    /// A slot of `source` is free: admit its oldest waiting task that someone still wants.
    fn admit_next(self: &Arc<Self>, state: &mut State<T>, source: &str) {
        if let Some(queue) = state.sources.get_mut(source) {
            queue.active = queue.active.saturating_sub(1);
        }
        loop {
            let next = state.sources.get_mut(source).and_then(|q| q.waiting.pop_front());
            let Some(next) = next else { break };
            if state.tasks.get(&next).is_none_or(|t| t.waiters.is_empty()) {
                drop_task(state, next);
                continue;
            }
            if let Some(queue) = state.sources.get_mut(source) {
                queue.active += 1;
            }
            state.runnable.push_back(next);
            // Threads exist (one is finishing a task of this source), so this cannot fail.
            let _ = self.wake_worker(state);
            return;
        }
        if state.sources.get(source).is_some_and(|q| q.active == 0 && q.waiting.is_empty()) {
            state.sources.remove(source);
        }
    }
}

/// Forgets a task that never ran, and its flight.
fn drop_task<T>(state: &mut State<T>, task_id: u64) {
    if let Some(task) = state.tasks.remove(&task_id) {
        if let Some(flight) = task.flight {
            if state.flights.get(&flight) == Some(&task_id) {
                state.flights.remove(&flight);
            }
        }
    }
}

/// Limits of zero would stop every call; one is the least that works.
fn sane(limits: Limits) -> Limits {
    Limits {
        max_threads: limits.max_threads.max(1),
        per_source: limits.per_source.max(1),
        queue_per_source: limits.queue_per_source,
        idle: limits.idle.max(Duration::from_millis(10)),
    }
}

fn io_error(error: std::io::Error) -> JobError {
    match error.kind() {
        ErrorKind::WouldBlock => JobError::Busy,
        _ => JobError::Io(error.to_string()),
    }
}

#[cfg(test)]
mod tests;
