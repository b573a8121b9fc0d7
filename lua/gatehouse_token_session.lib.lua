-- gatehouse: what mod_auth_gatehouse_token does over a session's life after login, as
-- jitsi-meet's mod_auth_token does it: stream resumption with a new token
-- (c2s-session-updated) and the jitsi-pre-session-unbind event (breakout rooms use it).
local gatehouse = module:require "gatehouse";

local lib = {};

-- The session fields upstream copies from the resuming session (mod_auth_token.lua).
local copied_fields = {
	"auth_token", "jitsi_meet_context_user", "jitsi_meet_context_group",
	"jitsi_meet_context_features", "jitsi_meet_context_room", "jitsi_meet_room",
	"jitsi_meet_str_tenant", "jitsi_meet_domain", "jitsi_meet_tenant_mismatch",
	"jitsi_breakout_main_jid",
};

-- `session` (the one that lives on) takes over from `from_session` (the new connection that
-- logged in, possibly with a fresh token). stages: this host's first_stage/second_stage.
local function session_updated(stages, session, from_session)
	if not from_session.auth_token then
		return;
	end
	if module.host ~= from_session.host then
		-- Resumed on another host (an anonymous one) with a token: upstream verifies it here,
		-- on the surviving session, and closes the session if it fails.
		session.auth_token = from_session.auth_token;
		if not stages.first_stage(session) or not stages.second_stage(session) then
			session:close();
			return;
		end
	end
	if not session._jitsi_auth_done then
		module:log("warn", "Impossible case hit where session did not pass auth flow");
		session:close();
		return;
	end
	for _, field in ipairs(copied_fields) do
		session[field] = from_session[field];
	end
	session.gatehouse_token_claims = from_session.gatehouse_token_claims;
	-- Privileges follow the claims verified for the token that now sits on the session.
	gatehouse.move_verified_claims(from_session, session);
end

function lib.setup(stages)
	module:hook_global("c2s-session-updated", function (event)
		session_updated(stages, event.session, event.from_session);
	end, 1);
	-- Prosody 0.12 has no c2s-session-updated (13 fires it from sessionmanager.update_session);
	-- its mod_smacks fires smacks-hibernation-end once the resumed session has taken over.
	if not require "core.sessionmanager".update_session then
		module:hook("smacks-hibernation-end", function (event)
			if event.resumed and event.origin ~= event.resumed then
				session_updated(stages, event.resumed, event.origin);
			end
		end, 1);
	end
	module:hook("pre-resource-unbind", function (event)
		local session = event.session;
		prosody.events.fire_event("jitsi-pre-session-unbind", {
			jid = session.full_jid; session = session; error = event.error;
		});
	end, 11);
end

return lib;
