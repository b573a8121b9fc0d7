-- A minimal test runner: named tests, assertions with messages, one summary line at the end.
local t = { passed = 0, failed = 0 };

function t.test(name, fn)
	local ok, err = xpcall(fn, debug.traceback);
	if ok then
		t.passed = t.passed + 1;
		print("ok   "..name);
	else
		t.failed = t.failed + 1;
		print("FAIL "..name.."\n     "..tostring(err):gsub("\n", "\n     "));
	end
end

function t.eq(actual, expected, what)
	if actual ~= expected then
		error(("%s: expected %s, got %s"):format(what or "value", tostring(expected), tostring(actual)), 2);
	end
end

function t.truthy(value, what)
	if not value then error((what or "value").." should be truthy", 2); end
end

function t.read(path)
	local f = assert(io.open(path, "rb"));
	local data = f:read("*a");
	f:close();
	return data;
end

-- Repository root, from this file's location (tests/lua/).
t.root = (debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or ".");

-- A fixture token signed by Node's crypto (tests/fixtures/tokens.json).
function t.fixture_token(name)
	local json = t.read(t.root.."/tests/fixtures/tokens.json");
	return assert(json:match('"'..name..'": "([^"]+)"'), "no fixture "..name);
end

-- Starts `job` with a deadline of `seconds` and waits (bounded) until the job pool announces it.
-- Inside Prosody the pool's descriptor wakes the event loop; a plain interpreter has none, so poll.
function t.wait_ready(job, seconds)
	local jobs = require "gatehouse".jobs;
	assert(job:start(seconds));
	local id = job:id();
	local deadline = os.time() + seconds;
	while os.time() <= deadline do
		for _, ready in ipairs(jobs.ready()) do
			if ready == id then return true; end
		end
	end
	return false;
end

function t.report()
	print(("lua: %d passed, %d failed"):format(t.passed, t.failed));
	return t.failed == 0;
end

return t;
