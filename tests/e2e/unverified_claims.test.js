// Privileges come only from claims a signature-verifying provider verified (token_moderation,
// token_security_ondemand, token_lobby_bypass). In one real Prosody:
// a Matrix widget token (HS256 with the public secret "notused", admitted by
// mod_auth_matrix_user_verification against the LOCAL UVS STAND-IN of lib/uvs.js), a guest on an
// anonymous host who connects with ?token= (a correctly signed token, or a forged one), all
// carrying every privileged claim there is. None of them becomes owner or member by token, skips
// a password or the lobby, or changes the room; the same claims in a verified token do all of
// it (so each check can fail). Then the same MUC modules behind jitsi-meet's own mod_auth_token
// (unmodified, from ../shared/upstream), which hands verified claims over in its
// jitsi-authentication-token-verified event.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProsody, MUC_DOMAIN, DEFAULT_PLUGIN_PATHS } from './lib/prosody.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV } from './lib/upstream.js';
import {
  connect, connectFocus, joinRoom, createRoomAsFocus, configureRoom, disconnect, refusedLogin, xml,
} from './lib/client.js';
import { startUvsStandIn, roomName } from './lib/uvs.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const GUEST_DOMAIN = 'guest.meet.test';
const MATRIX_DOMAIN = 'matrix.meet.test';
const UVS_AUTH_TOKEN = 'uvs-e2e-bearer';
const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';
const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';

// Every claim that carries a privilege in some module, at once.
const PRIVILEGED_USER = { name: 'Mallory', moderator: true, security_bypass: true, lobby_bypass: true, affiliation: 'owner' };
const privileged = (room) => ({ moderator: true, context: { user: PRIVILEGED_USER, room } });

// Each test's rooms have their own Matrix room ID, so the Jitsi room name is its base32.
let roomSerial = 0;
const matrixRooms = {};
let openidSerial = 0;
const openidUsers = {};

function newRoomId() {
  const roomId = `!room${++roomSerial}abc:matrix.test`;
  matrixRooms[roomId] = { members: ['@mallory:matrix.test', '@ana:matrix.test'], powerLevels: { users: {} } };
  return roomId;
}

/** The widget JWT Element makes, with the attacker's claims added (signed with "notused"). */
function widgetToken(roomId, extraClaims) {
  const openid = `openid-${++openidSerial}`;
  openidUsers[openid] = '@mallory:matrix.test';
  const claims = privileged(extraClaims);
  return jwt.sign({
    iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*', ...claims,
    context: { ...claims.context, matrix: { token: openid, room_id: roomId, server_name: 'matrix.test' } },
  }, { alg: 'HS256', key: 'notused' });
}

const validToken = (claims) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', ...claims }), { alg: 'HS256', key: SECRET });

/** The error a join is refused with (fails the test if the join succeeds). */
async function refusedJoin(xmpp, roomJid, nick, options) {
  const err = await joinRoom(xmpp, roomJid, nick, options).then(() => null, (e) => e);
  assert.ok(err, `${nick} should have been refused`);
  return err;
}

function testBed(name, mainHost, extra = {}) {
  const bed = { clients: [] };
  bed.start = async () => {
    bed.uvs = await startUvsStandIn({ authToken: UVS_AUTH_TOKEN, users: openidUsers, rooms: matrixRooms });
    bed.prosody = await startProsody({
      name,
      mainHost,
      hosts: {
        [GUEST_DOMAIN]: { authentication: 'anonymous' },
        [MATRIX_DOMAIN]: {
          authentication: 'matrix_user_verification', app_id: 'meet.test',
          uvs_base_url: bed.uvs.url, uvs_auth_token: UVS_AUTH_TOKEN,
        },
      },
      muc: { modules_enabled: ['token_moderation', 'token_security_ondemand', 'token_lobby_bypass'] },
      ...extra,
    });
    bed.focus = (await connectFocus({ httpPort: bed.prosody.httpPort })).xmpp;
    bed.clients.push(bed.focus);
  };
  bed.stop = async () => {
    await Promise.all(bed.clients.map(disconnect));
    await bed.prosody?.stop();
    await bed.uvs?.close();
  };
  bed.login = async (options) => {
    const session = await connect({ httpPort: bed.prosody.httpPort, ...options });
    bed.clients.push(session.xmpp);
    return session.xmpp;
  };
  /** A room focus created (as Jicofo does), named after a fresh Matrix room ID. */
  bed.room = async (config) => {
    const roomId = newRoomId();
    const roomJid = `${roomName(roomId)}@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, roomJid);
    if (config) await configureRoom(bed.focus, roomJid, config);
    return { roomId, roomJid };
  };
  /** An attacker of each kind, holding `contextRoom` as context.room beside every user privilege. */
  bed.attackers = (roomId, contextRoom) => ({
    'a Matrix widget token': () => bed.login({ domain: MATRIX_DOMAIN, token: widgetToken(roomId, contextRoom), room: roomName(roomId) }),
    'a guest with a correctly signed ?token=': () => bed.login({ domain: GUEST_DOMAIN, token: validToken(privileged(contextRoom)) }),
    'a guest with a forged ?token=': () => bed.login({
      domain: GUEST_DOMAIN, token: jwt.corruptSignature(validToken(privileged(contextRoom))),
    }),
  });
  return bed;
}

/** The room's list of `affiliation`, as focus (an owner) sees it. */
async function affiliated(owner, roomJid, affiliation) {
  const reply = await owner.iqCaller.request(
    xml('iq', { type: 'get', to: roomJid }, xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { affiliation }))), 5000);
  return reply.getChild('query', NS_MUC_ADMIN).getChildren('item').map((item) => item.attrs.jid);
}

/** The room's password-protected and members-only flags, from its configuration form. */
async function roomLocks(owner, roomJid) {
  const reply = await owner.iqCaller.request(
    xml('iq', { type: 'get', to: roomJid }, xml('query', { xmlns: NS_MUC_OWNER })), 5000);
  const value = (name) => reply.getChild('query', NS_MUC_OWNER).getChild('x', 'jabber:x:data')
    .getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value');
  return { password: value('muc#roomconfig_roomsecret') || '', membersOnly: ['1', 'true'].includes(value('muc#roomconfig_membersonly')) };
}

describe('claims nobody verified carry no privilege (gatehouse_token, a guest host, Matrix widget tokens)', () => {
  const bed = testBed('unverified-claims', { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET });
  before(bed.start);
  after(bed.stop);

  it('a forged token is refused at login on the token host', async () => {
    const err = await refusedLogin(bed.prosody.httpPort, { token: jwt.corruptSignature(validToken(privileged({}))) });
    assert.equal(err.condition, 'not-allowed');
  });

  for (const kind of ['a Matrix widget token', 'a guest with a correctly signed ?token=', 'a guest with a forged ?token=']) {
    it(`${kind}: no owner, no member, no room change`, async () => {
      const { roomId, roomJid } = await bed.room();
      const xmpp = await bed.attackers(roomId, { lobby: true, password: 'locked-out' })[kind]();
      const self = await joinRoom(xmpp, roomJid, 'mallory');
      assert.equal(self.affiliation, 'none');
      assert.equal(self.role, 'participant');
      assert.deepEqual(await roomLocks(bed.focus, roomJid), { password: '', membersOnly: false }, 'room unchanged');
      assert.ok(!(await affiliated(bed.focus, roomJid, 'member')).includes(xmpp.jid.bare().toString()));
      await joinRoom(await bed.login({ domain: GUEST_DOMAIN }), roomJid, 'plain-guest'); // still open
    });

    it(`${kind}: no way past a password or the lobby`, async () => {
      const { roomId, roomJid } = await bed.room({ 'muc#roomconfig_roomsecret': 'pw' });
      const attackers = bed.attackers(roomId, { lobby: false, password: '' });
      assert.equal((await refusedJoin(await attackers[kind](), roomJid, 'mallory')).condition, 'not-authorized');
      await configureRoom(bed.focus, roomJid, { 'muc#roomconfig_roomsecret': '', 'muc#roomconfig_membersonly': 1 });
      assert.equal((await refusedJoin(await attackers[kind](), roomJid, 'mallory2')).condition, 'registration-required');
      assert.deepEqual(await roomLocks(bed.focus, roomJid), { password: '', membersOnly: true });
    });
  }

  it('the same claims in a verified token do all of it (the checks above can fail)', async () => {
    const { roomJid } = await bed.room();
    const xmpp = await bed.login({ token: validToken(privileged({ lobby: true, password: 'locked-out' })) });
    const self = await joinRoom(xmpp, roomJid, 'verified');
    assert.equal(self.affiliation, 'owner');
    assert.deepEqual(await roomLocks(bed.focus, roomJid), { password: 'locked-out', membersOnly: true });
    const bypass = await bed.login({ token: validToken(privileged({})) });
    assert.equal((await joinRoom(bypass, roomJid, 'bypass')).affiliation, 'owner', 'past password and lobby');
  });
});

describe('the same MUC modules behind jitsi-meet\'s stock mod_auth_token (upstream, unmodified)', () => {
  const bed = testBed('stock-provider', { authentication: 'token', app_id: APP_ID, app_secret: SECRET }, {
    pluginPaths: [...DEFAULT_PLUGIN_PATHS, UPSTREAM_PLUGIN_PATHS[0]],
    env: UPSTREAM_ENV,
  });
  before(bed.start);
  after(bed.stop);

  it('honours what it verified: owner, security and lobby bypass, room changes', async () => {
    const { roomJid } = await bed.room();
    const owner = await bed.login({ token: validToken(privileged({ password: 'pw-stock' })) });
    assert.equal((await joinRoom(owner, roomJid, 'owner')).affiliation, 'owner');
    assert.deepEqual(await roomLocks(bed.focus, roomJid), { password: 'pw-stock', membersOnly: false });

    const member = await bed.login({ token: validToken({ context: { user: { name: 'M' } } }) });
    assert.equal((await refusedJoin(member, roomJid, 'member')).condition, 'not-authorized');
    const self = await joinRoom(member, roomJid, 'member', { password: 'pw-stock' });
    assert.equal(self.affiliation, 'member');
    const bypass = await bed.login({ token: validToken({ context: { user: { name: 'B', security_bypass: true } } }) });
    await joinRoom(bypass, roomJid, 'bypass');

    // The lobby (members-only on this plain Prosody): lobby_bypass lets its holder in.
    await configureRoom(bed.focus, roomJid, { 'muc#roomconfig_roomsecret': '', 'muc#roomconfig_membersonly': 1 });
    const knocker = await bed.login({ token: validToken({ context: { user: { name: 'K' } } }) });
    assert.equal((await refusedJoin(knocker, roomJid, 'knocker')).condition, 'registration-required');
    const walker = await bed.login({ token: validToken({ context: { user: { name: 'W', lobby_bypass: true } } }) });
    assert.equal((await joinRoom(walker, roomJid, 'walker')).affiliation, 'member');
  });

  it('and still gives nothing to a guest\'s ?token= or a Matrix widget token', async () => {
    const { roomId, roomJid } = await bed.room({ 'muc#roomconfig_roomsecret': 'pw' });
    for (const [kind, attacker] of Object.entries(bed.attackers(roomId, { password: '' }))) {
      assert.equal((await refusedJoin(await attacker(), roomJid, 'mallory')).condition, 'not-authorized', kind);
    }
    await refusedLogin(bed.prosody.httpPort, { token: jwt.corruptSignature(validToken(privileged({}))) });
  });
});
