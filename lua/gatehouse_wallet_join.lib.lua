-- gatehouse: the join gate of mod_gatehouse_wallet. In a room that requires a guild, a join is
-- admitted only with a valid proof, or for an owner, admin, existing member, server admin or
-- holder of a verified bypass (or moderator) claim; members-only, the lobby and the password
-- play no part in it, so what disco#info advertises is exactly what is enforced.
--
-- The Guild API is asked *before* mod_muc sees the join (presence/full, just above mod_muc's
-- -2): mod_muc works out the occupant and checks the nick only afterwards, on the room as it is
-- then, and a join whose session went away during the wait is dropped. The challenge is spent
-- only on a final answer (member, not a member, bad signature), never on a Guild outage.
local jid = require "util.jid";
local st = require "util.stanza";
local modulemanager = require "core.modulemanager";

local gatehouse = module:require "gatehouse";
local rooms = module:require "gatehouse_wallet";

local NS = rooms.NS;

-- Proof failures → stanza errors. Texts tell the user what to do next; the fourth field marks
-- texts that say it all (no detail from the native side appended).
local refusals = {
	["proof-required"] = { "auth", "registration-required", "This room is open to members of guild %s: join with a wallet proof (%s)"; true };
	["bad-signature"] = { "auth", "not-authorized", "Bad signature" };
	["bad-message"] = { "modify", "bad-request", "Bad sign-in message" };
	["unknown-challenge"] = { "auth", "not-authorized", "Unknown challenge: ask the room for a new one"; true };
	["expired-challenge"] = { "auth", "not-authorized", "Challenge expired: ask the room for a new one"; true };
	["used-challenge"] = { "auth", "not-authorized", "Challenge already used: ask the room for a new one"; true };
	["challenge-wrong-user"] = { "auth", "not-authorized", "Challenge was issued to another user"; true };
	["challenge-wrong-room"] = { "auth", "not-authorized", "Challenge was issued for another room"; true };
	["challenge-wrong-address"] = { "auth", "not-authorized", "Challenge was issued to another address"; true };
	["not-member"] = { "auth", "forbidden", "Not a member of the guild" };
	["bad-guild"] = { "cancel", "item-not-found", "The room's guild is unknown to the Guild service" };
	["guild-unavailable"] = { "wait", "service-unavailable", "Guild service unavailable, try again later" };
	["remote-server-timeout"] = { "wait", "service-unavailable", "Guild service unavailable, try again later" };
	["resource-constraint"] = { "wait", "resource-constraint", "Guild service busy, try again later" };
};
-- Answers that say nothing about the user: the challenge stays good for a retry.
local not_final = { ["guild-unavailable"] = true; ["remote-server-timeout"] = true; ["bad-guild"] = true;
	["bad-config"] = true; ["internal-server-error"] = true; ["resource-constraint"] = true };

return function (gate, guild_timeout)
	local muc = module:depends("muc");
	-- What the early check found, per join stanza, for the pre-join hook to apply. Weak keys:
	-- an entry goes with its stanza, whatever happens to the join.
	local verdicts = setmetatable({}, { __mode = "k" });

	local function refuse(event, condition, detail)
		local room = event.room;
		local r = refusals[condition] or { "cancel", "internal-server-error", "Wallet check failed" };
		local text = r[3]:format(rooms.required_guild(room) or "?", NS);
		if detail and not r[4] then text = text..": "..detail; end
		module:log("info", "Wallet join of %s to %s refused: %s", jid.bare(event.stanza.attr.from), room.jid, text);
		local reply = st.error_reply(event.stanza, r[1], r[2], text, room.jid);
		if condition == "proof-required" and room._data.lobbyroom then
			-- As Jitsi's lobby refuses: clients offer to knock there (a moderator's approval makes
			-- the user a member, who is then let in).
			reply:tag("lobbyroom", { xmlns = "http://jitsi.org/jitmeet" }):text(room._data.lobbyroom):up();
		end
		event.origin.send(reply);
		return true;
	end

	--- Why this user needs no proof here, or nil. Privileges come from verified claims only.
	local function exemption(room, session, bare_jid)
		if gatehouse.is_healthcheck_room(room.jid) or gatehouse.is_admin(bare_jid) then
			return "admin";
		end
		local affiliation = room:get_affiliation(bare_jid);
		if affiliation == "owner" or affiliation == "admin" or affiliation == "member" then
			return affiliation;
		end
		local user = gatehouse.verified_context(session, "user");
		if user and user.security_bypass == true then
			return "bypass";
		end
		-- mod_token_moderation makes a verified `moderator: true` token an owner at this join.
		local claims = gatehouse.verified_claims(session);
		if claims and claims.moderator == true and modulemanager.is_loaded(module.host, "token_moderation") then
			return "moderator";
		end
	end

	-- The verdict for one proof: { address } or { condition, text }, or nil for no proof at all.
	-- May wait for the Guild API.
	local function judge(room, guild, stanza, proof, session)
		local requester = jid.bare(stanza.attr.from);
		local node = jid.node(room.jid);
		local address, nonce, text;
		if proof then
			address, nonce, text = gate:check(requester, room.jid, node, proof:get_child_text("message"),
				proof.attr.signature, proof.attr.address);
			if not address then return { condition = nonce; text = text }; end
		else
			local signature, claimed = rooms.legacy.take(stanza);
			if not (signature and rooms.legacy.enabled) then return nil; end
			address, nonce, text = rooms.legacy.verify(room, guild, signature, claimed);
			if not address then return { condition = nonce; text = text }; end
			nonce = nil; -- the legacy code rotated already
		end
		-- Both requests (guild, then membership) within the one timeout.
		local answer, condition, public_text, _, log_text = gatehouse.settle_for(session, guild_timeout,
			gate:membership(guild, address));
		if not answer and not_final[condition] then
			module:log("warn", "Guild check of %s for %s failed: %s", address, room.jid, log_text or public_text);
			return { condition = condition; text = public_text };
		end
		if nonce then
			local spent, why, why_text = gate:spend(nonce, requester, room.jid, address);
			if not spent then return { condition = why; text = why_text }; end
		end
		if not answer then return { condition = condition; text = public_text }; end
		if not answer.member then return { condition = "not-member"; text = guild }; end
		return { address = address };
	end

	-- Before mod_muc (-2): a join to a gated room with a proof is judged here, waiting if need be.
	module:hook("presence/full", function (event)
		local stanza, origin = event.stanza, event.origin;
		if stanza.attr.type ~= nil then return; end
		local room = muc.get_room_from_jid(jid.bare(stanza.attr.to));
		local guild = room and rooms.required_guild(room);
		if not guild or room:get_occupant_jid(stanza.attr.from) then
			return; -- no requirement, or not a join (a presence update or nick change)
		end
		local proof = stanza:get_child("proof", NS);
		if exemption(room, origin, jid.bare(stanza.attr.from)) then return; end
		local verdict = judge(room, guild, stanza, proof, origin);
		if verdict then
			verdict.guild = guild;
			verdicts[stanza] = verdict;
		end
		if origin.destroyed then
			-- The session went away while the Guild API answered: nothing may join for it.
			module:log("debug", "Dropped the join of %s to %s: session closed", stanza.attr.from, room.jid);
			return true;
		end
	end, -1);

	-- The member affiliation a proof (or a bypass claim) earns is what the lobby (-4) and
	-- members-only (-5) checks look for, so it is set here, but only for a join every later gate
	-- admits (gatehouse.later_refusal): a refused join must leave no affiliation behind that
	-- would let its user past the guild, the lobby or members-only later without a proof (nor
	-- lift a ban).
	local later_refusal, admit_as_member = gatehouse.later_refusal, gatehouse.admit_as_member;

	-- Priority -1.5: after token verification (99); before the security bypass (-2), the lobby
	-- bypass (-3), token moderation (-3.5), the lobby (-4), members-only (-5) and the password
	-- (-20). So only an affiliation the user had before this join exempts them (not a `member`
	-- another module grants on the way, e.g. for a lobby_bypass claim), bypass and moderator
	-- claims are read here from verified tokens, and a proven member walks past the rest.
	module:hook("muc-occupant-pre-join", function (event)
		local room, stanza, session = event.room, event.stanza, event.origin;
		-- Who joins is the sender: event.occupant is the nick's occupant, someone else's when the
		-- nick is taken (mod_muc refuses that join as a conflict only after this event).
		local bare_jid = jid.bare(stanza.attr.from);
		stanza:remove_children("proof", NS);
		rooms.legacy.take(stanza);
		local verdict = verdicts[stanza];
		verdicts[stanza] = nil;
		local guild = rooms.required_guild(room);
		if not guild then return; end
		local exempt = exemption(room, session, bare_jid);
		if exempt then
			-- A bypass join that a later gate refuses goes on without the membership: the
			-- security bypass (-2) may still supply the password, and grants membership itself.
			if exempt == "bypass" and not room:get_affiliation(bare_jid) and not later_refusal(event, bare_jid) then
				module:log("debug", "Guild check bypassed by token for %s in %s", bare_jid, room.jid);
				return admit_as_member(event, bare_jid, "Guild bypass");
			end
			return;
		end
		if not verdict or verdict.guild ~= guild then
			return refuse(event, "proof-required"); -- no proof, or one judged for another guild
		elseif not verdict.address then
			return refuse(event, verdict.condition, verdict.text);
		end
		module:log("info", "%s proved %s is in guild %s for %s", bare_jid, verdict.address, guild, room.jid);
		return admit_as_member(event, bare_jid, "Proven join");
	end, -1.5);
end
