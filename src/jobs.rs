//! Background jobs: run blocking work (HTTP calls) off Prosody's thread and say when it is done.
//!
//! Prosody is single-threaded; a blocking call there freezes every session. A [`JobPool`] owns a
//! fixed number of worker threads and a bounded queue. Finishing a job stores its result and
//! writes one byte to a socket pair whose reading end ([`JobPool::notify_fd`]) Prosody's event
//! loop watches (`server.watchfd`), so the Lua side learns of results without polling. Worker
//! threads never touch Lua: results are plain Rust values, converted on Prosody's thread.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

/// Identifies one submitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Sizes of a pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Worker threads, started with the pool. Defaults to 4.
    pub workers: usize,
    /// Jobs that may wait for a worker before [`JobPool::submit`] refuses more. Defaults to 256.
    pub queue: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { workers: 4, queue: 256 }
    }
}

/// Why a job has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The queue is full: too many remote calls are already waiting.
    Busy,
    /// The job panicked; the worker survived it.
    Panicked,
    /// The pool's threads or notification socket could not be created.
    Io(String),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Busy => write!(f, "too many background jobs waiting"),
            JobError::Panicked => write!(f, "background job failed unexpectedly"),
            JobError::Io(text) => write!(f, "background jobs unavailable: {text}"),
        }
    }
}

impl std::error::Error for JobError {}

type Task = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads with a bounded queue and a readable-when-done socket.
pub struct JobPool<T> {
    queue: SyncSender<Task>,
    shared: Arc<Shared<T>>,
    next_id: AtomicU64,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    notify_rx: UnixStream,
    notify_tx: UnixStream,
}

struct State<T> {
    finished: HashMap<JobId, Result<T, JobError>>,
    ready: Vec<JobId>,
    /// Jobs whose waiter gave up; their results are dropped as soon as they arrive.
    abandoned: HashSet<JobId>,
    running: usize,
}

impl<T: Send + 'static> JobPool<T> {
    /// Starts the workers.
    pub fn new(config: PoolConfig) -> Result<Self, JobError> {
        let (notify_rx, notify_tx) = UnixStream::pair().map_err(io_error)?;
        // Neither end may ever block Prosody's thread or a worker: a full socket buffer just
        // means a wake-up is already pending.
        notify_rx.set_nonblocking(true).map_err(io_error)?;
        notify_tx.set_nonblocking(true).map_err(io_error)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                finished: HashMap::new(),
                ready: Vec::new(),
                abandoned: HashSet::new(),
                running: 0,
            }),
            notify_rx,
            notify_tx,
        });
        let (queue, receiver) = sync_channel::<Task>(config.queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..config.workers.max(1) {
            let receiver = Arc::clone(&receiver);
            thread::Builder::new()
                .name(format!("gatehouse-worker-{n}"))
                .spawn(move || work(&receiver))
                .map_err(io_error)?;
        }
        Ok(JobPool { queue, shared, next_id: AtomicU64::new(1) })
    }

    /// Queues `job` for a worker thread. Refuses with [`JobError::Busy`] when the queue is full.
    pub fn submit<F>(&self, job: F) -> Result<JobId, JobError>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let shared = Arc::clone(&self.shared);
        let task: Task = Box::new(move || {
            shared.lock().running += 1;
            let result = catch_unwind(AssertUnwindSafe(job)).map_err(|_| JobError::Panicked);
            shared.finish(id, result);
        });
        match self.queue.try_send(task) {
            Ok(()) => Ok(id),
            Err(TrySendError::Full(_)) => Err(JobError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(JobError::Io("workers stopped".into())),
        }
    }

    /// The descriptor that becomes readable when a job finishes; hand it to `server.watchfd`.
    pub fn notify_fd(&self) -> RawFd {
        self.shared.notify_rx.as_raw_fd()
    }

    /// Empties the notification socket and returns the jobs finished since the last call.
    pub fn take_ready(&self) -> Vec<JobId> {
        let mut sink = [0u8; 256];
        // Drain until the non-blocking read reports nothing left (or the socket is gone).
        while let Ok(n) = (&self.shared.notify_rx).read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        std::mem::take(&mut self.shared.lock().ready)
    }

    /// Takes a finished job's result, once. `None` while it is still running.
    pub fn take_result(&self, id: JobId) -> Option<Result<T, JobError>> {
        self.shared.lock().finished.remove(&id)
    }

    /// Drops a job's result, now or whenever it finishes (its waiter gave up).
    pub fn forget(&self, id: JobId) {
        let mut state = self.shared.lock();
        if state.finished.remove(&id).is_none() {
            state.abandoned.insert(id);
        }
    }

    /// Jobs queued or running, and results not yet taken: for metrics and leak tests.
    pub fn load(&self) -> PoolLoad {
        let state = self.shared.lock();
        PoolLoad { running: state.running, unclaimed: state.finished.len() }
    }
}

/// A snapshot of how busy a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLoad {
    /// Jobs a worker is executing now.
    pub running: usize,
    /// Finished results nobody has taken yet.
    pub unclaimed: usize,
}

impl<T> Shared<T> {
    /// A poisoned lock only means a job panicked while holding it; the maps stay consistent
    /// because every update is a single insert or remove, so carry on with the data.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn finish(&self, id: JobId, result: Result<T, JobError>) {
        {
            let mut state = self.lock();
            state.running = state.running.saturating_sub(1);
            if state.abandoned.remove(&id) {
                return;
            }
            state.finished.insert(id, result);
            state.ready.push(id);
        }
        // WouldBlock means the buffer is full of wake-ups already; any other error means
        // nobody is listening any more. Neither changes what the reader will find.
        let _ = (&self.notify_tx).write(&[1]);
    }
}

fn work(receiver: &Mutex<Receiver<Task>>) {
    loop {
        let task = {
            let guard = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            guard.recv()
        };
        match task {
            Ok(task) => task(),
            Err(_) => return, // the pool was dropped
        }
    }
}

fn io_error(error: std::io::Error) -> JobError {
    match error.kind() {
        ErrorKind::WouldBlock => JobError::Busy,
        _ => JobError::Io(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for_ready(pool: &JobPool<u32>, want: usize) -> Vec<JobId> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while seen.len() < want && Instant::now() < deadline {
            seen.extend(pool.take_ready());
            thread::sleep(Duration::from_millis(2));
        }
        seen
    }

    #[test]
    fn test_results_arrive_with_their_ids() {
        let pool = JobPool::new(PoolConfig { workers: 2, queue: 8 }).unwrap();
        let a = pool.submit(|| 1).unwrap();
        let b = pool.submit(|| 2).unwrap();
        let mut ready = wait_for_ready(&pool, 2);
        ready.sort();
        assert_eq!(ready, vec![a, b]);
        assert_eq!(pool.take_result(a), Some(Ok(1)));
        assert_eq!(pool.take_result(b), Some(Ok(2)));
        assert_eq!(pool.take_result(a), None, "a result is taken once");
    }

    #[test]
    fn test_notify_fd_becomes_readable_when_a_job_finishes() {
        let pool = JobPool::new(PoolConfig::default()).unwrap();
        pool.submit(|| 7).unwrap();
        // Blocking read on a duplicate of the reading end proves a byte was written.
        let reader = pool.shared.notify_rx.try_clone().unwrap();
        reader.set_nonblocking(false).unwrap();
        reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!((&reader).read(&mut byte).unwrap(), 1);
    }

    #[test]
    fn test_full_queue_refuses_instead_of_growing() {
        let pool = JobPool::new(PoolConfig { workers: 1, queue: 1 }).unwrap();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let blocker = Arc::clone(&gate);
        pool.submit(move || {
            let _ = blocker.lock().unwrap().recv_timeout(Duration::from_secs(5));
            0
        })
        .unwrap();
        // Wait until the worker holds the first job, so exactly one queue slot is left.
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.load().running == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        pool.submit(|| 1).unwrap();
        assert_eq!(pool.submit(|| 2), Err(JobError::Busy));
        release.send(()).unwrap();
    }

    #[test]
    fn test_panicking_job_reports_and_worker_survives() {
        let pool = JobPool::new(PoolConfig { workers: 1, queue: 4 }).unwrap();
        let bad = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
        let good = pool.submit(|| 5).unwrap();
        wait_for_ready(&pool, 2);
        assert_eq!(pool.take_result(bad), Some(Err(JobError::Panicked)));
        assert_eq!(pool.take_result(good), Some(Ok(5)));
    }

    #[test]
    fn test_forgotten_job_leaves_nothing_behind() {
        let pool = JobPool::new(PoolConfig { workers: 1, queue: 4 }).unwrap();
        let id = pool
            .submit(|| {
                thread::sleep(Duration::from_millis(20));
                3
            })
            .unwrap();
        pool.forget(id);
        let marker = pool.submit(|| 4).unwrap();
        wait_for_ready(&pool, 1);
        assert_eq!(pool.take_result(id), None);
        assert_eq!(pool.take_result(marker), Some(Ok(4)));
        assert_eq!(pool.load(), PoolLoad { running: 0, unclaimed: 0 });
    }
}
