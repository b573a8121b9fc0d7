-- TEST STAND-IN (not shipped): marks rooms whose name starts with "closed-" with
-- allowUnauthenticatedAccess = false, the flag Jitsi's own modules (e.g. a room's
-- tenant/authentication policy) set in room._data and that upstream's verify_room reads.
-- Load it on the MUC component.
module:hook("muc-room-created", function (event)
	local room = event.room;
	if (room.jid:match("^[^@]*") or ""):match("^closed%-") then
		room._data.allowUnauthenticatedAccess = false;
	end
end);
