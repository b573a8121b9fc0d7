-- TEST OBSERVER (not shipped): what mod_gatehouse_token_expiry has scheduled on this host.
-- Load it on the VirtualHost (or globally). Protocol: the client sends
--   <iq type='get' to='<this host>'><query xmlns='urn:gatehouse:e2e:expiry-probe' jid='…'/></iq>
-- and gets the same <query/> back holding JSON: { sessions, timers, deadline, bound } —
-- sessions waiting for expiry, util.timer tasks the module has armed (0 or 1), the deadline
-- (epoch seconds, or null) of the session with full JID `jid` (default: the asking session)
-- the sessions bound on this host, and whether session `jid` is still there.
local st = require "util.stanza";

local NS = "urn:gatehouse:e2e:expiry-probe";

module:hook("iq-get/host/"..NS..":query", function (event)
	local session, stanza = event.origin, event.stanza;
	local target = stanza.tags[1].attr.jid;
	local subject = target and prosody.full_sessions[target] or session;
	local expiry = prosody.hosts[module.host].modules.gatehouse_token_expiry;
	local status_of = expiry and rawget(expiry, "status");
	local status = status_of and status_of(subject) or { sessions = 0; timers = 0 };
	local bound = 0;
	for _, user in pairs(prosody.hosts[module.host].sessions or {}) do
		for _ in pairs(user.sessions or {}) do bound = bound + 1; end
	end
	local json = ('{"sessions":%d,"timers":%d,"deadline":%s,"bound":%d,"present":%s}'):format(status.sessions,
		status.timers, status.deadline and ("%.3f"):format(status.deadline) or "null", bound,
		tostring(target ~= nil and prosody.full_sessions[target] ~= nil));
	session.send(st.reply(stanza):tag("query", { xmlns = NS }):text(json));
	return true;
end);
