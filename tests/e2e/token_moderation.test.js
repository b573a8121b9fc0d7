// mod_token_moderation against a real Prosody: the verified token decides owner or member, in
// the first self-presence and only for a join every gate admitted; nobody else makes owners or
// moderators; the server's own affiliation changes go through; Jicofo's focus user (an admin)
// gets no errors for its owner grants. Also with stock-mod_auth_token-shaped sessions, with a
// lobby, and next to jitsi-meet's real mod_muc_flip (from ../shared/upstream).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN, DEFAULT_PLUGIN_PATHS } from './lib/prosody.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV } from './lib/upstream.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, configureRoom, disconnect, xml } from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';

const token = (extra = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', ...extra }), { alg: 'HS256', key: SECRET });
const bare = (jid) => jid.split('/')[0];

function testBed(name, { global = {}, mucModules = [], muc = {}, pluginPaths, env } = {}) {
  const bed = { clients: [] };
  bed.start = async () => {
    bed.prosody = await startProsody({
      name,
      global,
      pluginPaths,
      env,
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
      muc: { modules_enabled: ['gatehouse_token_verification', 'token_moderation', ...mucModules], ...muc },
    });
    const focus = await connectFocus({ httpPort: bed.prosody.httpPort });
    bed.focus = focus.xmpp;
    bed.focusJid = focus.jid;
    bed.clients.push(bed.focus);
  };
  bed.stop = async () => {
    await Promise.all(bed.clients.map(disconnect));
    await bed.prosody?.stop();
  };
  bed.room = async (node) => {
    const roomJid = `${node}@${MUC_DOMAIN}`;
    bed.focusSelf = await createRoomAsFocus(bed.focus, roomJid);
    return roomJid;
  };
  /** Logs in with a token carrying `claims`; joins `roomJid` unless it is null. */
  bed.join = async (roomJid, nick, claims, options) => {
    const user = await bed.login(claims);
    const self = roomJid ? await joinRoom(user.xmpp, roomJid, nick, options) : null;
    return { ...user, self };
  };
  /** Logs in with a token carrying `claims`; resolves { xmpp, jid, bare }. */
  bed.login = async (claims) => {
    const { xmpp, jid } = await connect({ httpPort: bed.prosody.httpPort, token: token(claims) });
    bed.clients.push(xmpp);
    return { xmpp, jid, bare: bare(jid) };
  };
  return bed;
}

/** muc#admin: `actor` sets `affiliation` for `targetBare`; resolves null or the stanza error. */
function setAffiliation(actor, roomJid, targetBare, affiliation) {
  return actor.iqCaller.request(
    xml('iq', { type: 'set', to: roomJid },
      xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { jid: targetBare, affiliation }))),
    5000,
  ).then(() => null, (err) => err);
}

/** muc#admin: `actor` sets the role of the occupant `nick`; resolves null or the stanza error. */
function setRole(actor, roomJid, nick, role) {
  return actor.iqCaller.request(
    xml('iq', { type: 'set', to: roomJid },
      xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { nick, role }))),
    5000,
  ).then(() => null, (err) => err);
}

/** The room's list of `affiliation` (owner, admin, member), as an owner sees it. */
async function affiliated(owner, roomJid, affiliation) {
  const reply = await owner.iqCaller.request(
    xml('iq', { type: 'get', to: roomJid },
      xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { affiliation }))),
    5000,
  );
  return reply.getChild('query', NS_MUC_ADMIN).getChildren('item').map((item) => item.attrs.jid);
}
const owners = (owner, roomJid) => affiliated(owner, roomJid, 'owner');

/** Every affiliation a user holds in the room ([] for none), as focus (an owner) sees it. */
async function affiliationsOf(owner, roomJid, userBare) {
  const found = [];
  for (const affiliation of ['owner', 'admin', 'member', 'outcast']) {
    if ((await affiliated(owner, roomJid, affiliation)).includes(userBare)) found.push(affiliation);
  }
  return found;
}

/** The error `user`'s join is refused with (fails the test if the join succeeds). */
async function refusedJoin(user, roomJid, nick, options) {
  const err = await joinRoom(user.xmpp, roomJid, nick, options).then(() => null, (e) => e);
  assert.ok(err, `${nick} should have been refused`);
  return err;
}

describe('token moderation', () => {
  const bed = testBed('token-moderation');
  before(bed.start);
  after(bed.stop);

  it('moderator: true ⇒ owner in the first self-presence', async () => {
    const room = await bed.room('mod1');
    const { self } = await bed.join(room, 'boss', { moderator: true });
    assert.equal(self.affiliation, 'owner');
    assert.equal(self.role, 'moderator');
  });

  for (const [what, claims] of [
    ['moderator: false', { moderator: false }],
    ['no moderator claim', {}],
    ['moderator: "true" (a string)', { moderator: 'true' }],
    ['moderator: false with context.user.affiliation owner', { moderator: false, context: { user: { affiliation: 'owner' } } }],
  ]) {
    it(`${what} ⇒ member`, async () => {
      const room = await bed.room('mod2');
      const { self } = await bed.join(room, `m${Math.random().toString(36).slice(2, 8)}`, claims);
      assert.equal(self.affiliation, 'member');
      assert.equal(self.role, 'participant');
    });
  }

  it('jitsi-meet\'s context.user convention makes owners', async () => {
    const room = await bed.room('mod3');
    for (const [nick, user] of [['t1', { moderator: true }], ['t2', { moderator: 'true' }], ['t3', { affiliation: 'teacher' }]]) {
      const { self } = await bed.join(room, nick, { context: { user } });
      assert.equal(self.affiliation, 'owner', nick);
    }
  });

  it('a member cannot make themselves owner; a token moderator cannot make a member owner', async () => {
    const room = await bed.room('mod4');
    const member = await bed.join(room, 'member', {});
    const boss = await bed.join(room, 'boss', { moderator: true });

    const self = await setAffiliation(member.xmpp, room, member.bare, 'owner');
    assert.ok(self, 'self-promotion must be refused');
    assert.ok(['not-allowed', 'not-acceptable'].includes(self.condition), self.condition);

    const byOwner = await setAffiliation(boss.xmpp, room, member.bare, 'owner');
    assert.equal(byOwner?.condition, 'not-acceptable');

    const list = await owners(boss.xmpp, room);
    assert.ok(!list.includes(member.bare), 'still not an owner');
    assert.ok(list.includes(boss.bare));
  });

  it('a token member cannot create a room (the room check refuses it, as upstream), so never owns one', async () => {
    const err = await bed.join(`fresh${Date.now()}@${MUC_DOMAIN}`, 'creator', {}).then(() => null, (e) => e);
    assert.equal(err?.condition, 'not-allowed');
    assert.equal(err.text, 'Room does not exist');
  });

  it('a token holder whose first join is refused owns nothing in the room it tried to create', async () => {
    const roomJid = `squat${Date.now()}@${MUC_DOMAIN}`;
    const creator = await bed.login({});
    // Prosody makes the creator owner before checking the join; an invisible nick is refused after.
    assert.equal((await refusedJoin(creator, roomJid, ' ')).condition, 'not-allowed');
    const config = await configureRoom(creator.xmpp, roomJid, { 'muc#roomconfig_roomsecret': 'squatted' })
      .then(() => null, (e) => e);
    assert.ok(config, 'the creator could configure the room');
    // With the room check loaded (as upstream's verify_room) the room was never even created.
    const err = await bed.join(roomJid, 'creator', {}).then(() => null, (e) => e);
    assert.equal(err?.text, 'Room does not exist');
  });

  it('a refused join leaves no affiliation behind, so a lobby turned on later still holds', async () => {
    const room = await bed.room('gate1');
    await configureRoom(bed.focus, room, { 'muc#roomconfig_roomsecret': 'pw1' });
    const member = await bed.login({});
    const boss = await bed.login({ moderator: true });
    assert.equal((await refusedJoin(member, room, 'member')).condition, 'not-authorized');
    assert.equal((await refusedJoin(boss, room, 'boss', { password: 'wrong' })).condition, 'not-authorized');
    assert.deepEqual(await affiliationsOf(bed.focus, room, member.bare), [], 'no member left behind');
    assert.deepEqual(await affiliationsOf(bed.focus, room, boss.bare), [], 'no owner left behind');

    await configureRoom(bed.focus, room, { 'muc#roomconfig_membersonly': 1 });
    assert.equal((await refusedJoin(member, room, 'member', { password: 'pw1' })).condition, 'registration-required',
      'the member waits like everyone else');
    // An owner by token goes past members-only only with the password (as Jitsi's lobby lets a
    // right password through), and is owner from the first presence.
    assert.equal((await refusedJoin(boss, room, 'boss', { password: 'wrong' })).condition, 'registration-required');
    assert.deepEqual(await affiliationsOf(bed.focus, room, boss.bare), []);
    const self = await joinRoom(boss.xmpp, room, 'boss', { password: 'pw1' });
    assert.equal(self.affiliation, 'owner');
    assert.equal(self.role, 'moderator');
  });

  it('joining with a nick another user holds changes nothing for either of them', async () => {
    const room = await bed.room('nick1');
    const victim = await bed.join(room, 'victim', { moderator: true });
    const quiet = await bed.join(room, 'quiet', {});
    const attacker = await bed.login({});
    const boss = await bed.login({ moderator: true });
    assert.equal((await refusedJoin(attacker, room, 'victim')).condition, 'conflict');
    assert.equal((await refusedJoin(boss, room, 'quiet')).condition, 'conflict');
    assert.deepEqual(await affiliationsOf(bed.focus, room, victim.bare), ['owner'], 'the owner is not demoted');
    assert.deepEqual(await affiliationsOf(bed.focus, room, quiet.bare), ['member'], 'the member is not promoted');
    assert.deepEqual(await affiliationsOf(bed.focus, room, attacker.bare), []);
    assert.deepEqual(await affiliationsOf(bed.focus, room, boss.bare), []);
  });

  it('an owner cannot make a token member a moderator by role or by the admin affiliation', async () => {
    const room = await bed.room('role1');
    const member = await bed.join(room, 'member', {});
    const boss = await bed.join(room, 'boss', { moderator: true });

    const byRole = await setRole(boss.xmpp, room, 'member', 'moderator');
    assert.equal(byRole?.condition, 'not-acceptable');
    const byAdmin = await setAffiliation(boss.xmpp, room, member.bare, 'admin');
    assert.equal(byAdmin?.condition, 'not-acceptable');
    assert.deepEqual(await affiliationsOf(bed.focus, room, member.bare), ['member']);

    // Ordinary moderation still works: voice, and a server admin's decision.
    assert.equal(await setRole(boss.xmpp, room, 'member', 'visitor'), null);
    assert.equal(await setRole(boss.xmpp, room, 'member', 'participant'), null);
    assert.equal(await setRole(bed.focus, room, 'member', 'moderator'), null, 'server admins decide on purpose');
  });

  it('focus is owner; its grants to members are acknowledged without effect, to moderators applied', async () => {
    const room = await bed.room('mod5');
    assert.equal(bed.focusSelf.affiliation, 'owner');
    const member = await bed.join(room, 'member', {});
    const boss = await bed.join(room, 'boss', { moderator: true });

    assert.equal(await setAffiliation(bed.focus, room, member.bare, 'owner'), null, 'no error for Jicofo');
    assert.equal(await setAffiliation(bed.focus, room, boss.bare, 'owner'), null);
    const list = await owners(bed.focus, room);
    assert.ok(!list.includes(member.bare), 'the member did not become owner');
    assert.ok(list.includes(boss.bare));

    // Other changes by focus still go the normal way.
    assert.equal(await setAffiliation(bed.focus, room, member.bare, 'none'), null);
  });
});

describe('token moderation with stock mod_auth_token sessions and a lobby', () => {
  // e2e_stock_session drops the claims table gatehouse's provider keeps on the session, as the
  // stock provider has none: moderation must read the verified-token event instead.
  const bed = testBed('token-moderation-lobby', {
    global: { modules_enabled: ['e2e_stock_session'] },
    mucModules: ['token_security_ondemand', 'e2e_lobby_standin'],
  });
  before(bed.start);
  after(bed.stop);

  it('reads the moderator claim from the verified-token event', async () => {
    const room = await bed.room('stock1');
    assert.equal((await bed.join(room, 'boss', { moderator: true })).self.affiliation, 'owner');
    assert.equal((await bed.join(room, 'member', { moderator: false })).self.affiliation, 'member');
  });

  it('with the lobby on, moderators get in as owners and members wait', async () => {
    const room = await bed.room('stock2');
    const closer = await bed.join(room, 'closer', { moderator: true, context: { room: { lobby: true } } });
    assert.equal(closer.self.affiliation, 'owner');
    await bed.prosody.waitForLog(/observed create-persistent-lobby-room room=stock2@/);

    assert.equal((await bed.join(room, 'boss2', { moderator: true })).self.affiliation, 'owner');
    const err = await bed.join(room, 'waiting', {}).then(() => null, (e) => e);
    assert.equal(err?.condition, 'registration-required');
    const bypass = await bed.join(room, 'bypass', { context: { user: { security_bypass: true } } });
    assert.equal(bypass.self.affiliation, 'member');
    const modBypass = await bed.join(room, 'boss3', { moderator: true, context: { user: { security_bypass: true } } });
    assert.equal(modBypass.self.affiliation, 'owner');
  });
});

describe('token moderation next to jitsi-meet\'s mod_muc_flip (the server\'s own affiliation changes)', () => {
  const bed = testBed('token-moderation-flip', {
    mucModules: ['muc_flip'],
    muc: { muc_mapper_domain_base: 'meet.test' },
    pluginPaths: [...DEFAULT_PLUGIN_PATHS, UPSTREAM_PLUGIN_PATHS[0]],
    env: UPSTREAM_ENV,
  });
  before(bed.start);
  after(bed.stop);

  it('a moderator who moves to another device keeps ownership: room:set_affiliation(true, …) applies', async () => {
    const room = await bed.room('flip1');
    const context = { user: { id: 'flip-user', name: 'Flip' }, features: { flip: true } };
    const first = await bed.join(room, 'device1', { moderator: true, context });
    assert.equal(first.self.affiliation, 'owner');

    // The second device's token alone makes a member; mod_muc_flip hands it the first
    // device's owner affiliation after the join (muc-occupant-joined) and removes device1.
    const second = await bed.login({ context });
    const self = await joinRoom(second.xmpp, room, 'device2', { extraChildren: [xml('flip_device', {})] });
    assert.equal(self.affiliation, 'member');
    await bed.prosody.waitForLog(/Kick participant jid .* from main room jid flip1@/);
    assert.deepEqual(await affiliationsOf(bed.focus, room, second.bare), ['owner']);
  });
});
