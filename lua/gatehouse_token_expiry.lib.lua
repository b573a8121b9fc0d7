-- gatehouse: a schedule of session deadlines behind ONE util.timer (module:require
-- "gatehouse_token_expiry"). Deadlines sit in an indexed binary heap (Prosody's own
-- util.indexedbheap): adding, moving or dropping one costs O(log n), nothing runs per stanza,
-- and however many sessions wait there is one timer armed, for the earliest deadline.
local indexedbheap = require "util.indexedbheap";
local timer = require "util.timer";
local now = require "util.time".now;

local lib = {};

-- A burst of deadlines (an issuer that gives every token the same exp) is worked off in slices,
-- so one timer tick never holds the server for a thousand room kicks and stream closes.
local BATCH = 100;
local NEXT_SLICE = 0.01; -- seconds; util.timer would run a 0 s task in the same tick
-- A deadline years away is still one timer; it just wakes once a day to look again.
local MAX_SLEEP = 86400;

--- A new schedule calling `due(key)` once a key's deadline (epoch seconds) has passed.
-- Returns { set(key, at), drop(key), deadline(key), size(), armed(), stop() }.
function lib.new(due, log)
	local heap = indexedbheap.create();
	local ids = {}; -- key -> heap id; keys leave at drop() or when due
	local size = 0;
	local wake_id, wake_at; -- the one timer, and the time it was armed for

	local arm;
	local function wake()
		wake_id, wake_at = nil, nil;
		local t = now();
		for _ = 1, BATCH do
			local at = heap:peek();
			if at == nil or at > t then break; end
			local _, key = heap:pop();
			ids[key], size = nil, size - 1;
			-- One failing key must not keep the others waiting.
			local ok, err = pcall(due, key);
			if not ok then log("error", "expiry handler failed: %s", err); end
		end
		arm();
	end

	-- Re-arms only for an earlier deadline: a timer armed too early wakes, finds nothing due and
	-- re-arms, which is cheaper than moving it on every change.
	function arm()
		local at = heap:peek();
		if at == nil or (wake_at ~= nil and wake_at <= at) then return; end
		if wake_id then timer.stop(wake_id); end
		local t = now();
		local delay = at > t and math.min(at - t, MAX_SLEEP) or NEXT_SLICE;
		wake_at, wake_id = (delay == MAX_SLEEP) and (t + delay) or at, timer.add_task(delay, wake);
	end

	local schedule = {};

	--- Sets (or moves) the deadline of `key`.
	function schedule.set(key, at)
		local id = ids[key];
		if id then
			heap:reprioritize(id, at);
		else
			ids[key], size = heap:insert(key, at), size + 1;
		end
		arm();
	end

	--- Forgets `key` (its session ended). The timer stays as it is: see arm().
	function schedule.drop(key)
		local id = ids[key];
		if id then
			heap:remove(id);
			ids[key], size = nil, size - 1;
		end
	end

	--- The deadline of `key`, or nil.
	function schedule.deadline(key)
		local id = ids[key];
		if not id then return nil; end
		local k = heap.index[id];
		return k and heap.priorities[k];
	end

	function schedule.size() return size; end
	function schedule.armed() return wake_id ~= nil and 1 or 0; end

	--- Stops the timer (module unload); the keys stay untouched.
	function schedule.stop()
		if wake_id then timer.stop(wake_id); end
		wake_id, wake_at = nil, nil;
	end

	return schedule;
end

return lib;
