-- gatehouse.jobs from plain Lua: jobs run on worker threads and are collected by id. (Inside
-- Prosody the descriptor wakes the event loop; here we poll with a bounded loop.)
return function(t)
	local gatehouse = require "gatehouse";
	local jobs = gatehouse.jobs;

	t.test("a job runs off-thread and its result is taken once", function()
		local job = jobs.sleep(0.05, "hello");
		t.truthy(jobs.is_job(job), "is a job");
		t.eq(select(2, job:result()), "pending", "pending before it ends");
		t.truthy(t.wait_ready(job, 5), "became ready");
		t.eq(job:result(), "hello", "result");
		t.eq(select(2, job:result()), "internal-server-error", "second take");
	end);

	t.test("the notification descriptor is a number", function()
		t.eq(type(jobs.fd()), "number", "fd");
		t.truthy(not jobs.is_job({}) and not jobs.is_job(nil), "is_job on other values");
	end);

	t.test("an unreachable key server fails the job cleanly", function()
		local v = assert(gatehouse.token.new_verifier({ algorithm = "RS256", app_id = "gatehouse-test",
			asap_key_server = "http://127.0.0.1:1/keys", http_timeout = 2 }));
		local job = v:verify(t.fixture_token("RS256"));
		t.truthy(jobs.is_job(job), "a key fetch is a job");
		t.truthy(t.wait_ready(job, 5), "fetch finished");
		local claims, condition, text = job:result();
		t.eq(claims, nil, "claims");
		t.eq(condition, "not-allowed", "condition");
		t.truthy(text:match("^could not obtain public key"), "text: "..tostring(text));
	end);

	t.test("forgotten jobs leave no results behind", function()
		local job = jobs.sleep(0.01);
		assert(job:start(5));
		local id = job:id();
		job = nil;
		collectgarbage(); collectgarbage();
		local deadline, running, unclaimed = os.time() + 5, 1, nil;
		t.eq(type(id), "number", "id");
		while running > 0 and os.time() <= deadline do
			running, unclaimed = jobs.load();
		end
		t.eq(running, 0, "jobs still running");
		t.eq(unclaimed, 0, "unclaimed results");
		t.eq(#jobs.ready(), 0, "a forgotten job is never announced");
	end);

	t.test("a job runs only once started, and only once", function()
		local job = jobs.sleep(0.01, "x");
		t.eq(select(2, job:result()), "pending", "not started");
		t.truthy(job:start(5), "started");
		t.truthy(job:start(5), "starting again changes nothing");
		t.truthy(t.wait_ready(job, 5), "ready");
		t.eq(job:result(), "x", "result");
	end);

	t.test("a job whose deadline passes before a worker takes it reports a timeout", function()
		local job = jobs.sleep(0, "late");
		local ok = job:start(0);
		t.truthy(ok, "started");
		local id, deadline = job:id(), os.time() + 5;
		local seen = false;
		while not seen and os.time() <= deadline do
			for _, ready in ipairs(jobs.ready()) do seen = seen or ready == id; end
		end
		t.truthy(seen, "announced");
		local value, condition, _, reason = job:result();
		t.eq(value, nil, "no value");
		t.eq(condition, "remote-server-timeout", "condition");
		t.eq(reason, "timeout", "reason");
	end);

	t.test("configure sets the pool's limits, within sane bounds", function()
		local limits = jobs.configure({ max_remote_calls = 0, max_remote_calls_per_source = 1e12 });
		t.eq(limits.max_remote_calls, 1, "at least one");
		t.eq(limits.max_remote_calls_per_source, 65536, "at most 65536");
		limits = jobs.configure({ max_remote_calls = 512, max_remote_calls_per_source = 256 });
		t.eq(limits.max_remote_calls, 512, "global");
		t.eq(limits.max_remote_calls_per_source, 256, "per source");
	end);
end
