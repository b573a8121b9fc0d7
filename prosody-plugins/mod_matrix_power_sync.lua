-- gatehouse: Matrix power levels decide who owns a Jitsi room (load on the MUC component).
-- A drop-in for matrix-org's mod_matrix_power_sync: a participant whose Matrix power is at
-- least state_default (as mod_auth_matrix_user_verification found with uvs_sync_power_levels),
-- or a server admin such as Jicofo's focus, is made owner; everyone else is a member; every
-- other attempt to grant ownership is refused, so it never passes on when owners leave.
local jid = require "util.jid";

local gatehouse = module:require "gatehouse";
-- The same reading of room names as mod_matrix_room_check: the canonical name only.
local room_id_of = gatehouse.native.matrix.canonical_room_id;

-- A Matrix-verified session joins only its own room's conference (not upstream's, which
-- checks the room at login only): enabling power sync is enough to get that check.
module:depends("matrix_room_check");

-- True only while this module sets an affiliation itself.
local granting = false;

-- Upstream trusts is_owner in any room; the ownership was verified for one Matrix room, so it
-- holds only in the Jitsi room that encodes that room.
local function is_matrix_owner(session, room)
	local verified_room = session and session.auth_matrix_user_verification_room_id;
	return session ~= nil and session.auth_matrix_user_verification_is_owner == true
		and verified_room ~= nil and room_id_of(jid.node(room.jid)) == verified_room;
end

local function set_affiliation(room, user, affiliation)
	granting = true;
	local ok, done, _, condition = pcall(room.set_affiliation, room, true, user, affiliation);
	granting = false;
	if not (ok and done) then
		module:log("warn", "Could not make %s %s of %s: %s", user, affiliation, room.jid, tostring(ok and condition or done));
	end
end

-- Owner or member, from the session's Matrix power (upstream does this after each presence;
-- after the join is what matters, since nobody else can grant ownership).
local function sync_affiliation(room, occupant, session)
	if gatehouse.is_healthcheck_room(room.jid) then
		return;
	end
	local user = occupant.bare_jid;
	local affiliation = (gatehouse.is_admin(user) or is_matrix_owner(session, room)) and "owner" or "member";
	if room:get_affiliation(user) == affiliation then
		return;
	end
	module:log("info", "Setting %s as %s of room %s based on Matrix power levels", user, affiliation, room.jid);
	set_affiliation(room, user, affiliation);
end

module:hook("muc-occupant-joined", function (event)
	sync_affiliation(event.room, event.occupant, event.origin);
end);

-- The membership re-check saw the power change (promoted or demoted in Matrix).
module:hook("matrix-power-changed", function (event)
	sync_affiliation(event.room, event.occupant, event.session);
end);

-- Every other owner grant is refused, as upstream: modify/not-acceptable. Admins (focus
-- creating the room) keep theirs, which is what this module would give them anyway.
module:hook("muc-pre-set-affiliation", function (event)
	if granting or event.affiliation ~= "owner" or gatehouse.is_healthcheck_room(event.room.jid)
		or gatehouse.is_admin(event.jid) then
		return;
	end
	module:log("debug", "Refusing owner for %s in %s: only Matrix power levels grant it", event.jid, event.room.jid);
	event.allowed = false;
	event.error = { type = "modify"; condition = "not-acceptable" };
end);
