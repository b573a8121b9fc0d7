//! `gatehouse.jobs`: the native half of the async bridge (`lua/gatehouse.lib.lua` is the other).
//!
//! Lua starts work that would block (an HTTP call) and gets a `Job` back. The work runs on the
//! process-wide [`JobPool`]; when it ends, the pool's descriptor becomes readable, Prosody's
//! event loop calls back, `jobs.ready()` names the finished jobs and `job:result()` converts
//! the result to Lua values on Prosody's own thread.

use mlua::{Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};
use once_cell::sync::Lazy;

use super::convert::failure;
use crate::jobs::{JobError, JobId, JobPool, PoolConfig};

/// What a worker hands back: a conversion to run on Prosody's thread, where Lua may be touched.
pub type Reply = Box<dyn FnOnce(&Lua) -> Result<MultiValue> + Send>;

/// One pool per process: every gatehouse module in Prosody shares its threads and descriptor.
static POOL: Lazy<std::result::Result<JobPool<Reply>, JobError>> =
    Lazy::new(|| JobPool::new(PoolConfig { workers: 16, queue: 1024 }));

/// A job in flight, as Lua sees it. Dropping it (garbage collection) drops its result.
pub struct Job {
    id: JobId,
    taken: bool,
}

impl UserData for Job {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("id", |_, this, ()| Ok(this.id.0));
        // The job's own return values, or `nil, "pending"` while it runs.
        methods.add_method_mut("result", |lua, this, ()| {
            if this.taken {
                return failure(lua, "internal-server-error", "job result already taken", "taken");
            }
            match pool()?.take_result(this.id) {
                None => failure(lua, "pending", "job still running", "pending"),
                Some(result) => {
                    this.taken = true;
                    match result {
                        Ok(reply) => reply(lua),
                        Err(error) => failure(lua, "internal-server-error", error, "job-failed"),
                    }
                }
            }
        });
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.taken {
            if let Ok(pool) = POOL.as_ref() {
                pool.forget(self.id);
            }
        }
    }
}

/// Queues `work` and returns the Lua job handle, or the `nil, condition, text` of a refusal.
pub fn spawn<F>(lua: &Lua, work: F) -> Result<MultiValue>
where
    F: FnOnce() -> Reply + Send + 'static,
{
    match pool()?.submit(work) {
        Ok(id) => {
            let job = lua.create_userdata(Job { id, taken: false })?;
            Ok(MultiValue::from_vec(vec![Value::UserData(job)]))
        }
        Err(error) => failure(lua, "resource-constraint", error, "busy"),
    }
}

fn pool() -> Result<&'static JobPool<Reply>> {
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
    jobs.set(
        "load",
        lua.create_function(|_, ()| {
            let load = pool()?.load();
            Ok((load.running, load.unclaimed))
        })?,
    )?;
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
            spawn(lua, move || {
                std::thread::sleep(pause);
                Box::new(move |lua: &Lua| {
                    (value.unwrap_or_else(|| "done".into()),).into_lua_multi_owned(lua)
                })
            })
        })?,
    )?;
    Ok(jobs)
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
