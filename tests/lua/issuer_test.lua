-- gatehouse.issuer from Lua: the Chat Admin Server protocol as mod_gatehouse_issuer drives it.
return function(t)
	local gatehouse = require "gatehouse";
	local issuer_api = gatehouse.issuer;
	local config = { app_id = "app"; secret = "lua-secret"; domain = "meet.test" };
	local request = '{"cmd":"jwt_token","displayName":"Ana","channel":"r1","moderator":true,"validFor":60,"seq":1}';

	t.test("issuer: a request gets upstream's reply and a token the verifier accepts", function()
		local issuer = assert(issuer_api.new(config));
		local conn = issuer:new_connection();
		local out, outcomes = conn:feed(request.."\0");
		t.truthy(out:match('^{"success":true,"message":"OK","token":"[%w%-_.]+","time":%d+,"seq":1}\n'), "reply shape: "..out);
		t.eq(out:sub(-2), "\n\0", "terminator");
		t.eq(#outcomes, 1, "one outcome");
		t.eq(outcomes[1].success, true, "success");
		t.eq(outcomes[1].channel, "r1", "channel");
		t.eq(outcomes[1].moderator, true, "moderator");
		t.eq(outcomes[1].token, nil, "no token in outcomes (they are for logs)");
		local verifier = assert(gatehouse.token.new_verifier({ algorithm = "HS256"; app_id = "app"; secret = "lua-secret" }));
		local claims = assert(verifier:verify(out:match('"token":"([^"]+)"')));
		t.eq(claims.room, "r1", "room");
		t.eq(claims.sub, "meet.test", "sub");
		t.eq(claims.moderator, true, "moderator claim");
		t.eq(claims.context.user.name, "Ana", "context.user.name");
		t.truthy(claims.exp - claims.iat == 60, "exp = iat + validFor");
	end);

	t.test("issuer: frames split and merged across reads", function()
		local conn = assert(issuer_api.new(config)):new_connection();
		local out = conn:feed(request:sub(1, 10));
		t.eq(out, "", "nothing until the frame ends");
		out = conn:feed(request:sub(11).."\n"..request.."\0");
		local n = select(2, out:gsub("\n%z", ""));
		t.eq(n, 2, "two replies");
	end);

	t.test("issuer: a bad request is answered with success false", function()
		local conn = assert(issuer_api.new(config)):new_connection();
		local out, outcomes = conn:feed('{"cmd":"jwt_token","seq":"x"}\n');
		local time = out:match('^{"success":false,"message":"missing field \'displayName\'","token":"","time":(%d+),"seq":"x"}\n%z$');
		t.truthy(time and math.abs(tonumber(time) - os.time()) <= 1, "reply: "..out);
		t.eq(outcomes[1].success, false, "outcome");
		t.eq(outcomes[1].message, "missing field 'displayName'", "message");
	end);

	t.test("issuer: an oversized frame asks for the connection to be closed", function()
		local conn = assert(issuer_api.new({ app_id = "app"; secret = "s"; domain = "d"; max_frame_size = 16 })):new_connection();
		local out, condition, text, last = conn:feed(("x"):rep(17));
		t.eq(out, nil, "nil");
		t.eq(condition, "policy-violation", "condition");
		t.eq(text, "request frame exceeds 16 bytes; closing the connection", "text");
		t.truthy(last:match('"success":false'), "a last refusal to write before closing");
	end);

	t.test("issuer: bad config is an error value", function()
		local issuer, condition, text = issuer_api.new({ app_id = "app"; domain = "d" });
		t.eq(issuer, nil, "no issuer");
		t.eq(condition, "bad-config", "condition");
		t.eq(text, "app_secret must not be empty", "text");
		t.eq(select(3, issuer_api.new({ app_id = "a"; secret = "s"; domain = "d"; shared_secret = "" })),
			"shared_secret must not be empty", "empty shared secret");
	end);

	t.test("issuer: hostile bytes never raise", function()
		local conn = assert(issuer_api.new(config)):new_connection();
		local junk = {};
		for i = 0, 2000 do junk[#junk + 1] = string.char(i % 256); end
		local ok, out = pcall(conn.feed, conn, table.concat(junk));
		t.truthy(ok, "no error: "..tostring(out));
	end);

	t.test("issuer: a refusal outside any request", function()
		local refusal = assert(issuer_api.new(config)):refusal("too many connections (limit 2)");
		t.truthy(refusal:match('^{"success":false,"message":"too many connections %(limit 2%)","token":"","time":%d+}\n%z$'), refusal);
	end);

	t.test("issuer: loopback addresses", function()
		t.eq(issuer_api.is_loopback("127.0.0.1"), true, "127.0.0.1");
		t.eq(issuer_api.is_loopback("::1"), true, "::1");
		t.eq(issuer_api.is_loopback("*"), false, "*");
		t.eq(issuer_api.is_loopback("0.0.0.0"), false, "0.0.0.0");
		t.eq(issuer_api.is_loopback(nil), false, "nil");
	end);
end
