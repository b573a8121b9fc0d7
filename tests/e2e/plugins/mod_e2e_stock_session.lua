-- TEST STAND-IN (not shipped): makes sessions look like those of Jitsi's stock mod_auth_token,
-- which binds the context.* session fields but keeps no claims table on the session: the
-- verified claims exist only in the jitsi-authentication-token-verified event. Lets the
-- end-to-end tests check that gatehouse's MUC modules work with either auth provider.
-- Load it globally: modules_enabled = { "e2e_stock_session" }.
module:set_global();

module:hook_global("jitsi-authentication-token-verified", function (event)
	event.session.gatehouse_token_claims = nil;
end, -100);
