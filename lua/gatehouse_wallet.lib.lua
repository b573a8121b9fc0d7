-- gatehouse: a room's guild requirement (mod_gatehouse_wallet): where it is kept, how it
-- protects the room, the owner's room configuration fields and the disco#info advertisement.
local gatehouse = module:require "gatehouse";
local legacy = module:require "gatehouse_wallet_legacy";
local security = gatehouse.native.security;

local lib = { NS = "urn:gatehouse:wallet:0"; legacy = legacy };

local FIELD_GUILD = "muc#roomconfig_gatehouse_guild";
local FIELD_REQUIRED = "muc#roomconfig_gatehouse_guild_required";

--- The guild a room requires, or nil when it requires none (never set, or switched off).
function lib.required_guild(room)
	local data = room._data;
	return data.gatehouse_guild_required and data.gatehouse_guild or nil;
end

-- The requirement is the lobby request of the security issue: reuse its plan and verbs, so a
-- gated room is protected exactly as context.room.lobby = true protects one.
local function protect(room, on)
	local plan = security.plan({ lobby = on }, {
		lobby_on = room._data.lobbyroom ~= nil;
		members_only = room:get_members_only();
		password_set = room:get_password() ~= nil;
		lobby_available = gatehouse.jitsi_lobby_loaded();
	});
	return gatehouse.apply_security_plan(room, plan);
end

--- Sets the guild (a url name or id; nil keeps the current one) and whether it is required.
-- Returns true when something changed; nil, "bad-guild" for a name the Guild API can't have.
function lib.set_requirement(room, guild, required)
	if guild ~= nil then
		guild = guild:lower();
		if guild ~= "" and not guild:match("^[%w%-]+$") then
			return nil, "bad-guild";
		end
		room._data.gatehouse_guild = guild ~= "" and guild or nil;
	end
	local was = lib.required_guild(room);
	room._data.gatehouse_guild_required = required and true or nil;
	local now = lib.required_guild(room);
	if was == now then
		return false;
	end
	if (was == nil) ~= (now == nil) then
		protect(room, now ~= nil);
	end
	legacy.rotate(room, now);
	room:save(true);
	return true;
end

-- The owner's switch, as in the seed: the guild to require and whether to require it now.
module:hook("muc-config-form", function (event)
	local data = event.room._data;
	table.insert(event.form, { name = FIELD_GUILD; type = "text-single";
		label = "Guild (guild.xyz url name or id) whose members may join"; value = data.gatehouse_guild or "" });
	table.insert(event.form, { name = FIELD_REQUIRED; type = "boolean";
		label = "Require guild membership, proven with a wallet"; value = data.gatehouse_guild_required == true });
end);

-- Both fields are read from one submission, whichever Prosody reports first.
local function config_submitted(event)
	local guild, required = event.fields[FIELD_GUILD], event.fields[FIELD_REQUIRED];
	if event.done_gatehouse_wallet then return; end
	event.done_gatehouse_wallet = true;
	if required == nil then required = event.room._data.gatehouse_guild_required; end
	local changed, err = lib.set_requirement(event.room, guild, required);
	if err then
		-- Prosody 0.12 has no way to refuse one field of a submitted form: log it for the admin.
		module:log("warn", "%s asked %s for guild %q: %s (unchanged)", tostring(event.actor), event.room.jid, tostring(guild), err);
	elseif changed then
		event.status_codes["104"] = true;
		module:log("info", "%s set the guild requirement of %s to %s", tostring(event.actor),
			event.room.jid, tostring(lib.required_guild(event.room) or "none"));
	end
end
module:hook("muc-config-submitted/"..FIELD_GUILD, config_submitted);
module:hook("muc-config-submitted/"..FIELD_REQUIRED, config_submitted);

-- Clients show the seed's lobby screen (guild name and link) from disco#info.
module:hook("muc-disco#info", function (event)
	local guild = lib.required_guild(event.room);
	if not guild then return; end
	event.reply:tag("feature", { var = lib.NS }):up();
	table.insert(event.form, { name = "muc#roominfo_gatehouse_guild"; label = "Guild required to join" });
	table.insert(event.form, { name = "muc#roominfo_gatehouse_guild_url"; label = "Guild page" });
	event.formdata["muc#roominfo_gatehouse_guild"] = guild;
	event.formdata["muc#roominfo_gatehouse_guild_url"] = "https://guild.xyz/"..guild;
end);

return lib;
