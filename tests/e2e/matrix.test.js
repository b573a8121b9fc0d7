// mod_auth_matrix_user_verification + mod_matrix_power_sync against a real Prosody, with
// Element-widget-style clients over WebSocket (?room=<base32 room ID>&token=<widget JWT>).
// The user verification service is a LOCAL STAND-IN (lib/uvs.js) that answers exactly as UVS
// does, every reply shape included, and misbehaves on purpose (slow, garbage, huge, refused).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, ping, disconnect, waitForStanza, parseMucPresence, xml, refusedLogin } from './lib/client.js';
import { startUvsStandIn, roomName } from './lib/uvs.js';
import * as jwt from './lib/jwt.js';

const ROOM_ID = '!qwertyasdfgh:matrix.test';
const OTHER_ROOM_ID = '!zxcvbnm:matrix.test';
const NO_LEVELS_ROOM_ID = '!nolevels:matrix.test';
const UVS_AUTH_TOKEN = 'uvs-e2e-bearer';
const POWER_LEVELS = {
  ban: 50, events_default: 0, invite: 0, kick: 50, redact: 50, state_default: 50, users_default: 0,
  events: { 'm.room.name': 50, 'm.room.power_levels': 100 },
  users: { '@mod:matrix.test': 50, '@admin:matrix.test': 100, '@ana:matrix.test': 0, '@demoted:matrix.test': 50 },
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// OpenID tokens the stand-in knows. Each test uses its own, so the positive-answer cache of one
// test never answers for another.
let serial = 0;
const users = {};
function openid(userId) {
  const token = `openid-${++serial}-${userId.replace(/\W/g, '')}`;
  users[token] = userId;
  return token;
}

/** The JWT Element's Jitsi widget makes: HS256 with the secret "notused", no exp. */
function widgetToken({ matrix, user = { name: 'Ana', avatar: 'https://example.test/a.png' }, context, ...claims } = {}) {
  return jwt.sign({
    iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*',
    context: context ?? { user, matrix }, ...claims,
  }, { alg: 'HS256', key: 'notused' });
}
const matrixFor = (userId, roomId = ROOM_ID) => ({ token: openid(userId), room_id: roomId, server_name: 'matrix.test' });


/** Joins and waits for the affiliation power sync gives (the join itself shows "none"). */
async function joinAndSync(xmpp, roomJid, nick) {
  const synced = waitForStanza(xmpp, (s) => s.name === 'presence' && s.attrs.from === `${roomJid}/${nick}` &&
    !['none', undefined].includes(parseMucPresence(s).affiliation), 5000, `synced affiliation in ${roomJid}`);
  await joinRoom(xmpp, roomJid, nick);
  return parseMucPresence(await synced);
}

function luaErrors(log) {
  return log.split('\n').filter((l) => /\terror\t|traceback|attempt to (index|compare|call)/i.test(l));
}

describe('matrix_user_verification with power sync, against a UVS stand-in', () => {
  let uvs;
  let prosody;
  const clients = [];
  const roomJid = `${roomName(ROOM_ID)}@${MUC_DOMAIN}`;
  const otherRoomJid = `${roomName(OTHER_ROOM_ID)}@${MUC_DOMAIN}`;
  const login = async (options) => {
    const session = await connect({ httpPort: prosody.httpPort, ...options });
    clients.push(session.xmpp);
    return session;
  };

  before(async () => {
    uvs = await startUvsStandIn({
      authToken: UVS_AUTH_TOKEN, users,
      rooms: {
        [ROOM_ID]: { members: ['@ana:matrix.test', '@mod:matrix.test', '@admin:matrix.test', '@demoted:matrix.test'], powerLevels: POWER_LEVELS },
        [OTHER_ROOM_ID]: { members: ['@ana:matrix.test', '@admin:matrix.test'], powerLevels: { ...POWER_LEVELS, users: {} } },
        // A room whose power levels UVS failed to fetch: it answers "member", power_levels null.
        [NO_LEVELS_ROOM_ID]: { members: ['@ana:matrix.test'], powerLevels: null },
      },
    });
    prosody = await startProsody({
      name: 'matrix',
      global: { modules_enabled: ['e2e_jitsi_observer'] },
      mainHost: {
        authentication: 'matrix_user_verification', app_id: 'meet.test',
        uvs_base_url: uvs.url, uvs_auth_token: UVS_AUTH_TOKEN, uvs_sync_power_levels: true,
        matrix_user_verification_timeout: 3,
      },
      muc: { modules_enabled: ['matrix_power_sync'] },
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    await createRoomAsFocus(focus, roomJid);
    await createRoomAsFocus(focus, otherRoomJid);
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
    await uvs?.close();
  });

  it('a member gets in with the exact UVS request upstream sends, and joins as member', async () => {
    const matrix = matrixFor('@ana:matrix.test');
    const before = uvs.requests.length;
    const { xmpp } = await login({ token: widgetToken({ matrix }), room: roomName(ROOM_ID) });
    const request = uvs.requests[before];
    assert.deepEqual(request.body, { token: matrix.token, room_id: ROOM_ID, matrix_server_name: 'matrix.test' });
    assert.equal(request.headers.authorization, `Bearer ${UVS_AUTH_TOKEN}`);
    assert.match(request.headers['content-type'], /^application\/json/);
    const self = await joinAndSync(xmpp, roomJid, 'ana');
    assert.equal(self.affiliation, 'member');
    assert.equal(self.role, 'participant');
  });

  it('binds the widget token\'s context to the session (jitsi_meet_context_user, _group)', async () => {
    const mark = prosody.logMark();
    await login({ token: widgetToken({ context: { user: { name: 'Fields' }, group: 'g1', matrix: matrixFor('@ana:matrix.test') } }), room: roomName(ROOM_ID) });
    const line = await prosody.waitForLog(/observed pre-jitsi-authentication .*user=Fields/, 3000, mark);
    assert.match(line, /user=Fields group=g1/);
  });

  for (const [what, name] of [
    ['upper case', roomName(ROOM_ID, { lower: false })],
    ['lower case', roomName(ROOM_ID)],
    ['padded', roomName(ROOM_ID, { padded: true })],
    ['padded upper case', roomName(ROOM_ID, { lower: false, padded: true })],
  ]) {
    it(`a ${what} room name decodes (${name})`, async () => {
      await login({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: name });
    });
  }

  it('power >= state_default makes an owner; power sync keeps others members', async () => {
    const mod = await login({ token: widgetToken({ matrix: matrixFor('@mod:matrix.test') }), room: roomName(ROOM_ID) });
    const self = await joinAndSync(mod.xmpp, roomJid, 'mod');
    assert.equal(self.affiliation, 'owner');
    assert.equal(self.role, 'moderator');
  });

  it('a session verified for Matrix room A cannot join the Jitsi room of room B (power sync loads the check)', async () => {
    // The attack: log in for a room of one's own (here ROOM_ID, where @admin is owner), then
    // join the conference of another Matrix room. Stock lets them in (as owner, with power sync).
    const admin = await login({ token: widgetToken({ matrix: matrixFor('@admin:matrix.test') }), room: roomName(ROOM_ID) });
    assert.equal((await joinAndSync(admin.xmpp, roomJid, 'admin')).affiliation, 'owner');
    const err = await joinRoom(admin.xmpp, otherRoomJid, 'admin-elsewhere').then(() => null, (e) => e);
    assert.ok(err, 'the join of another Matrix room\'s conference must be refused');
    assert.equal(err.type, 'cancel');
    assert.equal(err.condition, 'not-allowed');
    assert.equal(err.text, `Jitsi room does not match Matrix room: verified for ${ROOM_ID}, not for ${OTHER_ROOM_ID}`);
    assert.match(prosody.readLog(), /User \S+ \(@admin:matrix\.test\) not allowed to join \S+: verified for Matrix room !qwertyasdfgh:matrix\.test/);
    // A room that encodes no Matrix room at all is refused too, and named as such.
    const plain = await joinRoom(admin.xmpp, `plainroom@${MUC_DOMAIN}`, 'admin').then(() => null, (e) => e);
    assert.equal(plain?.condition, 'not-allowed');
    assert.match(plain.text, /verified for !qwertyasdfgh:matrix\.test, not for this room \(not a Matrix room ID in unpadded base32\)/);
  });

  it('the focus (a server admin) joins any room; the verified room stays open to its session', async () => {
    const focus = clients[0];
    const third = `${roomName('!third:matrix.test')}@${MUC_DOMAIN}`;
    await createRoomAsFocus(focus, third);
    const ana = await login({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    assert.equal((await joinAndSync(ana.xmpp, roomJid, 'ana-own')).affiliation, 'member');
  });

  // The refusal of a room whose name is not exactly its Matrix room ID in Element's base32.
  const notMatrixRoom = (verified) => `Jitsi room does not match Matrix room: verified for ${verified}, ` +
    'not for this room (not a Matrix room ID in unpadded base32)';
  const refusedJoin = (xmpp, room, nick) => joinRoom(xmpp, room, nick).then(() => null, (e) => e);

  it('Jicofo health-check rooms are not open to Matrix sessions (neither created nor joined); the focus uses them', async () => {
    const focus = clients[0];
    const existing = `__jicofo-health-check-${serial}@${MUC_DOMAIN}`;
    await createRoomAsFocus(focus, existing);
    const ana = await login({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    for (const room of [existing, `__jicofo-health-check-new-${serial}@${MUC_DOMAIN}`]) {
      const err = await refusedJoin(ana.xmpp, room, 'ana-hc');
      assert.ok(err, `a Matrix session must not get into ${room}`);
      assert.equal(err.type, 'cancel');
      assert.equal(err.condition, 'not-allowed');
      assert.equal(err.text, notMatrixRoom(ROOM_ID));
    }
    // The focus still creates (and so can health-check) a room of its own.
    const self = await createRoomAsFocus(focus, `__jicofo-health-check-focus-${serial}@${MUC_DOMAIN}`);
    assert.ok(self.statusCodes.includes(110));
  });

  it('only the canonical name of the verified room opens it: padded aliases (b32(A)=, b32(A)==) are refused', async () => {
    const ana = await login({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    for (const alias of [`${roomName(ROOM_ID)}=`, `${roomName(ROOM_ID)}==`, roomName('!third:matrix.test', { padded: true })]) {
      const err = await refusedJoin(ana.xmpp, `${alias}@${MUC_DOMAIN}`, 'ana-alias');
      assert.ok(err, `${alias} must not open a side room`);
      assert.equal(err.type, 'cancel');
      assert.equal(err.condition, 'not-allowed');
      assert.equal(err.text, notMatrixRoom(ROOM_ID));
    }
    const self = await joinRoom(ana.xmpp, roomJid, 'ana-canonical');
    assert.ok(self.statusCodes.includes(110));
  });

  it('admins are exempt: a Matrix-verified session refused elsewhere is admitted once its JID is an admin', async () => {
    const ana = await login({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    const err = await refusedJoin(ana.xmpp, otherRoomJid, 'ana-before-admin');
    assert.equal(err?.condition, 'not-allowed', 'not an admin yet: refused');
    // The operator lists the session's JID in `admins` and reloads the config (SIGHUP).
    const bareJid = ana.jid.split('/')[0];
    const config = fs.readFileSync(prosody.configFile, 'utf8');
    const listed = config.replace(/^admins = \{/m, `admins = { ${JSON.stringify(bareJid)},`);
    assert.notEqual(listed, config, 'the global admins option is in the generated config');
    fs.writeFileSync(prosody.configFile, listed);
    const mark = prosody.logMark();
    process.kill(prosody.pid, 'SIGHUP');
    await prosody.waitForLog(/Reloading configuration file/, 5000, mark);
    await ping(ana.xmpp); // the reload ran on Prosody's main thread before this answer
    const self = await joinRoom(ana.xmpp, otherRoomJid, 'ana-admin');
    assert.ok(self.statusCodes.includes(110), 'an admin joins any room');
  });

  it('every other owner grant is refused with not-acceptable', async () => {
    const ana = await login({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    await joinAndSync(ana.xmpp, roomJid, 'ana-grant');
    const focus = clients[0];
    const reply = await focus.iqCaller.request(xml('iq', { type: 'set', to: roomJid },
      xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' },
        xml('item', { jid: ana.jid.split('/')[0], affiliation: 'owner' }))), 5000).then(() => null, (e) => e);
    assert.ok(reply, 'the grant must fail');
    assert.equal(reply.condition, 'not-acceptable', reply.message);
    assert.equal(reply.type, 'modify');
  });

  const refusals = [
    ['a non-member', () => ({ token: widgetToken({ matrix: matrixFor('@stranger:matrix.test') }), room: roomName(ROOM_ID) }),
      'access-denied', 'Token invalid or not in room'],
    ['an OpenID token UVS does not know', () => ({ token: widgetToken({ matrix: { token: 'unknown-openid', room_id: ROOM_ID } }), room: roomName(ROOM_ID) }),
      'access-denied', 'Token invalid or not in room'],
    ['a member of another room', () => ({ token: widgetToken({ matrix: matrixFor('@mod:matrix.test', OTHER_ROOM_ID) }), room: roomName(OTHER_ROOM_ID) }),
      'access-denied', 'Token invalid or not in room'],
    ['no token', () => ({ room: roomName(ROOM_ID) }),
      'bad-request', 'JWT token must be provided with OpenID token and room ID'],
    ['a garbage token', () => ({ token: 'not.a.jwt', room: roomName(ROOM_ID) }),
      'bad-request', 'JWT token cannot be decoded'],
    ['a token not signed with "notused"', () => ({ token: jwt.sign({ context: { matrix: matrixFor('@ana:matrix.test') } }, { alg: 'HS256', key: 'used' }), room: roomName(ROOM_ID) }),
      'bad-request', 'JWT token cannot be decoded'],
    ['an expired token', () => ({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test'), exp: jwt.now() - 5 }), room: roomName(ROOM_ID) }),
      'bad-request', 'JWT token cannot be decoded'],
    ['a token without context.matrix', () => ({ token: widgetToken({ context: { user: { name: 'Ana' } } }), room: roomName(ROOM_ID) }),
      'bad-request', 'Matrix room ID must be given.'],
    ['a token without context (upstream crashes)', () => ({ token: jwt.sign({ iss: 'meet.test' }, { alg: 'HS256', key: 'notused' }), room: roomName(ROOM_ID) }),
      'bad-request', 'Matrix room ID must be given.'],
    ['a room mismatch', () => ({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(OTHER_ROOM_ID) }),
      'access-denied', 'Jitsi room does not match Matrix room'],
    ['a room name that is not base32', () => ({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: 'room1' }),
      'access-denied', 'Jitsi room does not match Matrix room'],
    ['no room at all', () => ({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }) }),
      'access-denied', 'Jitsi room does not match Matrix room'],
  ];
  for (const [what, options, condition, text] of refusals) {
    it(`${what} is refused: ${condition} "${text}"`, async () => {
      const err = await refusedLogin(prosody.httpPort, options());
      assert.equal(err.condition, condition);
      assert.equal(err.text, text);
    });
  }

  it('power_levels: null with sync on refuses cleanly, without a Lua error', async () => {
    const mark = prosody.logMark();
    const before = uvs.hits();
    const err = await refusedLogin(prosody.httpPort, { token: widgetToken({ matrix: matrixFor('@ana:matrix.test', NO_LEVELS_ROOM_ID) }), room: roomName(NO_LEVELS_ROOM_ID) });
    assert.equal(err.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
    assert.equal(uvs.hits(), before + 1, 'UVS was asked and said member, power_levels null');
    const log = prosody.readLog(mark);
    assert.match(log, /REQUEST_COMPLETE reason:no_power_levels/);
    assert.deepEqual(luaErrors(log), []);
  });

  it('a reconnecting participant is answered from the cache, not by UVS again', async () => {
    const token = widgetToken({ matrix: matrixFor('@ana:matrix.test') });
    const before = uvs.hits();
    for (let i = 0; i < 3; i++) {
      const { xmpp } = await connect({ httpPort: prosody.httpPort, token, room: roomName(ROOM_ID) });
      await disconnect(xmpp);
    }
    assert.equal(uvs.hits() - before, 1, 'one UVS call for three logins');
  });

  it('ownership never comes from a cached answer older than 5 s (demoted, same widget token)', async () => {
    const token = widgetToken({ matrix: matrixFor('@demoted:matrix.test') });
    const first = await login({ token, room: roomName(ROOM_ID) });
    assert.equal((await joinAndSync(first.xmpp, roomJid, 'demoted-1')).affiliation, 'owner');
    await disconnect(first.xmpp);
    POWER_LEVELS.users['@demoted:matrix.test'] = 0; // demoted in Matrix
    await new Promise((resolve) => setTimeout(resolve, 5500));
    const before = uvs.hits();
    const again = await login({ token, room: roomName(ROOM_ID) });
    assert.equal(uvs.hits(), before + 1, 'an owner answer older than 5 s is asked again');
    assert.equal((await joinAndSync(again.xmpp, roomJid, 'demoted-2')).affiliation, 'member');
  });

  it('never writes a token to the log, and the whole run logged no Lua error', async () => {
    const log = prosody.readLog();
    for (const token of Object.keys(users)) assert.ok(!log.includes(token), `OpenID token ${token} in the log`);
    assert.ok(!log.includes(UVS_AUTH_TOKEN), 'uvs_auth_token in the log');
    assert.deepEqual(luaErrors(log), []);
  });

});

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

describe('UVS replies that refuse or fail, and the optional iss check', () => {
  let uvs;
  let prosody;
  const clients = [];
  const huge = JSON.stringify({ results: { user: true, room_membership: true }, user_id: '@ana:matrix.test', pad: 'x'.repeat(1 << 20) });

  before(async () => {
    // UVS_OPENID_VERIFY_ANY_HOMESERVER: matrix_server_name is required, else 400 text.
    uvs = await startUvsStandIn({
      verifyAnyHomeserver: true, users,
      rooms: { [ROOM_ID]: { members: ['@ana:matrix.test', '@mod:matrix.test'], powerLevels: null } },
      misbehave: {
        garbage: { body: '<html><body>502 Bad Gateway</body></html>', contentType: 'text/html' },
        huge: { body: huge },
      },
    });
    users.garbage = '@ana:matrix.test';
    users.huge = '@ana:matrix.test';
    prosody = await startProsody({
      name: 'matrix-failures',
      mainHost: {
        authentication: 'matrix_user_verification', app_id: 'meet.test', uvs_base_url: `${uvs.url}/`,
        matrix_user_verification_check_issuer: true, matrix_user_verification_cache_ttl: 0,
      },
      muc: { modules_enabled: ['matrix_room_check'] },
    });
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
    await uvs?.close();
  });

  it('without power sync, power_levels: null admits a member', async () => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    clients.push(xmpp);
  });

  it('matrix_room_check alone (no power sync): the verified room only, for any joiner', async () => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    clients.push(xmpp);
    const other = `${roomName(OTHER_ROOM_ID)}@${MUC_DOMAIN}`;
    // The first joiner would create the room: refused before it exists.
    const err = await joinRoom(xmpp, other, 'ana').then(() => null, (e) => e);
    assert.equal(err?.condition, 'not-allowed');
    assert.equal(err.type, 'cancel');
    assert.equal(err.text, `Jitsi room does not match Matrix room: verified for ${ROOM_ID}, not for ${OTHER_ROOM_ID}`);
    const self = await joinRoom(xmpp, `${roomName(ROOM_ID)}@${MUC_DOMAIN}`, 'ana');
    assert.ok(self.statusCodes.includes(110));
  });

  it('UVS\'s 400 (plain text) is refused with the upstream error', async () => {
    const before = uvs.requests.length;
    const matrix = { token: openid('@ana:matrix.test'), room_id: ROOM_ID };
    const err = await refusedLogin(prosody.httpPort, { token: widgetToken({ matrix }), room: roomName(ROOM_ID) });
    assert.equal(err.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
    assert.equal(uvs.requests.length, before + 1);
    assert.match(prosody.readLog(), /REQUEST_COMPLETE reason:invalid_response \(UVS: http status: 400\)/);
  });

  it('a garbage 200 reply is refused with the upstream error', async () => {
    const err = await refusedLogin(prosody.httpPort, { token: widgetToken({ matrix: { token: 'garbage', room_id: ROOM_ID, server_name: 'matrix.test' } }), room: roomName(ROOM_ID) });
    assert.equal(err.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
  });

  it('a huge reply is cut off at the size limit and fails as unavailable', async () => {
    const err = await refusedLogin(prosody.httpPort, { token: widgetToken({ matrix: { token: 'huge', room_id: ROOM_ID, server_name: 'matrix.test' } }), room: roomName(ROOM_ID) });
    assert.equal(err.condition, 'temporary-auth-failure');
    assert.equal(err.text, 'Matrix user verification service unavailable');
    assert.match(prosody.readLog(), /reply larger than 262144 bytes/);
  });

  it('with the iss check on, an iss other than app_id is refused; app_id passes', async () => {
    const err = await refusedLogin(prosody.httpPort, { token: widgetToken({ matrix: matrixFor('@ana:matrix.test'), iss: 'elsewhere.test' }), room: roomName(ROOM_ID) });
    assert.equal(err.condition, 'access-denied');
    assert.equal(err.text, 'JWT issuer does not match app_id');
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: widgetToken({ matrix: matrixFor('@ana:matrix.test'), iss: 'meet.test' }), room: roomName(ROOM_ID) });
    clients.push(xmpp);
  });

  it('a wrong uvs_auth_token gets UVS\'s 403 {} and is refused with the upstream error', async (t) => {
    const guarded = await startUvsStandIn({ authToken: UVS_AUTH_TOKEN, users, rooms: { [ROOM_ID]: { members: ['@ana:matrix.test'], powerLevels: POWER_LEVELS } } });
    const wrong = await startProsody({
      name: 'matrix-403',
      mainHost: { authentication: 'matrix_user_verification', uvs_base_url: guarded.url, uvs_auth_token: 'not-the-bearer' },
    });
    t.after(async () => { await wrong.stop(); await guarded.close(); });
    const err = await refusedLogin(wrong.httpPort, { token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    assert.equal(err.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
    assert.equal(guarded.requests[0].headers.authorization, 'Bearer not-the-bearer');
    assert.match(wrong.readLog(), /warn\t.*REQUEST_COMPLETE reason:invalid_response \(UVS: http status: 403 \(check uvs_auth_token\)\)/);
  });

  it('a UVS that refuses connections fails the login as unavailable, at once', async (t) => {
    const down = await startProsody({
      name: 'matrix-refused',
      mainHost: { authentication: 'matrix_user_verification', uvs_base_url: `http://127.0.0.1:${await closedPort()}` },
    });
    t.after(() => down.stop());
    const t0 = performance.now();
    const err = await refusedLogin(down.httpPort, { token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    assert.equal(err.condition, 'temporary-auth-failure');
    assert.equal(err.text, 'Matrix user verification service unavailable');
    assert.ok(performance.now() - t0 < 2000, 'no waiting for a timeout');
    assert.deepEqual(luaErrors(down.readLog()), []);
  });
});

describe('a UVS that takes 10 s for one login stalls nobody else', () => {
  let uvs;
  let prosody;
  const clients = [];

  before(async () => {
    uvs = await startUvsStandIn({
      users, rooms: { [ROOM_ID]: { members: ['@ana:matrix.test', '@slow:matrix.test'], powerLevels: POWER_LEVELS } },
      misbehave: { 'slow-openid': { delayMs: 10_000 }, 'slowish-openid': { delayMs: 1500 } },
    });
    users['slow-openid'] = '@slow:matrix.test';
    users['slowish-openid'] = '@slow:matrix.test';
    prosody = await startProsody({
      name: 'matrix-slow',
      global: { modules_enabled: ['e2e_session_probe'] },
      mainHost: {
        authentication: 'matrix_user_verification', uvs_base_url: uvs.url, uvs_sync_power_levels: true,
        matrix_user_verification_timeout: 3,
      },
    });
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
    await uvs?.close();
  });

  it('others log in and ping without delay; the slow login fails cleanly at the 3 s timeout', async () => {
    const member = () => ({ token: widgetToken({ matrix: matrixFor('@ana:matrix.test') }), room: roomName(ROOM_ID) });
    const bystander = await connect({ httpPort: prosody.httpPort, ...member() });
    clients.push(bystander.xmpp);

    const started = performance.now();
    const stuck = connect({ httpPort: prosody.httpPort, token: widgetToken({ matrix: { token: 'slow-openid', room_id: ROOM_ID } }), room: roomName(ROOM_ID) })
      .then(() => ({ ok: true }), (err) => ({ err, ms: performance.now() - started }));

    // While that login waits for UVS, others log in (each asking UVS) and the bystander pings.
    const logins = [];
    const pings = [];
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      const { xmpp } = await connect({ httpPort: prosody.httpPort, ...member() });
      logins.push(performance.now() - t0);
      clients.push(xmpp);
      pings.push(await ping(bystander.xmpp));
    }
    const windowMs = performance.now() - started;
    const outcome = await stuck;
    console.log(`# while UVS took 10 s for one login: ${logins.length} other logins (each a UVS call), median ` +
      `${median(logins).toFixed(1)} ms, max ${Math.max(...logins).toFixed(1)} ms; ping median ${median(pings).toFixed(1)} ms, ` +
      `max ${Math.max(...pings).toFixed(1)} ms; all within ${windowMs.toFixed(0)} ms of the slow login starting; ` +
      `the slow login failed after ${outcome.ms?.toFixed(0)} ms`);
    assert.ok(windowMs < 2500, `the other logins overlapped the slow one (${windowMs} ms)`);
    assert.ok(Math.max(...logins) < 1000, `logins took ${logins.map(Math.round)} ms`);
    assert.ok(Math.max(...pings) < 500, `pings took ${pings.map(Math.round)} ms`);

    assert.ok(!outcome.ok, 'the login UVS never answered in time must fail');
    assert.equal(outcome.err.condition, 'temporary-auth-failure');
    assert.equal(outcome.err.text, 'Matrix user verification service unavailable');
    assert.ok(outcome.ms >= 2800 && outcome.ms < 5000, `failed after ${outcome.ms} ms`);
    assert.match(prosody.readLog(), /warn\t.*REQUEST_COMPLETE reason:uvs_timeout \(no answer to the verification: timed out after 3000 ms\)/);

    // And the server is as responsive afterwards.
    assert.ok((await ping(bystander.xmpp)) < 500);
  });

  it('two logins at once keep their own identity (stock keeps the token in a global while it waits)', async () => {
    const probe = async (xmpp) => JSON.parse((await xmpp.iqCaller.request(xml('iq', { type: 'get', to: xmpp.jid.domain },
      xml('query', { xmlns: 'urn:gatehouse:e2e:session-probe' })), 5000)).getChildText('query', 'urn:gatehouse:e2e:session-probe'));
    const first = connect({ httpPort: prosody.httpPort, room: roomName(ROOM_ID),
      token: widgetToken({ user: { name: 'First' }, matrix: { token: 'slowish-openid', room_id: ROOM_ID, server_name: 'matrix.test' } }) });
    await new Promise((resolve) => setTimeout(resolve, 300)); // the first now waits for UVS
    const second = await connect({ httpPort: prosody.httpPort, room: roomName(ROOM_ID),
      token: widgetToken({ user: { name: 'Second' }, matrix: matrixFor('@ana:matrix.test') }) });
    const firstSession = await first;
    clients.push(firstSession.xmpp, second.xmpp);
    assert.equal((await probe(firstSession.xmpp)).jitsi_meet_context_user?.name, 'First');
    assert.equal((await probe(second.xmpp)).jitsi_meet_context_user?.name, 'Second');
  });
});
