-- Test-only module (tests/e2e): tells the harness that Prosody finished starting.
--
-- A listening port is not proof of a started server: Prosody opens its ports while modules
-- load and may still fail (and even start shutting down) afterwards. "server-started" fires
-- once every host is activated; tests/e2e/lib/prosody.js waits for this log line.
module:set_global();

module:hook_global("server-started", function ()
	module:log("info", "E2E-HARNESS-READY");
end);
