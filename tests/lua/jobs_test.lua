-- gatehouse.jobs from plain Lua: jobs run on worker threads and are collected by id. (Inside
-- Prosody the descriptor wakes the event loop; here we poll with a bounded loop.)
return function(t)
	local gatehouse = require "gatehouse";
	local jobs = gatehouse.jobs;

	t.test("a job runs off-thread and its result is taken once", function()
		local job = jobs.sleep(0.05, "hello");
		t.truthy(jobs.is_job(job), "is a job");
		t.eq(select(2, job:result()), "pending", "pending before it ends");
		t.truthy(t.wait_ready(job:id(), 5), "became ready");
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
		t.truthy(t.wait_ready(job:id(), 5), "fetch finished");
		local claims, condition, text = job:result();
		t.eq(claims, nil, "claims");
		t.eq(condition, "not-allowed", "condition");
		t.truthy(text:match("^could not obtain public key"), "text: "..tostring(text));
	end);

	t.test("forgotten jobs leave no results behind", function()
		local job = jobs.sleep(0.01);
		local id = job:id();
		job = nil;
		collectgarbage(); collectgarbage();
		local deadline, running, unclaimed = os.time() + 5, 1, nil;
		while running > 0 and os.time() <= deadline do
			running, unclaimed = jobs.load();
		end
		t.eq(running, 0, "jobs still running");
		t.eq(unclaimed, 0, "unclaimed results");
		t.eq(#jobs.ready(), 0, "a forgotten job is never announced");
	end);
end
