// Differential testing: upstream's modules are the oracle.
//
// One neutral deployment description (`spec`) becomes two real Prosodys: one loading the
// upstream modules gatehouse replaces (from ../shared/upstream, lib/upstream.js), one loading
// gatehouse's. A scenario is a function of a `Side` (login, join, read session fields…); it runs
// against both at once with the same tokens, and records what a client or another module can
// observe. The two records must be equal, unless the scenario names entries of
// tests/e2e/differential/differences.json, the one list of documented differences.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

import { startProsody, MUC_DOMAIN, DOMAIN, REPO_ROOT } from './prosody.js';
import { connect, connectFocus, createRoomAsFocus, joinRoom, disconnect, xml, waitForStanza } from './client.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV, checkUpstream } from './upstream.js';
import { resumeStream } from './resume.js';

const E2E_DIR = fileURLToPath(new URL('..', import.meta.url));
const GATEHOUSE_DIST = process.env.GATEHOUSE_DIST ?? path.join(REPO_ROOT, 'dist/prosody-plugins');
export const DIFFERENCES_FILE = path.join(E2E_DIR, 'differential/differences.json');
export const GUEST_DOMAIN = `guest.${DOMAIN}`;
const PROBE_NS = 'urn:gatehouse:e2e:session-probe';
// How long a login or join may take before it counts as unanswered, and how long an answer may
// still come after Prosody logged a traceback.
const ANSWER_MS = 4000;
const CRASH_GRACE_MS = 300;

/** The documented differences, by id. */
export function loadDifferences() {
  const list = JSON.parse(fs.readFileSync(DIFFERENCES_FILE, 'utf8'));
  return new Map(list.map((d) => [d.id, d]));
}

// ---------------------------------------------------------------------------------------
// Configs. Module names per side; everything else in a spec is the same on both sides.

const MODULES = {
  upstream: {
    token: 'token', // authentication provider
    token_verification: 'token_verification',
  },
  gatehouse: {
    token: 'gatehouse_token',
    token_verification: 'gatehouse_token_verification',
  },
};
// Modules that keep their upstream name in gatehouse (drop-in by name), and the lobby stand-in.
const SAME_NAME = ['token_moderation', 'token_security_ondemand', 'token_lobby_bypass',
  'matrix_power_sync', 'matrix_user_verification'];
const LOBBY = 'e2e_lobby_standin';
// Test stand-ins (tests/e2e/plugins), the same on both sides.
const STAND_INS = {
  room_data: 'e2e_room_data', // Jitsi modules that close rooms to guests (room._data)
  internal_affiliation: 'e2e_internal_affiliation', // modules that set affiliations themselves
};

/** True when the Prosody under test ships mod_smacks (0.12 and 13 do). */
export function prosodyHasSmacks() {
  const root = process.env.PROSODY_ROOT ?? '/';
  return fs.existsSync(path.join(root, 'usr/lib/prosody/modules/mod_smacks.lua'));
}

/** The version of the Prosody under test ("0.12.3", "13.0.1"), from its prosody.version file. */
export function prosodyVersion() {
  const root = process.env.PROSODY_ROOT ?? '/';
  try {
    return fs.readFileSync(path.join(root, 'usr/lib/prosody/prosody.version'), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** True when this build of gatehouse ships `mod_<name>.lua` (modules other helpers still add). */
export function gatehouseHas(name) {
  return fs.existsSync(path.join(GATEHOUSE_DIST, `mod_${name}.lua`));
}

function moduleName(side, name) {
  if (name === 'lobby') return LOBBY;
  if (STAND_INS[name]) return STAND_INS[name];
  if (SAME_NAME.includes(name)) return name;
  const mapped = MODULES[side][name];
  if (!mapped) throw new Error(`differential: unknown module ${name}`);
  return mapped;
}

/**
 * @param {'upstream'|'gatehouse'} side
 * @param {object} spec
 * @param {'token'|'matrix_user_verification'} [spec.auth='token']
 * @param {object} [spec.host]   options of the main VirtualHost (token options: app_id, …)
 * @param {string[]} [spec.mucModules]  neutral names: token_verification, token_moderation,
 *        token_security_ondemand, token_lobby_bypass, matrix_power_sync, lobby (the stand-in)
 * @param {object} [spec.muc]    other options of the MUC component
 * @param {string[]} [spec.jitsiGlobal]  global jitsi-meet modules a real deployment loads beside
 *        the ones gatehouse replaces (e.g. jitsi_session), on both sides, from upstream's tree
 * @param {string[]} [spec.jitsiMuc]  jitsi-meet MUC modules loaded on both sides (from upstream's
 *        tree), e.g. muc_resource_validate, to check how they get on with gatehouse's
 * @param {boolean} [spec.smacks]  load mod_smacks (stream resumption)
 * @param {boolean} [spec.guestHost]  add VirtualHost guest.meet.test (anonymous), as Jitsi's
 *        "secure domain" setup has for guests
 */
export function sideConfig(side, spec, name) {
  const { auth = 'token', host = {}, mucModules = [], muc = {}, guestHost = false, jitsiGlobal = [], jitsiMuc = [], smacks = false } = spec;
  const jitsiModules = jitsiGlobal.length + jitsiMuc.length > 0;
  const extra = guestHost
    ? `VirtualHost "${GUEST_DOMAIN}"\n  authentication = "anonymous"\n  c2s_require_encryption = false\n`
    : '';
  return {
    name: `diff-${name}-${side}`,
    // gatehouse's modules first; Jitsi's other modules (jitsiGlobal) come from upstream's tree.
    pluginPaths: side === 'upstream' ? UPSTREAM_PLUGIN_PATHS
      : [GATEHOUSE_DIST, ...(jitsiModules ? [UPSTREAM_PLUGIN_PATHS[0]] : [])],
    env: side === 'upstream' || jitsiModules ? UPSTREAM_ENV : {},
    global: { modules_enabled: ['e2e_session_probe', ...jitsiGlobal, ...(smacks ? ['smacks'] : [])] },
    mainHost: { ...host, authentication: auth === 'token' ? moduleName(side, 'token') : auth },
    muc: { ...muc, modules_enabled: [...mucModules.map((m) => moduleName(side, m)), ...jitsiMuc] },
    extraLua: { authHost: extra ? `\n${extra}` : undefined },
  };
}

/** Starts both Prosodys of `spec`. Resolves { upstream, gatehouse, sides, stop() }. */
export async function startPair(spec, name = 'pair') {
  checkUpstream();
  const started = await Promise.allSettled(['upstream', 'gatehouse']
    .map((side) => startProsody(sideConfig(side, spec, name))));
  const [up, gh] = started.map((r) => (r.status === 'fulfilled' ? r.value : null));
  const stop = () => Promise.all([up?.stop(), gh?.stop()]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { upstream: up, gatehouse: gh, sides: { upstream: new Side('upstream', up), gatehouse: new Side('gatehouse', gh) }, stop };
}

// ---------------------------------------------------------------------------------------
// What a scenario can do on one side. Every call returns plain data (what a client saw), so
// the two sides' records can be compared; clients are closed when the scenario ends.

let roomCounter = 0;
/** A fresh room name (the same on both sides: call it once per scenario, outside `run`). */
export function freshRoom(prefix = 'room') {
  roomCounter += 1;
  return `${prefix}${roomCounter}-${process.pid % 10000}`;
}

export class Side {
  constructor(name, prosody) {
    this.name = name;
    this.prosody = prosody;
    this.clients = [];
    this.focus = null;
  }

  /**
   * Logs in over WebSocket (?token=, ?room=, more query parameters). Resolves
   * { ok: true, client } or { ok: false, condition, text }.
   */
  async login({ token, room, query, domain, headers } = {}) {
    try {
      const { xmpp } = await this.unlessCrashed(
        connect({ httpPort: this.prosody.httpPort, token, room, query, domain, headers, timeoutMs: ANSWER_MS }));
      this.clients.push(xmpp);
      return { ok: true, client: xmpp };
    } catch (err) {
      // Neither success nor failure: what a client sees when the provider throws.
      if (err.timeout) return { ok: false, condition: 'no-answer', text: '' };
      // No provider offers SASL ANONYMOUS (e.g. the auth module refused to load).
      if (err.offered) return { ok: false, condition: 'mechanism-not-offered', text: '' };
      if (!err.condition) throw err;
      return { ok: false, condition: err.condition, text: err.text ?? '' };
    }
  }

  /**
   * `request`'s outcome, or a timeout error soon after Prosody logs a Lua traceback while it is
   * pending (a module threw: the client will get no answer), instead of waiting the full
   * ANSWER_MS for nothing.
   */
  async unlessCrashed(request) {
    const mark = this.prosody.logMark();
    const stop = new AbortController();
    const crashed = this.prosody.waitForLog(/Traceback\[/, ANSWER_MS, mark, stop.signal)
      .then(() => new Promise((r) => setTimeout(r, CRASH_GRACE_MS)))
      .then(() => { throw Object.assign(new Error('no answer: a module threw'), { timeout: true }); }, () => new Promise(() => {}));
    request.catch(() => {}); // settled below, or abandoned after a crash (its own timer ends it)
    try {
      return await Promise.race([request, crashed]);
    } finally {
      stop.abort();
    }
  }

  /** The session fields other modules read, as the observer module reports them. */
  async fields(client) {
    const reply = await client.iqCaller.request(
      xml('iq', { type: 'get', to: client.jid.domain }, xml('query', { xmlns: PROBE_NS })), 5000);
    return JSON.parse(reply.getChildText('query', PROBE_NS) ?? reply.text());
  }

  /** Focus (Jicofo) creates the room, as in a Jitsi deployment. */
  async createRoom(room) {
    if (!this.focus) {
      this.focus = (await connectFocus({ httpPort: this.prosody.httpPort })).xmpp;
      this.clients.push(this.focus);
    }
    const self = await createRoomAsFocus(this.focus, `${room}@${MUC_DOMAIN}`);
    return { affiliation: self.affiliation, role: self.role };
  }

  /**
   * Joins `room` (a node on the MUC). Resolves { ok, affiliation, role } from the first
   * self-presence, or { ok: false, type, condition, text, children } from the error. Later
   * self-presences are kept for `settled`.
   */
  async join(client, room, nick = 'user', opts = {}) {
    const seen = [];
    const onStanza = (s) => {
      if (s.name !== 'presence' || s.attrs.type || !s.attrs.from?.startsWith(`${room}@${MUC_DOMAIN}/`)) return;
      const x = s.getChild('x', 'http://jabber.org/protocol/muc#user');
      if (!x?.getChildren('status').some((st) => st.attrs.code === '110')) return;
      const item = x.getChild('item');
      seen.push({ affiliation: item?.attrs.affiliation, role: item?.attrs.role });
    };
    client.on('stanza', onStanza);
    (client.selfPresences ??= new Map()).set(room, seen);
    try {
      const self = await this.unlessCrashed(joinRoom(client, `${room}@${MUC_DOMAIN}`, nick, { timeoutMs: ANSWER_MS, ...opts }));
      return { ok: true, affiliation: self.affiliation, role: self.role };
    } catch (err) {
      client.removeListener('stanza', onStanza);
      // No answer at all: what upstream gives when a module throws during the join.
      if (err.timeout) return { ok: false, noReply: true };
      if (!err.stanza) throw err;
      return { ok: false, type: err.type, condition: err.condition, text: err.text, children: err.children };
    }
  }

  /**
   * The affiliation and role `client` holds in `room` once the join has settled: its last
   * self-presence after `ms` (upstream's token_moderation sends a second one after the join).
   */
  async settled(client, room, ms = 250) {
    await new Promise((r) => setTimeout(r, ms));
    const seen = client.selfPresences?.get(room) ?? [];
    return seen[seen.length - 1] ?? null;
  }

  /**
   * Counts, from now on, the room's status-104 messages ("configuration changed") focus
   * receives. Resolves a function returning the count so far.
   */
  count104(room) {
    let n = 0;
    this.focus.on('stanza', (s) => {
      if (s.name !== 'message' || s.attrs.from !== `${room}@${MUC_DOMAIN}`) return;
      const x = s.getChild('x', 'http://jabber.org/protocol/muc#user');
      if (x?.getChildren('status').some((st) => st.attrs.code === '104')) n += 1;
    });
    return () => n;
  }

  /** The room's muc_* disco features as focus sees them (membersonly, passwordprotected, …). */
  async roomFeatures(room) {
    const reply = await this.focus.iqCaller.request(xml('iq', { type: 'get', to: `${room}@${MUC_DOMAIN}` },
      xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })), 5000);
    return (reply.getChild('query')?.getChildren('feature') ?? []).map((f) => f.attrs.var)
      .filter((v) => /^muc_(membersonly|open|passwordprotected|unsecured)$/.test(v)).sort();
  }

  /**
   * Drops `client`'s connection without closing its stream (a network change), then resumes the
   * stream over a new connection carrying `token` (and ?previd=, as Jitsi's client does).
   * Resolves { sasl, resumed, fields? } with the session fields of the resumed session.
   */
  async resume(client, token) {
    const { id, inbound } = client.streamManagement;
    if (!id) throw new Error('stream management is not enabled on this client');
    client.reconnect?.stop();
    client.socket?.socket?.terminate();
    // Let Prosody notice the dropped connection and put the session into hibernation.
    await new Promise((r) => setTimeout(r, 300));
    const result = await resumeStream({ httpPort: this.prosody.httpPort, domain: client.jid.domain, token, previd: id, h: inbound });
    const record = { sasl: result.sasl, resumed: result.resumed };
    if (result.connection) {
      this.clients.push({ stop: async () => result.connection.close() });
      if (result.resumed === 'resumed') {
        const reply = await result.connection.iq(xml('iq', { type: 'get', to: client.jid.domain }, xml('query', { xmlns: PROBE_NS })));
        record.fields = JSON.parse(reply.getChildText('query', PROBE_NS));
      }
    }
    return record;
  }

  /** Sends an iq; resolves { ok: true } or { ok: false, condition, text } from the error. */
  async iq(client, stanza) {
    try {
      await client.iqCaller.request(stanza, 5000);
      return { ok: true };
    } catch (err) {
      if (err.name !== 'StanzaError') throw err;
      return { ok: false, type: err.element?.attrs.type, condition: err.condition, text: err.text ?? '' };
    }
  }

  /** Submits the room configuration form (muc#owner), as a moderator's client does. */
  configureRoom(client, room, fields = {}) {
    const form = xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
      xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
      ...Object.entries(fields).map(([v, value]) => xml('field', { var: v }, xml('value', {}, String(value)))));
    return this.iq(client, xml('iq', { type: 'set', to: `${room}@${MUC_DOMAIN}` },
      xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' }, form)));
  }

  /** A server-internal affiliation change (actor true, or none with actor 'nil'), as mod_muc_flip makes one. */
  internalAffiliation(room, jid, affiliation, { actor } = {}) {
    return this.iq(this.focus, xml('iq', { type: 'set', to: MUC_DOMAIN },
      xml('set', { xmlns: 'urn:gatehouse:e2e:internal-affiliation', room: `${room}@${MUC_DOMAIN}`, jid, affiliation, actor })));
  }

  /**
   * The affiliation the room holds for `client` ('none' when it holds none), as the room's
   * owner lists (focus asks, as a server admin may).
   */
  async affiliationOf(room, client) {
    const bareJid = client.jid.bare().toString();
    for (const affiliation of ['owner', 'admin', 'member', 'outcast']) {
      const reply = await this.focus.iqCaller.request(xml('iq', { type: 'get', to: `${room}@${MUC_DOMAIN}` },
        xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { affiliation }))), 5000);
      const items = reply.getChild('query')?.getChildren('item') ?? [];
      if (items.some((i) => i.attrs.jid === bareJid)) return affiliation;
    }
    return 'none';
  }

  /** An occupant changes another occupant's role; resolves 'result' or the error condition. */
  async setRole(client, room, nick, role) {
    const r = await this.iq(client, xml('iq', { type: 'set', to: `${room}@${MUC_DOMAIN}` },
      xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { nick, role }))));
    return r.ok ? 'result' : r.condition;
  }

  /** Sends an owner's affiliation change; resolves 'result' or the error condition. */
  async setAffiliation(client, room, jid, affiliation) {
    try {
      await client.iqCaller.request(xml('iq', { type: 'set', to: `${room}@${MUC_DOMAIN}` },
        xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' },
          xml('item', { jid, affiliation }))), 5000);
      return 'result';
    } catch (err) {
      return err.condition ?? String(err.message);
    }
  }

  async close() {
    await Promise.all(this.clients.map((c) => disconnect(c)));
    this.clients = [];
    this.focus = null;
  }
}

export { waitForStanza };

// ---------------------------------------------------------------------------------------
// Comparison.

// Parts of a record that depend on the second they ran in, not on the module.
function normalize(value) {
  if (typeof value === 'string') return value.replace(/\(\d+ sec since expired/, '(N sec since expired');
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}

/** Every place the two records differ: { path, upstream, gatehouse }. */
export function differingPaths(up, gh, at = '') {
  if (isDeepStrictEqual(up, gh)) return [];
  const objects = up && gh && typeof up === 'object' && typeof gh === 'object' && Array.isArray(up) === Array.isArray(gh);
  if (!objects) return [{ path: at, upstream: up, gatehouse: gh }];
  const keys = [...new Set([...Object.keys(up), ...Object.keys(gh)])];
  return keys.flatMap((k) => differingPaths(up[k], gh[k], at ? `${at}.${k}` : k));
}

const show = ({ path: p, upstream, gatehouse }) => `${p || '(record)'}: ${JSON.stringify(upstream)} → ${JSON.stringify(gatehouse)}`;

// A scenario's `differences`: an array of ids (each may explain any part of the record), or
// { '<path prefix>': id } (the id explains the differences at and below that path of the record).
function explanations(differences) {
  if (Array.isArray(differences)) return differences.map((id) => ({ prefix: '', id }));
  return Object.entries(differences ?? {}).map(([prefix, id]) => ({ prefix, id }));
}
const covers = (prefix, p) => prefix === '' || p === prefix || p.startsWith(`${prefix}.`);

/**
 * Runs `scenario(side)` on both sides at once and compares the records. Equal records pass.
 * Different records pass only when every differing part is explained by `differences`, ids
 * of differences.json (an array, or an object keyed by the record path each id explains), and
 * every id explains something (a stale id fails too). `gatehouse` (optional) is checked
 * against gatehouse's record: a partial record of what gatehouse must do instead.
 */
export async function compareSides(pair, scenario, { differences = [], gatehouse } = {}) {
  const known = loadDifferences();
  const why = explanations(differences);
  for (const { id } of why) {
    if (!known.has(id)) throw new Error(`scenario names difference "${id}", which differences.json does not list`);
  }
  let records;
  try {
    records = await Promise.all(['upstream', 'gatehouse'].map((side) => scenario(pair.sides[side])));
  } finally {
    await Promise.all(Object.values(pair.sides).map((s) => s.close()));
  }
  const [up, gh] = records.map(normalize);
  const diff = differingPaths(up, gh);
  const report = `upstream:  ${JSON.stringify(up)}\ngatehouse: ${JSON.stringify(gh)}\ndifferences:\n  ${diff.map(show).join('\n  ')}`;
  if (process.env.DIFF_SHOW) console.log(`--- records\n${report}`);
  const unexplained = diff.filter((d) => !why.some((w) => covers(w.prefix, d.path)));
  if (unexplained.length) {
    throw new Error(`gatehouse differs from upstream where no documented difference explains it:\n  ` +
      `${unexplained.map(show).join('\n  ')}\n${report}`);
  }
  const stale = why.filter((w) => !diff.some((d) => covers(w.prefix, d.path)));
  if (stale.length) {
    throw new Error(`scenario names ${stale.map((w) => `${w.id}${w.prefix ? ` at ${w.prefix}` : ''}`).join(', ')} ` +
      `but both sides agree there: remove the stale id\n${report}`);
  }
  if (gatehouse) {
    const wrong = differingPaths(pick(gh, gatehouse), normalize(gatehouse));
    if (wrong.length) throw new Error(`gatehouse's record is not the documented one:\n  ${wrong.map(show).join('\n  ')}\n${report}`);
  }
  return { upstream: up, gatehouse: gh, diff };
}

// The part of `record` that `shape` describes (same keys, recursively).
function pick(record, shape) {
  if (!shape || typeof shape !== 'object' || Array.isArray(shape) || !record || typeof record !== 'object') return record;
  return Object.fromEntries(Object.keys(shape).map((k) => [k, pick(record[k], shape[k])]));
}

// ---------------------------------------------------------------------------------------
// Test files: one pair of Prosodys per deployment, many scenarios on it.

/**
 * Declares a node:test suite: `spec` is started once (both sides), then each scenario runs on
 * both and is compared. `spec` may be an async function resolving the spec (with an optional
 * `cleanup()` run after the suite), for deployments that need a local service first. A scenario: { name, run(side) → record, differences?, gatehouse?,
 * todo?, skip? }. `todo` names the issue item of a gatehouse defect another change fixes.
 */
export async function differentialSuite(title, spec, scenarios) {
  const { describe, before, after, test } = await import('node:test');
  describe(title, () => {
    let pair;
    let resolved;
    before(async () => {
      // A function spec starts what the deployment needs first (a UVS stand-in, a key server).
      resolved = typeof spec === 'function' ? await spec() : spec;
      pair = await startPair(resolved, title.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 30));
    });
    after(async () => {
      await pair?.stop();
      await resolved?.cleanup?.();
    });
    for (const sc of scenarios) {
      test(sc.name, { todo: sc.todo, skip: sc.skip }, () => compareSides(pair, sc.run, sc));
    }
  });
}
