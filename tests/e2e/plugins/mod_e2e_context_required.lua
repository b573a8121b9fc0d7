-- TEST STAND-IN (not shipped): plays a Jitsi module that requires the token's context claim
-- (upstream's token/util checks session.contextRequired after verification). Sessions whose
-- URL carries ?context_required=1 get the flag. Load it globally.
module:set_global();

local formdecode = require "util.http".formdecode;

local function mark(event)
	local query = event.request.url.query;
	local params = query and formdecode(query);
	if type(params) == "table" and params.context_required == "1" then
		event.session.contextRequired = true;
	end
end
module:hook_global("websocket-session", mark, 2);
module:hook_global("bosh-session", mark, 2);
