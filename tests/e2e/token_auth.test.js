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
    // Domain verification is on by default: upstream answers a bare false, so no child.
    assert.equal(err.text, 'Room and token mismatched');
    assert.deepEqual(err.children, []);
  });

  it('a "*" token joins any room; a non-ASCII room claim matches its lower-cased room', async () => {
    const any = await login({ token: token({ room: '*' }) });
    await joinRoom(any.xmpp, `room2@${MUC_DOMAIN}`, 'star');
    const cafe = await login({ token: token({ room: 'CAFÉ' }) });
    await joinRoom(cafe.xmpp, `café@${MUC_DOMAIN}`, 'cafe');
  });

  const refusals = [
    ['a wrong signature', () => ({ token: jwt.corruptSignature(token()) }), 'not-allowed', /^Invalid signature$/],
    // Upstream's exact texts (luajwtjitsi.lib.lua, token/util.lib.lua; cjson's numbers are
    // floats, so Lua 5.4 prints "10.0").
    ['an expired token', () => ({ token: token({ iat: jwt.now() - 70, exp: jwt.now() - 10 }) }), 'not-allowed',
      /^Not acceptable by exp \((10|11)\.0 sec since expired, valid for:60\.0 sec\)$/],
    ['a not-yet-valid token', () => ({ token: token({ nbf: jwt.now() + 600 }) }), 'not-allowed', /^Not acceptable by nbf$/],
    ['a non-numeric exp', () => ({ token: token({ exp: 'never' }) }), 'not-allowed', /^exp must be number$/],
    // Upstream splits on runs of dots: an empty signature leaves two segments.
    ['alg: none', () => ({ token: jwt.unsigned(jwt.jitsiClaims({ appId: APP_ID, room: 'room1' })) }), 'not-allowed', /^Invalid token$/],
    ['alg: none with a signature', () => ({ token: `${jwt.unsigned(jwt.jitsiClaims({ appId: APP_ID, room: 'room1' }))}c2ln` }), 'not-allowed', /^Invalid or incorrect alg$/],
    ['an RS256 token on an HS256 host', () => ({ token: token({}, { alg: 'RS256', key: jwt.generateKey('RS256') }) }), 'not-allowed', /^Invalid or incorrect alg$/],
    ['no token', () => ({}), 'not-allowed', /^token required$/],
    ['a wrong issuer', () => ({ token: token({ iss: 'someone-else' }) }), 'not-allowed', /^invalid 'iss' claim$/],
    ['a missing issuer', () => ({ token: token({ iss: undefined }) }), 'not-allowed', /^'iss' claim is missing$/],
    ['a missing audience', () => ({ token: token({ aud: undefined }) }), 'not-allowed', /^'aud' claim is missing$/],
    ['a missing room claim', () => ({ token: token({ room: undefined }) }), 'not-authorized', /^room claim is missing$/],
    ['a missing sub claim', () => ({ token: token({ sub: undefined }) }), 'not-authorized', /^sub claim is missing$/],
    ['garbage', () => ({ token: 'not.a.jwt' }), 'not-allowed', /^Invalid header$/],
    ['two segments', () => ({ token: 'abc.def' }), 'not-allowed', /^Invalid token$/],
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
      muc: {
        modules_enabled: ['gatehouse_token_verification', 'e2e_room_flags'],
        token_verification_require_token_for_moderation: true,
      },
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    for (const room of ['team7', 'sales', '[acme]sales', 'closed-sales']) await createRoomAsFocus(focus, `${room}@${MUC_DOMAIN}`);
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
    // string.match found nothing: upstream has no room name to compare.
    assert.deepEqual(err.children.map((c) => c.name), ['room-name-does-not-match']);
    assert.equal(err.text, 'Room name cannot be matched to the one from token.');
  });

  it('a pattern over the quantifier limit is refused with <invalid-regex/>', async () => {
    const err = await join({ room: 'a*b*c*d*', context: { room: { regex: 'true' } } }, `team7@${MUC_DOMAIN}`, 'p3')
      .catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    assert.deepEqual(err.children, [{ name: 'invalid-regex', xmlns: 'http://jitsi.org/jitmeet' }]);
    assert.equal(err.text, 'Room claim is not a valid Lua pattern');
    assert.match(prosody.readLog(), /too many quantifiers in pattern/, 'the log says why');
  });

  it('sub must match the tenant of a [tenant]room', async () => {
    await join({ room: 'sales', sub: 'acme' }, `[acme]sales@${MUC_DOMAIN}`, 't1');
    const err = await join({ room: 'sales', sub: 'evil' }, `[acme]sales@${MUC_DOMAIN}`, 't2').catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    const wrongDomain = await join({ room: 'sales', sub: 'other.test' }, `sales@${MUC_DOMAIN}`, 't3').catch((e) => e);
    assert.equal(wrongDomain.condition, 'not-allowed');
  });

  it('guests (allow_empty_token) may not enter a room closed to them (allowUnauthenticatedAccess = false)', async () => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort });
    clients.push(xmpp);
    const err = await joinRoom(xmpp, `closed-sales@${MUC_DOMAIN}`, 'guest').catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    assert.equal(err.text, 'Authentication required');
    assert.deepEqual(err.children, [{ name: 'authentication-required', xmlns: 'http://jitsi.org/jitmeet' }]);
    await join({ room: 'closed-sales' }, `closed-sales@${MUC_DOMAIN}`, 'holder');
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

// Issue 11, items 1-4: what upstream's verify_room refuses, with upstream's defaults (domain
// verification on) and nothing but the two swapped module names in the config.
describe('upstream verify_room: rooms that do not exist, default domain check, whole-name patterns, claim types', () => {
  let prosody;
  let focus;
  const clients = [];
  const login = async (claimsExtra) => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: token(claimsExtra) });
    clients.push(xmpp);
    return xmpp;
  };
  const refusal = async (claimsExtra, room) => joinRoom(await login(claimsExtra), `${room}@${MUC_DOMAIN}`, 'x')
    .then(() => null, (e) => e);

  before(async () => {
    prosody = await startProsody({
      name: 'verify-room',
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
      muc: { modules_enabled: ['gatehouse_token_verification'] },
    });
    focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    for (const room of ['room1', 'team1', 'team1-secret-board', 'banana', 'a', '[acme]sales-q3']) {
      await createRoomAsFocus(focus, `${room}@${MUC_DOMAIN}`);
    }
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('a token holder cannot create a room: "Room does not exist", and the room stays absent', async () => {
    const err = await refusal({ room: '*' }, 'brand-new');
    assert.equal(err?.condition, 'not-allowed');
    assert.equal(err.text, 'Room does not exist');
    assert.deepEqual(err.children, [{ name: 'room-does-not-exist', xmlns: 'http://jitsi.org/jitmeet' }]);
    // Focus (an admin, exempt) creates it afterwards: status 201 says it did not exist.
    const self = await joinRoom(focus, `brand-new@${MUC_DOMAIN}`, 'focus');
    assert.ok(self.statusCodes.includes(201), 'the refused join left no room behind');
  });

  it('domain verification is on by default: a token for another domain is refused', async () => {
    const err = await refusal({ room: '*', sub: 'other.test' }, 'room1');
    assert.equal(err?.condition, 'not-allowed');
    assert.equal(err.text, 'Room and token mismatched');
    await joinRoom(await login({ room: '*' }), `room1@${MUC_DOMAIN}`, 'same-domain');
  });

  it('a pattern claim must match the whole room name, anchored or not', async () => {
    const regex = (room, sub) => ({ room, ...(sub ? { sub } : {}), context: { room: { regex: true } } });
    await joinRoom(await login(regex('team%d+')), `team1@${MUC_DOMAIN}`, 'p1');
    await joinRoom(await login(regex('a')), `a@${MUC_DOMAIN}`, 'p2');
    for (const [claim, room] of [[regex('team%d+'), 'team1-secret-board'], [regex('a'), 'banana'], [regex('^sales', 'acme'), '[acme]sales-q3']]) {
      const err = await refusal(claim, room);
      assert.equal(err?.condition, 'not-allowed', `${claim.room} must not open ${room}`);
    }
  });

  it('session.contextRequired (set by another module): a token without context is refused as upstream', async () => {
    const ctx = await startProsody({
      name: 'context-required',
      global: { modules_enabled: ['e2e_context_required'] },
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
    });
    try {
      const err = await refusedLogin(ctx.httpPort, { token: token({ room: '*' }), query: { context_required: '1' } });
      assert.equal(err.condition, 'not-allowed');
      assert.equal(err.text, 'jwt missing required context claim');
      const { xmpp } = await connect({ httpPort: ctx.httpPort, token: token({ room: '*', context: { user: { name: 'c' } } }), query: { context_required: '1' } });
      await disconnect(xmpp);
    } finally {
      await ctx.stop();
    }
  });

  for (const [what, room] of [['a number', 7], ['a boolean', true], ['an array', ['room1']], ['an object', { name: 'room1' }], ['null', null]]) {
    it(`a room claim that is ${what} is refused at login`, async () => {
      const err = await refusedLogin(prosody.httpPort, { token: token({ room }) });
      assert.equal(err.condition, 'not-authorized');
      assert.equal(err.text, 'room claim must be a string');
    });
  }
});
