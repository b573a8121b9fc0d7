-- gatehouse options docker-jitsi-meet has no environment variable for. Mounted as
-- /config/conf.d/gatehouse.cfg.lua, which the image copies to /run/prosody/config/conf.d/ and
-- includes with its own jitsi-meet.cfg.lua (Include "conf.d/*.cfg.lua", in directory order;
-- each included file starts in the global section, and re-opening a section adds options to it).
-- Replace meet.jitsi with your XMPP_DOMAIN (and muc.meet.jitsi with XMPP_MUC_DOMAIN).
-- Run as the image does by `make test-docker-config`.

-- Prosody's statistics, so gatehouse's counters show up at /metrics (mod_http_openmetrics,
-- enabled with GLOBAL_MODULES=http_openmetrics in .env; loopback only unless
-- openmetrics_allow_ips / openmetrics_allow_cidr say otherwise). Never set modules_enabled
-- here: a re-opened section would replace the list the image built, not add to it.
statistics = "internal"
statistics_interval = "manual"

VirtualHost "meet.jitsi"
	gatehouse_token_leeway = 30            -- seconds of clock skew allowed on exp/nbf
	gatehouse_key_fetch_timeout = 5        -- seconds per key-server request

Component "muc.meet.jitsi" "muc"
	token_moderation_accept_context_user = true   -- the default: also context.user.moderator / affiliation
