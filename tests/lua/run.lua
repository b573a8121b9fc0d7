-- Lua-level tests: load the built gatehouse.so into a plain Lua interpreter and call it.
-- Usage: lua5.4 tests/lua/run.lua dist/prosody-plugins
local dist = assert(arg[1], "usage: run.lua <dir with gatehouse.so>");
package.cpath = dist.."/?.so;"..package.cpath;
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".";
package.path = here.."/?.lua;"..package.path;

local t = require "testlib";
for _, suite in ipairs({ "token_test", "room_test", "jobs_test", "security_test", "issuer_test", "matrix_test", "wallet_test", "http_test", "hostile_test" }) do
	require(suite)(t);
end
os.exit(t.report() and 0 or 1);
