-- gatehouse: an example Prosody config for a Jitsi Meet deployment (meet.example.com).
-- Only the lines that differ from a stock jitsi-meet-prosody config matter; each names the
-- upstream module it replaces. Plugins live in /usr/share/jitsi-meet/prosody-plugins (the .deb,
-- `make install`) or /prosody-plugins-custom (docker-jitsi-meet); both must be on plugin_paths.
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/" }

-- Prosody's statistics: gatehouse's counters (tokens verified/refused by reason, remote calls
-- by outcome and latency, key-cache hits) appear with every other metric, e.g. through
-- mod_http_openmetrics at http://127.0.0.1:5280/metrics.
statistics = "internal"
statistics_interval = "manual" -- Prosody 0.12; 13 also accepts it (scraped on request)

-- HTTPS to key servers, UVS, Synapse and the Guild API trusts the system's CA store
-- (/etc/ssl/certs); a CA only gatehouse should trust goes here (global, read once).
-- gatehouse_ca_file = "/etc/prosody/certs/company-ca.pem"

VirtualHost "meet.example.com"
	authentication = "gatehouse_token"     -- was: "token" (jitsi-meet mod_auth_token)
	app_id = "example_app_id"
	app_secret = "example_app_secret"      -- or asap_key_server / cache_keys_url for RS256
	-- asap_accepted_issuers = { "example_app_id" }
	-- asap_accepted_audiences = { "*" }
	-- gatehouse_token_leeway = 0          -- seconds of clock skew allowed on exp/nbf
	modules_enabled = {
		"bosh"; "websocket"; "ping"; "speakerstats"; "conference_duration";
		"muc_lobby_rooms"; "muc_breakout_rooms";
	}
	main_muc = "conference.meet.example.com"
	lobby_muc = "lobby.meet.example.com"

Component "conference.meet.example.com" "muc"
	modules_enabled = {
		"muc_meeting_id"; "muc_domain_mapper"; "polls";
		"gatehouse_token_verification";    -- was: "token_verification"
		"token_security_ondemand";         -- jitsi-contrib, same name
		"token_moderation";                -- nvonahsen, same name
	}
	muc_room_locking = false
	muc_room_default_public_jids = true

-- Element's Jitsi widget instead of JWTs from your own app:
-- VirtualHost "meet.example.com"
-- 	authentication = "matrix_user_verification"
-- 	app_id = "example_app_id"
-- 	uvs_base_url = "http://127.0.0.1:3000"
-- 	uvs_auth_token = "example_uvs_token"
-- 	uvs_sync_power_levels = true       -- with "matrix_power_sync" on the MUC component

-- Tokens minted for a Chat Admin Server client (loopback only unless allowed):
-- VirtualHost "meet.example.com"
-- 	modules_enabled = { "gatehouse_issuer" }
-- 	gatehouse_issuer_ports = { 4114 }
-- 	gatehouse_issuer_shared_secret = "example_shared_secret"
