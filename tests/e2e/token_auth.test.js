// mod_auth_gatehouse_token + mod_gatehouse_token_verification against a real Prosody, with
// Jitsi-style clients over WebSocket (?token=…). HS256 with app_secret, the most common setup.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, xml, refusedLogin } from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';

function token(extra = {}, { alg = 'HS256', key = SECRET, header } = {}) {
  return jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: 'room1', ...extra }), { alg, key, header });
}


describe('token auth (HS256 app_secret) and room claim check', () => {
  let prosody;
  let focus;
  const clients = [];
  const login = async (options) => {
    const session = await connect({ httpPort: prosody.httpPort, ...options });
    clients.push(session.xmpp);
    return session;
  };

  before(async () => {
    prosody = await startProsody({
      name: 'token-auth',
      global: { modules_enabled: ['e2e_jitsi_observer'] },
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
      muc: { modules_enabled: ['gatehouse_token_verification'] },
    });
    focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    for (const room of ['room1', 'room2', 'café']) {
      await createRoomAsFocus(focus, `${room}@${MUC_DOMAIN}`);
    }
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('a valid token logs in and joins the room it names', async () => {
    const { xmpp, jid } = await login({ token: token({ context: { user: { name: 'Ana' } } }), room: 'room1' });
    assert.match(jid, /@meet\.test\//);
    const self = await joinRoom(xmpp, `room1@${MUC_DOMAIN}`, 'ana');
    assert.ok(self.statusCodes.includes(110));
  });

  it('the token may come in an Authorization: Bearer header', async () => {
    const { xmpp } = await login({ headers: { Authorization: `Bearer ${token()}` } });
    await joinRoom(xmpp, `room1@${MUC_DOMAIN}`, 'bearer');
  });

  it('a token for another room is refused at join with the upstream error', async () => {
    const { xmpp } = await login({ token: token() });
    const err = await joinRoom(xmpp, `room2@${MUC_DOMAIN}`, 'ana2').catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    assert.equal(err.text, 'Room and token mismatched');
    assert.deepEqual(err.children, [{ name: 'room-mismatch', xmlns: 'http://jitsi.org/jitmeet' }]);
  });

  it('a "*" token joins any room; a non-ASCII room claim matches its lower-cased room', async () => {
    const any = await login({ token: token({ room: '*' }) });
    await joinRoom(any.xmpp, `room2@${MUC_DOMAIN}`, 'star');
    const cafe = await login({ token: token({ room: 'CAFÉ' }) });
    await joinRoom(cafe.xmpp, `café@${MUC_DOMAIN}`, 'cafe');
  });

  const refusals = [
    ['a wrong signature', () => ({ token: jwt.corruptSignature(token()) }), 'not-allowed', /^Invalid signature$/],
    ['an expired token', () => ({ token: token({ exp: jwt.now() - 10 }) }), 'not-allowed', /^Not acceptable by exp/],
    ['a not-yet-valid token', () => ({ token: token({ nbf: jwt.now() + 600 }) }), 'not-allowed', /^Not acceptable by nbf/],
    ['alg: none', () => ({ token: jwt.unsigned(jwt.jitsiClaims({ appId: APP_ID, room: 'room1' })) }), 'not-allowed', /^Invalid alg/],
    ['an RS256 token on an HS256 host', () => ({ token: token({}, { alg: 'RS256', key: jwt.generateKey('RS256') }) }), 'not-allowed', /^Invalid alg/],
    ['no token', () => ({}), 'not-allowed', /^token required$/],
    ['a wrong issuer', () => ({ token: token({ iss: 'someone-else' }) }), 'not-allowed', /^Invalid issuer/],
    ['a missing room claim', () => ({ token: token({ room: undefined }) }), 'not-authorized', /'room' claim is missing/],
    ['a missing sub claim', () => ({ token: token({ sub: undefined }) }), 'not-authorized', /'sub' claim is missing/],
    ['garbage', () => ({ token: 'not.a.jwt' }), 'not-allowed', /^Invalid token/],
    ['a banned user (jitsi-access-ban-check)', () => ({ token: token({ context: { user: { name: 'banned' } } }) }), 'not-allowed', /^user is banned$/],
  ];
  for (const [what, options, condition, text] of refusals) {
    it(`${what} is refused with ${condition}`, async () => {
      const err = await refusedLogin(prosody.httpPort, options());
      assert.equal(err.condition, condition);
      assert.match(err.text, text);
    });
  }

  it('fires Jitsi\'s events in upstream order with the session fields bound', async () => {
    const { xmpp } = await login({ token: token({ room: 'room1', context: { user: { name: 'Order' }, group: 'g1', tenant: 't1' } }) });
    await disconnect(xmpp);
    const lines = prosody.readLog().split('\n').filter((l) => l.includes('observed') && l.includes('user=Order'));
    const events = lines.map((l) => l.match(/observed (\S+)/)[1]);
    assert.deepEqual(events, [
      'jitsi-authentication-token-verified', 'jitsi-access-ban-check',
      'pre-jitsi-authentication', 'post-jitsi-authentication',
    ]);
    assert.match(lines[0], /room=room1 domain=meet\.test issuer=gatehouse-test tenant=t1 user=Order group=g1 token=present/);
    // fetch-key fires before verification, when the claims are not bound yet.
    assert.match(prosody.readLog(), /observed pre-jitsi-authentication-fetch-key room=nil/);
  });

  it('never writes a token to the log', async () => {
    const secretish = token({ room: 'room2' });
    const { xmpp } = await login({ token: secretish });
    await joinRoom(xmpp, `room1@${MUC_DOMAIN}`, 'leaky').catch(() => {});
    await refusedLogin(prosody.httpPort, { token: jwt.corruptSignature(secretish) });
    const log = prosody.readLog();
    assert.ok(log.includes('not allowed to join'), 'the refusal is logged');
    assert.ok(!log.includes(secretish.split('.')[2]), 'no signature in the log');
    assert.ok(!log.includes(secretish.split('.')[1]), 'no payload in the log');
  });
});

describe('domain verification, tenants and pattern claims', () => {
  let prosody;
  const clients = [];
  const join = async (claimsExtra, roomJid, nick) => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: token(claimsExtra) });
    clients.push(xmpp);
    return joinRoom(xmpp, roomJid, nick);
  };

  before(async () => {
    prosody = await startProsody({
      name: 'domain-verification',
      mainHost: {
        authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET,
        enable_domain_verification: true, muc_mapper_domain_base: 'meet.test', allow_empty_token: true,
      },
      muc: { modules_enabled: ['gatehouse_token_verification'], token_verification_require_token_for_moderation: true },
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    for (const room of ['team7', 'sales', '[acme]sales']) await createRoomAsFocus(focus, `${room}@${MUC_DOMAIN}`);
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('a pattern room claim admits matching rooms only', async () => {
    const pattern = { room: '^team%d+$', context: { room: { regex: true } } };
    await join(pattern, `team7@${MUC_DOMAIN}`, 'p1');
    const err = await join(pattern, `sales@${MUC_DOMAIN}`, 'p2').catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    assert.deepEqual(err.children.map((c) => c.name), ['room-mismatch']);
  });

  it('a pattern over the quantifier limit is refused with <invalid-regex/>', async () => {
    const err = await join({ room: 'a*b*c*d*', context: { room: { regex: 'true' } } }, `team7@${MUC_DOMAIN}`, 'p3')
      .catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    assert.deepEqual(err.children, [{ name: 'invalid-regex', xmlns: 'http://jitsi.org/jitmeet' }]);
    assert.match(err.text, /quantifiers/);
  });

  it('sub must match the tenant of a [tenant]room', async () => {
    await join({ room: 'sales', sub: 'acme' }, `[acme]sales@${MUC_DOMAIN}`, 't1');
    const err = await join({ room: 'sales', sub: 'evil' }, `[acme]sales@${MUC_DOMAIN}`, 't2').catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    const wrongDomain = await join({ room: 'sales', sub: 'other.test' }, `sales@${MUC_DOMAIN}`, 't3').catch((e) => e);
    assert.equal(wrongDomain.condition, 'not-allowed');
  });

  it('guests without a token may not change room configuration', async () => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort });
    clients.push(xmpp);
    await joinRoom(xmpp, `sales@${MUC_DOMAIN}`, 'guest');
    const err = await xmpp.iqCaller.request(
      xml('iq', { type: 'set', to: `sales@${MUC_DOMAIN}` },
        xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }))),
      5000).then(() => null, (e) => e);
    assert.equal(err?.condition, 'not-allowed');
    assert.equal(err.text, 'Room modification disabled for guests');
  });
});
