-- gatehouse: token holders marked by their issuer walk past the lobby.
-- A drop-in for jitsi-contrib's mod_token_lobby_bypass (load it on the MUC component): the same
-- claim, context.user.lobby_bypass = true (the boolean), on the same event and priority. Only a
-- token a signature-verifying provider verified counts (gatehouse.verified_context): a Matrix
-- widget token or a guest's ?token= carrying the claim knocks like everyone else. Works with
-- Jitsi's lobby and, without Jitsi's lobby modules, with the room's members-only mode.
local jid = require "util.jid";

local gatehouse = module:require "gatehouse";

module:log("info", "loaded");

-- Priority -3: after token verification (99) and the security bypass (-2), before the lobby (-4)
-- and members-only (-5), as upstream.
module:hook("muc-occupant-pre-join", function (event)
	local room, occupant = event.room, event.occupant;
	local bare = jid.bare(event.stanza.attr.from);
	-- occupant is someone else's when the nick is taken: Prosody refuses that join (conflict).
	if gatehouse.is_healthcheck_room(room.jid) or occupant.bare_jid ~= bare or not gatehouse.room_has_lobby(room) then
		return;
	end
	local user = gatehouse.verified_context(event.origin, "user");
	if not (user and user.lobby_bypass == true) then
		return;
	end
	local affiliation = room:get_affiliation(bare);
	if affiliation == "outcast" then
		return; -- the ban check (-10) refuses them: skipping the lobby does not lift a ban
	elseif affiliation ~= nil then
		return; -- member or above passes the lobby already, with the role that goes with it
	end
	-- The member affiliation is what the lobby and members-only checks look for. A join that the
	-- password check (-20) or the room lock (-30) refuses gets that refusal here, word for word
	-- as upstream's user gets it there, but without the membership: upstream grants it first and
	-- leaves it behind (which lets its user past members-only and the lobby later).
	if gatehouse.admit_as_member(event, bare, "Lobby bypass") then return true; end
	module:log("debug", "Bypassed lobby for room %s occupant %s", room.jid, bare);
end, -3);
