-- gatehouse.wallet from Lua: published vectors, EIP-55, SIWE, the gate's challenges, and hostile
-- values coming back as nil, code, text rather than Lua errors.
return function(t)
	local wallet = require "gatehouse".wallet;
	local HELLO_SIG = "0xddd0a7290af9526056b4e35a077b9a11b513aa0028ec6c9880948544508f3c63265e99e47ad31bb2cab9646c504576b3abc6939a1710afc08cbf3034d73214b81c";

	t.test("wallet: a published personal_sign vector recovers its address", function()
		t.eq(wallet.recover("hello world", HELLO_SIG), "0x14791697260E4c9A71f18484C9f997B308e59325", "address");
		t.eq(#wallet.digest("hello world"), 64, "digest is 32 bytes of hex");
	end);

	t.test("wallet: EIP-55 and hostile addresses", function()
		t.eq(wallet.checksum("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"), "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "checksum");
		for _, hostile in ipairs({ "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "nope", 42, print, {} }) do
			local ok, code = wallet.checksum(hostile);
			t.eq(ok, nil, tostring(hostile));
			t.truthy(code == "bad-address" or code == "bad-checksum", code);
		end
	end);

	t.test("wallet: hostile signatures are error values", function()
		local cases = { [HELLO_SIG:sub(1, -5)] = "signature-length", [HELLO_SIG:sub(1, -3).."1d"] = "signature-bad-v",
			["0xzz"] = "signature-not-hex" };
		for signature, expected in pairs(cases) do
			local ok, code = wallet.recover("hello world", signature);
			t.eq(ok, nil, signature); t.eq(code, expected, signature);
		end
		local ok, code = wallet.recover(print, {});
		t.eq(ok, nil, "not strings"); t.eq(code, "bad-request", "not strings");
	end);

	t.test("wallet: a gate's challenge is a SIWE message that parses back", function()
		local gate = assert(wallet.new_gate({ domain = "meet.test", guild_base_url = "http://127.0.0.1:9" }));
		local issued = assert(gate:challenge("alice@meet.test", "r@conference.meet.test", "r",
			"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "our-guild"));
		local parsed = assert(wallet.siwe_parse(issued.message));
		t.eq(parsed.nonce, issued.nonce, "nonce"); t.eq(parsed.domain, "meet.test", "domain");
		t.eq(parsed.uri, "https://meet.test/r", "uri"); t.eq(issued.uri, "https://meet.test/r", "uri");
		t.eq(parsed.statement, "Join the room r, open to members of the guild our-guild.", "statement");
		t.eq(parsed.address, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "address");
		t.eq(parsed.expiration_time - parsed.issued_at, 300, "five minutes");
		t.eq(parsed.scheme, nil, "no scheme");
		t.eq(assert(wallet.siwe_parse("https://"..issued.message)).scheme, "https", "optional scheme");
		local none, code = gate:check("alice@meet.test", "r@conference.meet.test", "r", issued.message, HELLO_SIG, issued.address);
		t.eq(none, nil, "signed by someone else"); t.eq(code, "bad-signature", "condition");
		none, code = gate:check("alice@meet.test", "r@conference.meet.test", "r", nil, {}, 1);
		t.eq(none, nil, "hostile proof"); t.eq(code, "bad-message", "condition");
		none, code = gate:challenge("alice@meet.test", "r@conference.meet.test", "r", {}, "our-guild");
		t.eq(none, nil, "hostile address"); t.eq(code, "bad-address", "code");
		none, code = gate:spend("0000", "alice@meet.test", "r@conference.meet.test", issued.address);
		t.eq(none, nil, "unknown nonce"); t.eq(code, "unknown-challenge", "code");
		none, code = wallet.siwe_parse("hello");
		t.eq(none, nil, "not SIWE"); t.eq(code, "siwe-malformed", "code");
		none, code = gate:membership("../etc", issued.address);
		t.eq(none, nil, "bad guild name"); t.eq(code, "bad-guild", "code");
		none, code = wallet.new_gate({ domain = "meet.test", guild_base_url = "ftp://x" });
		t.eq(none, nil, "bad config"); t.eq(code, "bad-config", "code");
		none, code = wallet.new_gate({ domain = "meet.test", room_url = "https://meet.test/" });
		t.eq(none, nil, "room URL without %s"); t.eq(code, "bad-config", "code");
	end);

	t.test("wallet: every Jitsi room name gives a valid EIP-4361 challenge", function()
		local gate = assert(wallet.new_gate({ domain = "meet.test", guild_base_url = "http://127.0.0.1:9" }));
		for node, uri in pairs({ ["my%20meeting"] = "https://meet.test/my%20meeting",
			["caf%c3%a9"] = "https://meet.test/caf%C3%A9", ["café"] = "https://meet.test/caf%C3%A9",
			["100%"] = "https://meet.test/100%25" }) do
			local issued = assert(gate:challenge("alice@meet.test", node.."@conference.meet.test", node,
				"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "our-guild"));
			local parsed, _, text = wallet.siwe_parse(issued.message);
			t.truthy(parsed, node..": "..tostring(text));
			t.eq(parsed and parsed.uri, uri, node);
		end
	end);

	t.test("wallet: one user's flood leaves another user's challenge alone", function()
		local gate = assert(wallet.new_gate({ domain = "meet.test", guild_base_url = "http://127.0.0.1:9",
			challenge_capacity = 50, challenges_per_user = 4 }));
		local victim = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
		local theirs = assert(gate:challenge("alice@meet.test", "r@conference.meet.test", "r", victim, "g"));
		for i = 1, 1000 do
			gate:challenge("mallory@meet.test", "r@conference.meet.test", "r",
				("0x%040x"):format(i), "g");
		end
		t.eq(gate:challenges(), 5, "one own challenge, four of the flooder's");
		local full, code;
		for i = 1, 100 do
			full, code = gate:challenge("m"..i.."@meet.test", "r@conference.meet.test", "r", victim, "g");
		end
		t.eq(full, nil, "a full store refuses"); t.eq(code, "challenges-exhausted", "code");
		t.eq(gate:challenges(), 50, "bounded");
		local other = gate:spend(theirs.nonce, "mallory@meet.test", "r@conference.meet.test", victim);
		t.eq(other, nil, "another user cannot spend it");
		t.eq(gate:spend(theirs.nonce, "alice@meet.test", "r@conference.meet.test", victim), true, "still live");
	end);
end
