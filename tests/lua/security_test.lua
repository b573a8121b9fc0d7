-- gatehouse.security and gatehouse.moderation from Lua: plans as Lua tables, hostile values.
return function(t)
	local gatehouse = require "gatehouse";
	local security, moderation = gatehouse.security, gatehouse.moderation;

	local function verbs(plan)
		local out = {};
		for _, action in ipairs(plan) do
			out[#out + 1] = action.verb..(action.value ~= nil and "="..tostring(action.value) or "");
		end
		return table.concat(out, " ");
	end

	t.test("security plan: Jitsi lobby on, then off with members-only cleared first", function()
		t.eq(verbs(security.plan({ lobby = true }, { lobby_available = true })), "enable-lobby", "on");
		local lobby = { lobby_on = true, members_only = true, lobby_available = true };
		t.eq(verbs(security.plan({ lobby = false }, lobby)), "set-members-only=false disable-lobby", "off");
	end);

	t.test("security plan: members-only fallback and the password", function()
		t.eq(verbs(security.plan({ lobby = true, password = "pw" }, {})), "set-members-only=true set-password=pw", "on");
		t.eq(verbs(security.plan({ password = "" }, { password = "pw" })), "clear-password", "clear");
		t.eq(verbs(security.plan({ password = "pw" }, { password = "pw" })), "", "same password: nothing");
		t.eq(verbs(security.plan({ password = "new" }, { password = "pw" })), "set-password=new", "changed");
		t.eq(verbs(security.plan({ lobby = "true" }, {})), "", "string true ignored");
	end);

	t.test("security plan: hostile context.room asks for nothing", function()
		local cyclic = {}; cyclic.self = cyclic;
		for _, hostile in ipairs({ "lobby", 42, print, cyclic, { lobby = print }, { [true] = 1 } }) do
			t.eq(verbs(security.plan(hostile, {})), "", tostring(hostile));
		end
		t.eq(verbs(security.plan(nil, {})), "", "nil");
		t.eq(pcall(security.plan, {}, "not a table"), false, "state must be a table (caller bug)");
	end);

	t.test("security bypass: only the boolean true", function()
		local steps = security.bypass({ security_bypass = true }, { password_set = true });
		t.eq(table.concat(steps, " "), "supply-password admit-as-member", "steps");
		t.eq(#security.bypass({ security_bypass = "true" }, { password_set = true }), 0, "string");
		t.eq(#security.bypass(nil, {}), 0, "no context.user");
		t.eq(#security.bypass({ security_bypass = true }, { affiliated = true }), 0, "nothing to do");
	end);

	t.test("moderation: affiliation from the claims", function()
		t.eq(moderation.affiliation({ moderator = true }, false, true), "owner", "moderator true");
		t.eq(moderation.affiliation({ moderator = false }, false, true), "member", "moderator false");
		t.eq(moderation.affiliation({ moderator = "true" }, false, true), "member", "string");
		t.eq(moderation.affiliation({}, true, true), "owner", "admin");
		local newer = { context = { user = { affiliation = "teacher" } } };
		t.eq(moderation.affiliation(newer, false, true), "owner", "context.user");
		t.eq(moderation.affiliation(newer, false, false), "member", "context.user off");
		t.eq(moderation.affiliation(newer, false, nil), "owner", "option defaults to on");
		t.eq(moderation.affiliation("junk", "yes", 7), "member", "hostile values");
	end);

	t.test("moderation: owner grants", function()
		t.eq(moderation.owner_grant("focus", false), "acknowledge", "focus");
		t.eq(moderation.owner_grant("admin", false), "apply", "admin");
		t.eq(moderation.owner_grant("other", false), "refuse", "other");
		t.eq(moderation.owner_grant(nil, true), "apply", "token owner");
		t.eq(moderation.owner_grant({}, "true"), "refuse", "hostile values");
	end);

	t.test("moderation: moderator role grants", function()
		t.eq(moderation.role_grant("other", false), "refuse", "an owner to a token member");
		t.eq(moderation.role_grant("other", true), "apply", "to a token owner");
		t.eq(moderation.role_grant("admin", false), "apply", "admin");
		t.eq(moderation.role_grant("focus", false), "apply", "focus");
		t.eq(moderation.role_grant(print, {}), "refuse", "hostile values");
	end);
end
