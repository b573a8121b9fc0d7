-- gatehouse: room owner or member, decided by the verified token.
-- A drop-in for nvonahsen's mod_token_moderation (load it on the MUC component): top-level
-- "moderator": true or a server admin ⇒ owner, other token holders ⇒ member, nobody else makes
-- owners. Reads the claims the auth provider verified; never decodes the token itself.
local jid = require "util.jid";
local st = require "util.stanza";

local gatehouse = module:require "gatehouse";
local moderation = gatehouse.native.moderation;

-- Also honour jitsi-meet's context.user.moderator / context.user.affiliation claims.
local accept_context_user = module:get_option_boolean("token_moderation_accept_context_user", true);

-- gatehouse's auth provider keeps the verified claims on the session; Jitsi's mod_auth_token
-- only hands them to this event. Weak keys: the entry goes with the session.
local verified_claims = setmetatable({}, { __mode = "k" });
module:hook_global("jitsi-authentication-token-verified", function (event)
	verified_claims[event.session] = event.claims;
end);

-- "owner" or "member" for a session holding a verified token; nil for one without.
local function token_affiliation(session, bare_jid)
	if not (session and session.auth_token) then
		return nil;
	end
	local claims = session.gatehouse_token_claims or verified_claims[session];
	local moderator; -- kept as is: an explicit false matters
	if type(claims) == "table" then
		moderator = claims.moderator;
	end
	return moderation.affiliation({ moderator = moderator; context = { user = session.jitsi_meet_context_user } },
		gatehouse.is_admin(bare_jid), accept_context_user);
end

-- Whether the token (or admin status) of a user already makes them an owner.
local function is_owner_by_token(bare_jid)
	if gatehouse.is_admin(bare_jid) then
		return true;
	end
	local user = prosody.bare_sessions[bare_jid];
	for _, session in pairs(user and user.sessions or {}) do
		if token_affiliation(session, bare_jid) == "owner" then
			return true;
		end
	end
	return false;
end

-- Jicofo is recognised as Jitsi's own modules do: an admin whose node is "focus".
local function grantor(actor)
	if not actor or not gatehouse.is_admin(actor) then
		return "other";
	end
	return jid.node(actor) == "focus" and "focus" or "admin";
end

-- Priority -3.5: after the security bypass (-2), before the lobby (-4) and members-only (-5), so
-- the first presence already carries the token's affiliation (upstream sent "none" first).
module:hook("muc-occupant-pre-join", function (event)
	local room, occupant = event.room, event.occupant;
	if gatehouse.is_healthcheck_room(room.jid) or gatehouse.is_admin(occupant.bare_jid) then
		return; -- admins are owners already (mod_muc)
	end
	local affiliation = token_affiliation(event.origin, occupant.bare_jid);
	if not affiliation then
		return;
	end
	local current = room:get_affiliation(occupant.bare_jid);
	if current == "outcast" then
		return; -- banned: the ban check (-10) refuses them, the token must not lift the ban
	end
	if affiliation == "member" and not current and room:get_members_only() then
		return; -- members wait in the lobby like everyone else; owners pass, they admit people
	end
	if current ~= affiliation then
		room:set_affiliation(true, occupant.bare_jid, affiliation);
	end
	occupant.role = room:get_default_role(affiliation) or occupant.role;
	module:log("debug", "%s joins %s as %s by token", occupant.bare_jid, room.jid, affiliation);
end, -3.5);

-- Every way of making an owner ends here: XMPP admin requests, other modules, room creation.
module:hook("muc-pre-set-affiliation", function (event)
	if event.affiliation ~= "owner" or gatehouse.is_healthcheck_room(event.room.jid) then
		return;
	end
	if moderation.owner_grant(grantor(event.actor), is_owner_by_token(event.jid)) ~= "apply" then
		module:log("debug", "Owner for %s in %s refused (asked by %s)", event.jid, event.room.jid, tostring(event.actor));
		event.allowed = false;
		event.error = { type = "modify"; condition = "not-acceptable" };
	end
end);

-- Jicofo's automatic owner grants are answered as done, without effect, so Jicofo logs no
-- "Failed to grant owner". Priority 2: before mod_muc_lobby_rooms (1), which takes these
-- requests over, and Prosody (-2).
local function acknowledge_focus_grants(event)
	local stanza = event.stanza;
	local query = stanza.tags[1];
	if grantor(stanza.attr.from) ~= "focus" or not query or gatehouse.is_healthcheck_room(stanza.attr.to) then
		return;
	end
	local items = 0;
	for item in query:childtags("item") do
		local target = item.attr.jid and jid.prep(jid.bare(item.attr.jid));
		if item.attr.affiliation ~= "owner" or not target
			or moderation.owner_grant("focus", is_owner_by_token(target)) ~= "acknowledge" then
			return; -- anything else goes the normal way
		end
		items = items + 1;
	end
	if items > 0 then
		module:log("debug", "Jicofo's owner grant in %s acknowledged without effect", stanza.attr.to);
		event.origin.send(st.reply(stanza));
		return true;
	end
end
module:hook("iq-set/bare/http://jabber.org/protocol/muc#admin:query", acknowledge_focus_grants, 2);
module:hook("iq-set/host/http://jabber.org/protocol/muc#admin:query", acknowledge_focus_grants, 2);
