-- gatehouse: JWT authentication provider (authentication = "gatehouse_token").
-- A drop-in for jitsi-meet's mod_auth_token: same options, session fields and events, with the
-- token verified natively (constant-time HMAC, ES/PS/EdDSA, JWKS) and keys fetched off-thread.
local formdecode = require "util.http".formdecode;

local gatehouse = module:require "gatehouse";
local token_api = gatehouse.native.token;

local app_id = module:get_option_string("app_id");
local app_secret = module:get_option_string("app_secret");
local asap_key_server = module:get_option_string("asap_key_server");
local cache_keys_url = module:get_option_string("cache_keys_url");
local signature_algorithm = module:get_option_string("signature_algorithm",
	(asap_key_server or cache_keys_url) and "RS256" or "HS256");
local allow_empty_token = module:get_option_boolean("allow_empty_token", false);
local accepted_issuers = module:get_option_array("asap_accepted_issuers", { app_id });
local accepted_audiences = module:get_option_array("asap_accepted_audiences", { "*" });
local require_room_claim = module:get_option_boolean("asap_require_room_claim", true);
local key_cache_size = module:get_option_number("jwt_pubkey_cache_size", 128);
local key_cache_ttl = module:get_option_number("jwt_pubkey_cache_ttl", 3600); -- seconds
local leeway = module:get_option_number("gatehouse_token_leeway", 0); -- seconds
local max_token_bytes = module:get_option_number("gatehouse_token_max_size", 16384); -- bytes
local key_timeout = module:get_option_number("gatehouse_key_fetch_timeout", 5); -- seconds
local key_fetch_rate = module:get_option_number("gatehouse_key_fetch_rate", 5); -- new kids/s per key server

if not app_id then
	module:log_status("error", "'app_id' must not be empty; token authentication is disabled");
	return;
end
if not (app_secret or asap_key_server or cache_keys_url) then
	module:log_status("error", "'app_secret', 'asap_key_server' or 'cache_keys_url' must be set");
	return;
end
if allow_empty_token then
	module:log("warn", "WARNING - empty tokens allowed");
end

local verifier, _, config_error = token_api.new_verifier({
	algorithm = signature_algorithm; app_id = app_id;
	secret = (not asap_key_server and not cache_keys_url) and app_secret or nil;
	-- Both may be set: the JWKS first, the key server for kids it lacks, as upstream.
	asap_key_server = asap_key_server; cache_keys_url = cache_keys_url;
	accepted_issuers = accepted_issuers; accepted_audiences = accepted_audiences;
	require_room_claim = require_room_claim; leeway = leeway; max_token_bytes = max_token_bytes;
	key_cache_size = key_cache_size; key_cache_ttl = key_cache_ttl; http_timeout = key_timeout;
	key_fetch_rate = key_fetch_rate;
});
if not verifier then
	module:log_status("error", "Token verification is misconfigured: %s", config_error);
	return;
end

-- Tokens by outcome ("verified", "refused") and reason ("ok" or the refusal's reason code).
local tokens = module:metric("counter", "tokens", "", "tokens verified or refused, by reason", { "outcome", "reason" });
local keys_cached = (asap_key_server or cache_keys_url) ~= nil;

-- The session fields jitsi-meet's mod_jitsi_session sets (which mod_auth_token depends on),
-- field for field: ?token= wins over the Authorization header (its value after 7 characters,
-- "Bearer "); the URL's room, tenant prefix and resumption id only when there is a query.
local region_header_name = module:get_option_string("region_header_name", "x_proxy_region");
local function init_session(event)
	local session, request = event.session, event.request;
	local query = request.url.query;
	local authorization = request.headers.authorization;
	local token = authorization and authorization:sub(8) or nil;
	if query ~= nil then
		local params = formdecode(query);
		if type(params) ~= "table" then params = {}; end
		session.previd = params.previd;
		session.customusername = params.customusername;
		session.jitsi_web_query_room = params.room;
		session.jitsi_web_query_prefix = params.prefix or "";
		token = params.token or token;
	end
	session.user_region = request.headers[region_header_name];
	session.auth_token = token;
	session.user_agent_header = request.headers.user_agent;
end
-- Global as well as per host: a globally enabled mod_websocket/mod_bosh fires these on the
-- global event bus (mod_jitsi_session listens there too). The session's host is not known yet.
for _, event in ipairs({ "bosh-session", "websocket-session" }) do
	module:hook(event, init_session, 1);
	module:hook_global(event, init_session, 1);
end

-- Binds the verified claims to the session under the names Jitsi's other modules read.
local function bind_claims(session, claims)
	local context = type(claims.context) == "table" and claims.context or {};
	session.jitsi_meet_room = claims.room;
	session.jitsi_meet_domain = claims.sub;
	session.jitsi_meet_auth_issuer = claims.iss;
	session.jitsi_meet_str_tenant = context.tenant;
	session.jitsi_meet_context_user = context.user or (claims.user_id and { id = claims.user_id }) or nil;
	session.jitsi_meet_context_group = context.group;
	session.jitsi_meet_context_features = context.features;
	session.jitsi_meet_context_room = context.room;
	session.gatehouse_token_claims = claims;
	gatehouse.set_verified_claims(session, claims);
end

-- Waits for a verification that needed a key fetch. A key-server verifier answers at once only
-- from its key cache (or for a token refused before any key was needed, which is not counted).
local function settle_counted(session, answer, ...)
	local remote = gatehouse.native.jobs.is_job(answer);
	local claims, condition, text, reason, detail = gatehouse.settle_for(session, key_timeout, answer, ...);
	if gatehouse.native.jobs.is_job(claims) then -- a kid the JWKS lacks: the key server next
		claims, condition, text, reason, detail = gatehouse.settle_for(session, key_timeout, claims);
	end
	if keys_cached and (remote or claims) then gatehouse.count_cache(not remote); end
	return claims, condition, text, reason, detail;
end

-- What upstream's token/util.lib.lua answers when the key server gave no key (its fetch timed
-- out or failed).
local no_key = { condition = "not-allowed"; text = "could not obtain public key" };

local function verify_session_token(session)
	if session.auth_token == nil then
		if allow_empty_token then return true; end
		tokens:with_labels("refused", "no-token"):add(1);
		module:log("info", "Token refused for %s (no-token): token required", session.ip or "?");
		return false, "not-allowed", "token required";
	end
	local claims, condition, text, reason, detail;
	if session.public_key then
		claims, condition, text, reason, detail = verifier:verify_with_key(session.auth_token, session.public_key);
	else
		claims, condition, text, reason, detail = settle_counted(session, verifier:verify(session.auth_token));
	end
	tokens:with_labels(claims and "verified" or "refused", claims and "ok" or tostring(reason or condition)):add(1);
	if not claims then
		-- No key in time (or too many calls waiting): upstream's answer when it got no key.
		local unanswered;
		condition, text, reason, detail, unanswered = gatehouse.sasl_failure(no_key, condition, text, reason, detail);
		-- detail is log-safe (bounded, escaped); text is upstream's, for the client.
		module:log(unanswered and "warn" or "info", "Token refused for %s (%s): %s", session.ip or "?", reason, detail or text);
		session.auth_token = nil;
		return false, condition, text;
	end
	bind_claims(session, claims);
	prosody.events.fire_event("jitsi-authentication-token-verified", { session = session; claims = claims });
	-- Set by a module that wants the context claim (upstream checks it after the event).
	if session.contextRequired and claims.context == nil then
		tokens:with_labels("refused", "no-context"):add(1);
		session.auth_token = nil;
		return false, "not-allowed", "jwt missing required context claim";
	end
	return true;
end

-- mod_auth_token's first stage: fetch-key event, verify, ban check. true, or false,
-- condition, text. A failure clears session.auth_token, as upstream does.
local function first_stage(session)
	local pre = prosody.events.fire_event("pre-jitsi-authentication-fetch-key", session);
	if pre ~= nil and pre.res == false then
		session.auth_token = nil;
		return false, pre.error, pre.reason;
	end
	local ok, condition, text = verify_session_token(session);
	if not ok then return false, condition, text; end
	if prosody.events.fire_event("jitsi-access-ban-check", session) == false then
		return false, "not-allowed", "user is banned";
	end
	return true;
end

-- The second stage: post-jitsi-authentication may still refuse.
local function second_stage(session)
	local post = prosody.events.fire_event("post-jitsi-authentication", session);
	if post ~= nil and post.res == false then
		session.auth_token = nil;
		return false, post.error, post.reason;
	end
	session._jitsi_auth_done = true; -- as upstream: resumption checks it
	return true;
end

-- The SASL ANONYMOUS profile: the same event sequence as mod_auth_token.
local function authenticate(self, session, username)
	local ok, condition, text = first_stage(session);
	if not ok then return false, condition, text; end
	self.username = gatehouse.choose_username(session, username);
	return second_stage(session);
end

gatehouse.provide_anonymous_auth(authenticate);

-- Stream resumption and unbinding, as mod_auth_token handles them.
module:require("gatehouse_token_session").setup({
	first_stage = first_stage; second_stage = second_stage;
});
-- Tokens that expire during a meeting (opt-in): mod_gatehouse_token_expiry.
if module:get_option_string("gatehouse_token_expiry") then module:depends("gatehouse_token_expiry"); end
