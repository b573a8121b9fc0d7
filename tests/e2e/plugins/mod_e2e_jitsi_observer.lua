-- TEST STAND-IN (not shipped): plays the part of Jitsi's other modules that listen to the
-- auth provider's events, and logs each event with the session fields Jitsi modules read,
-- so end-to-end tests can check event order and session fields from the Prosody log.
-- Load it globally: modules_enabled = { "e2e_jitsi_observer" }.
module:set_global();

local function fields(session)
	local user = session.jitsi_meet_context_user;
	return ("room=%s domain=%s issuer=%s tenant=%s user=%s group=%s token=%s"):format(
		tostring(session.jitsi_meet_room), tostring(session.jitsi_meet_domain),
		tostring(session.jitsi_meet_auth_issuer), tostring(session.jitsi_meet_str_tenant),
		type(user) == "table" and tostring(user.name or user.id) or tostring(user),
		tostring(session.jitsi_meet_context_group), session.auth_token and "present" or "absent");
end

for _, name in ipairs({ "pre-jitsi-authentication-fetch-key", "jitsi-access-ban-check",
		"pre-jitsi-authentication", "post-jitsi-authentication" }) do
	module:hook_global(name, function (session)
		module:log("info", "observed %s %s", name, fields(session));
		-- A ban list stand-in: the display name "banned" is refused by jitsi-access-ban-check.
		local user = session.jitsi_meet_context_user;
		if name == "jitsi-access-ban-check" and type(user) == "table" and user.name == "banned" then
			return false;
		end
	end);
end

module:hook_global("jitsi-authentication-token-verified", function (event)
	module:log("info", "observed jitsi-authentication-token-verified %s claims.sub=%s",
		fields(event.session), tostring(event.claims and event.claims.sub));
end);
