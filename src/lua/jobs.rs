//! `gatehouse.jobs`: the native half of the async bridge (`lua/gatehouse.lib.lua` is the other).
//!
//! A native function that must call a remote service returns a `Job` instead of an answer. The
//! job does not run yet: `job:start(timeout)` hands it to the process-wide [`JobPool`] with its
//! deadline (so the Lua side can first check what the calling client already has in flight).
//! When it ends, the pool's descriptor becomes readable, Prosody's event loop calls back,
//! `jobs.ready()` names the finished jobs and `job:result()` turns the result into Lua values on
//! Prosody's own thread. Identical calls (same [`Call`] source and key) share one run; each job
//! still finishes with its own conversion, so a shared key fetch verifies each caller's token.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mlua::{Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};
use once_cell::sync::Lazy;

use super::convert::{failure, opt_number};
use crate::jobs::{self, JobError, JobId, JobPool, Limits};

/// What a worker hands back from [`spawn`]: a conversion to run on Prosody's thread.
pub type Reply = Box<dyn FnOnce(&Lua) -> Result<MultiValue> + Send>;

/// What a shared run produces; each waiting job reads it through its own `finish`.
type Shared = Arc<dyn Any + Send + Sync>;
type Work = Box<dyn FnOnce() -> Shared + Send>;
type Finish = Box<dyn FnOnce(&Lua, &Shared) -> Result<MultiValue> + Send>;

/// One pool per process: every gatehouse module in Prosody shares its threads and descriptor.
static POOL: Lazy<std::result::Result<JobPool<Shared>, JobError>> =
    Lazy::new(|| JobPool::new(Limits::default()));

/// Where a job's remote call goes and what makes two calls the same.
pub struct Call {
    /// The remote service, for its concurrency cap: [`crate::http::origin`] of the URL.
    pub source: String,
    /// Calls with the same source and key while one is in flight share it; `None`: never.
    pub key: Option<String>,
}

impl Call {
    /// A call to the service at `url` (its origin is the source), shared by `key`.
    pub fn to(url: &str, key: Option<String>) -> Self {
        Call { source: crate::http::origin(url), key }
    }
}

/// A job as Lua sees it. Dropping it (garbage collection) drops its result, and a job never
/// started never runs.
pub struct Job {
    id: JobId,
    stage: Stage,
}

enum Stage {
    Prepared { call: Call, work: Work, finish: Finish },
    Started { finish: Finish },
    Taken,
}

impl UserData for Job {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("id", |_, this, ()| Ok(this.id.0));
        // `job:start(timeout)` → true, or `nil, condition, text, reason` when the pool refuses.
        // The deadline is `timeout` seconds from now: waiting for a worker counts against it.
        methods.add_method_mut("start", |lua, this, timeout: f64| {
            let stage = std::mem::replace(&mut this.stage, Stage::Taken);
            let Stage::Prepared { call, work, finish } = stage else {
                this.stage = stage;
                return true.into_lua_multi_owned(lua);
            };
            let deadline = crate::cache::later(Instant::now(), super::convert::seconds(timeout));
            let call = jobs::Call { source: call.source, key: call.key, deadline };
            match pool()?.submit(this.id, call, work) {
                Ok(()) => {
                    this.stage = Stage::Started { finish };
                    true.into_lua_multi_owned(lua)
                }
                Err(error) => failure(lua, "resource-constraint", error, "busy"),
            }
        });
        // The job's own return values, or `nil, "pending"` while it is queued or running.
        methods.add_method_mut("result", |lua, this, ()| {
            if !matches!(this.stage, Stage::Started { .. }) {
                return match this.stage {
                    Stage::Taken => {
                        failure(lua, "internal-server-error", "job result already taken", "taken")
                    }
                    _ => failure(lua, "pending", "job not started", "pending"),
                };
            }
            let Some(result) = pool()?.take_result(this.id) else {
                return failure(lua, "pending", "job still running", "pending");
            };
            let Stage::Started { finish } = std::mem::replace(&mut this.stage, Stage::Taken) else {
                return failure(lua, "internal-server-error", "job result already taken", "taken");
            };
            match result {
                Ok(shared) => finish(lua, &shared),
                Err(JobError::Expired) => failure(
                    lua,
                    "remote-server-timeout",
                    "no worker was free before the deadline",
                    "timeout",
                ),
                Err(error) => failure(lua, "internal-server-error", error, "job-failed"),
            }
        });
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let (Stage::Started { .. }, Ok(pool)) = (&self.stage, POOL.as_ref()) {
            pool.forget(self.id);
        }
    }
}

/// Returns a job (not started) that runs `work` on a worker and, once done, answers with
/// `finish(lua, &its result)` on Prosody's thread. Jobs with the same `call` share one run of
/// the first one's `work`.
pub fn prepare<S, W, F>(lua: &Lua, call: Call, work: W, finish: F) -> Result<MultiValue>
where
    S: Send + Sync + 'static,
    W: FnOnce() -> S + Send + 'static,
    F: FnOnce(&Lua, &S) -> Result<MultiValue> + Send + 'static,
{
    let work: Work = Box::new(move || Arc::new(work()) as Shared);
    let finish: Finish = Box::new(move |lua: &Lua, shared: &Shared| {
        match shared.downcast_ref::<S>() {
            Some(value) => finish(lua, value),
            // Only jobs of the same call share a run, and a call is made at one place.
            None => {
                failure(lua, "internal-server-error", "shared job of another kind", "job-failed")
            }
        }
    });
    let job = Job { id: pool()?.new_id(), stage: Stage::Prepared { call, work, finish } };
    Ok(MultiValue::from_vec(vec![Value::UserData(lua.create_userdata(job)?)]))
}

/// A job of its own (never shared) whose `work` returns the conversion to run afterwards.
pub fn spawn<F>(lua: &Lua, source: &str, work: F) -> Result<MultiValue>
where
    F: FnOnce() -> Reply + Send + 'static,
{
    let call = Call { source: source.to_string(), key: None };
    prepare(
        lua,
        call,
        move || Mutex::new(Some(work())),
        |lua, reply: &Mutex<Option<Reply>>| {
            let reply = reply.lock().ok().and_then(|mut r| r.take());
            match reply {
                Some(reply) => reply(lua),
                None => failure(lua, "internal-server-error", "job result already taken", "taken"),
            }
        },
    )
}

fn pool() -> Result<&'static JobPool<Shared>> {
    POOL.as_ref().map_err(|e| mlua::Error::runtime(e.to_string()))
}

pub fn exports(lua: &Lua) -> Result<Table> {
    let jobs = lua.create_table()?;
    jobs.set("fd", lua.create_function(|_, ()| Ok(pool()?.notify_fd()))?)?;
    jobs.set(
        "ready",
        lua.create_function(|lua, ()| {
            let ids: Vec<u64> = pool()?.take_ready().into_iter().map(|id| id.0).collect();
            lua.create_sequence_from(ids)
        })?,
    )?;
    // `load()` → running, unclaimed, threads, queued.
    jobs.set(
        "load",
        lua.create_function(|_, ()| {
            let load = pool()?.load();
            Ok((load.running, load.unclaimed, load.threads, load.queued))
        })?,
    )?;
    // `configure{ max_remote_calls, max_remote_calls_per_source }` → the limits in force.
    jobs.set("configure", lua.create_function(configure)?)?;
    jobs.set(
        "is_job",
        lua.create_function(|_, value: Value| {
            Ok(matches!(value, Value::UserData(ud) if ud.is::<Job>()))
        })?,
    )?;
    // A job that only waits, then returns its value: lets tests and operators check the bridge
    // (one session waits, others carry on) without any remote service.
    jobs.set(
        "sleep",
        lua.create_function(|lua, (seconds, value): (f64, Option<String>)| {
            let pause = super::convert::seconds(seconds.min(60.0));
            spawn(lua, "gatehouse:sleep", move || {
                std::thread::sleep(pause);
                Box::new(move |lua: &Lua| {
                    (value.unwrap_or_else(|| "done".into()),).into_lua_multi_owned(lua)
                })
            })
        })?,
    )?;
    Ok(jobs)
}

/// Sets the pool's limits from Prosody's options; returns the limits in force.
fn configure(lua: &Lua, options: Table) -> Result<Table> {
    let pool = pool()?;
    let mut limits = pool.limits();
    let count = |n: f64| if n.is_finite() { n.clamp(1.0, 65_536.0) as usize } else { 1 };
    if let Some(n) = opt_number(&options, "max_remote_calls")? {
        limits.max_threads = count(n);
    }
    if let Some(n) = opt_number(&options, "max_remote_calls_per_source")? {
        limits.per_source = count(n);
    }
    pool.set_limits(limits);
    let limits = pool.limits();
    let out = lua.create_table()?;
    out.set("max_remote_calls", limits.max_threads)?;
    out.set("max_remote_calls_per_source", limits.per_source)?;
    Ok(out)
}

/// `IntoLuaMulti` for owned tuples inside boxed closures.
trait IntoLuaMultiOwned {
    fn into_lua_multi_owned(self, lua: &Lua) -> Result<MultiValue>;
}

impl<T: mlua::IntoLuaMulti> IntoLuaMultiOwned for T {
    fn into_lua_multi_owned(self, lua: &Lua) -> Result<MultiValue> {
        self.into_lua_multi(lua)
    }
}
