use super::*;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;

fn pool(max_threads: usize, per_source: usize) -> JobPool<u32> {
    JobPool::new(Limits {
        max_threads,
        per_source,
        queue_per_source: 64,
        idle: Duration::from_millis(100),
    })
    .unwrap()
}

fn call(source: &str, key: Option<&str>) -> Call {
    Call {
        source: source.into(),
        key: key.map(str::to_string),
        deadline: Instant::now() + Duration::from_secs(10),
    }
}

fn submit(pool: &JobPool<u32>, call: Call, work: impl FnOnce() -> u32 + Send + 'static) -> JobId {
    let id = pool.new_id();
    pool.submit(id, call, work).unwrap();
    id
}

/// Collects announced ids until `want` arrived or 5 s passed.
fn wait_for_ready(pool: &JobPool<u32>, want: usize) -> Vec<JobId> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.len() < want && Instant::now() < deadline {
        seen.extend(pool.take_ready());
        thread::sleep(Duration::from_millis(2));
    }
    seen
}

fn wait_until(what: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !what() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

/// A job body that blocks until the returned sender sends (or drops), at most 5 s.
fn gate() -> (mpsc::Sender<()>, Arc<Mutex<mpsc::Receiver<()>>>) {
    let (release, gate) = mpsc::channel::<()>();
    (release, Arc::new(Mutex::new(gate)))
}

fn blocked(gate: &Arc<Mutex<mpsc::Receiver<()>>>, value: u32) -> impl FnOnce() -> u32 + Send {
    let gate = Arc::clone(gate);
    move || {
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(5));
        value
    }
}

#[test]
fn test_results_arrive_with_their_ids() {
    let pool = pool(2, 2);
    let a = submit(&pool, call("s", None), || 1);
    let b = submit(&pool, call("s", None), || 2);
    let mut ready = wait_for_ready(&pool, 2);
    ready.sort();
    assert_eq!(ready, vec![a, b]);
    assert_eq!(pool.take_result(a), Some(Ok(1)));
    assert_eq!(pool.take_result(b), Some(Ok(2)));
    assert_eq!(pool.take_result(a), None, "a result is taken once");
}

#[test]
fn test_notify_fd_becomes_readable_when_a_job_finishes() {
    let pool = pool(1, 1);
    submit(&pool, call("s", None), || 7);
    // Blocking read on a duplicate of the reading end proves a byte was written.
    let reader = pool.inner.notify_rx.try_clone().unwrap();
    reader.set_nonblocking(false).unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!((&reader).read(&mut byte).unwrap(), 1);
}

#[test]
fn test_threads_grow_with_demand_and_idle_ones_exit() {
    let pool = pool(100, 100);
    let (release, gate) = gate();
    let ids: Vec<JobId> =
        (0..60).map(|n| submit(&pool, call("s", None), blocked(&gate, n))).collect();
    // Sixty calls that each wait: sixty threads, all running at once.
    assert!(wait_until(|| pool.load().running == 60), "running: {:?}", pool.load());
    assert_eq!(pool.load().threads, 60);
    drop(release);
    assert_eq!(wait_for_ready(&pool, 60).len(), 60);
    for (n, id) in ids.into_iter().enumerate() {
        assert_eq!(pool.take_result(id), Some(Ok(n as u32)));
    }
    // Nothing to do for longer than `idle`: every thread is given back.
    assert!(wait_until(|| pool.load().threads == 0), "threads: {:?}", pool.load());
    // And the pool still works afterwards.
    let id = submit(&pool, call("s", None), || 9);
    wait_for_ready(&pool, 1);
    assert_eq!(pool.take_result(id), Some(Ok(9)));
}

#[test]
fn test_never_more_threads_than_the_limit() {
    let pool = pool(3, 100);
    let (release, gate) = gate();
    for n in 0..10 {
        submit(&pool, call("s", None), blocked(&gate, n));
    }
    assert!(wait_until(|| pool.load().running == 3));
    thread::sleep(Duration::from_millis(20));
    assert_eq!(pool.load().threads, 3);
    assert_eq!(pool.load().queued, 7);
    drop(release);
    assert_eq!(wait_for_ready(&pool, 10).len(), 10);
}

#[test]
fn test_a_saturated_source_leaves_threads_for_others() {
    let pool = pool(10, 2);
    let (release, gate) = gate();
    let concurrent = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    for n in 0..6 {
        let (concurrent, most, body) =
            (Arc::clone(&concurrent), Arc::clone(&most), blocked(&gate, n));
        submit(&pool, call("slow", None), move || {
            let now = concurrent.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let value = body();
            concurrent.fetch_sub(1, Ordering::SeqCst);
            value
        });
    }
    assert!(wait_until(|| pool.load().running == 2));
    // The slow service holds its two slots; another service's call runs at once.
    let other = submit(&pool, call("fast", None), || 42);
    assert_eq!(wait_for_ready(&pool, 1), vec![other]);
    assert_eq!(pool.take_result(other), Some(Ok(42)));
    drop(release);
    assert_eq!(wait_for_ready(&pool, 6).len(), 6);
    assert_eq!(most.load(Ordering::SeqCst), 2, "never more than the per-source cap at once");
}

#[test]
fn test_full_source_queue_refuses_instead_of_growing() {
    let pool = JobPool::new(Limits {
        max_threads: 4,
        per_source: 1,
        queue_per_source: 1,
        ..Limits::default()
    })
    .unwrap();
    let (release, gate) = gate();
    submit(&pool, call("s", None), blocked(&gate, 0));
    submit(&pool, call("s", None), || 1);
    let id = pool.new_id();
    assert_eq!(pool.submit(id, call("s", None), || 2), Err(JobError::Busy));
    // Another source is not affected.
    submit(&pool, call("t", None), || 3);
    drop(release);
    assert_eq!(wait_for_ready(&pool, 3).len(), 3);
}

#[test]
fn test_identical_calls_share_one_run() {
    let pool = pool(10, 10);
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, gate) = gate();
    let ids: Vec<JobId> = (0..20)
        .map(|_| {
            let (runs, body) = (Arc::clone(&runs), blocked(&gate, 5));
            submit(&pool, call("keys", Some("jwks")), move || {
                runs.fetch_add(1, Ordering::SeqCst);
                body()
            })
        })
        .collect();
    // A different key, or the same key at another source, is another run.
    let other_key = submit(&pool, call("keys", Some("asap")), || 6);
    let other_source = submit(&pool, call("other", Some("jwks")), || 7);
    assert_eq!(wait_for_ready(&pool, 2).len(), 2);
    drop(release);
    assert_eq!(wait_for_ready(&pool, 20).len(), 20);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "twenty callers, one run");
    for id in ids {
        assert_eq!(pool.take_result(id), Some(Ok(5)));
    }
    assert_eq!(pool.take_result(other_key), Some(Ok(6)));
    assert_eq!(pool.take_result(other_source), Some(Ok(7)));
    // Once finished, the same key runs again.
    let again = submit(&pool, call("keys", Some("jwks")), || 8);
    wait_for_ready(&pool, 1);
    assert_eq!(pool.take_result(again), Some(Ok(8)));
}

#[test]
fn test_a_job_still_queued_at_its_deadline_never_runs() {
    let pool = pool(1, 10);
    let (release, gate) = gate();
    let first = submit(&pool, call("s", None), blocked(&gate, 1));
    let ran = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&ran);
    let late = Call { deadline: Instant::now() + Duration::from_millis(20), ..call("s", None) };
    let second = submit(&pool, late, move || {
        flag.fetch_add(1, Ordering::SeqCst);
        2
    });
    thread::sleep(Duration::from_millis(40));
    drop(release);
    assert_eq!(wait_for_ready(&pool, 2).len(), 2);
    assert_eq!(pool.take_result(first), Some(Ok(1)));
    assert_eq!(pool.take_result(second), Some(Err(JobError::Expired)));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn test_the_job_deadline_is_visible_to_its_work() {
    let pool: JobPool<Option<Instant>> = JobPool::new(Limits::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let id = pool.new_id();
    pool.submit(id, Call { source: "s".into(), key: None, deadline }, current_deadline).unwrap();
    assert!(wait_until(|| pool.load().unclaimed == 1));
    assert_eq!(pool.take_result(id), Some(Ok(Some(deadline))));
    assert_eq!(current_deadline(), None, "not on this thread");
}

#[test]
fn test_panicking_job_reports_and_worker_survives() {
    let pool = pool(1, 1);
    let bad = submit(&pool, call("s", None), || -> u32 { panic!("boom") });
    let good = submit(&pool, call("s", None), || 5);
    wait_for_ready(&pool, 2);
    assert_eq!(pool.take_result(bad), Some(Err(JobError::Panicked)));
    assert_eq!(pool.take_result(good), Some(Ok(5)));
}

#[test]
fn test_forgotten_job_leaves_nothing_behind() {
    let pool = pool(1, 1);
    let id = submit(&pool, call("s", None), || {
        thread::sleep(Duration::from_millis(20));
        3
    });
    pool.forget(id);
    let marker = submit(&pool, call("s", None), || 4);
    wait_for_ready(&pool, 1);
    assert_eq!(pool.take_result(id), None);
    assert_eq!(pool.take_result(marker), Some(Ok(4)));
    assert!(wait_until(
        || pool.load() == PoolLoad { running: 0, queued: 0, threads: 1, unclaimed: 0 }
    ));
}

#[test]
fn test_a_queued_run_nobody_waits_for_is_skipped() {
    let pool = pool(4, 1);
    let (release, gate) = gate();
    let first = submit(&pool, call("s", None), blocked(&gate, 1));
    let ran = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&ran);
    let unwanted = submit(&pool, call("s", Some("k")), move || {
        flag.fetch_add(1, Ordering::SeqCst);
        2
    });
    pool.forget(unwanted);
    let after = submit(&pool, call("s", None), || 3);
    drop(release);
    assert_eq!(wait_for_ready(&pool, 2).len(), 2);
    assert_eq!(pool.take_result(first), Some(Ok(1)));
    assert_eq!(pool.take_result(after), Some(Ok(3)));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn test_one_waiter_leaving_a_shared_run_does_not_cancel_it() {
    let pool = pool(4, 4);
    let (release, gate) = gate();
    let a = submit(&pool, call("s", Some("k")), blocked(&gate, 7));
    let b = submit(&pool, call("s", Some("k")), || 0);
    pool.forget(a);
    drop(release);
    assert_eq!(wait_for_ready(&pool, 1), vec![b]);
    assert_eq!(pool.take_result(b), Some(Ok(7)));
    assert_eq!(pool.take_result(a), None);
}
