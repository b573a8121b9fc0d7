-- Benchmark: native calls from Lua (verify HS256/RS256/ES256/EdDSA with the claims built as a
-- Lua table, sign, room check). Prints one row per call: calls per second and µs per call.
-- Usage: lua5.4 tests/bench/native.lua dist/prosody-plugins [seconds per row]
local dist = assert(arg[1], "usage: native.lua <dist dir> [seconds]");
local seconds = tonumber(arg[2]) or 1;
package.cpath = dist.."/?.so;"..package.cpath;
local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/bench/[^/]*$") or ".";
local gatehouse = require "gatehouse";

local function read(path)
	local f = assert(io.open(root.."/"..path, "rb"));
	local data = f:read("a");
	f:close();
	return data;
end
local tokens = read("tests/fixtures/tokens.json");
local function fixture(name) return assert(tokens:match('"'..name..'": "([^"]+)"')); end

local function verifier(alg, key)
	return assert(gatehouse.token.new_verifier({ algorithm = alg, app_id = "gatehouse-test",
		accepted_audiences = { "jitsi" }, secret = key.secret, public_key = key.pem }));
end

-- Runs fn repeatedly for about `seconds` of CPU time; returns calls per second.
local function measure(fn)
	for _ = 1, 50 do fn(); end -- warm up
	local calls, started = 0, os.clock();
	repeat
		for _ = 1, 100 do fn(); end
		calls = calls + 100;
	until os.clock() - started >= seconds;
	return calls / (os.clock() - started);
end

local rows = {};
local function row(name, fn)
	local per_second = measure(fn);
	rows[#rows + 1] = ("| %-34s | %12.0f | %9.1f |"):format(name, per_second, 1e6 / per_second);
end

local hs = verifier("HS256", { secret = "test-secret" });
local rs = verifier("RS256", { pem = read("tests/fixtures/keys/rsa_public.pem") });
local es = verifier("ES256", { pem = read("tests/fixtures/keys/ec256_public.pem") });
local ed = verifier("EdDSA", { pem = read("tests/fixtures/keys/ed25519_public.pem") });
local hs_token, rs_token = fixture("HS256"), fixture("RS256");
local es_token, ed_token = fixture("ES256"), fixture("EdDSA");
assert(hs:verify(hs_token) and rs:verify(rs_token) and es:verify(es_token) and ed:verify(ed_token));

row("token verify HS256 (claims table)", function() hs:verify(hs_token); end);
row("token verify RS256 (claims table)", function() rs:verify(rs_token); end);
row("token verify ES256 (claims table)", function() es:verify(es_token); end);
row("token verify EdDSA (claims table)", function() ed:verify(ed_token); end);
row("token verify HS256, bad signature", function() hs:verify(hs_token:sub(1, -3).."xx"); end);
local claims = { iss = "a", aud = "jitsi", sub = "meet.test", room = "r", context = { user = { name = "n" } } };
row("token sign HS256", function() gatehouse.token.sign(claims, { secret = "test-secret" }); end);
local policy = gatehouse.room.new_policy({ enable_domain_verification = true, muc_mapper_domain_base = "meet.test" });
row("room verify (plain claim)", function() policy:verify("room1@conference.meet.test", "room1", "meet.test"); end);
row("room verify (pattern claim)", function()
	policy:verify("team42@conference.meet.test", "^team%d+$", "meet.test", true);
end);

row("token decode (no verification)", function() gatehouse.token.decode(hs_token); end);
local matrix_name = "efyxozlsor4wc43emztwqotnmf2he2lyfzxxezy";
row("matrix room name (base32 decode)", function() gatehouse.matrix.room_id(matrix_name); end);
local issuer = assert(gatehouse.issuer.new({ app_id = "bench", secret = "bench-secret", domain = "meet.test" }));
local conn = issuer:new_connection();
local request = '{"cmd":"jwt_token","displayName":"Ana","channel":"r1","moderator":false,"validFor":60}\n';
row("issuer request to signed reply", function() conn:feed(request); end);
local context_room, state = { lobby = true, password = "pw" }, { lobby_on = false, members_only = false, password_set = false };
row("security on demand plan", function() gatehouse.security.plan(context_room, state); end);
local moderator_claims = { moderator = true, context = { user = { name = "n" } } };
row("token moderation affiliation", function() gatehouse.moderation.affiliation(moderator_claims, false, true); end);

-- The published personal_sign vector (ethers.js): "hello world" → 0x14791697260E4c9A71f18484C9f997B308e59325.
local hello_signature = "0xddd0a7290af9526056b4e35a077b9a11b513aa0028ec6c9880948544508f3c63265e99e47ad31bb2cab9646c504576b3abc6939a1710afc08cbf3034d73214b81c";
assert(gatehouse.wallet.recover("hello world", hello_signature) == "0x14791697260E4c9A71f18484C9f997B308e59325");
row("wallet recover (EIP-191 secp256k1)", function() gatehouse.wallet.recover("hello world", hello_signature); end);
row("wallet EIP-55 checksum", function() gatehouse.wallet.checksum("0x14791697260e4c9a71f18484c9f997b308e59325"); end);
local siwe = "meet.test wants you to sign in with your Ethereum account:\n0x14791697260E4c9A71f18484C9f997B308e59325\n\n"
	.."Join the room r1.\n\nURI: https://meet.test/r1\nVersion: 1\nChain ID: 1\nNonce: abcdef123456\n"
	.."Issued At: 2026-11-22T04:00:00Z\nExpiration Time: 2026-11-22T04:05:00Z";
assert(gatehouse.wallet.siwe_parse(siwe));
row("wallet SIWE message parse", function() gatehouse.wallet.siwe_parse(siwe); end);

-- The Matrix membership re-check, per room and interval: one admin-API state query answered
-- (here by a loopback server in this Lua thread, while the job runs on its worker), the member
-- events and power levels read, the `{ [user_id] = is_owner }` table built. A room of 50 joined
-- members plus 50 who left; the whole round trip counts.
local socket = require "socket";
local server = assert(socket.bind("127.0.0.1", 0));
local _, port = server:getsockname();
local events = { '{"type":"m.room.create","state_key":"","sender":"@u0:hs","content":{"room_version":"10"}}',
	'{"type":"m.room.power_levels","state_key":"","content":{"users":{"@u0:hs":100,"@u1:hs":50},"state_default":50}}' };
for i = 0, 99 do
	events[#events + 1] = ('{"type":"m.room.member","state_key":"@u%d:hs","content":{"membership":"%s"}}')
		:format(i, i < 50 and "join" or "leave");
end
local body = '{"state":['..table.concat(events, ",")..'],"total":'..#events..'}';
local http_reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "..#body
	.."\r\nConnection: close\r\n\r\n"..body;
local recheck = assert(gatehouse.matrix.new_verifier({ homeserver_url = "http://127.0.0.1:"..port,
	homeserver_admin_token = "bench-admin", sync_power_levels = true }));
local function room_members_round_trip()
	local job = recheck:room_members("!bench:hs");
	assert(job:start(5));
	local client = assert(server:accept());
	repeat local line = client:receive("*l"); until line == "" or line == nil;
	client:send(http_reply);
	client:close();
	local members, code;
	repeat members, code = job:result(); until code ~= "pending";
	assert(members and members["@u1:hs"] == true and members["@u2:hs"] == false and members["@u60:hs"] == nil);
end
row("matrix re-check, 1 room (50 joined)", room_members_round_trip);

print(("native calls from %s, %gs each:"):format(_VERSION, seconds));
print("| call                               |    calls/s   |  µs/call  |");
print("|------------------------------------|--------------|-----------|");
for _, line in ipairs(rows) do print(line); end
