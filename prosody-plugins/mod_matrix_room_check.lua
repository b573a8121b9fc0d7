-- gatehouse: a Matrix-verified session joins only the Jitsi room of its verified Matrix room.
-- Load it on the MUC component (mod_matrix_power_sync loads it too). Not in matrix-org's
-- modules: there, the room is checked only at login (?room=), so a session verified for a
-- Matrix room of its own could then join the conference of any other room.
local jid = require "util.jid";
local st = require "util.stanza";

local gatehouse = module:require "gatehouse";
local recheck = module:require "gatehouse_matrix_recheck";
-- Only the canonical name (unpadded lower-case base32, as Element's widget names the call)
-- stands for a Matrix room here: the login also accepts padding ("…=", "…=="), and each of
-- those is another MUC room, where members of the same Matrix room could meet unseen.
local room_id_of = gatehouse.native.matrix.canonical_room_id;

-- Longest Matrix room ID (the spec's limit for identifiers), so the refusal text stays short.
local max_room_id = 255;

local refused = module:metric("counter", "refused_joins", "", "Joins refused: not the verified Matrix room", {}):with_labels();

-- The Matrix room a Jitsi room stands for, printable, or nil.
local function printable_room_id(room_jid)
	local room_id = room_id_of(jid.node(room_jid) or "");
	if room_id and #room_id <= max_room_id and not room_id:find("%c") then
		return room_id;
	end
	return nil;
end

-- Only sessions that mod_auth_matrix_user_verification admitted carry a verified room; the
-- focus and other admins are exempt, as everywhere in Jitsi. Jicofo's health-check rooms are
-- not: only the focus (an admin) needs them, and for a Matrix session they would be a
-- conference open to members of any Matrix room.
local function check_room(event)
	local session, stanza = event.origin, event.stanza;
	local verified = session and session.auth_matrix_user_verification_room_id;
	if verified == nil or gatehouse.is_admin(stanza.attr.from) then
		return;
	end
	if session.auth_matrix_user_verification_revoked then
		-- The membership re-check found the user gone from the Matrix room.
		session.send(st.error_reply(stanza, "cancel", "not-allowed", recheck.removed_text, jid.bare(stanza.attr.to)));
		return true;
	end
	local this_room = printable_room_id(stanza.attr.to);
	if this_room == verified then
		return;
	end
	refused:add(1);
	local text = ("Jitsi room does not match Matrix room: verified for %s, not for %s"):format(verified,
		this_room or "this room (not a Matrix room ID in unpadded base32)");
	module:log("warn", "User %s (%s) not allowed to join %s: verified for Matrix room %s",
		tostring(stanza.attr.from), tostring(session.auth_matrix_user_verification_user_id),
		jid.bare(stanza.attr.to), verified);
	session.send(st.error_reply(stanza, "cancel", "not-allowed", text, jid.bare(stanza.attr.to)));
	return true;
end

-- Priority 99: before every other pre-join check (password, members-only, lobby), as
-- jitsi-meet's token_verification does, so the refusal names the real reason.
module:hook("muc-room-pre-create", check_room, 99);
module:hook("muc-occupant-pre-join", check_room, 99);

-- The periodic membership re-check (homeserver mode, when a VirtualHost's
-- matrix_user_verification_membership_check_interval is set): rooms of this component.
local function muc() return prosody.hosts[module.host] and prosody.hosts[module.host].modules.muc; end
local function live_rooms()
	local service = muc();
	if service and service.live_rooms then return service.live_rooms(); end
	return function () return nil; end;
end
module:add_timer(1, function () return recheck.tick(live_rooms); end);
