//! `gatehouse.wallet`: Ethereum signatures, SIWE messages, challenges and the Guild API from Lua.
//!
//! Every function takes client input as any Lua value: anything that is not the expected
//! string comes back as `nil, code, text`, never as a Lua error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{IntoLuaMulti, Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};

use super::convert::{client_text, failure, opt_number, opt_string};
use super::jobs::{spawn, Reply};
use crate::clock::UnixTime;
use crate::guild::{self, GuildError, Membership};
use crate::wallet::challenge::ChallengeStore;
use crate::wallet::siwe::{format_time, SiweMessage};
use crate::wallet::{self, Address, Proof, Venue};

pub fn exports(lua: &Lua) -> Result<Table> {
    let t = lua.create_table()?;
    // `digest(message)` → the EIP-191 personal_sign digest as `0x` hex.
    t.set(
        "digest",
        lua.create_function(|lua, message: Value| match message {
            Value::String(s) => {
                wallet::encode_hex(&wallet::personal_digest(&s.as_bytes())).into_lua_multi(lua)
            }
            _ => failure(lua, "bad-request", "message must be a string", "bad-message"),
        })?,
    )?;
    // `recover(message, signature)` → the EIP-55 address that signed, or nil, code, text.
    t.set(
        "recover",
        lua.create_function(|lua, (message, signature): (Value, Value)| {
            let (Value::String(message), Some(signature)) = (message, client_text(&signature))
            else {
                return failure(
                    lua,
                    "bad-request",
                    "message and signature must be strings",
                    "bad-request",
                );
            };
            match wallet::recover_personal(&message.as_bytes(), &signature) {
                Ok(address) => address.to_checksum().into_lua_multi(lua),
                Err(e) => (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
            }
        })?,
    )?;
    // `checksum(address)` → the EIP-55 form, or nil, code, text.
    t.set(
        "checksum",
        lua.create_function(|lua, address: Value| {
            match Address::parse(&client_text(&address).unwrap_or_default()) {
                Ok(address) => address.to_checksum().into_lua_multi(lua),
                Err(e) => (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
            }
        })?,
    )?;
    // `siwe_parse(text)` → `{ domain, address, statement, uri, chain_id, nonce, issued_at,
    // expiration_time, not_before }` (times in Unix seconds), or nil, code, text.
    t.set(
        "siwe_parse",
        lua.create_function(|lua, text: Value| {
            match SiweMessage::parse(&client_text(&text).unwrap_or_default()) {
                Ok(m) => {
                    let out = lua.create_table()?;
                    out.set("domain", m.domain)?;
                    out.set("address", m.address.to_checksum())?;
                    out.set("statement", m.statement)?;
                    out.set("uri", m.uri)?;
                    out.set("chain_id", m.chain_id)?;
                    out.set("nonce", m.nonce)?;
                    out.set("issued_at", m.issued_at.0)?;
                    out.set("expiration_time", m.expiration_time.map(|t| t.0))?;
                    out.set("not_before", m.not_before.map(|t| t.0))?;
                    out.into_lua_multi(lua)
                }
                Err(e) => (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
            }
        })?,
    )?;
    t.set("new_gate", lua.create_function(new_gate)?)?;
    Ok(t)
}

/// Challenges, proofs and Guild lookups for one MUC component.
#[derive(Clone)]
struct Gate {
    domain: String,
    chain_id: u64,
    store: Arc<ChallengeStore>,
    guild: guild::Client,
}

/// `new_gate{ domain, chain_id = 1, challenge_ttl = 300, challenge_capacity = 10000,
/// guild_base_url, guild_api_key, guild_api_key_header, timeout = 5, max_reply_size,
/// positive_ttl = 300, negative_ttl = 30, cache_size = 4096 }` (seconds and bytes).
fn new_gate(lua: &Lua, options: Table) -> Result<MultiValue> {
    let Some(domain) = opt_string(&options, "domain")?.filter(|d| !d.is_empty()) else {
        return failure(lua, "bad-config", "domain is required", "bad-config");
    };
    let mut config = guild::Config::default();
    if let Some(url) = opt_string(&options, "guild_base_url")? {
        config.base_url = url;
    }
    config.api_key = opt_string(&options, "guild_api_key")?.filter(|k| !k.is_empty());
    if let Some(header) = opt_string(&options, "guild_api_key_header")? {
        config.api_key_header = header;
    }
    if let Some(seconds) = opt_number(&options, "timeout")? {
        // A zero timeout would mean "no deadline" to some clients; never let it.
        config.limits.timeout = Duration::from_secs_f64(seconds.clamp(0.001, 3600.0));
    }
    if let Some(bytes) = opt_number(&options, "max_reply_size")? {
        config.limits.max_body = bytes as u64;
    }
    if let Some(seconds) = opt_number(&options, "positive_ttl")? {
        config.positive_ttl = Duration::from_secs_f64(seconds.min(86_400.0));
    }
    if let Some(seconds) = opt_number(&options, "negative_ttl")? {
        config.negative_ttl = Duration::from_secs_f64(seconds.min(86_400.0));
    }
    if let Some(size) = opt_number(&options, "cache_size")? {
        config.cache_size = size as usize;
    }
    let ttl = opt_number(&options, "challenge_ttl")?.unwrap_or(300.0).clamp(1.0, 86_400.0);
    let capacity = opt_number(&options, "challenge_capacity")?.unwrap_or(10_000.0) as usize;
    let chain_id = opt_number(&options, "chain_id")?.unwrap_or(1.0) as u64;
    match guild::Client::new(config) {
        Ok(guild) => {
            let gate = Gate {
                domain,
                chain_id,
                store: Arc::new(ChallengeStore::new(Duration::from_secs_f64(ttl), capacity)),
                guild,
            };
            lua.create_userdata(gate)?.into_lua_multi(lua)
        }
        Err(error) => failure(lua, "bad-config", error, "bad-config"),
    }
}

impl UserData for Gate {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `gate:challenge(room_jid, room_uri, address, statement)` → `{ message, nonce,
        // expires, address }`, or nil, code, text.
        methods.add_method(
            "challenge",
            |lua, this, (room, uri, address, statement): (String, String, Value, String)| {
                let address = match Address::parse(&client_text(&address).unwrap_or_default()) {
                    Ok(address) => address,
                    Err(e) => return (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
                };
                let now = UnixTime::now();
                let issued = match this.store.issue(&room, address, now, Instant::now()) {
                    Ok(issued) => issued,
                    Err(e) => return (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
                };
                let message = SiweMessage {
                    domain: this.domain.clone(),
                    address,
                    // A statement is one line: drop line breaks a room or guild name might hold.
                    statement: Some(statement.replace(['\r', '\n'], " ")),
                    uri,
                    chain_id: this.chain_id,
                    nonce: issued.nonce.clone(),
                    issued_at: now,
                    expiration_time: Some(issued.expires),
                    not_before: None,
                    request_id: None,
                    resources: Vec::new(),
                };
                let out = lua.create_table()?;
                out.set("message", message.to_text())?;
                out.set("nonce", issued.nonce)?;
                out.set("expires", format_time(issued.expires))?;
                out.set("address", address.to_checksum())?;
                out.into_lua_multi(lua)
            },
        );
        // `gate:redeem(room_jid, room_uri, message, signature, address)` → the EIP-55 address,
        // or nil, condition, text, code. Spends the challenge on success.
        methods.add_method(
            "redeem",
            |lua, this, (room, uri, message, signature, address): (String, String, Value, Value, Value)| {
                let (message, signature, address) =
                    (client_text(&message), client_text(&signature), client_text(&address));
                let (Some(message), Some(signature), Some(address)) = (message, signature, address)
                else {
                    return failure(lua, "bad-message", "proof needs message, signature and address", "bad-request");
                };
                let proof = Proof { message: &message, signature: &signature, address: &address };
                let venue =
                    Venue { domain: &this.domain, uri: &uri, chain_id: this.chain_id, room: &room };
                match wallet::redeem(&this.store, &proof, &venue, UnixTime::now(), Instant::now()) {
                    Ok(address) => address.to_checksum().into_lua_multi(lua),
                    Err(e) => {
                        (Value::Nil, e.condition(), e.to_string(), e.code()).into_lua_multi(lua)
                    }
                }
            },
        );
        // `gate:membership(guild, address)` → `{ member, guild_id, guild_name, url_name,
        // cached }`, or nil, condition, text, or a Job when the Guild API must be asked.
        methods.add_method("membership", |lua, this, (guild, address): (Value, Value)| {
            let guild = client_text(&guild).unwrap_or_default();
            let address = match Address::parse(&client_text(&address).unwrap_or_default()) {
                Ok(address) => address,
                Err(e) => return (Value::Nil, "bad-signature", e.to_string()).into_lua_multi(lua),
            };
            match this.guild.cached(&guild, &address, Instant::now()) {
                Ok(Some(membership)) => membership_reply(lua, Ok(membership)),
                Err(error) => membership_reply(lua, Err(error)),
                Ok(None) => {
                    let client = this.guild.clone();
                    spawn(lua, move || {
                        let result = client.ask(&guild, &address);
                        Box::new(move |lua: &Lua| membership_reply(lua, result)) as Reply
                    })
                }
            }
        });
    }
}

fn membership_reply(
    lua: &Lua,
    result: std::result::Result<Membership, GuildError>,
) -> Result<MultiValue> {
    match result {
        Ok(m) => {
            let t = lua.create_table()?;
            t.set("member", m.member)?;
            t.set("guild_id", m.guild.id)?;
            t.set("guild_name", m.guild.name)?;
            t.set("url_name", m.guild.url_name)?;
            t.set("cached", m.cached)?;
            t.into_lua_multi(lua)
        }
        Err(error) => (Value::Nil, error.condition(), error.to_string()).into_lua_multi(lua),
    }
}
