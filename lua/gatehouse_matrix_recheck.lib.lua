-- gatehouse: periodic Matrix membership re-check of participants already in a call (homeserver
-- mode, opt-in with matrix_user_verification_membership_check_interval on the VirtualHost).
-- Used by mod_matrix_room_check on the MUC component: every interval, one admin-API query per
-- Jitsi room that holds Matrix-verified participants; who is no longer joined to the Matrix
-- room (left, kicked, banned) is removed with a reason and may not rejoin on that session;
-- with power sync, a power change fires "matrix-power-changed" for mod_matrix_power_sync.
local async = require "util.async";
local jid = require "util.jid";

local gatehouse = module:require "gatehouse";
local room_id_of = gatehouse.native.matrix.room_id;

local lib = {};

-- What each VirtualHost registered (mod_auth_matrix_user_verification): host → { verifier,
-- interval, sync }. Process-wide, on the native table every module shares.
local registry = gatehouse.native.matrix_rechecks or {};
gatehouse.native.matrix_rechecks = registry;

lib.removed_text = "You are no longer a member of the Matrix room";

-- Made on first use, so a module that only registers lists no metric.
local checks, removals;
local function count(outcome)
	checks = checks or module:metric("counter", "membership_checks", "", "Matrix membership re-checks by outcome", { "outcome" });
	checks:with_labels(outcome):add(1);
end
local function count_removal()
	removals = removals or module:metric("counter", "membership_removals", "",
		"Participants removed: no longer in the Matrix room", {}):with_labels();
	removals:add(1);
end

-- The Matrix-verified sessions in a room whose host re-checks, with their verified room.
local function verified_sessions(room, matrix_room)
	local found = {};
	for nick, occupant in room:each_occupant() do
		for real_jid in occupant:each_session() do
			local session = prosody.full_sessions[real_jid];
			local entry = session and registry[session.host];
			if entry and session.auth_matrix_user_verification_room_id == matrix_room
				and session.auth_matrix_user_verification_user_id then
				found[#found + 1] = { session = session; nick = nick; occupant = occupant; entry = entry };
			end
		end
	end
	return found;
end

local function apply(room, sessions, members, asked)
	for _, s in ipairs(sessions) do
		if not asked[s.session] then goto next; end
		local session, user_id = s.session, s.session.auth_matrix_user_verification_user_id;
		local is_owner = members[user_id];
		if is_owner == nil then
			-- Not joined any more: out of the call, and this session may not come back.
			session.auth_matrix_user_verification_revoked = true;
			session.auth_matrix_user_verification_is_owner = false;
			-- A new login must be asked again, not admitted from the answer cache.
			s.entry.verifier:forget(session.auth_matrix_user_verification_room_id, user_id);
			count_removal();
			module:log("info", "Removing %s (%s) from %s: no longer in Matrix room %s", jid.resource(s.nick), user_id,
				room.jid, session.auth_matrix_user_verification_room_id);
			room:set_role(true, s.nick, "none", lib.removed_text);
		elseif s.entry.sync and is_owner ~= (session.auth_matrix_user_verification_is_owner == true) then
			session.auth_matrix_user_verification_is_owner = is_owner;
			module:log("info", "Matrix power of %s (%s) in %s changed: owner = %s", jid.resource(s.nick), user_id, room.jid, tostring(is_owner));
			module:fire_event("matrix-power-changed", { room = room; occupant = s.occupant; session = session });
		end
		::next::
	end
end

-- Rooms whose query is still out: a slow homeserver never gets a second query for the same
-- room before the first one ends.
local in_flight = {};

-- One room: one query, then the changes, in its own async runner (it waits on the query).
-- `asked`: the sessions present when the query was sent; someone who joined since is judged
-- by the next round, never by an answer older than their own login.
local function check_room(room, matrix_room, sessions)
	local asked = setmetatable({}, { __mode = "k" });
	for _, s in ipairs(sessions) do asked[s.session] = true; end
	local entry = sessions[1].entry;
	in_flight[room.jid] = true;
	local members, condition, _, reason, detail = gatehouse.settle(entry.timeout, entry.verifier:room_members(matrix_room));
	in_flight[room.jid] = nil;
	if not members then
		-- No answer is no verdict: nobody is removed on a failed query.
		count("failed");
		module:log("warn", "Matrix membership re-check of %s failed (%s): %s", room.jid,
			tostring(reason or condition), tostring(detail));
		return;
	end
	count("ok");
	apply(room, verified_sessions(room, matrix_room), members, asked);
end

local runner_watchers = {
	error = function (_, err) module:log("error", "Matrix membership re-check: %s", tostring(err)); end;
};

--- One round on this MUC host: one query per room holding Matrix-verified participants.
-- Returns the delay until the next round (the shortest interval registered; 5 s when none is).
function lib.tick(each_room)
	local interval;
	for _, entry in pairs(registry) do
		interval = math.min(interval or entry.interval, entry.interval);
	end
	if not interval then return 5; end
	for room in each_room() do
		local matrix_room = not in_flight[room.jid] and not gatehouse.is_healthcheck_room(room.jid)
			and room_id_of(jid.node(room.jid) or "");
		local sessions = matrix_room and verified_sessions(room, matrix_room);
		-- A coroutine only for rooms that need a query.
		if sessions and #sessions > 0 then
			async.runner(function () check_room(room, matrix_room, sessions); end, runner_watchers):run(true);
		end
	end
	return interval;
end

--- Registers a VirtualHost's verifier for the re-check (from the auth module).
function lib.register(host, entry)
	registry[host] = entry;
end

function lib.unregister(host)
	registry[host] = nil;
end

return lib;
