-- gatehouse: rooms gated by Guild.xyz membership, proven with a wallet signature (SIWE).
-- Load on the MUC component. Replaces the seed fork's browser-side check: the server hands out
-- single-use challenges, verifies the signature and asks the Guild API; signatures never reach
-- other participants. Protocol: urn:gatehouse:wallet:0 (see README).
local jid = require "util.jid";
local st = require "util.stanza";

local gatehouse = module:require "gatehouse";
local rooms = module:require "gatehouse_wallet";

local domain = module:get_option_string(module.name.."_domain", (module.host:gsub("^[^.]+%.", "")));
local room_url = module:get_option_string(module.name.."_room_url", "https://"..domain.."/%s"); -- %s: room name
local guild_timeout = module:get_option_number(module.name.."_guild_timeout", 5); -- seconds

local gate = assert(gatehouse.native.wallet.new_gate({
	domain = domain;
	chain_id = module:get_option_number(module.name.."_chain_id", 1);
	challenge_ttl = module:get_option_number(module.name.."_challenge_ttl", 300); -- seconds
	guild_base_url = module:get_option_string(module.name.."_guild_api", "https://api.guild.xyz");
	guild_api_key = module:get_option_string(module.name.."_guild_api_key");
	timeout = guild_timeout;
	positive_ttl = module:get_option_number(module.name.."_member_cache_ttl", 300); -- seconds
	negative_ttl = module:get_option_number(module.name.."_nonmember_cache_ttl", 30); -- seconds
}));

local muc = module:depends("muc");
local NS = rooms.NS;

-- Proof failures → stanza errors. Texts tell the user what to do next; the fourth field marks
-- texts that say it all (no detail from the native side appended).
local refusals = {
	["bad-signature"] = { "auth", "not-authorized", "Bad signature" };
	["bad-message"] = { "modify", "bad-request", "Bad sign-in message" };
	["unknown-challenge"] = { "auth", "not-authorized", "Unknown challenge: ask the room for a new one"; true };
	["expired-challenge"] = { "auth", "not-authorized", "Challenge expired: ask the room for a new one"; true };
	["used-challenge"] = { "auth", "not-authorized", "Challenge already used: ask the room for a new one"; true };
	["challenge-wrong-room"] = { "auth", "not-authorized", "Challenge was issued for another room"; true };
	["challenge-wrong-address"] = { "auth", "not-authorized", "Challenge was issued to another address"; true };
	["not-member"] = { "auth", "forbidden", "Not a member of the guild" };
	["bad-guild"] = { "cancel", "item-not-found", "The room's guild is unknown to the Guild service" };
	["guild-unavailable"] = { "wait", "service-unavailable", "Guild service unavailable, try again later" };
	["remote-server-timeout"] = { "wait", "service-unavailable", "Guild service unavailable, try again later" };
};

local function refuse(event, condition, detail)
	local r = refusals[condition] or { "cancel", "internal-server-error", "Wallet check failed" };
	local text = (detail and not r[4]) and (r[3]..": "..detail) or r[3];
	module:log("info", "Wallet join of %s to %s refused: %s", event.occupant.bare_jid, event.room.jid, text);
	event.origin.send(st.error_reply(event.stanza, r[1], r[2], text, event.room.jid));
	return true;
end

local function room_uri(room)
	return room_url:format(jid.node(room.jid));
end

-- A challenge: <iq type='get' to='room@conference'><challenge xmlns='urn:gatehouse:wallet:0'
-- address='0x…'/></iq> → the same element carrying nonce, expires and the SIWE text to sign.
module:hook("iq-get/bare/"..NS..":challenge", function (event)
	local origin, stanza = event.origin, event.stanza;
	local room = muc.get_room_from_jid(jid.bare(stanza.attr.to));
	local guild = room and rooms.required_guild(room);
	if not guild then
		origin.send(st.error_reply(stanza, "cancel", "item-not-found", "This room has no guild requirement"));
		return true;
	end
	local statement = ("Join the room %s, open to members of the guild %s."):format(jid.node(room.jid), guild);
	local issued, _, text = gate:challenge(room.jid, room_uri(room), stanza.tags[1].attr.address, statement);
	if not issued then
		origin.send(st.error_reply(stanza, "modify", "bad-request", text));
		return true;
	end
	origin.send(st.reply(stanza):tag("challenge", { xmlns = NS; nonce = issued.nonce;
		expires = issued.expires; address = issued.address }):text(issued.message));
	return true;
end);

-- The proof never travels further than this module, whatever happens to the join, and a proof
-- sent in the wrong place (a message through the room) is dropped too: it is a credential.
local function drop_proof(event)
	event.stanza:remove_children("proof", NS);
end
module:hook("muc-occupant-groupchat", drop_proof, 10);
module:hook("muc-private-message", drop_proof, 10);
module:hook("muc-occupant-pre-change", function (event)
	event.stanza:remove_children("proof", NS);
	rooms.legacy.take(event.stanza);
end, 100);

-- The address a join proves, or nil, condition, text: SIWE, or the seed's format when enabled.
local function proven_address(room, guild, stanza, proof)
	if proof then
		return gate:redeem(room.jid, room_uri(room), proof:get_child_text("message"),
			proof.attr.signature, proof.attr.address);
	end
	local signature, address = rooms.legacy.take(stanza);
	if signature and rooms.legacy.enabled then
		return rooms.legacy.verify(room, guild, signature, address);
	end
end

-- Priority -3: after the security bypass (-2), before token moderation (-3.5), the lobby (-4)
-- and members-only (-5), so a proven member walks past both.
module:hook("muc-occupant-pre-join", function (event)
	local room, occupant, stanza, session = event.room, event.occupant, event.stanza, event.origin;
	local proof = stanza:get_child("proof", NS);
	stanza:remove_children("proof", NS);
	local guild = rooms.required_guild(room);
	if not guild or gatehouse.is_healthcheck_room(room.jid) or gatehouse.is_admin(occupant.bare_jid)
		or room:get_affiliation(occupant.bare_jid) then
		rooms.legacy.take(stanza);
		return; -- admins, owners and members (incl. security bypass, -2) are never asked
	end
	local user = session and session.jitsi_meet_context_user;
	local bypass = type(user) == "table" and user.security_bypass == true;
	local address, condition, text = proven_address(room, guild, stanza, not bypass and proof);
	if bypass then
		module:log("debug", "Guild check bypassed by token for %s in %s", occupant.bare_jid, room.jid);
	elseif not address then
		-- No proof at all: the lobby or members-only check answers, as for anyone.
		return condition and refuse(event, condition, text) or nil;
	else
		-- Two requests at most (guild, then membership), each bounded by the timeout.
		local answer, failure, detail = gatehouse.settle(2 * guild_timeout + 1, gate:membership(guild, address));
		if not answer then
			return refuse(event, failure, detail);
		elseif not answer.member then
			return refuse(event, "not-member", guild);
		end
		module:log("info", "%s proved %s is in guild %s for %s", occupant.bare_jid, address, guild, room.jid);
	end
	room:set_affiliation(true, occupant.bare_jid, "member");
	occupant.role = "participant";
end, -3);

-- The token of whoever opens the room may ask for a guild: context.room.guild.
module:hook("muc-occupant-joined", function (event)
	local session = event.origin;
	local context_room = session and session.auth_token and session.jitsi_meet_context_room;
	if type(context_room) == "table" and type(context_room.guild) == "string"
		and not gatehouse.is_healthcheck_room(event.room.jid) and rooms.required_guild(event.room) == nil
		and event.room._data.gatehouse_guild == nil then
		local changed, err = rooms.set_requirement(event.room, context_room.guild, true);
		if changed then
			gatehouse.announce_config_change(event.room);
			module:log("info", "%s gated %s by token: guild %s", event.occupant.bare_jid, event.room.jid, context_room.guild);
		elseif err then
			module:log("warn", "%s asked for guild %q in %s: %s", event.occupant.bare_jid, context_room.guild, event.room.jid, err);
		end
	end
end);
