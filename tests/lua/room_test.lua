-- gatehouse.room from Lua: Jitsi's room rules and their error children.
return function(t)
	local room = require "gatehouse".room;

	t.test("plain room claim matches case-insensitively", function()
		local p = room.new_policy({});
		t.eq(p:verify("room1@conference.meet.test", "Room1", "meet.test"), true, "same room");
		local ok, child, text = p:verify("room2@conference.meet.test", "room1", "meet.test");
		t.eq(ok, false, "other room");
		t.eq(child, "room-mismatch", "child");
		t.eq(text, "Room and token mismatched", "text");
	end);

	t.test("domain verification with a pattern claim", function()
		local p = room.new_policy({ enable_domain_verification = true, muc_mapper_domain_base = "meet.test" });
		t.eq(p:verify("team7@conference.meet.test", "^team%d+$", "meet.test", true), true, "pattern");
		t.eq(p:verify("team7@conference.meet.test", "^team%d+$", "meet.test", "true"), true, "string true");
		local ok, child = p:verify("team7@conference.meet.test", "a*b*c*d*", "meet.test", true);
		t.eq(ok, false, "too many quantifiers");
		t.eq(child, "invalid-regex", "child");
	end);

	t.test("hostile arguments are answered, not raised", function()
		local p = room.new_policy({});
		t.eq(p:verify({}, "room1", "x"), false, "table as jid");
		t.eq(p:verify("room1@c.example", nil, nil), true, "no token: not checked");
		t.eq(p:verify("room1@c.example", 5, 5), true, "number claims are ignored like absent ones");
	end);
end
