-- gatehouse: lobby and password switched on demand by the token's context.room.
-- A drop-in for jitsi-contrib's mod_token_security_ondemand (load it on the MUC component): same
-- events and priorities; the decision is made natively, and without Jitsi's lobby modules the
-- room's members-only mode stands in for the lobby.

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
	local room, session = event.room, event.origin;
	if gatehouse.is_healthcheck_room(room.jid) or not (session and session.auth_token) then
		return;
	end
	local context_room = session.jitsi_meet_context_room;
	if type(context_room) ~= "table" then
		return;
	end
	local plan = security.plan(context_room, {
		lobby_on = room._data.lobbyroom ~= nil;
		members_only = room:get_members_only();
		password_set = room:get_password() ~= nil;
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
	local room, occupant, stanza, session = event.room, event.occupant, event.stanza, event.origin;
	if gatehouse.is_healthcheck_room(room.jid) or not (session and session.auth_token) then
		return;
	end
	local steps = security.bypass(session.jitsi_meet_context_user, {
		password_set = room:get_password() ~= nil;
		affiliated = room:get_affiliation(occupant.bare_jid) ~= nil;
	});
	for _, step in ipairs(steps) do
		if step == "supply-password" then
			supply_password(room, stanza);
		elseif step == "admit-as-member" then
			occupant.role = "participant";
			room:set_affiliation(true, occupant.bare_jid, "member");
		end
	end
	if #steps > 0 then
		module:log("debug", "Security bypass for %s in %s", occupant.bare_jid, room.jid);
	end
end, -2);
