// XMPP test clients (@xmpp/client, as in jitsi-meet's own Prosody tests) over WebSocket,
// the way a Jitsi web client reaches Prosody: ws://…/xmpp-websocket?token=…&room=…
//
// Every call here is bounded by a timeout and never leaves a socket or a reconnect timer
// behind, so a failing test fails fast instead of hanging the run.
import { client, xml } from '@xmpp/client';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { DOMAIN, AUTH_DOMAIN, FOCUS } from './config.js';

export { xml };

const NS_MUC = 'http://jabber.org/protocol/muc';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const NS_PING = 'urn:xmpp:ping';
const DEFAULT_TIMEOUT = 10_000;

/** Rejects with `message` after `ms` unless `promise` settles first; always clears its timer. */
export function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(message), { timeout: true })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Node 20 has no global WebSocket, and we want per-connection HTTP headers (e.g.
 * `Authorization: Bearer …`), so swap @xmpp/websocket's socket for one built on `ws`.
 * Subclassing the transport found on the client avoids deep imports into @xmpp packages.
 */
function useWsTransport(xmpp, headers) {
  const Base = xmpp.transports.find((T) => T.prototype.socketParameters('ws://x') !== undefined);
  class WsSocket extends Base.prototype.Socket {
    connect(url) {
      this.url = url;
      this.secure = true; // loopback; lets PLAIN through on the client side
      const ws = new WebSocket(url, ['xmpp'], { headers, handshakeTimeout: DEFAULT_TIMEOUT });
      // A client a test forgot to disconnect must not keep the test process alive (every wait
      // in this file has its own timer, so unref'ing never ends a test early).
      ws.once('open', () => ws._socket?.unref());
      this._attachSocket(ws);
    }
  }
  class WsConnection extends Base {}
  WsConnection.prototype.Socket = WsSocket;
  xmpp.transports.splice(0, xmpp.transports.length, WsConnection);
}

/** Drops the connection at once (no stream close handshake). Safe to call repeatedly. */
function hardClose(xmpp) {
  xmpp.reconnect?.stop();
  const ws = xmpp.socket?.socket;
  try { ws?.terminate?.(); } catch { /* already closed */ }
}

/**
 * Connects and authenticates. Resolves `{ xmpp, jid }` once the session is online.
 *
 * @param {object} o
 * @param {number} o.httpPort   Prosody's HTTP port (websocket)
 * @param {string} [o.domain="meet.test"]
 * @param {string} [o.token]    sent as ?token=
 * @param {string} [o.room]     sent as ?room=
 * @param {object} [o.query]    more query parameters (prefix, previd, …)
 * @param {object} [o.headers]  HTTP headers for the websocket handshake
 * @param {string} [o.mechanism="ANONYMOUS"]  SASL mechanism to use (must be offered)
 * @param {{username:string,password:string}} [o.credentials]  for PLAIN
 * @param {number} [o.timeoutMs=10000]
 * @param {(xmpp) => void} [o.prepare]  called on the client before it starts (e.g. to set the
 *        stream-management id of a session to resume)
 * @param {object} [o.resume]  resume this XEP-0198 session (what dropConnection returned)
 *        instead of binding a new resource; pass `query.previd` too, as Jitsi does
 * @throws Error with .condition / .text on SASL failure (e.g. not-allowed, "Invalid signature"),
 *         .timeout on timeout, .offered when the mechanism is not offered.
 */
export async function connect({
  httpPort, domain = DOMAIN, token, room, query = {}, headers = {},
  mechanism = 'ANONYMOUS', credentials = {}, timeoutMs = DEFAULT_TIMEOUT, prepare, resume,
}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({ token, room, ...query })) {
    if (v !== undefined && v !== null) params.set(k, String(v));
  }
  const qs = params.toString();
  const service = `ws://127.0.0.1:${httpPort}/xmpp-websocket${qs ? `?${qs}` : ''}`;

  const xmpp = client({
    service,
    domain,
    timeout: timeoutMs,
    // A function gives us full control over the mechanism (the library would otherwise
    // prefer SCRAM, which fails against Prosody — REFERENCE §10).
    credentials: async (authenticate, offered) => {
      if (!offered.includes(mechanism)) {
        throw Object.assign(new Error(`SASL mechanism ${mechanism} not offered (offered: ${offered.join(', ')})`),
          { offered });
      }
      await authenticate(mechanism === 'ANONYMOUS' ? {} : credentials, mechanism);
    },
  });
  xmpp.reconnect.stop(); // a failed login must fail, not loop
  useWsTransport(xmpp, headers);

  // Unhandled 'error' events would crash the process; remember the last one instead.
  xmpp.lastError = null;
  xmpp.on('error', (err) => { xmpp.lastError = err; });
  if (resume) {
    Object.assign(xmpp.streamManagement, {
      id: resume.id, inbound: resume.inbound, outbound: resume.outbound ?? 0, outbound_q: [...(resume.outboundQueue ?? [])],
    });
  }

  prepare?.(xmpp);
  // A resumed stream never emits 'online' (it is online at once); stream management says 'resumed'.
  const started = resume
    ? Promise.race([xmpp.start(), new Promise((r) => { xmpp.streamManagement.once('resumed', r); })])
    : xmpp.start();
  try {
    await withTimeout(started, timeoutMs, `connect to ${service} timed out after ${timeoutMs} ms`);
  } catch (err) {
    hardClose(xmpp);
    throw toConnectError(err);
  }
  return { xmpp, jid: xmpp.jid?.toString() ?? null }; // no bind, so no JID, on a resume
}

/** SASLError/StreamError from @xmpp carry .condition and .text already; keep them visible. */
function toConnectError(err) {
  if (err?.name === 'SASLError' || err?.name === 'StreamError') {
    const e = new Error(`${err.name}: ${err.condition}${err.text ? ` (${err.text})` : ''}`);
    return Object.assign(e, { condition: err.condition, text: err.text || '', kind: err.name, cause: err });
  }
  return err;
}

/**
 * The network drops: the socket closes without a closing stream, so a session with stream
 * management enabled hibernates on the server. Resolves with what `connect({ resume })` needs.
 */
export function dropConnection(xmpp) {
  const { id, inbound, outbound, outbound_q: outboundQueue } = xmpp.streamManagement;
  hardClose(xmpp);
  return { id, inbound, outbound, outboundQueue: [...outboundQueue] };
}

/** Jicofo's focus user: PLAIN login on auth.meet.test, no token. */
export function connectFocus({ httpPort, username = FOCUS.username, password = FOCUS.password, timeoutMs } = {}) {
  return connect({
    httpPort, domain: AUTH_DOMAIN, mechanism: 'PLAIN', credentials: { username, password }, timeoutMs,
  });
}

/** Graceful close (bounded to 3 s), then hard close. Never throws. */
export async function disconnect(xmpp) {
  if (!xmpp) return;
  xmpp.reconnect?.stop();
  try {
    if (xmpp.status !== 'offline' && xmpp.status !== 'disconnect') {
      await withTimeout(xmpp.stop(), 3000, 'disconnect timed out');
    }
  } catch { /* fall through to the hard close */ }
  hardClose(xmpp);
}

/**
 * Resolves with the first stanza for which `predicate(stanza)` is true, within `timeoutMs`.
 * Attach it *before* sending whatever provokes the stanza.
 */
export function waitForStanza(xmpp, predicate, timeoutMs = DEFAULT_TIMEOUT, what = 'stanza') {
  let onStanza;
  const found = new Promise((resolve) => {
    onStanza = (stanza) => { if (predicate(stanza)) resolve(stanza); };
    xmpp.on('stanza', onStanza);
  });
  return withTimeout(found, timeoutMs, `no ${what} within ${timeoutMs} ms`)
    .finally(() => xmpp.removeListener('stanza', onStanza));
}

const bare = (jid) => (jid ?? '').split('/')[0];

/** Parses an <error/> child into an Error with .condition/.type/.text/.children. */
export function stanzaError(stanza, fallback = 'error stanza') {
  const error = stanza.getChild('error');
  const kids = error?.getChildElements() ?? [];
  const condition = kids.find((c) => c.attrs.xmlns === NS_STANZAS && c.name !== 'text')?.name;
  const text = error?.getChildText('text', NS_STANZAS) ?? '';
  const children = kids
    .filter((c) => c.attrs.xmlns !== NS_STANZAS)
    .map((c) => ({ name: c.name, xmlns: c.attrs.xmlns }));
  const e = new Error(`${fallback}: ${condition ?? 'unknown'}${text ? ` (${text})` : ''}`);
  return Object.assign(e, { condition, type: error?.attrs.type, text, children, stanza });
}

/** Self-presence fields: { affiliation, role, jid, nick, statusCodes, stanza }. */
export function parseMucPresence(stanza) {
  const x = stanza.getChild('x', NS_MUC_USER);
  const item = x?.getChild('item');
  return {
    affiliation: item?.attrs.affiliation,
    role: item?.attrs.role,
    jid: item?.attrs.jid,
    nick: (stanza.attrs.from ?? '').split('/').slice(1).join('/'),
    statusCodes: (x?.getChildren('status') ?? []).map((s) => Number(s.attrs.code)),
    stanza,
  };
}

/**
 * Joins a MUC room. Resolves with the parsed self-presence (status 110), or rejects with
 * the room's error (.condition, .type, .text, .children — e.g. jitsi's
 * { name: "room-mismatch", xmlns: "http://jitsi.org/jitmeet" }).
 *
 * @param {object} [o]
 * @param {string} [o.password]       room password (<password/> in the MUC <x/>)
 * @param {Element[]} [o.extraChildren] more children of the join presence
 * @param {number} [o.timeoutMs=10000]
 */
export async function joinRoom(xmpp, roomJid, nick, { password, extraChildren = [], timeoutMs = DEFAULT_TIMEOUT } = {}) {
  const reply = waitForStanza(xmpp, (s) => s.name === 'presence' && bare(s.attrs.from) === roomJid && (
    s.attrs.type === 'error' ||
    (s.getChild('x', NS_MUC_USER)?.getChildren('status') ?? []).some((st) => st.attrs.code === '110')
  ), timeoutMs, `self-presence from ${roomJid}`);
  await xmpp.send(xml('presence', { to: `${roomJid}/${nick}` },
    xml('x', { xmlns: NS_MUC }, password !== undefined ? xml('password', {}, password) : null),
    ...extraChildren));
  const stanza = await reply;
  if (stanza.attrs.type === 'error') throw stanzaError(stanza, `join ${roomJid} refused`);
  return parseMucPresence(stanza);
}

/**
 * Focus creates the room by joining it, as Jicofo does; with muc_room_locking = false the
 * room is open at once. If the room reports itself new (status 201) focus also submits the
 * default configuration (an "instant room"), as Jicofo configures rooms — newer Prosody
 * versions may otherwise keep it locked.
 */
export async function createRoomAsFocus(focusXmpp, roomJid, { nick = 'focus', timeoutMs = DEFAULT_TIMEOUT } = {}) {
  const self = await joinRoom(focusXmpp, roomJid, nick, { timeoutMs });
  if (self.statusCodes.includes(201)) {
    await focusXmpp.iqCaller.request(
      xml('iq', { type: 'set', to: roomJid },
        xml('query', { xmlns: NS_MUC_OWNER }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }))),
      timeoutMs);
  }
  return self;
}

/**
 * The affiliation `bareJid` holds in `roomJid` ('none' when it holds none), as `owner` (an
 * owner, or focus as a server admin) reads the room's affiliation lists (muc#admin).
 */
export async function affiliationOf(owner, roomJid, bareJid, { timeoutMs = DEFAULT_TIMEOUT } = {}) {
  for (const affiliation of ['owner', 'admin', 'member', 'outcast']) {
    const reply = await owner.iqCaller.request(xml('iq', { type: 'get', to: roomJid },
      xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { affiliation }))), timeoutMs);
    const items = reply.getChild('query')?.getChildren('item') ?? [];
    if (items.some((i) => i.attrs.jid === bareJid)) return affiliation;
  }
  return 'none';
}

/** XEP-0199 ping to the server (or `to`); resolves with the round trip in milliseconds. */
export async function ping(xmpp, { to = xmpp.jid.domain, timeoutMs = DEFAULT_TIMEOUT } = {}) {
  const t0 = performance.now();
  await xmpp.iqCaller.request(xml('iq', { type: 'get', to }, xml('ping', { xmlns: NS_PING })), timeoutMs);
  return performance.now() - t0;
}

/**
 * Logs in expecting a refusal and resolves with the SASL error (.condition, .text); fails the
 * test if the login succeeds (closing that session) or ends in anything but a SASL failure.
 */
export async function refusedLogin(httpPort, options) {
  const err = await connect({ httpPort, ...options }).then(
    ({ xmpp }) => { disconnect(xmpp); return null; },
    (e) => e,
  );
  assert.ok(err, 'login should have been refused');
  assert.ok(err.condition, `expected a SASL failure, got: ${err.message}`);
  return err;
}

/**
 * An owner submits room configuration `fields` (muc#owner), e.g.
 * { 'muc#roomconfig_roomsecret': 'pw', 'muc#roomconfig_membersonly': 1 }. Resolves the reply.
 */
export function configureRoom(owner, roomJid, fields, { timeoutMs = DEFAULT_TIMEOUT } = {}) {
  return owner.iqCaller.request(
    xml('iq', { type: 'set', to: roomJid }, xml('query', { xmlns: NS_MUC_OWNER },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
        ...Object.entries(fields).map(([name, value]) => xml('field', { var: name }, xml('value', {}, String(value))))))),
    timeoutMs);
}
