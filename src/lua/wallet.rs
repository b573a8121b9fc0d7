//! `gatehouse.wallet`: Ethereum signatures, SIWE messages, challenges and the Guild API from Lua.
//!
//! Every function takes client input as any Lua value: anything that is not the expected
//! string comes back as `nil, code, text`, never as a Lua error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{IntoLuaMulti, Lua, MultiValue, Result, Table, UserData, UserDataMethods, Value};

use super::convert::{client_text, failure, opt_number, opt_string};
use super::jobs::{prepare, Call};
use crate::clock::UnixTime;
use crate::guild::{self, GuildError, Membership};
use crate::wallet::challenge::{Binding, ChallengeStore, DEFAULT_PER_REQUESTER};
use crate::wallet::room_text;
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
    // `siwe_parse(text)` → `{ scheme, domain, address, statement, uri, chain_id, nonce, issued_at,
    // expiration_time, not_before }` (times in Unix seconds), or nil, code, text.
    t.set(
        "siwe_parse",
        lua.create_function(|lua, text: Value| {
            match SiweMessage::parse(&client_text(&text).unwrap_or_default()) {
                Ok(m) => {
                    let out = lua.create_table()?;
                    out.set("scheme", m.scheme)?;
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
    room_url: String,
    chain_id: u64,
    store: Arc<ChallengeStore>,
    guild: guild::Client,
}

/// `new_gate{ domain, room_url = "https://<domain>/%s", chain_id = 1, challenge_ttl = 300,
/// challenge_capacity = 10000, challenges_per_user = 8, guild_base_url, guild_api_key,
/// guild_service = "gatehouse", timeout = 5, max_reply_size, positive_ttl = 300,
/// negative_ttl = 30, cache_size = 4096 }` (seconds and bytes).
fn new_gate(lua: &Lua, options: Table) -> Result<MultiValue> {
    let Some(domain) = opt_string(&options, "domain")?.filter(|d| !d.is_empty()) else {
        return failure(lua, "bad-config", "domain is required", "bad-config");
    };
    let room_url =
        opt_string(&options, "room_url")?.unwrap_or_else(|| format!("https://{domain}/%s"));
    if let Err(error) = room_text::room_uri(&room_url, "room") {
        return failure(lua, "bad-config", format!("{error}: {room_url}"), "bad-config");
    }
    let mut config = guild::Config::default();
    if let Some(url) = opt_string(&options, "guild_base_url")? {
        config.base_url = url;
    }
    config.api_key = opt_string(&options, "guild_api_key")?.filter(|k| !k.is_empty());
    if let Some(service) = opt_string(&options, "guild_service")?.filter(|s| !s.is_empty()) {
        if service.bytes().any(|b| b.is_ascii_control()) {
            return failure(
                lua,
                "bad-config",
                "guild service name has control characters",
                "bad-config",
            );
        }
        config.service_name = service;
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
    let per_user =
        opt_number(&options, "challenges_per_user")?.map_or(DEFAULT_PER_REQUESTER, |n| n as usize);
    let chain_id = opt_number(&options, "chain_id")?.unwrap_or(1.0) as u64;
    match guild::Client::new(config) {
        Ok(guild) => {
            let store = ChallengeStore::new(Duration::from_secs_f64(ttl), capacity, per_user);
            let gate = Gate { domain, room_url, chain_id, store: Arc::new(store), guild };
            lua.create_userdata(gate)?.into_lua_multi(lua)
        }
        Err(error) => failure(lua, "bad-config", error, "bad-config"),
    }
}

impl Gate {
    fn venue<'a>(&'a self, requester: &'a str, room: &'a str, uri: &'a str) -> Venue<'a> {
        Venue { domain: &self.domain, uri, chain_id: self.chain_id, room, requester }
    }

    fn uri(&self, node: &str) -> String {
        // The template was tried in new_gate: it has its one placeholder.
        room_text::room_uri(&self.room_url, node).unwrap_or_default()
    }
}

impl UserData for Gate {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `gate:challenge(requester, room_jid, room_node, address, guild)` → `{ message, nonce,
        // expires, address, uri }`, or nil, code, text. `requester` is the asking user's bare JID.
        methods.add_method(
            "challenge",
            |lua, this, (requester, room, node, address, guild): (String, String, String, Value, String)| {
                let address = match Address::parse(&client_text(&address).unwrap_or_default()) {
                    Ok(address) => address,
                    Err(e) => return (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
                };
                let now = UnixTime::now();
                let binding = Binding { requester: &requester, room: &room, address: &address };
                let issued = match this.store.issue(binding, now, Instant::now()) {
                    Ok(issued) => issued,
                    Err(e) => return (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
                };
                let uri = this.uri(&node);
                let message = SiweMessage {
                    scheme: None,
                    domain: this.domain.clone(),
                    address,
                    statement: Some(room_text::statement(&node, &guild)),
                    uri: uri.clone(),
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
                out.set("uri", uri)?;
                out.into_lua_multi(lua)
            },
        );
        // `gate:check(requester, room_jid, room_node, message, signature, address)` → the EIP-55
        // address and the nonce, or nil, condition, text, code. Does not spend the challenge
        // (but a bad signature over a live one does: that refusal is final).
        methods.add_method(
            "check",
            |lua,
             this,
             (requester, room, node, message, signature, address): (
                String,
                String,
                String,
                Value,
                Value,
                Value,
            )| {
                let (message, signature, address) =
                    (client_text(&message), client_text(&signature), client_text(&address));
                let (Some(message), Some(signature), Some(address)) = (message, signature, address)
                else {
                    return failure(
                        lua,
                        "bad-message",
                        "proof needs message, signature and address",
                        "bad-request",
                    );
                };
                let proof = Proof { message: &message, signature: &signature, address: &address };
                let uri = this.uri(&node);
                let venue = this.venue(&requester, &room, &uri);
                match wallet::check_proof(
                    &this.store,
                    &proof,
                    &venue,
                    UnixTime::now(),
                    Instant::now(),
                ) {
                    Ok(checked) => {
                        (checked.address.to_checksum(), checked.nonce).into_lua_multi(lua)
                    }
                    Err(e) => {
                        (Value::Nil, e.condition(), e.to_string(), e.code()).into_lua_multi(lua)
                    }
                }
            },
        );
        // `gate:spend(nonce, requester, room_jid, address)` → true, or nil, condition, text
        // (the challenge was spent, expired or replaced meanwhile).
        methods.add_method(
            "spend",
            |lua, this, (nonce, requester, room, address): (String, String, String, String)| {
                let address = match Address::parse(&address) {
                    Ok(address) => address,
                    Err(e) => {
                        return (Value::Nil, "bad-signature", e.to_string()).into_lua_multi(lua)
                    }
                };
                let binding = Binding { requester: &requester, room: &room, address: &address };
                match this.store.spend(&nonce, binding, UnixTime::now(), Instant::now()) {
                    Ok(()) => true.into_lua_multi(lua),
                    Err(e) => (Value::Nil, e.code(), e.to_string()).into_lua_multi(lua),
                }
            },
        );
        // `gate:challenges()` → how many challenges are remembered (for tests and metrics).
        methods.add_method("challenges", |_, this, ()| Ok(this.store.len()));
        // `gate:membership(guild, address)` → `{ member, guild_id, guild_name, url_name,
        // cached }`, or nil, condition, text, reason, log_text, or a Job when the Guild API must
        // be asked. `text` may be shown to the user; `log_text` adds the API's own error message;
        // `reason` is a code from a fixed set (metrics labels).
        methods.add_method("membership", |lua, this, (guild, address): (Value, Value)| {
            let guild = client_text(&guild).unwrap_or_default();
            let address = match Address::parse(&client_text(&address).unwrap_or_default()) {
                Ok(address) => address,
                Err(e) => return (Value::Nil, "bad-signature", e.to_string()).into_lua_multi(lua),
            };
            match this.guild.cached(&guild, &address, Instant::now()) {
                Ok(Some(membership)) => membership_reply(lua, Ok(membership)),
                Err(error) => membership_reply(lua, Err(error)),
                // The same address asking about the same guild at once is one question.
                Ok(None) => {
                    let client = this.guild.clone();
                    let key =
                        format!("{}/{}", guild.trim().to_ascii_lowercase(), address.to_lowercase());
                    let call = Call::to(client.base_url(), Some(key));
                    prepare(
                        lua,
                        call,
                        move || client.ask(&guild, &address),
                        |lua, result| membership_reply(lua, result.clone()),
                    )
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
        Err(error) => {
            let log_text = error.to_string();
            (Value::Nil, error.condition(), error.public_text(), error.code(), log_text)
                .into_lua_multi(lua)
        }
    }
}
