// mod_auth_gatehouse_token over a session's life, as jitsi-meet's mod_auth_token: stream
// resumption (XEP-0198, Prosody's mod_smacks) with a fresh token, and jitsi-pre-session-unbind.
// Real Prosody, real @xmpp/client stream management over WebSocket with ?token=&previd=.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, dropConnection } from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const token = (extra = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: 'room1', ...extra }), { alg: 'HS256', key: SECRET });

async function until(predicate, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Logs in with stream management on, ready to be dropped and resumed. */
async function resumableLogin(httpPort, claims) {
  const session = await connect({ httpPort, token: token(claims) });
  await until(() => session.xmpp.streamManagement.enabled && session.xmpp.streamManagement.id, 'stream management');
  return session;
}

/** The network drops; the client comes back with `claims` in a fresh token and resumes. */
async function resumeWith(httpPort, session, claims) {
  const state = dropConnection(session.xmpp);
  const resumed = await connect({ httpPort, token: token(claims), query: { previd: state.id }, resume: state });
  assert.equal(resumed.xmpp.streamManagement.enabled, true, 'resumed, not a new session');
  return resumed;
}

describe('session resumption with a fresh token and session unbinding (mod_auth_token)', () => {
  let prosody;
  const clients = [];
  before(async () => {
    prosody = await startProsody({
      name: 'token-session',
      global: { modules_enabled: ['e2e_session_events'] },
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET, modules_enabled: ['smacks'] },
      muc: { modules_enabled: ['gatehouse_token_verification'] },
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    for (const room of ['room1', 'room2']) await createRoomAsFocus(focus, `${room}@${MUC_DOMAIN}`);
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('a session resumed with a new token takes that token\'s claims, and loses the old ones', async () => {
    const first = await resumableLogin(prosody.httpPort, { room: 'room1' });
    clients.push(first.xmpp);
    const resumed = await resumeWith(prosody.httpPort, first, { room: 'room2' });
    clients.push(resumed.xmpp);
    await joinRoom(resumed.xmpp, `room2@${MUC_DOMAIN}`, 'r2');
    const err = await joinRoom(resumed.xmpp, `room1@${MUC_DOMAIN}`, 'r1').then(() => null, (e) => e);
    assert.equal(err?.condition, 'not-allowed', 'the replaced token no longer opens room1');
  });

  it('fires jitsi-pre-session-unbind with the session\'s JID when a session ends', async () => {
    const { xmpp, jid } = await connect({ httpPort: prosody.httpPort, token: token() });
    await disconnect(xmpp);
    await until(() => prosody.readLog().includes(`observed jitsi-pre-session-unbind jid=${jid} session=${jid}`), 'the unbind event');
  });
});
