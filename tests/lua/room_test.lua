-- gatehouse.room from Lua: upstream's verify_room rules, error children and texts.
return function(t)
	local room = require "gatehouse".room;
	local MUC = "conference.meet.test";
	local function claims(room_claim, sub, extra)
		local c = { room = room_claim, sub = sub or "meet.test" };
		for k, v in pairs(extra or {}) do c[k] = v; end
		return c;
	end

	t.test("without domain verification the room claim is the room name", function()
		local p = room.new_policy({ enable_domain_verification = false });
		t.eq(p:verify("room1@"..MUC, claims("Room1")), true, "same room");
		local ok, child, text = p:verify("room2@"..MUC, claims("room1"));
		t.eq(ok, false, "other room");
		t.eq(child, "room-mismatch", "child");
		t.eq(text, "Room does not match the room from token", "upstream's text");
		t.eq(p:verify("room1@"..MUC, nil), true, "no verified token: not checked");
	end);

	t.test("domain verification is on by default and checks sub", function()
		local p = room.new_policy({ muc_mapper_domain_base = "meet.test" });
		t.eq(p:muc_domain(), MUC, "main MUC domain");
		t.eq(p:verify("room1@"..MUC, claims("room1")), true, "matching sub");
		local ok, child, text = p:verify("room1@"..MUC, claims("room1", "other.test"));
		t.eq(ok, false, "other domain");
		t.eq(child, nil, "no child, as upstream's bare false");
		t.eq(text, "Room and token mismatched", "text");
		local _, no_claim_child = p:verify("room1@"..MUC, nil);
		t.eq(no_claim_child, "room-name-does-not-match", "no room claim refused");
		t.eq(room.new_policy({ asap_require_room_claim = false }):verify("room1@"..MUC, nil), true,
			"optional room claim");
		t.eq(room.new_policy({}):muc_domain(), nil, "no main MUC without muc_mapper_domain_base");
	end);

	t.test("pattern claims must match the whole room name", function()
		local p = room.new_policy({ muc_mapper_domain_base = "meet.test" });
		local regex = { room = { regex = true } };
		t.eq(p:verify("team7@"..MUC, claims("^team%d+$", nil, { context = regex })), true, "anchored");
		t.eq(p:verify("team7@"..MUC, claims("team%d+", nil, { context = { room = { regex = "true" } } })), true,
			"string true");
		t.eq(p:verify("team1-secret@"..MUC, claims("team%d+", nil, { context = regex })), false, "partial match");
		local ok, child, text = p:verify("team7@"..MUC, claims("a*b*c*d*", nil, { context = regex }));
		t.eq(ok, false, "too many quantifiers");
		t.eq(child, "invalid-regex", "child");
		t.eq(text, "Room claim is not a valid Lua pattern", "upstream's text");
	end);

	t.test("a tenant claim unlike the URL's is reported, and refused by guarded rooms", function()
		local p = room.new_policy({ muc_mapper_domain_base = "meet.test" });
		local c = claims("room1", nil, { context = { tenant = "acme" } });
		local ok, _, _, mismatch = p:verify("room1@"..MUC, c, "", false);
		t.eq(ok, true, "open room");
		t.eq(mismatch, true, "mismatch reported");
		t.eq(p:verify("room1@"..MUC, c, "", true), false, "guarded room");
		local same_ok, _, _, same = p:verify("room1@"..MUC, c, "acme", true);
		t.eq(same_ok, true, "same tenant");
		t.eq(same, false, "no mismatch");
	end);

	t.test("hostile arguments are answered, not raised", function()
		local p = room.new_policy({});
		t.eq(p:verify({}, claims("room1")), false, "table as jid");
		t.eq(p:verify("room1@c.example", claims(5, 5)), false, "number claims name no room");
		t.eq(p:verify("room1@c.example", claims({}, "meet.test")), false, "table room claim");
		t.eq(p:verify("room1@c.example", "not a table"), false, "claims not a table: no room claim");
	end);
end
