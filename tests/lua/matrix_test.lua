-- gatehouse.matrix from Lua: widget tokens, room names, refusals as nil, condition, text,
-- reason, detail, and the UVS call as a job.
return function(t)
	local gatehouse = require "gatehouse";
	local matrix, jobs = gatehouse.matrix, gatehouse.jobs;

	local ROOM_ID = "!qwertyasdfgh:matrix.org";
	local ROOM_NAME = "efyxozlsor4wc43emztwqotnmf2he2lyfzxxezy";

	local function widget_token(context)
		return assert(gatehouse.token.sign({ iss = "meet.test", sub = "meet.test", aud = "https://meet.test",
			room = "*", context = context }, { algorithm = "HS256", secret = "notused" }));
	end

	t.test("matrix: room names decode in any case, padded or not", function()
		t.eq(matrix.room_id(ROOM_NAME), ROOM_ID, "lower case");
		t.eq(matrix.room_id(ROOM_NAME:upper().."="), ROOM_ID, "upper case, padded");
		t.eq(matrix.room_id("room1"), nil, "not base32");
		t.eq(matrix.room_id(nil), nil, "nil");
	end);

	t.test("matrix: at join, only the canonical room name (unpadded, lower case) stands for its room", function()
		t.eq(matrix.canonical_room_id(ROOM_NAME), ROOM_ID, "canonical");
		t.eq(matrix.canonical_room_id(ROOM_NAME.."="), nil, "padded");
		t.eq(matrix.canonical_room_id(ROOM_NAME.."=="), nil, "padded twice");
		t.eq(matrix.canonical_room_id(ROOM_NAME:upper()), nil, "upper case (Prosody lowercases nodes)");
		t.eq(matrix.canonical_room_id("__jicofo-health-check-x"), nil, "a health-check room");
		t.eq(matrix.canonical_room_id(nil), nil, "nil");
	end);

	t.test("matrix: a bad config is refused, not raised", function()
		local v, condition, text = matrix.new_verifier({});
		t.eq(v, nil, "no url");
		t.eq(condition, "bad-config", "condition");
		t.eq(text, "uvs_base_url is required", "text");
		t.eq(matrix.new_verifier({ uvs_base_url = "ftp://x" }), nil, "scheme");
		t.eq(matrix.new_verifier({ uvs_base_url = "http://x", check_issuer = true }), nil, "issuer check without app_id");
		t.truthy(not pcall(matrix.new_verifier, { uvs_base_url = 7 }), "a wrongly typed option is a caller bug");
	end);

	t.test("matrix: homeserver mode takes a URL and an admin token, and excludes UVS", function()
		t.truthy(matrix.new_verifier({ homeserver_url = "http://127.0.0.1:1", homeserver_admin_token = "t" }), "valid");
		local v, _, text = matrix.new_verifier({ homeserver_url = "http://127.0.0.1:1" });
		t.eq(v, nil, "no admin token");
		t.truthy(text:match("admin access token"), "text: "..tostring(text));
		v, _, text = matrix.new_verifier({ homeserver_url = "http://a", homeserver_admin_token = "t", uvs_base_url = "http://b" });
		t.eq(v, nil, "both");
		t.truthy(text:match("not both"), "text: "..tostring(text));
	end);

	t.test("matrix: refusals before UVS come back at once with upstream texts", function()
		local v = assert(matrix.new_verifier({ uvs_base_url = "http://127.0.0.1:1" }));
		local ok, condition, text, reason, detail = v:verify(nil, ROOM_NAME);
		t.eq(ok, nil, "missing token");
		t.eq(condition, "bad-request", "condition");
		t.eq(text, "JWT token must be provided with OpenID token and room ID", "text");
		t.eq(reason, "invalid_auth_token", "reason");
		t.eq(type(detail), "string", "detail");
		t.eq(select(3, v:verify("garbage", ROOM_NAME)), "JWT token cannot be decoded", "garbage");
		t.eq(select(3, v:verify({}, ROOM_NAME)), "JWT token cannot be decoded", "a table is no token");
		t.eq(select(3, v:verify(widget_token({ user = { name = "A" } }), ROOM_NAME)), "Matrix room ID must be given.", "no matrix");
		local token = widget_token({ matrix = { token = "o", room_id = ROOM_ID } });
		t.eq(select(3, v:verify(token, "MZXW6")), "Jitsi room does not match Matrix room", "mismatch");
		t.eq(select(3, v:verify(token, nil)), "Jitsi room does not match Matrix room", "no room");
	end);

	t.test("matrix: the UVS call is a job; an unreachable UVS fails it cleanly", function()
		local v = assert(matrix.new_verifier({ uvs_base_url = "http://127.0.0.1:1", timeout = 2 }));
		local job = v:verify(widget_token({ matrix = { token = "o", room_id = ROOM_ID } }), ROOM_NAME);
		t.truthy(jobs.is_job(job), "a UVS call is a job");
		t.truthy(t.wait_ready(job, 5), "finished");
		local ok, condition, text, reason = job:result();
		t.eq(ok, nil, "refused");
		t.eq(condition, "temporary-auth-failure", "condition");
		t.eq(text, "Matrix user verification service unavailable", "text");
		t.eq(reason, "uvs_unavailable", "reason");
	end);
end
