-- gatehouse: the seed fork's client format for mod_gatehouse_wallet, off by default
-- (gatehouse_wallet_legacy_format = true). The room description carries
-- "Guild:<name>;Challenge:<code>", a client signs "Please sign to verify your identity,
-- verification code is <code>" and sends Signature:/Address: as presence features. Unlike the
-- fork, the server checks the signature and draws a new code after every attempt, so a captured
-- signature is good for nothing; it stays weaker than SIWE (see README).
local hex = require "util.hex";
local random = require "util.random";

local gatehouse = module:require "gatehouse";
local wallet = gatehouse.native.wallet;

local lib = {};
lib.enabled = module:get_option_boolean(module.name.."_legacy_format", false);

local TEXT = "Please sign to verify your identity, verification code is %s";

--- Draws a new code and publishes it in the room description (or clears both when `guild` is
-- nil). Callers announce the change (status 104) so clients read the new description.
function lib.rotate(room, guild)
	if not lib.enabled then return; end
	if guild then
		room._data.gatehouse_legacy_code = hex.to(random.bytes(10)); -- 20 characters, as the fork
		room:set_description(("Guild:%s;Challenge:%s"):format(guild, room._data.gatehouse_legacy_code));
	elseif room._data.gatehouse_legacy_code then
		room._data.gatehouse_legacy_code = nil;
		room:set_description(nil);
	end
end

--- Removes the Signature:/Address: features from a presence (always: nobody else may see them)
-- and returns them.
function lib.take(stanza)
	local features = stanza:get_child("features");
	if not features then return; end
	local signature, address;
	features:maptags(function (tag)
		local var = tag.name == "feature" and tag.attr.var or "";
		local key, value = var:match("^(%a+):(.*)$");
		if key == "Signature" then signature = value; return nil; end
		if key == "Address" then address = value; return nil; end
		return tag;
	end);
	return signature, address;
end

--- Checks a legacy proof against the room's current code, then rotates the code whatever the
-- outcome. Returns the EIP-55 address, or nil, condition, text.
function lib.verify(room, guild, signature, address)
	local code = room._data.gatehouse_legacy_code;
	lib.rotate(room, guild);
	room:save(true);
	gatehouse.announce_config_change(room);
	if not code then
		return nil, "unknown-challenge";
	end
	local claimed, _, text = wallet.checksum(address);
	if not claimed then
		return nil, "bad-signature", text;
	end
	local signer, _, why = wallet.recover(TEXT:format(code), signature);
	if signer ~= claimed then
		return nil, "bad-signature", why or "signed by another address";
	end
	return signer;
end

return lib;
