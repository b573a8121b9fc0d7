-- gatehouse: room owner or member, decided by the verified token.
-- A drop-in for nvonahsen's mod_token_moderation (load it on the MUC component): top-level
-- "moderator": true or a server admin ⇒ owner, other token holders ⇒ member, nobody else makes
-- moderators. Reads only the claims a signature-verifying provider verified
-- (gatehouse.verified_claims); never decodes the token itself.
local jid = require "util.jid";
local st = require "util.stanza";

local gatehouse = module:require "gatehouse";
local moderation = gatehouse.native.moderation;

-- Also honour jitsi-meet's context.user.moderator / context.user.affiliation claims.
local accept_context_user = module:get_option_boolean("token_moderation_accept_context_user", true);

-- "owner" or "member" for a session holding a verified token; nil for any other session
-- (no token, a token nobody verified, a Matrix widget token, a guest's ?token=).
local function token_affiliation(session, bare_jid)
	local claims = gatehouse.verified_claims(session);
	if not claims then
		return nil;
	end
	return moderation.affiliation(claims, gatehouse.is_admin(bare_jid), accept_context_user);
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

-- What a join is about: the joining user's bare JID and the token's affiliation, or nil when
-- the token gives nothing here. `occupant` is someone else's when the nick is taken by another
-- user: Prosody refuses that join (conflict) after pre-join, so it gets nothing either.
local function joining(event)
	local room, occupant = event.room, event.occupant;
	local bare = jid.bare(event.stanza.attr.from);
	if gatehouse.is_healthcheck_room(room.jid) or gatehouse.is_admin(bare) or occupant.bare_jid ~= bare then
		return nil; -- admins are owners already (mod_muc)
	end
	local affiliation = token_affiliation(event.origin, bare);
	if not affiliation or room:get_affiliation(bare) == "outcast" then
		return nil; -- banned: the ban check (-10) refuses them, the token must not lift the ban
	end
	return bare, affiliation;
end

local function apply(event, bare, affiliation)
	local room = event.room;
	if room:get_affiliation(bare) ~= affiliation then
		room:set_affiliation(true, bare, affiliation);
	end
	event.occupant.role = room:get_default_role(affiliation) or event.occupant.role;
end

-- The affiliation is set only for a join that every gate admitted (ban -10, password -20, lock
-- -30, lobby -4 and members-only -5 all ran before), so a refused join leaves nothing behind.
-- The first self-presence is built after pre-join: it already carries the affiliation and role.
module:hook("muc-occupant-pre-join", function (event)
	local bare, affiliation = joining(event);
	if bare then
		apply(event, bare, affiliation);
		module:log("debug", "%s joins %s as %s by token", bare, event.room.jid, affiliation);
	end
end, -100);

-- Token owners go past the lobby and members-only (-4, -5), which look at the affiliation: it
-- is set first here (after the security bypass at -2), only when the later gates will pass.
-- Token members wait like everyone else.
module:hook("muc-occupant-pre-join", function (event)
	if not event.room:get_members_only() then
		return;
	end
	local bare, affiliation = joining(event);
	if affiliation == "owner" and gatehouse.password_and_lock_admit(event) then
		apply(event, bare, affiliation);
	end
end, -3.5);

-- Prosody makes a room's creator its owner (muc-room-pre-create, -1) before the join is checked,
-- and a refused first join leaves an empty room behind: a token holder would own it and could
-- configure it before anyone else arrives. For a token holder the token decides instead, at the
-- end of an admitted join, like any other join.
module:hook("muc-room-pre-create", function (event)
	local room = event.room;
	local bare = jid.bare(event.stanza.attr.from);
	if gatehouse.is_healthcheck_room(room.jid) or gatehouse.is_admin(bare) or not token_affiliation(event.origin, bare) then
		return;
	end
	if room:get_affiliation(bare) == "owner" then
		room:set_affiliation(true, bare, "none");
	end
end, -1.5);

-- Every way of making an owner or admin ends here: XMPP admin requests, other modules. Actions
-- of the server itself (actor nil: room:set_affiliation(true, …), e.g. jitsi-meet's mod_muc_flip
-- or the room creator's owner) are Prosody's and the modules' own, and go through.
module:hook("muc-pre-set-affiliation", function (event)
	local affiliation = event.affiliation;
	if (affiliation ~= "owner" and affiliation ~= "admin") or event.actor == nil
		or gatehouse.is_healthcheck_room(event.room.jid) then
		return;
	end
	if moderation.owner_grant(grantor(event.actor), is_owner_by_token(event.jid)) ~= "apply" then
		module:log("debug", "%s for %s in %s refused (asked by %s)", affiliation, event.jid, event.room.jid, event.actor);
		event.allowed = false;
		event.error = { type = "modify"; condition = "not-acceptable" };
	end
end);

-- The moderator role is what Jitsi clients treat as "moderator": an owner may not hand it to a
-- token member by role either. Prosody fires this only for requests with an actor.
module:hook("muc-pre-set-role", function (event)
	local room, occupant = event.room, event.occupant;
	if event.role ~= "moderator" or gatehouse.is_healthcheck_room(room.jid) then
		return;
	end
	local affiliation = room:get_affiliation(occupant.bare_jid);
	if affiliation == "owner" or affiliation == "admin" then
		return;
	end
	if moderation.role_grant(grantor(event.actor), is_owner_by_token(occupant.bare_jid)) ~= "apply" then
		module:log("debug", "Moderator role for %s in %s refused (asked by %s)", occupant.nick, room.jid, tostring(event.actor));
		event.allowed, event.error, event.condition = false, "modify", "not-acceptable";
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
