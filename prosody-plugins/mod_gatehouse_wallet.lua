-- gatehouse: rooms gated by Guild.xyz membership, proven with a wallet signature (SIWE).
-- Load on the MUC component. Replaces the seed fork's browser-side check: the server hands out
-- single-use challenges, verifies the signature and asks the Guild API; signatures never reach
-- other participants. Protocol: urn:gatehouse:wallet:0 (see README).
local jid = require "util.jid";
local st = require "util.stanza";

local gatehouse = module:require "gatehouse";
local rooms = module:require "gatehouse_wallet";
local join_gate = module:require "gatehouse_wallet_join";

local domain = module:get_option_string(module.name.."_domain", (module.host:gsub("^[^.]+%.", "")));
local guild_timeout = module:get_option_number(module.name.."_guild_timeout", 5); -- seconds

local gate, _, gate_error = gatehouse.native.wallet.new_gate({
	domain = domain;
	room_url = module:get_option_string(module.name.."_room_url", "https://"..domain.."/%s"); -- %s: room name
	chain_id = module:get_option_number(module.name.."_chain_id", 1);
	challenge_ttl = module:get_option_number(module.name.."_challenge_ttl", 300); -- seconds
	challenge_capacity = module:get_option_number(module.name.."_challenge_capacity", 10000); -- challenges
	challenges_per_user = module:get_option_number(module.name.."_challenges_per_user", 8); -- challenges
	guild_base_url = module:get_option_string(module.name.."_guild_api", "https://api.guild.xyz");
	guild_api_key = module:get_option_string(module.name.."_guild_api_key"); -- sent as x-guild-auth
	guild_service = module:get_option_string(module.name.."_guild_service", "gatehouse"); -- x-guild-service
	timeout = guild_timeout;
	positive_ttl = module:get_option_number(module.name.."_member_cache_ttl", 300); -- seconds
	negative_ttl = module:get_option_number(module.name.."_nonmember_cache_ttl", 30); -- seconds
});
if not gate then
	module:log_status("error", "Wallet gate is misconfigured: %s", gate_error);
	return;
end

local muc = module:depends("muc");
local NS = rooms.NS;
join_gate(gate, guild_timeout);

local challenge_refusals = {
	["challenges-exhausted"] = { "wait", "resource-constraint" };
	["random-failed"] = { "wait", "internal-server-error" };
};

-- A challenge: <iq type='get' to='room@conference'><challenge xmlns='urn:gatehouse:wallet:0'
-- address='0x…'/></iq> → the same element carrying nonce, expires and the SIWE text to sign.
-- It is bound to the asking user: only their join can spend it.
module:hook("iq-get/bare/"..NS..":challenge", function (event)
	local origin, stanza = event.origin, event.stanza;
	local room = muc.get_room_from_jid(jid.bare(stanza.attr.to));
	local guild = room and rooms.required_guild(room);
	if not guild then
		origin.send(st.error_reply(stanza, "cancel", "item-not-found", "This room has no guild requirement"));
		return true;
	end
	local issued, code, text = gate:challenge(jid.bare(stanza.attr.from), room.jid, jid.node(room.jid),
		stanza.tags[1].attr.address, guild);
	if not issued then
		local r = challenge_refusals[code] or { "modify", "bad-request" };
		origin.send(st.error_reply(stanza, r[1], r[2], text));
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

-- The verified token of whoever opens the room may ask for a guild: context.room.guild.
module:hook("muc-occupant-joined", function (event)
	local context_room = gatehouse.verified_context(event.origin, "room");
	if context_room and type(context_room.guild) == "string"
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
