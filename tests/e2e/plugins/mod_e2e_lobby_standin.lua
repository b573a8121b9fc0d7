-- TEST STAND-IN (not shipped): plays the part of Jitsi's lobby modules, mod_muc_lobby_rooms and
-- mod_persistent_lobby (on the VirtualHost in a real deployment), for the end-to-end tests of
-- mod_token_security_ondemand. It answers the same global events with the same effects on the
-- room, and logs each event with its fields so the tests can check what was fired and when.
-- Load it on the MUC component: modules_enabled = { "e2e_lobby_standin" }.
local jid = require "util.jid";
local st = require "util.stanza";

local lobby_domain = "lobby."..(module.host:match("^[^.]+%.(.+)$") or module.host);

-- Jitsi's create-lobby-room: occupants become members, the room members-only, a lobby attached.
module:hook_global("create-persistent-lobby-room", function (event)
	local room = event.room;
	module:log("info", "observed create-persistent-lobby-room room=%s skip_display_name_check=%s",
		tostring(room and room.jid), tostring(event.skip_display_name_check));
	for _, occupant in room:each_occupant() do
		if not room:get_affiliation(occupant.bare_jid) then
			room:set_affiliation(true, occupant.bare_jid, "member");
		end
	end
	room:set_members_only(true);
	room._data.lobbyroom = jid.node(room.jid).."@"..lobby_domain;
	room._data.lobby_skip_display_name_check = event.skip_display_name_check;
end);

-- Jitsi's destroy-lobby-room: the lobby goes, members-only is left as it is (the caller's job),
-- so the log records whether the caller cleared it first.
module:hook_global("destroy-lobby-room", function (event)
	local room = event.room;
	module:log("info", "observed destroy-lobby-room room=%s newjid=%s members_only=%s",
		tostring(room and room.jid), tostring(event.newjid), tostring(room:get_members_only() == true));
	room._data.lobbyroom = nil;
	room._data.lobby_skip_display_name_check = nil;
end);

-- Jitsi's join gate (-4, before Prosody's members-only check at -5): no affiliation means
-- registration-required, naming the lobby room to knock at.
module:hook("muc-occupant-pre-join", function (event)
	local room, stanza = event.room, event.stanza;
	if not (room:get_members_only() and room._data.lobbyroom) or room:get_affiliation(stanza.attr.from) then
		return;
	end
	local reply = st.error_reply(stanza, "auth", "registration-required", nil, room.jid);
	reply:tag("lobbyroom", { xmlns = "http://jitsi.org/jitmeet" }):text(room._data.lobbyroom):up();
	event.origin.send(reply);
	return true;
end, -4);
