-- Hostile values thrown at every native function: wrong types, nil, huge strings, invalid
-- UTF-8, deeply nested and self-referencing tables, NaN, infinities, negative and huge numbers.
-- Whatever comes in, a call returns (an answer or an error value) or raises a catchable Lua
-- error, and the Lua state stays usable. Functions that take client input never raise.
return function(t)
	local gatehouse = require "gatehouse";

	local function nested(depth)
		local root = {};
		local node = root;
		for _ = 1, depth do node.next = {}; node = node.next; end
		return root;
	end
	local cyclic = {};
	cyclic.self = cyclic;
	local angry = setmetatable({}, { __index = function () error("hostile __index") end });
	local huge = ("A"):rep(1024 * 1024);
	local values = {
		"nil", true, false, 0, -1, 2^53, -2^53, 1/0, -1/0, 0/0, 3.5, 1e300,
		"", huge, "\255\254\0not utf-8", "a.b.c", ("."):rep(10000),
		{}, { 1, 2, 3 }, nested(500), cyclic, angry,
		print, coroutine.create(function () end),
	};
	local function value(i) if values[i] == "nil" then return nil; end return values[i]; end

	-- Every call: a result or a catchable error, nothing else. Returns ok.
	local calls = 0;
	local function try(fn, ...)
		calls = calls + 1;
		local ok, err = pcall(fn, ...);
		if not ok then
			-- mlua turns a Rust panic into a Lua error; a panic is a bug even when caught.
			t.truthy(not tostring(err):match("panic"), "a Rust panic: "..tostring(err));
		end
		return ok, err;
	end

	-- Client-facing calls must answer, never raise.
	local function answers(name, fn, ...)
		local ok, err = try(fn, ...);
		if not ok then error(name.." raised: "..tostring(err), 2); end
	end

	t.test("hostile: every exported function survives every hostile argument", function()
		for _, section in ipairs({ "token", "room", "jobs", "security", "moderation", "matrix", "issuer", "wallet", "http" }) do
			for name, fn in pairs(gatehouse[section] or {}) do
				if type(fn) == "function" and not (section == "jobs" and name == "sleep") then
					for i = 1, #values do
						try(fn, value(i));
						try(fn, value(i), value(#values + 1 - i), value(i));
					end
				end
			end
		end
		-- sleep is a real job: keep its pauses short.
		for _, seconds in ipairs({ 0/0, -1, 1/0, 1e300, "x" }) do try(gatehouse.jobs.sleep, seconds); end
		t.truthy(calls > 1000, "calls made: "..calls);
		print(("     %d hostile calls"):format(calls));
	end);

	t.test("hostile: methods taking client input answer and never raise", function()
		local verifier = assert(gatehouse.token.new_verifier({ algorithm = "HS256", app_id = "a", secret = "s" }));
		local policy = gatehouse.room.new_policy({ enable_domain_verification = true, muc_mapper_domain_base = "meet.test" });
		for i = 1, #values do
			local v, w = value(i), value(#values + 1 - i);
			answers("verifier:verify", verifier.verify, verifier, v);
			answers("token.decode", gatehouse.token.decode, v);
			answers("policy:verify", policy.verify, policy, v, w, v, w);
			answers("jobs.is_job", gatehouse.jobs.is_job, v);
			if gatehouse.matrix then
				answers("matrix.room_id", gatehouse.matrix.room_id, v);
				answers("matrix.canonical_room_id", gatehouse.matrix.canonical_room_id, v);
			end
			if gatehouse.issuer then
				local issuer = assert(gatehouse.issuer.new({ app_id = "a", secret = "s", domain = "meet.test" }));
				local conn = issuer:new_connection();
				if type(v) == "string" then answers("conn:feed", conn.feed, conn, v); end
			end
			if gatehouse.moderation then
				answers("moderation.affiliation", gatehouse.moderation.affiliation, v, w, v);
				answers("moderation.owner_grant", gatehouse.moderation.owner_grant, v, w);
				answers("moderation.role_grant", gatehouse.moderation.role_grant, v, w);
			end
		end
	end);

	t.test("hostile: the state is still usable afterwards", function()
		collectgarbage();
		local jwt = assert(gatehouse.token.sign({ iss = "a", aud = "x", sub = "s", room = "r" }, { secret = "s" }));
		local verifier = assert(gatehouse.token.new_verifier({ algorithm = "HS256", app_id = "a", secret = "s" }));
		t.eq(verifier:verify(jwt).room, "r", "a normal verification still works");
	end);
end
