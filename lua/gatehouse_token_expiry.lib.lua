-- gatehouse: tokens that expire during a meeting (gatehouse_token_expiry = "disconnect").
-- A session whose verified token has an `exp` gets one timer, due at exp + leeway + the grace
-- period. A fresh token presented in the meantime (stream resumption with ?token=, see
-- gatehouse_token_session.lib.lua) moves the deadline; otherwise, when the timer fires, the
-- session leaves every room it is in with a reason clients show (status 307 + <reason/>) and
-- its stream is closed. Nothing runs per stanza: Prosody's timers live in one binary heap.
local jid = require "util.jid";
local now = require "util.time".now;
local timer = require "util.timer";

local gatehouse = module:require "gatehouse";

local lib = {};

local REASON = "Your token expired";

-- session → timer id; weak keys so a forgotten session never stays alive through this table.
local timers = setmetatable({}, { __mode = "k" });

-- The moment the session's current token stops counting, or nil when it has no numeric exp.
local function deadline(session, leeway, grace)
	local claims = gatehouse.verified_claims(session);
	local exp = claims and tonumber(claims.exp);
	return exp and exp + leeway + grace or nil;
end

-- Each live room (every MUC host) where this session has an occupant: the kick says why.
local function leave_rooms(session)
	local left = 0;
	for _, host in pairs(prosody.hosts) do
		local muc = host.modules and host.modules.muc;
		if muc and muc.live_rooms and session.full_jid then
			for room in muc.live_rooms() do
				local nick = room:get_occupant_jid(session.full_jid);
				if nick then
					room:set_role(true, nick, "none", REASON);
					left = left + 1;
				end
			end
		end
	end
	return left;
end

local function expire(session)
	local rooms = leave_rooms(session);
	module:log("info", "Token of %s expired: removed from %d room(s), session closed",
		jid.bare(session.full_jid) or "?", rooms);
	-- A closed stream must not hibernate (mod_smacks would keep it for resumption).
	session.resumption_token = nil;
	session:close({ condition = "policy-violation"; text = REASON });
end

--- Tracks a session that is to be closed when its token expires.
-- options: { leeway = seconds, grace = seconds }.
function lib.new(options)
	local leeway, grace = options.leeway or 0, options.grace or 60;
	local tracker = {};

	local function schedule(session)
		if timers[session] then
			timer.stop(timers[session]);
			timers[session] = nil;
		end
		local due = deadline(session, leeway, grace);
		if not due then return; end
		timers[session] = timer.add_task(math.max(due - now(), 0), function ()
			timers[session] = nil;
			if session.destroyed then return; end
			local current = deadline(session, leeway, grace);
			if current and current > now() then
				return schedule(session); -- a fresh token arrived: a new deadline
			end
			expire(session);
		end);
	end

	--- (Re)starts the session's timer from its current verified token.
	tracker.track = schedule;

	--- Stops the session's timer (the session ended).
	function tracker.forget(session)
		if timers[session] then
			timer.stop(timers[session]);
			timers[session] = nil;
		end
	end

	return tracker;
end

return lib;
