-- gatehouse.token from Lua: claims come back as tables, failures as nil, condition, text.
return function(t)
	local gatehouse = require "gatehouse";
	local token = gatehouse.token;

	local function hs256(extra)
		return assert(token.new_verifier({
			algorithm = "HS256", app_id = "gatehouse-test", secret = "test-secret",
			accepted_audiences = { "jitsi" }, leeway = extra and extra.leeway,
		}));
	end

	t.test("version is exported", function()
		t.truthy(type(gatehouse.version) == "string" and gatehouse.version:match("^%d+%.%d+"), "version");
	end);

	t.test("verifies a token signed by node and returns nested claims", function()
		local claims = hs256():verify(t.fixture_token("HS256"));
		t.eq(type(claims), "table", "claims");
		t.eq(claims.room, "room1", "room");
		t.eq(claims.context.user.name, "Ana", "context.user.name");
		t.eq(math.type and math.type(claims.exp) or type(claims.exp), math.type and "integer" or "number", "exp type");
	end);

	t.test("verifies RS256 with a PEM public key", function()
		local v = assert(token.new_verifier({ algorithm = "RS256", app_id = "gatehouse-test",
			public_key = t.read(t.root.."/tests/fixtures/keys/rsa_public.pem") }));
		t.eq(v:verify(t.fixture_token("RS256")).sub, "meet.test", "sub");
		local claims, condition, text = v:verify(t.fixture_token("RS256_wrong_key"));
		t.eq(claims, nil, "claims");
		t.eq(condition, "not-allowed", "condition");
		t.eq(text, "Invalid signature", "text");
	end);

	t.test("json null in claims becomes nil", function()
		local claims = assert(hs256():verify(t.fixture_token("HS256_with_null")));
		t.eq(claims.context.user, nil, "context.user");
		t.eq(claims.context.group, "g", "context.group");
	end);

	t.test("signs and verifies; arrays stay arrays", function()
		local jwt = assert(token.sign({ iss = "gatehouse-test", aud = "jitsi", sub = "meet.test", room = "r",
			context = { user = { name = "Bo" }, list = { 1, 2, 3 } } }, { algorithm = "HS256", secret = "test-secret" }));
		local claims = assert(hs256():verify(jwt));
		t.eq(claims.context.user.name, "Bo", "name");
		t.eq(#claims.context.list, 3, "array length");
		local header, payload = token.decode(jwt);
		t.eq(header.alg, "HS256", "alg");
		t.eq(payload.room, "r", "room");
	end);

	t.test("expired token is refused with upstream wording", function()
		local jwt = token.sign({ iss = "gatehouse-test", aud = "jitsi", sub = "s", room = "r", exp = os.time() - 5 },
			{ secret = "test-secret" });
		local claims, condition, text, reason = hs256():verify(jwt);
		t.eq(claims, nil, "claims");
		t.eq(condition, "not-allowed", "condition");
		t.truthy(text:match("^Not acceptable by exp"), "text: "..tostring(text));
		t.eq(reason, "expired", "reason");
		t.truthy(hs256({ leeway = 60 }):verify(jwt), "accepted within leeway");
	end);

	t.test("missing room claim is not-authorized", function()
		local jwt = token.sign({ iss = "gatehouse-test", aud = "jitsi", sub = "s" }, { secret = "test-secret" });
		local _, condition, text = hs256():verify(jwt);
		t.eq(condition, "not-authorized", "condition");
		t.eq(text, "room claim is missing", "text");
	end);

	t.test("hostile token values are error values, never Lua errors", function()
		local v = hs256();
		for _, bad in ipairs({ 42, true, {}, "", "a.b", ("x"):rep(100000), "\255\254.\0.\1", "e30.e30.e30" }) do
			local ok, claims, condition = pcall(v.verify, v, bad);
			t.truthy(ok, "no raise for "..type(bad));
			t.eq(claims, nil, "claims for "..type(bad));
			t.eq(condition, "not-allowed", "condition for "..type(bad));
		end
		local ok, claims = pcall(v.verify, v, nil);
		t.truthy(ok and claims == nil, "nil token");
		local header, condition = token.decode({});
		t.eq(header, nil, "decode of a table");
		t.eq(condition, "bad-request", "decode condition");
	end);

	t.test("bad configuration is reported, wrong option types raise", function()
		local v, condition, text = token.new_verifier({ algorithm = "none", secret = "x" });
		t.eq(v, nil, "verifier");
		t.eq(condition, "bad-config", "condition");
		t.truthy(text:match("none"), "text names the algorithm");
		t.eq(select(2, token.new_verifier({ algorithm = "RS256", secret = "x" })), "bad-config", "secret with RS256");
		t.eq(select(2, token.new_verifier({ algorithm = "HS256" })), "bad-config", "no key source");
		t.truthy(not pcall(token.new_verifier, { algorithm = "HS256", secret = 5 }), "numeric secret raises");
		t.eq(select(2, token.sign({ f = print }, { secret = "x" })), "bad-request", "unserialisable claims");
	end);
end
