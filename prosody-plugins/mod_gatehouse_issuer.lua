-- gatehouse: mint Jitsi tokens over the Chat Admin Server protocol (replaces ChatTheatre's CAS).
-- A global module: serves the protocol on a loopback TCP port through Prosody's port manager
-- and, optionally, on a connection it keeps open to a game server (DGD/SkotOS).
local configmanager = require "core.configmanager";
local connect = require "net.connect".connect;
local new_resolver = require "net.resolvers.basic".new;

-- Enabled in a VirtualHost's own modules_enabled: that host's token options are the default.
local loaded_on = module.host;
module:set_global();

local gatehouse = module:require "gatehouse";
local issuer_api = gatehouse.native.issuer;

local function own_host()
	for _, name in ipairs(configmanager.get("*", "modules_enabled") or {}) do
		if name == module.name then return nil; end -- enabled globally: no host is "ours"
	end
	return loaded_on ~= "*" and loaded_on or nil;
end

local token_host = module:get_option_string("gatehouse_issuer_host", own_host());
local token_options = token_host and module:context(token_host);
local app_id = module:get_option_string("gatehouse_issuer_app_id", token_options and token_options:get_option_string("app_id"));
local app_secret = module:get_option_string("gatehouse_issuer_app_secret", token_options and token_options:get_option_string("app_secret"));
local domain = module:get_option_string("gatehouse_issuer_domain", token_host);
local ports = module:get_option_array("gatehouse_issuer_ports", { 4114 });
local allow_remote = module:get_option_boolean("gatehouse_issuer_allow_remote", false);
local max_connections = module:get_option_number("gatehouse_issuer_max_connections", 64);
local shared_secret = module:get_option_string("gatehouse_issuer_shared_secret");
local outbound_host = module:get_option_string("gatehouse_issuer_outbound_host");
local outbound_port = module:get_option_number("gatehouse_issuer_outbound_port");
local reconnect_min = module:get_option_number("gatehouse_issuer_reconnect_min", 1); -- seconds
local reconnect_max = module:get_option_number("gatehouse_issuer_reconnect_max", 60); -- seconds

local issuer, _, config_error = issuer_api.new({
	app_id = app_id; secret = app_secret; domain = domain;
	max_validity = module:get_option_number("gatehouse_issuer_max_validity", 86400); -- seconds
	max_frame_size = module:get_option_number("gatehouse_issuer_max_frame_size", 8192); -- bytes
	legacy_user_string = module:get_option_boolean("gatehouse_issuer_legacy_user_string", false);
	shared_secret = shared_secret;
	channels = module:get_option_array("gatehouse_issuer_channels");
});
if not issuer then
	module:log_status("error", "Not issuing tokens: %s (set gatehouse_issuer_host to the VirtualHost "
		.."with app_id/app_secret, or gatehouse_issuer_app_id/_app_secret/_domain)", config_error);
	return;
end

local sessions = {}; -- conn → native connection state
local inbound_count = 0;

local function printable(text)
	return (tostring(text):gsub("%c", "?"));
end

-- Answers whatever requests the bytes complete; closes on an oversized frame.
local function serve(conn, data, peer)
	local state = sessions[conn];
	if not state then return; end
	local out, outcomes, text, last_words = state:feed(data);
	if not out then
		module:log("warn", "Closing the connection from %s: %s", peer, text);
		conn:write(last_words);
		conn:close();
		return;
	end
	for _, outcome in ipairs(outcomes) do
		if outcome.success then
			module:log("info", "Issued a token for channel %q (moderator: %s, expires %d) to %s",
				outcome.channel, tostring(outcome.moderator), outcome.expires, peer);
		else
			module:log("info", "Refused a request from %s: %s", peer, printable(outcome.message));
		end
	end
	if #out > 0 then conn:write(out); end
end

local inbound = {};
function inbound.onconnect(conn)
	if inbound_count >= max_connections then
		module:log("warn", "Refusing a connection from %s: %d connections already", conn:ip(), max_connections);
		conn:write(issuer:refusal(("too many connections (limit %d)"):format(max_connections)));
		conn:close();
		return;
	end
	inbound_count = inbound_count + 1;
	sessions[conn] = issuer:new_connection();
	module:log("debug", "Connection from %s", conn:ip());
end
function inbound.onincoming(conn, data) serve(conn, data, conn:ip()); end
function inbound.ondisconnect(conn)
	if sessions[conn] then
		sessions[conn] = nil;
		inbound_count = inbound_count - 1;
	end
end
-- Game servers keep one connection open for hours; upstream never timed them out either.
function inbound.onreadtimeout() return true; end

if #ports > 0 then
	for _, interface in ipairs(gatehouse.private_service_interfaces("gatehouse_issuer")) do
		local remote = not issuer_api.is_loopback(interface);
		if remote and not allow_remote then
			module:log_status("error", "Refusing to listen on %s: not a loopback interface. The protocol "
				.."has no authentication of its own; set gatehouse_issuer_allow_remote = true (and "
				.."gatehouse_issuer_shared_secret) to allow it", interface);
			return;
		elseif remote and not shared_secret then
			module:log("warn", "Listening on %s without gatehouse_issuer_shared_secret: anyone who can "
				.."reach it can mint tokens", interface);
		end
	end
	-- Ports and interfaces come from gatehouse_issuer_ports/_interfaces/_interface (global section).
	module:provides("net", { name = "gatehouse_issuer"; listener = inbound; default_port = 4114; private = true });
end

-- The outbound connection to a game server, kept up with exponential backoff.
local target = outbound_host and ("%s:%s"):format(outbound_host, tostring(outbound_port));
local outbound, stopping = {}, false;
local delay = reconnect_min;

local function connect_outbound()
	if stopping then return; end
	-- One byte per read until connected: 0.12's epoll backend takes a short read that comes
	-- before the socket was seen writable for a failed connect ("connection timeout"), which
	-- drops a game server that sends a request the moment it accepts.
	connect(new_resolver(outbound_host, outbound_port, "tcp"), outbound, { pattern = 1 });
end
local function reconnect_later()
	if stopping then return; end
	module:log("info", "Reconnecting to the game server at %s in %gs", target, delay);
	module:add_timer(delay, connect_outbound);
	delay = math.min(delay * 2, reconnect_max);
end
function outbound.onconnect(conn)
	if stopping then conn:close(); return; end
	conn:set_mode("*a"); -- connected: whatever is there, as net.connect reads by default
	delay = reconnect_min;
	sessions[conn] = issuer:new_connection();
	module:log("info", "Connected to the game server at %s", target);
end
function outbound.onincoming(conn, data) serve(conn, data, target); end
function outbound.ondisconnect(conn, err)
	sessions[conn] = nil;
	module:log("warn", "Lost the connection to the game server at %s: %s", target, err or "closed");
	reconnect_later();
end
function outbound.onfail(_, err)
	module:log("warn", "Cannot connect to the game server at %s: %s", target, err or "unknown error");
	reconnect_later();
end
outbound.onreadtimeout = inbound.onreadtimeout;

local function stop()
	stopping = true;
	for conn in pairs(sessions) do conn:close(); end
end
module:hook_global("server-stopping", stop);
module.unload = stop;

if outbound_host then
	if not outbound_port then
		module:log_status("error", "gatehouse_issuer_outbound_host is set but gatehouse_issuer_outbound_port is not");
		return;
	end
	connect_outbound();
end
module:log("info", "Issuing tokens for %s (iss %s) on port(s) %s%s", domain, app_id,
	#ports > 0 and table.concat(ports, ", ") or "none", target and (" and to the game server at "..target) or "");
