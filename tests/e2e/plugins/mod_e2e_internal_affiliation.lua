-- TEST STAND-IN (not shipped): plays the part of server modules that change affiliations
-- themselves, with no occupant as actor (jitsi-meet's mod_muc_flip, breakout rooms, Jicofo-less
-- setups): room:set_affiliation(true, jid, affiliation). A test asks for one with
--   <iq type='set' to='<muc host>'><set xmlns='urn:gatehouse:e2e:internal-affiliation'
--        room='<room jid>' jid='<bare jid>' affiliation='owner' [actor='nil']/></iq>
-- and gets a result, or an error carrying what set_affiliation returned. actor='nil' passes no
-- actor at all, as some module code and Prosody 13's own paths do.
-- Load it on the MUC component: modules_enabled = { "e2e_internal_affiliation" }.
local st = require "util.stanza";

local NS = "urn:gatehouse:e2e:internal-affiliation";
local muc = module:depends("muc");

module:hook("iq-set/host/"..NS..":set", function (event)
	local origin, stanza = event.origin, event.stanza;
	local request = stanza.tags[1];
	local room = muc.get_room_from_jid(request.attr.room or "");
	if not room then
		origin.send(st.error_reply(stanza, "cancel", "item-not-found", "no such room"));
		return true;
	end
	local actor = true;
	if request.attr.actor == "nil" then actor = nil; end
	local ok, err_type, condition = room:set_affiliation(actor, request.attr.jid, request.attr.affiliation);
	if ok then
		origin.send(st.reply(stanza));
	else
		origin.send(st.error_reply(stanza, err_type or "cancel", condition or "undefined-condition"));
	end
	return true;
end);
