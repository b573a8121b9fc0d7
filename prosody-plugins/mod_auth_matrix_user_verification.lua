-- gatehouse: Matrix user verification auth provider (authentication = "matrix_user_verification").
-- A drop-in for matrix-org's module of the same name: same options, checks in the same order
-- with the same errors, same session fields. The widget token, the room name and the call to
-- the user verification service (UVS), or straight to the homeserver, are handled natively;
-- the call runs off Prosody's thread.
local formdecode = require "util.http".formdecode;

local gatehouse = module:require "gatehouse";

local uvs_base_url = module:get_option_string("uvs_base_url");
local uvs_auth_token = module:get_option_string("uvs_auth_token");
local uvs_sync_power_levels = module:get_option_boolean("uvs_sync_power_levels", false);
local app_id = module:get_option_string("app_id");
-- Own options (upstream has none of these).
local check_issuer = module:get_option_boolean("matrix_user_verification_check_issuer", false);
local uvs_timeout = module:get_option_number("matrix_user_verification_timeout", 5); -- seconds
-- bytes; defaults to 256 KiB from UVS, 8 MiB from a homeserver (room state grows with the room)
local max_reply_size = module:get_option_number("matrix_user_verification_max_reply_size");
local cache_ttl = module:get_option_number("matrix_user_verification_cache_ttl", 30); -- seconds; 0 = off
-- Direct homeserver mode: no UVS; the homeserver (Synapse) is asked with a server admin's token.
local homeserver_url = module:get_option_string("matrix_user_verification_homeserver_url");
local homeserver_admin_token = module:get_option_string("matrix_user_verification_homeserver_admin_token");
-- Homeserver mode: tokens of other homeservers are checked at their own server (as UVS does);
-- discovery may reach private addresses only if allowed (the server name comes from the client).
local federation = module:get_option_boolean("matrix_user_verification_federation", true);
local federation_allow_private = module:get_option_boolean("matrix_user_verification_federation_allow_private", false);
-- Homeserver mode: re-check participants' membership and power this often; 0 = never.
local membership_check_interval = module:get_option_number("matrix_user_verification_membership_check_interval", 0); -- seconds

if not (uvs_base_url or homeserver_url) then
	module:log_status("error", "Missing 'uvs_base_url' config, not configuring matrix_room_membership auth");
	return;
end
if homeserver_url then
	module:log("info", "Verifying with the homeserver at %s directly (no UVS); uvs_sync_power_levels = %s",
		homeserver_url, tostring(uvs_sync_power_levels));
else
	module:log("info", "uvs_base_url = %s; uvs_auth_token is %s; uvs_sync_power_levels = %s", uvs_base_url,
		uvs_auth_token and "set" or "not set", tostring(uvs_sync_power_levels));
end

local verifier, _, config_error = gatehouse.native.matrix.new_verifier({
	uvs_base_url = uvs_base_url; uvs_auth_token = uvs_auth_token;
	homeserver_url = homeserver_url; homeserver_admin_token = homeserver_admin_token;
	sync_power_levels = uvs_sync_power_levels; app_id = app_id; check_issuer = check_issuer;
	timeout = uvs_timeout; max_reply_size = max_reply_size; cache_ttl = cache_ttl;
	federation = federation; federation_allow_private = federation_allow_private;
});
if not verifier then
	module:log_status("error", "Matrix user verification is misconfigured: %s", config_error);
	return;
end

-- A login checks ?room=, but joins are checked only where mod_matrix_room_check runs; without
-- it on any MUC component, a session can join any room's conference (as upstream). Say so once
-- every host is loaded, where the operator looks.
module:hook_global("server-started", function ()
	for _, host in pairs(prosody.hosts) do
		if host.modules.muc and host.modules.matrix_room_check then return; end
	end
	module:log("warn", "No MUC component loads matrix_room_check (or matrix_power_sync, which loads it): "
		.. "a Matrix-verified session can join the conference of any room, not only its own");
end);

-- The re-check itself runs on the MUC component (mod_matrix_room_check); it asks this host's
-- verifier, one query per room per interval.
if membership_check_interval > 0 then
	if homeserver_url then
		local recheck = module:require "gatehouse_matrix_recheck";
		recheck.register(module.host, { verifier = verifier; interval = math.max(membership_check_interval, 1);
			sync = uvs_sync_power_levels; timeout = uvs_timeout });
		function module.unload() recheck.unregister(module.host); end
		module:log("info", "Re-checking Matrix membership every %gs", membership_check_interval);
	else
		module:log("warn", "matrix_user_verification_membership_check_interval needs the homeserver mode (UVS cannot list a room); ignored");
	end
end

-- The token and the room come from the connection URL (?token=…&room=…). Global as well as
-- per host: the session's host is not known yet. Only what the URL carries is set, so another
-- auth module's hook on the same global event is not undone.
local function init_session(event)
	local session, request = event.session, event.request;
	local params = request.url.query and formdecode(request.url.query);
	if type(params) ~= "table" then return; end
	session.auth_token = params.token or session.auth_token;
	-- previd: stream resumption (mod_smacks) reuses the anonymous username of the old session.
	session.previd = params.previd or session.previd;
	session.jitsi_room = params.room or session.jitsi_room;
	session.jitsi_web_query_room = session.jitsi_web_query_room or params.room;
end
for _, event in ipairs({ "bosh-session", "websocket-session" }) do
	module:hook(event, init_session, 1);
	module:hook_global(event, init_session, 1);
end

-- What the async bridge itself reports (no answer in time, queue full) means UVS was not asked.
local unavailable = { condition = "temporary-auth-failure"; text = "Matrix user verification service unavailable";
	reason = "uvs_unavailable" };
-- Reasons an admin has to look at, logged as warnings.
local operator_reasons = { uvs_timeout = true; uvs_unavailable = true; invalid_response = true };

-- Tokens by outcome ("verified", "refused") and reason ("ok" or upstream's reason code).
local tokens = module:metric("counter", "tokens", "", "Matrix tokens verified or refused, by reason", { "outcome", "reason" });

-- true, or false, condition, text: upstream's checks, in upstream's order, then UVS.
local function process_and_verify_token(session)
	local admitted, condition, text, reason, detail = gatehouse.settle_for(session, uvs_timeout,
		verifier:verify(session.auth_token, session.jitsi_room or session.jitsi_web_query_room));
	if not admitted then
		condition, text, reason, detail = gatehouse.sasl_failure(unavailable, condition, text, reason, detail);
		tokens:with_labels("refused", tostring(reason)):add(1);
		-- Who and why, never the token.
		module:log(operator_reasons[reason] and "warn" or "info", "REQUEST_COMPLETE reason:%s (%s) for %s",
			reason, detail, session.ip or "?");
		return false, condition, text;
	end
	tokens:with_labels("verified", "ok"):add(1);
	if cache_ttl > 0 then gatehouse.count_cache(admitted.cached); end
	local claims = admitted.claims;
	local context = type(claims.context) == "table" and claims.context or {};
	session.auth_matrix_user_verification_is_owner = admitted.is_owner;
	-- Not upstream's: what mod_matrix_power_sync needs to grant ownership only in this room.
	session.auth_matrix_user_verification_room_id = admitted.room_id;
	session.auth_matrix_user_verification_user_id = admitted.user_id;
	session.jitsi_meet_context_user = context.user;
	session.jitsi_meet_context_features = context.features;
	session.jitsi_meet_context_group = context.group;
	module:log("info", "REQUEST_COMPLETE reason:ok for %s in %s (owner: %s%s)", tostring(admitted.user_id),
		admitted.room_id, tostring(admitted.is_owner), admitted.cached and ", cached answer" or "");
	return true;
end

-- The SASL ANONYMOUS profile, as upstream: verify, then Jitsi's pre-jitsi-authentication.
local function authenticate(self, session, username)
	local ok, condition, text = process_and_verify_token(session);
	if not ok then
		session.auth_token = nil;
		return false, condition, text;
	end
	self.username = gatehouse.choose_username(session, username);
	return true;
end

gatehouse.provide_anonymous_auth(authenticate);
