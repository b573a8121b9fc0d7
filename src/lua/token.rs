//! `gatehouse.token`: verify, decode and sign Jitsi tokens from Lua.

use mlua::{Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};
use serde_json::{Map, Value as Json};

use super::convert::{
    client_text, failure, json_to_lua, lua_to_json, opt_bool, opt_number, opt_seconds, opt_string,
    opt_string_list, seconds,
};
use super::jobs::{prepare, Call};
use crate::clock::UnixTime;
use crate::http::Limits;
use crate::keys::{KeyCacheConfig, KeyError, KeyFetch, KeySourceConfig};
use crate::token::{self, Check, Claims, Policy, SigningKey, TokenError, Verifier};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    t.set("new_verifier", lua.create_function(new_verifier)?)?;
    t.set("decode", lua.create_function(decode)?)?;
    t.set("sign", lua.create_function(sign)?)?;
    Ok(t)
}

impl UserData for Verifier {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Claims table; or `nil, condition, text, reason, detail` (upstream's text for the
        // client, gatehouse's log-safe detail for the log); or a Job when a key must be fetched,
        // whose result may be one more Job (the key server, for a kid the JWKS lacks).
        methods.add_method("verify", |lua, this, token: Value| {
            let Some(token) = client_text(&token) else {
                return reply(lua, Err(TokenError::Malformed("not a string")));
            };
            match this.check(&token, UnixTime::now()) {
                Check::Done(result) => reply(lua, result),
                Check::NeedsKey(fetch) => {
                    let verifier = this.clone();
                    fetch_then(lua, fetch, move |lua, fetched| {
                        match verifier.after_fetch(fetched, &token, UnixTime::now()) {
                            Check::Done(result) => reply(lua, result),
                            Check::NeedsKey(next) => fetch_then(lua, next, move |lua, fetched| {
                                reply(lua, verifier.check_fetched(fetched, &token, UnixTime::now()))
                            }),
                        }
                    })
                }
            }
        });
        // Verifies with a PEM public key given for this token only (`session.public_key`).
        methods.add_method("verify_with_key", |lua, this, (token, pem): (Value, String)| {
            let Some(token) = client_text(&token) else {
                return reply(lua, Err(TokenError::Malformed("not a string")));
            };
            reply(lua, this.check_with_pem(&token, &pem, UnixTime::now()))
        });
    }
}

/// A job running `fetch`, then `finish`. Logins waiting for the same key share one fetch; each
/// then checks its own token.
fn fetch_then<F>(lua: &Lua, fetch: KeyFetch, finish: F) -> Result<MultiValue>
where
    F: FnOnce(&Lua, &std::result::Result<(), KeyError>) -> Result<MultiValue> + Send + 'static,
{
    let call = Call::to(fetch.url(), Some(fetch.url().to_string()));
    prepare(lua, call, move || fetch.run(), finish)
}

fn reply(lua: &Lua, result: std::result::Result<Claims, TokenError>) -> Result<MultiValue> {
    match result {
        Ok(claims) => Ok(MultiValue::from_vec(vec![json_to_lua(lua, &Json::Object(claims.0))?])),
        Err(error) => {
            let detail = error.detail();
            let mut answer = failure(lua, error.condition(), &error, error.reason())?;
            answer.push_back(Value::String(lua.create_string(detail)?));
            Ok(answer)
        }
    }
}

/// `new_verifier{ algorithm, app_id, secret | public_key | asap_key_server | cache_keys_url, … }`.
fn new_verifier(lua: &Lua, config: Table) -> Result<MultiValue> {
    let algorithm = match algorithm_field(&config)? {
        Ok(algorithm) => algorithm,
        Err(text) => return failure(lua, "bad-config", text, "bad-config"),
    };
    let app_id = opt_string(&config, "app_id")?.unwrap_or_default();
    let mut policy = Policy::new(algorithm, &app_id);
    if let Some(list) = opt_string_list(&config, "accepted_issuers")? {
        policy.accepted_issuers = list;
    }
    if let Some(list) = opt_string_list(&config, "accepted_audiences")? {
        policy.accepted_audiences = list;
    }
    if let Some(required) = opt_bool(&config, "require_room_claim")? {
        policy.require_room_claim = required;
    }
    if let Some(leeway) = opt_number(&config, "leeway")? {
        policy.leeway = leeway as u64;
    }
    if let Some(max) = opt_number(&config, "max_token_bytes")? {
        policy.max_token_bytes = max as usize;
    }
    let source = if let Some(secret) = opt_string(&config, "secret")? {
        KeySourceConfig::Secret(secret.into_bytes())
    } else if let Some(pem) = opt_string(&config, "public_key")? {
        KeySourceConfig::PublicKeyPem(pem)
    } else if let Some(url) = opt_string(&config, "cache_keys_url")? {
        KeySourceConfig::Jwks(url)
    } else if let Some(url) = opt_string(&config, "asap_key_server")? {
        KeySourceConfig::AsapServer(url)
    } else {
        return failure(
            lua,
            "bad-config",
            "one of secret, public_key, asap_key_server or cache_keys_url is required",
            "bad-config",
        );
    };
    let mut cache = KeyCacheConfig::default();
    if let Some(size) = opt_number(&config, "key_cache_size")? {
        cache.capacity = size as usize;
    }
    if let Some(ttl) = opt_seconds(&config, "key_cache_ttl")? {
        cache.asap_ttl = ttl;
    }
    if let Some(rate) = opt_number(&config, "key_fetch_rate")? {
        cache.fetch_rate = rate;
    }
    if let Some(timeout) = opt_number(&config, "http_timeout")? {
        cache.http = Limits { timeout: seconds(timeout.max(0.001)), ..cache.http };
    }
    // Both set: the JWKS first, the key server for kids it lacks (upstream's order).
    let asap_fallback = match (&source, opt_string(&config, "asap_key_server")?) {
        (KeySourceConfig::Jwks(_), Some(url)) => Some(url),
        _ => None,
    };
    let verifier = Verifier::new(policy, source, cache).and_then(|v| match asap_fallback {
        Some(url) => v.with_asap_fallback(url, cache),
        None => Ok(v),
    });
    match verifier {
        Ok(verifier) => {
            Ok(MultiValue::from_vec(vec![Value::UserData(lua.create_userdata(verifier)?)]))
        }
        Err(error) => failure(lua, "bad-config", error, "bad-config"),
    }
}

/// `decode(token)` → `header, payload` without verifying anything.
fn decode(lua: &Lua, token: Value) -> Result<MultiValue> {
    let Some(token) = client_text(&token) else {
        return failure(lua, "bad-request", "Invalid token: not a string", "malformed");
    };
    match token::decode_unverified(&token) {
        Ok((header, payload)) => Ok(MultiValue::from_vec(vec![
            json_to_lua(lua, &Json::Object(header))?,
            json_to_lua(lua, &Json::Object(payload))?,
        ])),
        Err(error) => failure(lua, "bad-request", &error, error.reason()),
    }
}

/// `sign(claims, { algorithm, secret | private_key, kid })` → token.
fn sign(lua: &Lua, (claims, key): (Value, Table)) -> Result<MultiValue> {
    let claims: Map<String, Json> = match lua_to_json(lua, claims) {
        Ok(Json::Object(map)) => map,
        _ => {
            return failure(
                lua,
                "bad-request",
                "claims must be a table of JSON values",
                "bad-claims",
            )
        }
    };
    let algorithm = match algorithm_field(&key)? {
        Ok(algorithm) => algorithm,
        Err(text) => return failure(lua, "bad-config", text, "bad-config"),
    };
    let kid = opt_string(&key, "kid")?;
    let signing_key = if let Some(secret) = opt_string(&key, "secret")? {
        SigningKey::secret(algorithm, secret.as_bytes(), kid)
    } else if let Some(pem) = opt_string(&key, "private_key")? {
        SigningKey::private_pem(algorithm, pem.as_bytes(), kid)
    } else {
        return failure(lua, "bad-config", "a secret or private_key is required", "bad-config");
    };
    match signing_key.and_then(|k| token::sign(&claims, &k)) {
        Ok(jwt) => Ok(MultiValue::from_vec(vec![Value::String(lua.create_string(jwt)?)])),
        Err(error) => failure(lua, error.condition(), &error, error.reason()),
    }
}

/// The `algorithm` field of a config table (HS256 when absent), or why it is not usable.
fn algorithm_field(table: &Table) -> Result<std::result::Result<token::Algorithm, String>> {
    let name = opt_string(table, "algorithm")?.unwrap_or_else(|| "HS256".into());
    Ok(token::parse_algorithm(&name).ok_or_else(|| format!("unsupported algorithm '{name}'")))
}
