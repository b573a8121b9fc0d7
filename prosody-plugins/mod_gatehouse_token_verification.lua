-- gatehouse: the token's room claim enforced at MUC room creation and join.
-- A drop-in for jitsi-meet's mod_token_verification (load it on the MUC component); token
-- options are read from the parent VirtualHost, as upstream does.
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
	enable_domain_verification = parent:get_option_boolean("enable_domain_verification", false);
	muc_mapper_domain_base = parent:get_option_string("muc_mapper_domain_base");
	muc_mapper_domain_prefix = parent:get_option_string("muc_mapper_domain_prefix", "conference");
	muc_mapper_domain = parent:get_option_string("muc_mapper_domain");
	token_regex_enabled = parent:get_option_boolean("token_regex_enabled", true);
	token_regex_room_max_length = parent:get_option_number("token_regex_room_max_length", 128);
	token_regex_max_quantifiers = parent:get_option_number("token_regex_max_quantifiers", 3);
});

local measure_success = module:measure("success", "counter");
local measure_fail = module:measure("fail", "counter");

local function is_exempt(session, user_jid)
	local _, domain = jid.split(user_jid);
	return gatehouse.is_admin(user_jid) or allowlist:contains(domain)
		or allowlist:contains(jid.bare(user_jid)) or session.type == "s2sin";
end

-- true when the session may be in room_jid; otherwise false, error child and text.
local function check_room(session, room_jid)
	if allow_empty_token and session.auth_token == nil then
		return true;
	end
	local context_room = session.jitsi_meet_context_room;
	local pattern = type(context_room) == "table" and context_room.regex or nil;
	return room_policy:verify(room_jid, session.jitsi_meet_room, session.jitsi_meet_domain, pattern);
end

local function verify_user(event)
	local session, stanza = event.origin, event.stanza;
	local user_jid = stanza.attr.from;
	if is_exempt(session, user_jid) then
		return;
	end
	local ok, child, text = check_room(session, stanza.attr.to);
	if not ok then
		measure_fail(1);
		-- Who and why, never the token (upstream logs the whole JWT here).
		module:log("warn", "User %s not allowed to join %s: %s (token room: %s, sub: %s)", user_jid,
			jid.bare(stanza.attr.to), text, tostring(session.jitsi_meet_room), tostring(session.jitsi_meet_domain));
		session.send(gatehouse.error_reply(stanza, "cancel", "not-allowed", text, nil, child));
		return true;
	end
	session.jitsi_meet_verified_room = jid.bare(stanza.attr.to);
	measure_success(1);
end

-- Priority 99: before every other pre-join check, like upstream.
module:hook("muc-room-pre-create", verify_user, 99);
module:hook("muc-occupant-pre-join", verify_user, 99);

-- Claims refreshed on a live session (stream resumption with a new token) are re-checked
-- against the room it was verified for; answering res=false keeps the old claims.
module:hook_global("jitsi-verify-session-rooms", function (event)
	local session = event.session;
	local room_jid = session.jitsi_meet_verified_room;
	if not room_jid or jid.host(room_jid) ~= module.host then
		return;
	end
	local ok, child, text = check_room(session, room_jid);
	if not ok then
		measure_fail(1);
		return { res = false; room = room_jid; error = child; reason = text };
	end
	measure_success(1);
end);

-- Guests (no verified token) may not change room configuration when the option says so.
local function refuse_guest_config(event)
	local session, stanza = event.origin, event.stanza;
	if not require_token_for_moderation or gatehouse.is_admin(stanza.attr.from) then
		return;
	end
	if not session.auth_token or not session.jitsi_meet_room then
		session.send(st.error_reply(stanza, "cancel", "not-allowed", "Room modification disabled for guests"));
		return true;
	end
end
-- Priority -1: just before Prosody's own muc#owner handler at -2.
module:hook("iq-set/bare/http://jabber.org/protocol/muc#owner:query", refuse_guest_config, -1);
module:hook("iq-set/host/http://jabber.org/protocol/muc#owner:query", refuse_guest_config, -1);
