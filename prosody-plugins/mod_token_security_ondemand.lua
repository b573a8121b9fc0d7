-- gatehouse: lobby and password switched on demand by the token's context.room.
-- A drop-in for jitsi-contrib's mod_token_security_ondemand (load it on the MUC component): same
-- events and priorities; the decision is made natively, and without Jitsi's lobby modules the
-- room's members-only mode stands in for the lobby. Room changes and the bypass come only from
-- claims a signature-verifying provider verified (gatehouse.verified_context), never from
-- session.jitsi_meet_context_*, which Matrix widget tokens and guests' ?token= fill too.
local jid = require "util.jid";

local gatehouse = module:require "gatehouse";
local security = gatehouse.native.security;

local MUC_NS = "http://jabber.org/protocol/muc";

local logged_mode;
local function note_lobby_mode()
	local available = gatehouse.jitsi_lobby_loaded();
	local mode = available and "Jitsi's lobby (create-persistent-lobby-room / destroy-lobby-room)"
		or "the room's members-only mode (Jitsi's lobby modules are not loaded)";
	if mode ~= logged_mode then
		logged_mode = mode;
		module:log("info", "Token lobby requests use %s", mode);
	end
	return available;
end
module:hook_global("server-started", function () note_lobby_mode(); end); -- returns nothing: others see the event too

module:hook("muc-occupant-joined", function (event)
	local room = event.room;
	if gatehouse.is_healthcheck_room(room.jid) then
		return;
	end
	local context_room = gatehouse.verified_context(event.origin, "room");
	if not context_room then
		return;
	end
	-- Only what differs from the room is planned: the same password on every join changes
	-- nothing and announces nothing.
	local plan = security.plan(context_room, {
		lobby_on = room._data.lobbyroom ~= nil;
		members_only = room:get_members_only();
		password = room:get_password();
		lobby_available = note_lobby_mode();
	});
	local verbs, config_changed = gatehouse.apply_security_plan(room, plan);
	if #verbs == 0 then
		return;
	end
	if config_changed then
		gatehouse.announce_config_change(room);
	end
	room:save(true);
	-- Who and what, never the password.
	module:log("info", "%s changed %s by token: %s", event.occupant.bare_jid, room.jid, table.concat(verbs, ", "));
end);

-- Puts the room's password into the join, replacing any the client sent.
local function supply_password(room, stanza)
	local join = stanza:get_child("x", MUC_NS);
	if not join then
		return; -- not a MUC join: Prosody's password check does not apply to it either
	end
	join:maptags(function (tag)
		if tag.name == "password" then return nil; end
		return tag;
	end);
	join:tag("password", { xmlns = MUC_NS }):text(room:get_password()):up();
end

-- Priority -2: after token verification (99), before the lobby (-4), members-only (-5) and the
-- password check (-20), as upstream.
module:hook("muc-occupant-pre-join", function (event)
	local room, occupant, stanza = event.room, event.occupant, event.stanza;
	local bare = jid.bare(stanza.attr.from);
	-- occupant is someone else's when the nick is taken: Prosody refuses that join (conflict).
	if gatehouse.is_healthcheck_room(room.jid) or occupant.bare_jid ~= bare then
		return;
	end
	local context_user = gatehouse.verified_context(event.origin, "user");
	if not context_user then
		return;
	end
	local steps = security.bypass(context_user, {
		password_set = room:get_password() ~= nil;
		affiliated = room:get_affiliation(bare) ~= nil;
	});
	for _, step in ipairs(steps) do
		if step == "supply-password" then
			supply_password(room, stanza);
		elseif step == "admit-as-member" then
			-- After the password is supplied: only the room lock (-30), or a ban, can still refuse.
			-- That refusal comes here, as upstream's user gets it there, but without the
			-- membership upstream grants first and leaves behind.
			if gatehouse.admit_as_member(event, bare, "Security bypass") then return true; end
		end
	end
	if #steps > 0 then
		module:log("debug", "Security bypass for %s in %s", bare, room.jid);
	end
end, -2);
