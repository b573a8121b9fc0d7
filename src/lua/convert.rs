//! Conversions shared by the bindings: config tables in, JSON and error triples out.

use std::time::Duration;

use mlua::{IntoLuaMulti, Lua, LuaSerdeExt, MultiValue, Result, Table, Value};

/// How JSON becomes Lua: `null` becomes `nil` (not mlua's sentinel, which upstream modules
/// would mistake for a value), and arrays are plain tables.
pub fn json_to_lua(lua: &Lua, json: &serde_json::Value) -> Result<Value> {
    let mut options = mlua::serde::SerializeOptions::new();
    options.serialize_none_to_null = false;
    options.serialize_unit_to_null = false;
    options.set_array_metatable = false;
    lua.to_value_with(json, options)
}

/// A Lua table to JSON; a table that cannot be JSON (functions, cycles) is an error value.
pub fn lua_to_json(lua: &Lua, value: Value) -> Result<serde_json::Value> {
    lua.from_value(value)
}

/// The `nil, condition, text, reason` answer for an expected failure.
pub fn failure(
    lua: &Lua,
    condition: &str,
    text: impl ToString,
    reason: &str,
) -> Result<MultiValue> {
    (Value::Nil, condition.to_string(), text.to_string(), reason.to_string()).into_lua_multi(lua)
}

/// A string field of a config table, if set. A value of another type is the caller's bug.
pub fn opt_string(table: &Table, key: &str) -> Result<Option<String>> {
    match table.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_string())),
        other => Err(type_error(key, "a string", &other)),
    }
}

/// A list of strings from an array table (or a single string).
pub fn opt_string_list(table: &Table, key: &str) -> Result<Option<Vec<String>>> {
    match table.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(vec![s.to_str()?.to_string()])),
        Value::Table(list) => {
            let mut out = Vec::new();
            for item in list.sequence_values::<String>() {
                out.push(item?);
            }
            Ok(Some(out))
        }
        other => Err(type_error(key, "a list of strings", &other)),
    }
}

/// A boolean field, if set.
pub fn opt_bool(table: &Table, key: &str) -> Result<Option<bool>> {
    match table.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(b)),
        other => Err(type_error(key, "a boolean", &other)),
    }
}

/// A non-negative number field, if set.
pub fn opt_number(table: &Table, key: &str) -> Result<Option<f64>> {
    match table.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Integer(i) if i >= 0 => Ok(Some(i as f64)),
        Value::Number(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        other => Err(type_error(key, "a non-negative number", &other)),
    }
}

/// A duration option given in seconds, if set. See [`seconds`].
pub fn opt_seconds(table: &Table, key: &str) -> Result<Option<Duration>> {
    Ok(opt_number(table, key)?.map(seconds))
}

/// Seconds from Lua as a `Duration`: NaN and negatives are zero, and anything past ten years is
/// ten years, so that neither the conversion nor later arithmetic on it can overflow.
pub fn seconds(n: f64) -> Duration {
    const TEN_YEARS: f64 = 10.0 * 365.0 * 86_400.0;
    if n.is_nan() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(n.clamp(0.0, TEN_YEARS))
}

fn type_error(key: &str, expected: &str, got: &Value) -> mlua::Error {
    mlua::Error::runtime(format!(
        "gatehouse: option '{key}' must be {expected}, not {}",
        got.type_name()
    ))
}

/// Client-supplied text (a token, a room address): anything that is not a UTF-8 string is
/// reported as `None`, for the caller to turn into an error value.
pub fn client_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.to_str().ok().map(|s| s.to_string()),
        _ => None,
    }
}

/// A claim value from a token (`context.room`, `context.user`, the claims table) as JSON, for
/// the core to read. Whatever cannot be JSON (functions, cycles, bad UTF-8) reads as `null`,
/// which every core rule treats as "claims nothing".
pub fn claim_json(lua: &Lua, value: Value) -> serde_json::Value {
    lua_to_json(lua, value).unwrap_or(serde_json::Value::Null)
}

/// A flag of a state table built by gatehouse's own Lua: Lua truthiness.
pub fn flag(table: &Table, key: &str) -> Result<bool> {
    Ok(!matches!(table.get::<Value>(key)?, Value::Nil | Value::Boolean(false)))
}
