// Where the upstream modules gatehouse replaces live, and what a Prosody needs to load them.
//
// They are test fixtures only, kept unmodified in ../shared/upstream beside the repository
// (/work/shared/upstream here, the same relative place in CI's clone): never copied into the
// project. The differential tests (tests/e2e/differential/) run them in one Prosody and
// gatehouse's modules in another, with the same clients and tokens.
import fs from 'node:fs';
import path from 'node:path';

import { REPO_ROOT } from './prosody.js';

export const UPSTREAM_ROOT = path.resolve(process.env.GATEHOUSE_UPSTREAM ?? path.join(REPO_ROOT, '../shared/upstream'));

/** Plugin directories, one per upstream project (module names never collide among them). */
export const UPSTREAM_PLUGIN_PATHS = [
  'jitsi-meet/resources/prosody-plugins', // mod_auth_token, mod_token_verification, token/util, …
  'jitsi-contrib/token_security_ondemand',
  'jitsi-contrib/token_lobby_bypass',
  'token-moderation', // nvonahsen's mod_token_moderation
  'matrix-user-verification', // matrix-org's two modules
].map((dir) => path.join(UPSTREAM_ROOT, dir));

/** Throws a clear error when the upstream copies are not where the tests expect them. */
export function checkUpstream() {
  const auth = path.join(UPSTREAM_PLUGIN_PATHS[0], 'mod_auth_token.lua');
  if (!fs.existsSync(auth)) {
    throw new Error(`upstream modules not found (${auth}); they belong in ../shared/upstream ` +
      'beside the repository, or set GATEHOUSE_UPSTREAM');
  }
}

/**
 * Environment for a Prosody that loads upstream's modules: they need lua-basexx and
 * lua-inspect, which Debian packages for Lua 5.1-5.3 only (pure Lua, so their files work on
 * 5.4; lua-basexx stops at 5.2). The same paths hold inside the Debian 13 root (PROSODY_ROOT).
 * lua-cjson, lua-luaossl and lua-sec are packaged for 5.4.
 */
export const UPSTREAM_ENV = {
  LUA_PATH_5_4: ';;/usr/share/lua/5.3/?.lua;/usr/share/lua/5.2/?.lua',
};
