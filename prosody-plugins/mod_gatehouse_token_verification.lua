-- gatehouse: the token's room claim enforced at MUC room creation and join.
-- A drop-in for jitsi-meet's mod_token_verification (load it on the MUC component): the same
-- checks in the same order as upstream's verify_room, decided from the session's *verified*
-- claims only. Token options are read from the parent VirtualHost, as upstream does.
local jid = require "util.jid";
local st = require "util.stanza";

local gatehouse = module:require "gatehouse";

-- conference.meet.example → meet.example, the host whose token options apply.
local parent_host = module:get_option_string("gatehouse_token_host", module.host:match("^[^.]+%.(.+)$"));
local parent = parent_host and module:context(parent_host);
if not parent then
	module:log_status("error", "Cannot find the parent host of %s; room checks are disabled", module.host);
	return;
end

local allow_empty_token = parent:get_option_boolean("allow_empty_token", false);
local allowlist = module:get_option_set("token_verification_allowlist", {});
local require_token_for_moderation = module:get_option_boolean("token_verification_require_token_for_moderation", false);
local room_policy = gatehouse.native.room.new_policy({
	enable_domain_verification = parent:get_option_boolean("enable_domain_verification", true);
	asap_require_room_claim = parent:get_option_boolean("asap_require_room_claim", true);
	muc_mapper_domain_base = parent:get_option_string("muc_mapper_domain_base");
	muc_mapper_domain_prefix = parent:get_option_string("muc_mapper_domain_prefix", "conference");
	muc_mapper_domain = parent:get_option_string("muc_mapper_domain");
	token_regex_enabled = parent:get_option_boolean("token_regex_enabled", true);
	token_regex_room_max_length = parent:get_option_number("token_regex_room_max_length", 128);
	token_regex_max_quantifiers = parent:get_option_number("token_regex_max_quantifiers", 3);
});
-- Upstream looks every room up on the main MUC, which it knows only from muc_mapper_domain_base.
local muc_domain = room_policy:muc_domain();
if not muc_domain then
	module:log_status("warn", "muc_mapper_domain_base is not set on %s: every join that needs a token check is refused (as upstream)", parent_host);
end

local measure_success = module:measure("success", "counter");
local measure_fail = module:measure("fail", "counter");

local function is_exempt(session, user_jid)
	local _, domain = jid.split(user_jid);
	return gatehouse.is_admin(user_jid) or allowlist:contains(domain)
		or allowlist:contains(jid.bare(user_jid)) or session.type == "s2sin";
end

-- upstream's get_room_from_jid: the room as the MUC host's own module knows it.
local function find_room(room_jid)
	local host = prosody.hosts[jid.host(room_jid)];
	local muc = host and host.modules.muc;
	return muc and muc.get_room_from_jid(room_jid) or nil;
end

-- upstream's verify_room: true, or false, error element (or nil), text, log detail.
local function verify_room(session, room_address)
	local node = jid.split(room_address);
	if node == nil then
		return false, "invalid-room-address", "Room address is invalid";
	end
	local room = muc_domain and find_room(jid.join(node, muc_domain));
	if not room then
		return false, "room-does-not-exist", "Room does not exist";
	end
	local closed_to_guests = room._data.allowUnauthenticatedAccess == false;
	if allow_empty_token and session.auth_token == nil then
		if closed_to_guests then
			return false, "authentication-required", "Authentication required";
		end
		return true;
	end
	local ok, child, text, tenant_mismatch, detail = room_policy:verify(room_address,
		gatehouse.verified_claims(session), session.jitsi_web_query_prefix or "", closed_to_guests);
	if tenant_mismatch then
		session.jitsi_meet_tenant_mismatch = true;
	end
	return ok, child, text, detail;
end

local function verify_user(event)
	local session, stanza = event.origin, event.stanza;
	local user_jid = stanza.attr.from;
	if is_exempt(session, user_jid) then
		return;
	end
	local ok, child, text, detail = verify_room(session, stanza.attr.to);
	if not ok then
		measure_fail(1);
		-- Who and why, never the token (upstream logs the whole JWT here).
		module:log("warn", "User %s not allowed to join %s: %s", user_jid, jid.bare(stanza.attr.to), detail or text);
		session.send(gatehouse.error_reply(stanza, "cancel", "not-allowed", text, nil, child));
		return true;
	end
	measure_success(1);
end

-- Priority 99: before every other pre-join check, like upstream.
module:hook("muc-room-pre-create", verify_user, 99);
module:hook("muc-occupant-pre-join", verify_user, 99);

-- Guests (no verified token) may not change room configuration when the option says so.
local function refuse_guest_config(event)
	local session, stanza = event.origin, event.stanza;
	if not require_token_for_moderation or gatehouse.is_admin(stanza.attr.from) then
		return;
	end
	local claims = gatehouse.verified_claims(session);
	if not claims or claims.room == nil then
		session.send(st.error_reply(stanza, "cancel", "not-allowed", "Room modification disabled for guests"));
		return true;
	end
end
-- Priority -1: just before Prosody's own muc#owner handler at -2.
module:hook("iq-set/bare/http://jabber.org/protocol/muc#owner:query", refuse_guest_config, -1);
module:hook("iq-set/host/http://jabber.org/protocol/muc#owner:query", refuse_guest_config, -1);
