// Issue 16 item 2: tokens that expire during a meeting (gatehouse_token_expiry = "disconnect").
// Real Prosody, real @xmpp/client sessions over WebSocket with ?token=; a fresh token is
// presented by XEP-0198 stream resumption (?token=<fresh>&previd=<id>), as Jitsi reconnects.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import {
  connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, dropConnection, waitForStanza, ping,
} from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const GRACE = 1; // seconds
const token = (ttl, extra = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', ttl, ...extra }), { alg: 'HS256', key: SECRET });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';

async function resumableLogin(httpPort, ttl) {
  const session = await connect({ httpPort, token: token(ttl) });
  for (let i = 0; i < 100 && !session.xmpp.streamManagement.id; i++) await sleep(20);
  assert.ok(session.xmpp.streamManagement.id, 'stream management enabled');
  return session;
}

/** Resolves with the kick a session gets from `roomJid` (its own unavailable presence). */
function kickFrom(xmpp, roomJid, timeoutMs) {
  return waitForStanza(xmpp, (s) => s.name === 'presence' && s.attrs.type === 'unavailable'
    && s.attrs.from?.startsWith(`${roomJid}/`), timeoutMs, 'the kick');
}

function start(name, mainHost) {
  return startProsody({
    name,
    mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET, modules_enabled: ['smacks'], ...mainHost },
    muc: { modules_enabled: ['gatehouse_token_verification'] },
  });
}

describe('gatehouse_token_expiry = "disconnect" (grace 1 s)', () => {
  let prosody;
  let focus;
  const clients = [];
  before(async () => {
    prosody = await start('token-expiry', { gatehouse_token_expiry: 'disconnect', gatehouse_token_expiry_grace: GRACE });
    focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    await createRoomAsFocus(focus, `room1@${MUC_DOMAIN}`);
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('a session whose token expires leaves its room with a reason and is closed after the grace period', async () => {
    const room = `room1@${MUC_DOMAIN}`;
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: token(2) });
    clients.push(xmpp);
    const started = Date.now();
    await joinRoom(xmpp, room, 'shortlived');
    const seen = kickFrom(focus, room, 10_000);
    const kick = await kickFrom(xmpp, room, 10_000);
    const elapsed = (Date.now() - started) / 1000;
    const x = kick.getChild('x', NS_MUC_USER);
    assert.ok(x.getChildren('status').some((s) => s.attrs.code === '307'), 'a kick (status 307)');
    assert.equal(x.getChild('item').getChildText('reason'), 'Your token expired');
    assert.ok(elapsed >= 1.5 && elapsed < 6, `kicked after ${elapsed} s (exp 2 s + grace ${GRACE} s)`);
    await seen; // the others see the participant go
    for (let i = 0; i < 100 && xmpp.status !== 'disconnect' && xmpp.status !== 'offline'; i++) await sleep(20);
    assert.ok(['disconnect', 'offline'].includes(xmpp.status), `stream closed (${xmpp.status})`);
    assert.match(prosody.readLog(), /Token of \S+ expired: removed from 1 room\(s\), session closed/);
  });

  it('a session that resumes with a fresh token before the deadline stays', async () => {
    const room = `room1@${MUC_DOMAIN}`;
    const first = await resumableLogin(prosody.httpPort, 2);
    clients.push(first.xmpp);
    await joinRoom(first.xmpp, room, 'refresher');
    await sleep(1000);
    const state = dropConnection(first.xmpp);
    const resumed = await connect({ httpPort: prosody.httpPort, token: token(3600), query: { previd: state.id }, resume: state });
    clients.push(resumed.xmpp);
    const kicked = kickFrom(resumed.xmpp, room, 5_000).then(() => true, () => false);
    const left = waitForStanza(focus, (s) => s.name === 'presence' && s.attrs.type === 'unavailable'
      && s.attrs.from === `${room}/refresher`, 5_000, 'a leave').then(() => true, () => false);
    assert.equal(await kicked, false, 'no kick well past the old token\'s deadline');
    assert.equal(await left, false, 'the others never saw it leave');
    await ping(resumed.xmpp, { to: 'meet.test' }); // no bind on a resume, so no JID to take the domain from
    assert.equal(prosody.readLog().match(/Token of \S+ expired/g)?.length ?? 0, 1, 'only the first test\'s session expired');
  });

  it('resuming with the expired token fails (the login is refused), so the deadline holds', async () => {
    const first = await resumableLogin(prosody.httpPort, 2);
    clients.push(first.xmpp);
    await sleep(2100);
    const state = dropConnection(first.xmpp);
    const err = await connect({ httpPort: prosody.httpPort, token: token(-10), query: { previd: state.id }, resume: state })
      .then(() => null, (e) => e);
    assert.equal(err?.condition, 'not-allowed');
  });
});

describe('gatehouse_token_expiry off (the default): nothing changes for existing setups', () => {
  let prosody;
  const clients = [];
  before(async () => { prosody = await start('token-expiry-off', {}); });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('a session outlives its token, as upstream', async () => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: token(1) });
    clients.push(xmpp);
    await sleep(2500);
    await ping(xmpp);
  });
});
