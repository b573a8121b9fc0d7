-- gatehouse: helpers shared by gatehouse's Prosody modules (module:require "gatehouse").
-- Loads the native gatehouse.so once, bridges its background jobs into util.async, and
-- holds the small Prosody-side helpers every module needs (admin check, error replies).
local async = require "util.async";
local configmanager = require "core.configmanager";
local generate_uuid = require "util.uuid".generate;
local jid = require "util.jid";
local modulemanager = require "core.modulemanager";
local sasl = require "util.sasl";
local new_sasl = require "util.sasl".new;
local server = require "net.server";
local socket = require "socket";
local st = require "util.stanza";
local now = require "util.time".now;
local timer = require "util.timer";

local lib = {};

-- The native library sits next to the plugins (make install puts it there). Prefer that copy,
-- so an operator's plugin directory is self-contained; fall back to package.cpath.
local function load_native()
	if package.loaded.gatehouse then
		return package.loaded.gatehouse;
	end
	local path = module:get_directory().."/gatehouse.so";
	local open = package.loadlib(path, "luaopen_gatehouse");
	local native;
	if open then
		native = open("gatehouse");
	else
		local ok, loaded = pcall(require, "gatehouse");
		if not ok then
			error("gatehouse: cannot load the native library from "..path.." or package.cpath: "..tostring(loaded));
		end
		native = loaded;
	end
	package.loaded.gatehouse = native;
	return native;
end

local native = load_native();
lib.native = native;

-- HTTPS trust, once per process: the system's CA store plus the global `gatehouse_ca_file` (a
-- PEM file, e.g. a company CA; relative to the config file's directory). A file that can't be
-- used stops the module from loading: it is named to be trusted, so carrying on would only turn
-- into refused logins later.
if not native.http_configured then
	local ca_file = configmanager.get("*", "gatehouse_ca_file");
	if ca_file ~= nil then
		ca_file = require "util.paths".resolve_relative_path(prosody.paths.config or ".", tostring(ca_file));
	end
	local trusted, _, text = native.http.configure({ ca_file = ca_file });
	if not trusted then
		error("gatehouse_ca_file: "..text);
	end
	native.http_configured = true;
	module:log("info", "HTTPS trusts %s", trusted);
end

-- One registry of waiting sessions per process, kept on the native table that every module
-- shares, since there is one job pool and one descriptor to watch. The pool's limits are
-- process-wide options too, read once here by the first gatehouse module that loads.
local jobs = native.jobs;
local waiting = jobs.waiting;
if not waiting then
	waiting = {};
	jobs.waiting = waiting;
	local global = module:context("*");
	jobs.limits = jobs.configure({
		-- Remote calls in progress at once, across every service: worker threads at most.
		max_remote_calls = global:get_option_number("gatehouse_max_remote_calls", 512);
		-- ... and for one remote service (URL origin), so that a slow one leaves room.
		max_remote_calls_per_source = global:get_option_number("gatehouse_max_remote_calls_per_source", 256);
	});
	-- What one client may have in flight: per session, and per address unless the address is
	-- one of Prosody's trusted_proxies (then it names a proxy in front of many clients).
	jobs.per_session = global:get_option_number("gatehouse_max_remote_calls_per_session", 4);
	jobs.per_address = global:get_option_number("gatehouse_max_remote_calls_per_address", 32);
	jobs.trusted_proxies = global:get_option_set("trusted_proxies", { "127.0.0.1", "::1" });
	jobs.in_flight = { sessions = setmetatable({}, { __mode = "k" }); addresses = {} };
	-- The pool's descriptor becomes readable whenever a job finishes: resume its session.
	jobs.watcher = server.watchfd(jobs.fd(), function ()
		for _, id in ipairs(jobs.ready()) do
			local resume = waiting[id];
			if resume then
				waiting[id] = nil;
				resume();
			end
		end
	end);
end
local in_flight = jobs.in_flight;

-- What each session's *verified* token says: one registry per process, kept on the native
-- table every module shares. Only signature-verifying providers write it: gatehouse's token
-- provider (lib.set_verified_claims) and jitsi-meet's mod_auth_token, through the event it fires
-- once a signature checks out. Matrix widget tokens (signed with the public secret "notused")
-- and the ?token= that URL hooks keep on guests' sessions never get here, although they fill
-- session.jitsi_meet_context_* too. Weak keys: an entry goes with its session.
local verified = native.verified_registry;
if not verified then
	verified = setmetatable({}, { __mode = "k" });
	native.verified_registry = verified;
end

--- Records the claims of a token whose signature was just verified for this session.
function lib.set_verified_claims(session, claims)
	verified[session] = { token = session.auth_token; claims = claims };
end

--- Moves verified claims to the session that takes over (stream resumption).
function lib.move_verified_claims(from_session, to_session)
	verified[to_session] = verified[from_session];
end

--- The claims of this session's verified token, or nil. The one source of every privilege a
-- token can carry (owner, moderator, bypass, lobby skip, room changes): never read those from
-- session.jitsi_meet_context_*, which unverified tokens can fill. The claims count only while
-- the session still holds the token they came from (a failed login clears session.auth_token).
function lib.verified_claims(session)
	local entry = session and verified[session];
	if entry and entry.token ~= nil and entry.token == session.auth_token then
		return entry.claims;
	end
	return nil;
end

--- A table-valued part of the verified claims (`context.user`, `context.room`), or nil.
function lib.verified_context(session, part)
	local claims = lib.verified_claims(session);
	local context = claims and claims.context;
	local value = type(context) == "table" and context[part] or nil;
	return type(value) == "table" and value or nil;
end

-- jitsi-meet's own provider fires this after a signature checked out (token/util.lib.lua), so
-- gatehouse's MUC modules also work behind the stock mod_auth_token.
module:hook_global("jitsi-authentication-token-verified", function (event)
	if event.session and type(event.claims) == "table" then
		lib.set_verified_claims(event.session, event.claims);
	end
end);

-- Metrics through Prosody's statistics API (module:metric: the same on 0.12 and 13; a no-op
-- unless `statistics` is configured). Families are made on first use, per module, so a module
-- that never makes a remote call lists none. Labels are bounded: outcomes and reason codes
-- come from gatehouse's own fixed sets, never from client input.
local remote_calls, cache_lookups;

--- Counts one remote call (key server, UVS, homeserver) by outcome ("ok", "timeout" or the
-- refusal reason) and records its latency.
function lib.observe_remote(outcome, seconds)
	remote_calls = remote_calls or module:metric("histogram", "remote_calls", "seconds",
		"gatehouse remote calls (key servers, UVS, homeserver) by outcome", { "outcome" },
		{ buckets = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 } });
	remote_calls:with_labels(outcome):sample(seconds);
end

--- Counts a lookup in one of gatehouse's caches (verification keys, Matrix admissions).
function lib.count_cache(hit)
	cache_lookups = cache_lookups or module:metric("counter", "cache_lookups", "",
		"gatehouse cache lookups (verification keys, Matrix answers) by result", { "result" });
	cache_lookups:with_labels(hit and "hit" or "miss"):add(1);
end

local function observed(started, ...)
	local outcome = (...) ~= nil and "ok" or tostring(select(4, ...) or select(2, ...) or "error");
	lib.observe_remote(outcome, now() - started);
	return ...;
end

-- The address a session's calls count against, or nil when it is a trusted proxy's.
local function client_address(session)
	local ip = session and session.ip;
	if ip and not jobs.trusted_proxies:contains(ip) then
		return ip;
	end
	return nil;
end

local function count_in_flight(session, address, delta)
	if session then
		in_flight.sessions[session] = (in_flight.sessions[session] or 0) + delta;
	end
	if address then
		local n = (in_flight.addresses[address] or 0) + delta;
		in_flight.addresses[address] = n > 0 and n or nil;
	end
end

-- The native side ends a job by its deadline (its HTTP requests time out then, and a job still
-- queued is never started) and reports why; this much later, the wait gives up by itself, in
-- case the answer cannot be delivered in time (a machine too busy to run the event loop).
local DELIVERY_GRACE = 0.5; -- seconds

--- Runs a native job and waits for it without blocking Prosody: only the calling session is
-- suspended. `timeout` (seconds) is the whole deadline, time waiting for a worker included.
-- `session` (optional) is who the call is for: what one session or address may have in flight
-- is bounded. Returns the job's own results, or nil, condition, text, reason.
function lib.await(job, timeout, session)
	if not async.ready() then
		return nil, "internal-server-error", "gatehouse: a remote call needs an async context", "no-async";
	end
	local address = client_address(session);
	if (session and (in_flight.sessions[session] or 0) >= jobs.per_session)
		or (address and (in_flight.addresses[address] or 0) >= jobs.per_address) then
		lib.observe_remote("busy", 0);
		return nil, "resource-constraint", "too many remote calls in flight for this client", "busy";
	end
	local started = now();
	local ok, condition, text, reason = job:start(timeout);
	if not ok then
		lib.observe_remote(tostring(reason), 0);
		return nil, condition, text, reason;
	end
	local id = job:id();
	local wait, done = async.waiter();
	local timed_out = false;
	waiting[id] = done;
	local timeout_timer = timer.add_task(timeout + DELIVERY_GRACE, function ()
		if waiting[id] then
			waiting[id] = nil;
			timed_out = true;
			done();
		end
	end);
	count_in_flight(session, address, 1);
	wait();
	count_in_flight(session, address, -1);
	if timed_out then
		lib.observe_remote("timeout", now() - started);
		-- Dropping the job handle later drops its result whenever it arrives.
		return nil, "remote-server-timeout", ("no answer within %gs"):format(timeout), "timeout";
	end
	timer.stop(timeout_timer);
	return observed(started, job:result());
end

--- Calls a native function that answers either at once or with a job to wait for (see
-- lib.await), on behalf of `session` (may be nil).
function lib.settle_for(session, timeout, result, ...)
	if jobs.is_job(result) then
		return lib.await(result, timeout, session);
	end
	return result, ...;
end

--- lib.settle_for without a session.
function lib.settle(timeout, result, ...)
	return lib.settle_for(nil, timeout, result, ...);
end

-- What lib.await itself reports when the remote service gave no answer: none in time, too many
-- calls in flight, no async context, a job that failed.
local bridge_failures = { timeout = true; busy = true; ["no-async"] = true; ["job-failed"] = true };

-- At most this much of a remote call's own account reaches a log line, control characters escaped.
local MAX_LOGGED = 200;
local function log_safe(text)
	return (tostring(text):sub(1, MAX_LOGGED):gsub("[%c\127]", function (c)
		return ("\\%03d"):format(c:byte());
	end));
end

--- For SASL providers, after lib.settle_for: the bridge's conditions (remote-server-timeout,
-- resource-constraint, internal-server-error) are stanza errors, not SASL conditions (RFC 6120
-- §6.5), and a client may not understand them. Any other failure comes back unchanged
-- (condition, text, reason, detail). A bridge failure becomes the provider's own answer for "the
-- service did not answer", `failure` = { condition, text, reason (optional, default the
-- bridge's) }, its detail says what really happened, bounded and escaped, for the log, and a
-- fifth value true says the service did not answer (something an admin has to look at).
function lib.sasl_failure(failure, condition, text, reason, detail)
	if not bridge_failures[reason] then
		return condition, text, reason, detail, false;
	end
	return failure.condition, failure.text, failure.reason or reason,
		("%s: %s (%s)"):format(failure.text, log_safe(text), log_safe(condition)), true;
end

--- Whether a JID is a server admin: the global or its host's `admins` list. Read from the
-- config rather than usermanager.is_admin, which Prosody 13 deprecates (as jitsi-meet does).
function lib.is_admin(user_jid)
	local bare = jid.bare(user_jid);
	if not bare then return false; end
	local _, host = jid.split(bare);
	for _, scope in ipairs({ "*", host, module.host }) do
		local admins = configmanager.get(scope, "admins");
		if type(admins) == "table" then
			for _, admin in ipairs(admins) do
				if jid.prep(admin) == bare then return true; end
			end
		end
	end
	return false;
end

--- The interfaces Prosody's port manager binds for a private network service (`private = true`
-- in module:provides("net", …)), worked out as core/portmanager.lua does on 0.12 and 13:
-- <service>_interfaces, else <service>_interface, else local_interfaces, else its loopback
-- defaults (per use_ipv4 / use_ipv6); a single value counts as a list of one.
function lib.private_service_interfaces(service)
	local value = configmanager.get("*", service.."_interfaces")
		or configmanager.get("*", service.."_interface")
		or configmanager.get("*", "local_interfaces");
	if not value then
		value = {};
		if configmanager.get("*", "use_ipv4") ~= false then value[#value + 1] = "127.0.0.1"; end
		if socket.tcp6 and configmanager.get("*", "use_ipv6") ~= false then value[#value + 1] = "::1"; end
	end
	return type(value) == "table" and value or { value };
end

--- Jicofo's health-check rooms are never subject to access rules.
function lib.is_healthcheck_room(room_jid)
	return (jid.node(room_jid) or ""):match("^__jicofo%-health%-check") ~= nil;
end

--- Replaces SASL ANONYMOUS for token-based auth providers. Prosody's stock mechanism retries
-- until the profile says yes; a token that fails must fail the login instead, with the
-- profile's condition and text (jitsi-meet's mod_auth_token and matrix-org's module do the
-- same). util.sasl's registry is process-wide, so every gatehouse auth module registers this
-- one function, and registering it twice changes nothing.
local function anonymous(self)
	local username = generate_uuid();
	local ok, condition, text = self.profile.anonymous(self, username, self.realm);
	if ok == true then
		self.username = self.username or username; -- profiles other than ours may not set it
		return "success";
	end
	return "failure", condition or "not-authorized", text;
end
local function register_anonymous_mechanism()
	sasl.registerMechanism("ANONYMOUS", { "anonymous" }, anonymous);
end

--- Provides this host's auth: SASL ANONYMOUS only, decided by `authenticate(sasl, session,
-- username)` (true, or false, condition, text); every password method refuses.
function lib.provide_anonymous_auth(authenticate)
	local provider = {};
	function provider.test_password() return nil, "Password based auth not supported"; end
	function provider.get_password() return nil; end
	function provider.set_password() return nil, "Set password not supported"; end
	function provider.user_exists() return nil; end
	function provider.create_user() return nil; end
	function provider.delete_user() return nil; end
	function provider.users() return function() return nil; end; end
	function provider.get_sasl_handler(session)
		return new_sasl(module.host, {
			anonymous = function (self, username) return authenticate(self, session, username); end;
		});
	end
	module:provides("auth", provider);
	register_anonymous_mechanism();
end

--- The anonymous username, as Jitsi's token modules choose it: what a `pre-jitsi-authentication`
-- handler returns, else the username of the session a `previd` resumes (mod_smacks), else `fresh`.
function lib.choose_username(session, fresh)
	local custom_username = prosody.events.fire_event("pre-jitsi-authentication", session);
	if custom_username then
		return custom_username;
	end
	if session.previd ~= nil then
		for _, other in pairs(prosody.full_sessions) do
			if other.resumption_token == session.previd then
				return other.username;
			end
		end
	end
	return fresh;
end

--- Jitsi's lobby (muc_lobby_rooms + persistent_lobby, on the VirtualHost) is in use when
-- something answers both of its global events. Ask on every use: hosts load in any order.
function lib.jitsi_lobby_loaded()
	return prosody.events.get_handlers("create-persistent-lobby-room") ~= nil
		and prosody.events.get_handlers("destroy-lobby-room") ~= nil;
end

-- Whether Prosody's password check (muc-occupant-pre-join at -20) will let this join through.
local function password_admits(event)
	local room, stanza = event.room, event.stanza;
	local password = room:get_password();
	local join = stanza:get_child("x", "http://jabber.org/protocol/muc");
	if not (password and join) then
		return true; -- Prosody checks only MUC joins
	end
	-- jitsi-meet's mod_muc_password_whitelist (-7) puts the password into joins from these
	-- domains and JIDs before Prosody checks it.
	local node, domain = jid.split(stanza.attr.from);
	local whitelist = module:get_option_set("muc_password_whitelist", {});
	if node and modulemanager.is_loaded(module.host, "muc_password_whitelist") and (whitelist:contains(domain) or whitelist:contains(node.."@"..domain)) then
		return true;
	end
	return join:get_child_text("password", "http://jabber.org/protocol/muc") == password;
end

-- Whether the room lock (-30) will let this join through: a room stays locked until its owner
-- configures it or the lock times out (Prosody's muc/lock.lib.lua).
local function lock_admits(event)
	local locked_until = event.room._data.locked;
	return event.is_new_room or not locked_until or os.time() >= locked_until;
end

--- Whether Prosody's password check (muc-occupant-pre-join at -20) and room lock (-30) will let
-- this join through. For modules that must grant an affiliation before the lobby (-4) and
-- members-only (-5) checks: granting it only when the later checks pass too means a refused
-- join leaves no affiliation behind.
function lib.password_and_lock_admit(event)
	return lock_admits(event) and password_admits(event);
end

--- The refusal, as Prosody itself words it, that a gate after the lobby (-4) and members-only
-- (-5) will send this join of `bare_jid`, or nil when none will: the ban (-10), the password
-- (-20), the room lock (-30), a nick held by another user (mod_muc refuses that as a conflict
-- after pre-join). For modules that grant the member affiliation those two gates look for: a
-- join that is refused anyway gets its refusal at once, and keeps no affiliation.
function lib.later_refusal(event, bare_jid)
	local room, stanza = event.room, event.stanza;
	if room:get_affiliation(bare_jid) == "outcast" then
		return st.error_reply(stanza, "auth", "forbidden", nil, room.jid);
	elseif not password_admits(event) then
		return st.error_reply(stanza, "auth", "not-authorized", nil, room.jid);
	elseif not lock_admits(event) then
		return st.error_reply(stanza, "cancel", "item-not-found", nil, module.host);
	elseif event.occupant.bare_jid ~= bare_jid then
		return st.error_reply(stanza, "cancel", "conflict", nil, room.jid);
	end
end

--- Grants `bare_jid` the member affiliation (and, on its first session, the participant role)
-- that the lobby (-4) and members-only (-5) checks look for, unless a later gate will refuse
-- this join anyway (lib.later_refusal): then that refusal is sent at once, no membership is
-- left behind, and true is returned for the pre-join handler to return. `what` names the
-- caller in the debug log.
function lib.admit_as_member(event, bare_jid, what)
	local room = event.room;
	local refusal = lib.later_refusal(event, bare_jid);
	if refusal then
		module:log("debug", "%s: the join of %s to %s is refused anyway (%s)", what, bare_jid, room.jid,
			refusal.tags[1].tags[1].name);
		event.origin.send(refusal);
		return true;
	end
	room:set_affiliation(true, bare_jid, "member");
	if event.is_first_session then event.occupant.role = "participant"; end -- never another's
	return nil;
end

--- The lobby a join has to pass: Jitsi's (a lobby room attached), or, without Jitsi's lobby
-- modules, the room's members-only mode, which gatehouse's modules use in its place.
function lib.room_has_lobby(room)
	if room._data.lobbyroom ~= nil then
		return true;
	end
	return room:get_members_only() and not lib.jitsi_lobby_loaded();
end

-- Present occupants become members first, as Jitsi's create-lobby-room does: Prosody removes
-- non-members from a room that turns members-only, and whoever asked for it must stay in.
local function set_members_only(room, on)
	if on then
		for _, occupant in room:each_occupant() do
			if not room:get_affiliation(occupant.bare_jid) then
				room:set_affiliation(true, occupant.bare_jid, "member");
			end
		end
	end
	room:set_members_only(on);
end

local security_verbs = {
	["enable-lobby"] = function (room)
		prosody.events.fire_event("create-persistent-lobby-room", { room = room; skip_display_name_check = true });
	end;
	["disable-lobby"] = function (room)
		prosody.events.fire_event("destroy-lobby-room", { room = room; newjid = room.jid });
	end;
	["set-members-only"] = set_members_only;
	["set-password"] = function (room, password) room:set_password(password); end;
	["clear-password"] = function (room) room:set_password(nil); end;
};

--- Applies a plan from native `security.plan` to a room (the one place that turns its verbs
-- into room changes). Returns the verbs applied and whether clients must be told (status 104):
-- Jitsi's lobby handlers announce their own change, the others do not.
function lib.apply_security_plan(room, plan)
	local verbs, config_changed = {}, false;
	for _, action in ipairs(plan) do
		security_verbs[action.verb](room, action.value);
		verbs[#verbs + 1] = action.verb;
		config_changed = config_changed or not action.verb:match("lobby$");
	end
	return verbs, config_changed;
end

--- Status 104 to the room: tells clients and Jicofo to read the room configuration again.
function lib.announce_config_change(room)
	room:broadcast_message(st.message({ type = "groupchat"; from = room.jid })
		:tag("x", { xmlns = "http://jabber.org/protocol/muc#user" }):tag("status", { code = "104" }));
end

--- An error reply with an optional application-specific child, as Jitsi's modules send.
function lib.error_reply(stanza, error_type, condition, text, by, child, child_ns)
	local reply = st.error_reply(stanza, error_type, condition, text, by);
	if child then
		reply:tag(child, { xmlns = child_ns or "http://jitsi.org/jitmeet" }):up();
	end
	return reply;
end

return lib;
