// Generates a prosody.cfg.lua shaped like a Jitsi Meet deployment (REFERENCE.md §2,
// "How a Jitsi deployment is wired"), bound to 127.0.0.1 only:
//
//   VirtualHost "meet.test"              clients (token / anonymous auth; options from the test)
//   Component  "conference.meet.test"    MUC, muc_room_locking = false (rooms usable at once)
//   VirtualHost "auth.meet.test"         Jicofo's focus user, a global admin, SASL PLAIN
//
// Tests pass option tables per section; they are rendered with lib/lua.js.
import { luaOptions, luaValue } from './lua.js';

export const DOMAIN = 'meet.test';
export const MUC_DOMAIN = `conference.${DOMAIN}`;
export const AUTH_DOMAIN = `auth.${DOMAIN}`;
export const FOCUS = Object.freeze({ username: 'focus', domain: AUTH_DOMAIN, password: 'focuspass' });
export const FOCUS_JID = `${FOCUS.username}@${FOCUS.domain}`;

// Global modules: what every host gets (Prosody unions host modules_enabled with these).
// websocket/bosh are HTTP modules; with http_default_host they answer on 127.0.0.1:<http>.
// e2e_ready (tests/e2e/plugins) logs the line lib/prosody.js waits for.
const GLOBAL_MODULES = ['saslauth', 'disco', 'ping', 'websocket', 'bosh', 'e2e_ready'];

function union(...lists) {
  return [...new Set(lists.flat().filter(Boolean))];
}

/** The Lua logging spec: everything at `level` and above to `logFile`. */
function logSpec(level, logFile) {
  return [{ levels: { min: level }, to: 'file', filename: logFile }];
}

/**
 * @param {object} o
 * @param {string} o.dir        run directory (absolute)
 * @param {number} o.httpPort   HTTP port (websocket + BOSH)
 * @param {number} o.c2sPort    plain c2s port
 * @param {string} o.logFile
 * @param {string} [o.logLevel='info']
 * @param {string[]} o.pluginPaths
 * @param {object} [o.global]   extra global options (override defaults)
 * @param {object} [o.mainHost] options for VirtualHost "meet.test" (default authentication = "anonymous")
 * @param {object} [o.muc]      options for Component "conference.meet.test" "muc"
 * @param {object} [o.authHost] options for VirtualHost "auth.meet.test"
 * @param {{global?:string, mainHost?:string, muc?:string, authHost?:string}} [o.extraLua]
 *        raw Lua appended to each section (escape hatch)
 * @param {Record<string, object>} [o.hosts]  more VirtualHosts, name → options (e.g. a guest
 *        host: { 'guest.meet.test': { authentication: 'anonymous' } })
 * @param {Record<string, object>} [o.components]  more components, name → { type, ...options }
 *        (e.g. Jitsi's lobby: { 'lobby.meet.test': { type: 'muc', muc_room_locking: false } })
 */
export function renderConfig(o) {
  const { global = {}, mainHost = {}, muc = {}, authHost = {}, extraLua = {}, hosts = {}, components = {} } = o;

  const globalOpts = {
    pidfile: `${o.dir}/prosody.pid`,
    data_path: `${o.dir}/data`,
    // Never look at /etc/prosody/certs: point at an empty run-local directory. No TLS is
    // offered (mod_tls is not loaded); clients use ws:// and plain c2s on loopback.
    certificates: `${o.dir}/certs`,
    plugin_paths: o.pluginPaths,
    log: logSpec(o.logLevel ?? 'info', o.logFile),

    interfaces: ['127.0.0.1'],
    local_interfaces: ['127.0.0.1'],
    http_ports: [o.httpPort],
    http_interfaces: ['127.0.0.1'],
    https_ports: [],
    https_interfaces: [],
    c2s_ports: [o.c2sPort],
    c2s_interfaces: ['127.0.0.1'],
    c2s_direct_tls_ports: [],
    legacy_ssl_ports: [],
    s2s_ports: [],
    s2s_interfaces: [],
    component_ports: [],
    component_interfaces: [],

    // Jicofo's focus user is a server admin (global `admins`, as in a Jitsi install).
    admins: [FOCUS_JID],
    http_default_host: DOMAIN,
    consider_websocket_secure: true,
    consider_bosh_secure: true,
    // Deprecated in 0.12 (an info line at startup) but still what Jitsi installs set.
    cross_domain_websocket: true,
    c2s_require_encryption: false,
    s2s_require_encryption: false,
    storage: 'internal',
    ...global,
    modules_enabled: union(GLOBAL_MODULES, global.modules_enabled),
    // Federation is out of scope for a loopback test bed.
    modules_disabled: union(['s2s'], global.modules_disabled),
  };

  const mainOpts = {
    authentication: 'anonymous',
    c2s_require_encryption: false,
    // As every Jitsi install sets it: the main MUC is conference.<this>. Jitsi's token checks
    // (and gatehouse's) look rooms up there; without it they refuse every checked join.
    muc_mapper_domain_base: DOMAIN,
    ...mainHost,
  };

  const mucOpts = {
    // Jitsi: rooms are usable as soon as focus creates them (else joins get item-not-found).
    muc_room_locking: false,
    muc_room_default_public_jids: true,
    storage: 'memory',
    ...muc,
  };

  const authOpts = {
    authentication: 'internal_plain',
    // @xmpp/client's SCRAM fails against Prosody (REFERENCE §10): offer PLAIN only, and
    // allow it without TLS (loopback test bed only).
    allow_unencrypted_plain_auth: true,
    disable_sasl_mechanisms: ['SCRAM-SHA-1', 'SCRAM-SHA-1-PLUS', 'DIGEST-MD5'],
    c2s_require_encryption: false,
    ...authHost,
  };

  const section = (header, opts, extra) =>
    [header, luaOptions(opts, '  '), extra ? `  -- extraLua\n${extra}` : '']
      .filter(Boolean)
      .join('\n');

  return [
    '-- Generated by tests/e2e/lib/config.js for one test run. Do not edit; do not reuse.',
    '',
    luaOptions(globalOpts),
    extraLua.global ? `-- extraLua.global\n${extraLua.global}` : '',
    '',
    section(`VirtualHost ${luaValue(DOMAIN)}`, mainOpts, extraLua.mainHost),
    '',
    section(`Component ${luaValue(MUC_DOMAIN)} "muc"`, mucOpts, extraLua.muc),
    '',
    section(`VirtualHost ${luaValue(AUTH_DOMAIN)}`, authOpts, extraLua.authHost),
    '',
    ...Object.entries(hosts).flatMap(([name, opts]) =>
      [section(`VirtualHost ${luaValue(name)}`, { c2s_require_encryption: false, ...opts }), '']),
    ...Object.entries(components).flatMap(([name, { type, ...opts }]) =>
      [section(`Component ${luaValue(name)} ${luaValue(type)}`, opts), '']),
  ].join('\n');
}
