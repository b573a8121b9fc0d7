//! `gatehouse.http`: process-wide HTTPS settings, set once from Prosody's config.

use std::path::Path;

use mlua::{Lua, MultiValue, Result, Table};

use super::convert::{failure, opt_string};
use crate::trust;

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("configure", lua.create_function(configure)?)?;
    Ok(t)
}

/// `configure{ ca_file = "/path/ca.pem" }` → a one-line summary of the trusted CAs for the log,
/// or `nil, "internal-server-error", text` when the file can't be used. `ca_file` may be nil:
/// the system's store alone.
fn configure(lua: &Lua, options: Table) -> Result<MultiValue> {
    let ca_file = opt_string(&options, "ca_file")?;
    match trust::configure(ca_file.as_deref().map(Path::new)) {
        Ok(summary) => lua.pack_multi(summary.to_string()),
        Err(text) => failure(lua, "internal-server-error", text, "ca-file"),
    }
}
