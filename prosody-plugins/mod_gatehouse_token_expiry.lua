-- gatehouse: tokens that expire during a meeting (opt-in, on the VirtualHost of token logins).
--   gatehouse_token_expiry = "disconnect"   -- default: off, nothing changes
--   gatehouse_token_expiry_grace = 60       -- seconds after exp (+ gatehouse_token_leeway)
-- When the verified token of a session expires, the session has the grace period to resume its
-- stream with a fresh token (?previd=…&token=…, XEP-0198). Without one it is kicked from every
-- MUC room it is in (status 307, reason "Token expired") and its stream is closed
-- (policy-violation, "Token expired"). Only verified claims count (gatehouse.verified_claims):
-- behind gatehouse_token or jitsi-meet's stock mod_auth_token alike. One timer per host for
-- all sessions (lua/gatehouse_token_expiry.lib.lua); nothing runs per stanza.
local jid = require "util.jid";

local gatehouse = module:require "gatehouse";
local deadlines = module:require "gatehouse_token_expiry";

local REASON = "Token expired";
local MAX_GRACE = 86400;

local policy = module:get_option_string("gatehouse_token_expiry");
if policy == nil or policy == "off" then
	module:log("debug", "gatehouse_token_expiry is off");
	return;
elseif policy ~= "disconnect" then
	module:log_status("error", "gatehouse_token_expiry = %q is not a policy (\"disconnect\" or \"off\"); expiry stays off", policy);
	return;
end
local grace = module:get_option_number("gatehouse_token_expiry_grace", 60);
if grace ~= grace or grace < 0 or grace > MAX_GRACE then
	module:log("warn", "gatehouse_token_expiry_grace = %s is outside 0..%d seconds; using 60", tostring(grace), MAX_GRACE);
	grace = 60;
end
-- gatehouse_token accepts a token until exp + its leeway at login; the deadline honours it too.
local leeway = module:get_option_number("gatehouse_token_leeway", 0);
if leeway ~= leeway or leeway < 0 or leeway > MAX_GRACE then leeway = 0; end

-- Kicks the session's occupants out of the MUC rooms it sent presence to (mod_presence keeps
-- those addresses in session.directed), with the reason as the kick's <reason/>.
local function leave_rooms(session)
	local full_jid, rooms = session.full_jid, {};
	for to in pairs(session.directed or {}) do
		local room_jid = jid.bare(to);
		local host = prosody.hosts[jid.host(to) or ""];
		local muc = host and host.modules.muc;
		if muc and muc.get_room_from_jid and not rooms[room_jid] then
			rooms[room_jid] = muc.get_room_from_jid(room_jid) or false;
		end
	end
	for room_jid, room in pairs(rooms) do
		local occupant = room and room:get_occupant_by_real_jid(full_jid);
		if occupant then
			module:log("info", "Token of %s expired: leaving %s", full_jid, room_jid);
			room:set_role(true, occupant.nick, "none", REASON);
		end
	end
end

local function expire(session)
	if session.destroyed then return; end
	leave_rooms(session);
	module:log("info", "Token of %s expired %gs ago: closing the session", session.full_jid or "?", grace);
	session:close({ condition = "policy-violation"; text = REASON });
end

local schedule = deadlines.new(expire, function (...) module:log(...); end);

-- The exp of a verified token: the session's own at bind; after a resumption, the new
-- connection's (a fresh token, checked at its SASL login as the same user). The token providers
-- may or may not copy those claims onto the session (the stock mod_auth_token copies auth_token
-- on Prosody 13 only, and not gatehouse's registry), so they are read where they were verified.
local function verified_exp(session)
	local claims = gatehouse.verified_claims(session);
	local exp = claims and claims.exp;
	if type(exp) ~= "number" or exp ~= exp then return nil; end
	return exp;
end

-- Only a verified exp sets or moves a deadline: a resumption without a (valid) fresh token, or
-- a session whose claims went away, keeps the deadline it had, so losing the verified token
-- never turns into staying for ever.
local function track(session, from_session)
	if session.destroyed or session.host ~= module.host then return; end
	local exp = verified_exp(from_session or session);
	module:log("debug", "Deadline of %s: %s", session.full_jid or "?", exp and exp + leeway + grace or "unchanged");
	if exp then schedule.set(session, exp + leeway + grace); end
end

module:hook("resource-bind", function (event) track(event.session); end, -10);
module:hook("resource-unbind", function (event) schedule.drop(event.session); end);
-- Stream resumption: Prosody 13 fires c2s-session-updated (the token providers' handlers copy
-- the new token first, at higher priorities); 0.12's mod_smacks fires only this event.
module:hook_global("c2s-session-updated", function (event)
	track(event.session, event.from_session);
end, -10);
module:hook("smacks-hibernation-end", function (event)
	if event.resumed and event.resumed ~= event.origin then track(event.resumed, event.origin); end
end, -10);

-- A reload or a late load: pick up the sessions already bound.
for _, user in pairs(prosody.hosts[module.host].sessions or {}) do
	for _, session in pairs(user.sessions or {}) do track(session); end
end

function module.unload() schedule.stop(); end

--- For tests and operators' consoles: sessions waiting, timers armed, a session's deadline.
function status(session) -- luacheck: ignore 131
	return { sessions = schedule.size(); timers = schedule.armed(); deadline = session and schedule.deadline(session) };
end

module:log("info", "Sessions are closed %gs after their token expires", grace);
