-- TEST STAND-IN (not shipped): plays the part of the Jitsi modules that mark a room closed to
-- unauthenticated users (room._data.allowUnauthenticatedAccess = false), which
-- mod_token_verification's verify_room reads. Rooms whose name starts with "noanon" get it.
-- Load it on the MUC component: modules_enabled = { "e2e_room_data" }.
local jid = require "util.jid";

module:hook("muc-room-created", function (event)
	local node = jid.node(event.room.jid) or "";
	-- Tenant rooms too: [tenant]noanon…
	if node:match("^noanon") or node:match("^%[[^%]]*%]noanon") then
		event.room._data.allowUnauthenticatedAccess = false;
	end
end);
