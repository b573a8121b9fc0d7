-- gatehouse: lobby and password switched on demand by the token's context.room.
-- A drop-in for jitsi-contrib's mod_token_security_ondemand (load it on the MUC component): same
-- events and priorities; the decision is made natively, and without Jitsi's lobby modules the
-- room's members-only mode stands in for the lobby.
local st = require "util.stanza";

local gatehouse = module:require "gatehouse";
local security = gatehouse.native.security;

local MUC_NS = "http://jabber.org/protocol/muc";
local MUC_USER_NS = "http://jabber.org/protocol/muc#user";

-- Jitsi's lobby (muc_lobby_rooms + persistent_lobby, on the VirtualHost) is in use when something
-- answers both of its global events. Asked on every use: hosts load in any order.
local function jitsi_lobby_loaded()
	return prosody.events.get_handlers("create-persistent-lobby-room") ~= nil
		and prosody.events.get_handlers("destroy-lobby-room") ~= nil;
end

local logged_mode;
local function note_lobby_mode()
	local available = jitsi_lobby_loaded();
	local mode = available and "Jitsi's lobby (create-persistent-lobby-room / destroy-lobby-room)"
		or "the room's members-only mode (Jitsi's lobby modules are not loaded)";
	if mode ~= logged_mode then
		logged_mode = mode;
		module:log("info", "Token lobby requests use %s", mode);
	end
	return available;
end
module:hook_global("server-started", function () note_lobby_mode(); end); -- returns nothing: others see the event too

-- Present occupants become members first, as Jitsi's create-lobby-room does: Prosody removes
-- non-members from a room that turns members-only, and the token holder must stay in.
local function set_members_only(room, on)
	if on then
		for _, occupant in room:each_occupant() do
			if not room:get_affiliation(occupant.bare_jid) then
				room:set_affiliation(true, occupant.bare_jid, "member");
			end
		end
	end
	room:set_members_only(on);
end

local apply = {
	["enable-lobby"] = function (room)
		prosody.events.fire_event("create-persistent-lobby-room", { room = room; skip_display_name_check = true });
	end;
	["disable-lobby"] = function (room)
		prosody.events.fire_event("destroy-lobby-room", { room = room; newjid = room.jid });
	end;
	["set-members-only"] = set_members_only;
	["set-password"] = function (room, password) room:set_password(password); end;
	["clear-password"] = function (room) room:set_password(nil); end;
};

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
	local verbs, config_changed = {}, false;
	for _, action in ipairs(plan) do
		apply[action.verb](room, action.value);
		verbs[#verbs + 1] = action.verb;
		-- Jitsi's lobby handlers announce their own change; the others need the 104 that tells
		-- clients and Jicofo to read the room configuration again.
		config_changed = config_changed or not action.verb:match("lobby$");
	end
	if #verbs == 0 then
		return;
	end
	if config_changed then
		room:broadcast_message(st.message({ type = "groupchat"; from = room.jid })
			:tag("x", { xmlns = MUC_USER_NS }):tag("status", { code = "104" }));
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
