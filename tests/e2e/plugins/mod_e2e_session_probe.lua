-- TEST OBSERVER (not shipped): answers a client's question "what does my session say?" with
-- the session fields Jitsi's other modules read, so the differential tests can compare what
-- upstream's auth modules and gatehouse's leave on the same session. Load it on every host
-- (list it in the global modules_enabled). Protocol: the client sends
--   <iq type='get' to='<its host>'><query xmlns='urn:gatehouse:e2e:session-probe'/></iq>
-- and gets the same <query/> back holding the fields as JSON text.
local st = require "util.stanza";

local NS = "urn:gatehouse:e2e:session-probe";

-- The fields other modules read (jitsi-meet, jitsi-contrib, nvonahsen, matrix-org modules).
local FIELDS = {
	"jitsi_meet_room", "jitsi_meet_domain", "jitsi_meet_auth_issuer", "jitsi_meet_str_tenant",
	"jitsi_meet_context_user", "jitsi_meet_context_group", "jitsi_meet_context_features",
	"jitsi_meet_context_room", "jitsi_meet_tenant_mismatch", "jitsi_web_query_room",
	"jitsi_web_query_prefix", "jitsi_room", "auth_matrix_user_verification_is_owner",
};

-- JSON by hand: values may be JSON-null sentinels (lightuserdata) or anything else a token put
-- there, and how they differ between providers is the point, so every type gets a spelling.
local function encode(value, depth)
	local t = type(value);
	if t == "string" then
		return '"'..value:gsub('[%c"\\]', function (c) return ("\\u%04x"):format(c:byte()); end)..'"';
	end
	if t == "number" then
		if value ~= value or value == math.huge or value == -math.huge then return '"$number:'..tostring(value)..'"'; end
		return (math.type and math.type(value) == "integer") and ("%d"):format(value) or ("%.17g"):format(value);
	end
	if t == "boolean" then return tostring(value); end
	if t ~= "table" then return '"$'..t..'"'; end -- cjson.null and the like
	if depth > 8 then return '"$deep"'; end
	local keys = {};
	for k in pairs(value) do keys[#keys + 1] = k; end
	local n = #value;
	if n > 0 and #keys == n then
		local out = {};
		for i = 1, n do out[i] = encode(value[i], depth + 1); end
		return "["..table.concat(out, ",").."]";
	end
	table.sort(keys, function (a, b) return tostring(a) < tostring(b); end);
	local out = {};
	for _, k in ipairs(keys) do
		out[#out + 1] = encode(tostring(k), depth + 1)..":"..encode(value[k], depth + 1);
	end
	return "{"..table.concat(out, ",").."}";
end

module:hook("iq-get/host/"..NS..":query", function (event)
	local session, stanza = event.origin, event.stanza;
	local fields = {};
	for _, name in ipairs(FIELDS) do
		if session[name] ~= nil then fields[#fields + 1] = encode(name, 0)..":"..encode(session[name], 0); end
	end
	-- The token itself is a credential: say only whether the session still holds it.
	fields[#fields + 1] = '"auth_token":'..tostring(session.auth_token ~= nil);
	session.send(st.reply(stanza):tag("query", { xmlns = NS }):text("{"..table.concat(fields, ",").."}"));
	return true;
end);
