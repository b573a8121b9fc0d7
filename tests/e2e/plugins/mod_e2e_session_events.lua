-- TEST STAND-IN (not shipped): logs the session events Jitsi's other modules listen to
-- (breakout rooms listen to jitsi-pre-session-unbind), so tests can check they fire.
-- Load it globally: modules_enabled = { "e2e_session_events" }.
module:set_global();

module:hook_global("jitsi-pre-session-unbind", function (event)
	module:log("info", "observed jitsi-pre-session-unbind jid=%s session=%s", tostring(event.jid),
		tostring(event.session and event.session.full_jid));
end);
