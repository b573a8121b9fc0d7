// mod_token_lobby_bypass against a real Prosody: a verified token with
// context.user.lobby_bypass = true walks past the lobby as a member, in its first self-presence;
// everyone else knocks. Three times: with Jitsi's real lobby (jitsi-meet's mod_muc_lobby_rooms
// and mod_persistent_lobby, unmodified, from ../shared/upstream, with a lobby component), with
// the test stand-in mod_e2e_lobby_standin (which answers Jitsi's lobby events and gates joins as
// mod_muc_lobby_rooms does) and on a plain Prosody, where the room's members-only mode is the
// lobby. The lobby is turned on by a token (mod_token_security_ondemand), as in a deployment.
// Unverified tokens carrying the claim are in unverified_claims.test.js; the comparison with
// jitsi-contrib's module in differential/lobby_bypass.test.js.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN, DOMAIN, DEFAULT_PLUGIN_PATHS } from './lib/prosody.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV } from './lib/upstream.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, configureRoom, disconnect, xml, affiliationOf } from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const JITMEET = 'http://jitsi.org/jitmeet';
const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';

const token = (claims) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', ...claims }), { alg: 'HS256', key: SECRET });
const user = (fields) => ({ context: { user: { name: 'U', ...fields } } });
const BYPASS = user({ lobby_bypass: true });
const LOBBY_ON = { context: { room: { lobby: true } } };

// Jitsi's own lobby, as a Jitsi install wires it: the modules on the main VirtualHost, the
// lobby rooms on their own MUC component.
const JITSI_LOBBY = {
  mainHost: { modules_enabled: ['muc_lobby_rooms', 'persistent_lobby'], lobby_muc: `lobby.${DOMAIN}`, main_muc: MUC_DOMAIN },
  muc: { muc_mapper_domain_base: DOMAIN },
  components: { [`lobby.${DOMAIN}`]: { type: 'muc', muc_room_locking: false, muc_room_default_public_jids: true } },
  pluginPaths: [...DEFAULT_PLUGIN_PATHS, UPSTREAM_PLUGIN_PATHS[0]],
  env: UPSTREAM_ENV,
};

function testBed(name, mucModules, deployment = {}) {
  const bed = { clients: [] };
  bed.start = async () => {
    bed.prosody = await startProsody({
      name,
      ...deployment,
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET, ...deployment.mainHost },
      muc: {
        modules_enabled: ['gatehouse_token_verification', 'token_security_ondemand', 'token_lobby_bypass', ...mucModules],
        ...deployment.muc,
      },
    });
    bed.focus = (await connectFocus({ httpPort: bed.prosody.httpPort })).xmpp;
    bed.clients.push(bed.focus);
  };
  bed.stop = async () => {
    await Promise.all(bed.clients.map(disconnect));
    await bed.prosody?.stop();
  };
  bed.login = async (claims) => {
    const { xmpp, jid } = await connect({ httpPort: bed.prosody.httpPort, token: token(claims) });
    bed.clients.push(xmpp);
    return { xmpp, bare: jid.split('/')[0] };
  };
  /** A room focus created; a token holder turns its lobby on (unless `lobby` is false). */
  bed.room = async (node, { lobby = true } = {}) => {
    const roomJid = `${node}@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, roomJid);
    if (lobby) await joinRoom((await bed.login(LOBBY_ON)).xmpp, roomJid, 'opener');
    return roomJid;
  };
  bed.refused = async (roomJid, nick, claims, options) => {
    const err = await joinRoom((await bed.login(claims)).xmpp, roomJid, nick, options).then(() => null, (e) => e);
    assert.ok(err, `${nick} should have been refused`);
    return err;
  };
  return bed;
}

/** muc#admin: focus sets `affiliation` for `bareJid`. */
const setAffiliation = (focus, roomJid, bareJid, affiliation) => focus.iqCaller.request(
  xml('iq', { type: 'set', to: roomJid }, xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { jid: bareJid, affiliation }))), 5000);

for (const [mode, label, mucModules, deployment, knocksAtLobbyRoom] of [
  ["Jitsi's lobby (mod_muc_lobby_rooms, upstream)", 'jitsi', [], JITSI_LOBBY, true],
  ["Jitsi's lobby (test stand-in)", 'standin', ['e2e_lobby_standin'], {}, true],
  ['a plain Prosody (members-only is the lobby)', 'plain', [], {}, false],
]) {
  describe(`token lobby bypass with ${mode}`, () => {
    const bed = testBed(`lobby-bypass-${label}`, mucModules, deployment);
    before(bed.start);
    after(bed.stop);

    it('lobby_bypass: true walks past the lobby as a member, in the first self-presence', async () => {
      const room = await bed.room('lb1');
      const { xmpp } = await bed.login(BYPASS);
      const self = await joinRoom(xmpp, room, 'bypass');
      assert.equal(self.affiliation, 'member');
      assert.equal(self.role, 'participant');
    });

    for (const [what, claims] of [
      ['lobby_bypass: false', user({ lobby_bypass: false })],
      ['lobby_bypass: "true" (a string)', user({ lobby_bypass: 'true' })],
      ['lobby_bypass: 1', user({ lobby_bypass: 1 })],
      ['no lobby_bypass claim', user({})],
      ['lobby_bypass at the top level instead of context.user', { lobby_bypass: true }],
    ]) {
      it(`${what} knocks`, async () => {
        const room = await bed.room(`lb2${Math.random().toString(36).slice(2, 8)}`);
        const err = await bed.refused(room, 'knocker', claims);
        assert.equal(err.condition, 'registration-required');
        const lobbyRoom = err.children.some((c) => c.name === 'lobbyroom' && c.xmlns === JITMEET);
        assert.equal(lobbyRoom, knocksAtLobbyRoom, JSON.stringify(err.children));
      });
    }

    it('in a room without a lobby it grants nothing', async () => {
      const room = await bed.room('lb3', { lobby: false });
      const { xmpp } = await bed.login(BYPASS);
      assert.equal((await joinRoom(xmpp, room, 'bypass')).affiliation, 'none');
    });

    it('does not lift a ban', async () => {
      const room = await bed.room('lb4');
      const banned = await bed.login(BYPASS);
      await setAffiliation(bed.focus, room, banned.bare, 'outcast');
      const err = await joinRoom(banned.xmpp, room, 'banned').then(() => null, (e) => e);
      // The lobby (-4) answers before the ban check (-10); either way the user stays out, banned.
      assert.equal(err?.condition, 'registration-required');
      const outcasts = await bed.focus.iqCaller.request(xml('iq', { type: 'get', to: room },
        xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { affiliation: 'outcast' }))), 5000);
      assert.ok(outcasts.getChild('query').getChildren('item').some((i) => i.attrs.jid === banned.bare), 'still banned');
    });

    it('skips the lobby, not the password (refused with not-authorized, as upstream)', async () => {
      const room = await bed.room('lb5');
      await configureRoom(bed.focus, room, { 'muc#roomconfig_roomsecret': 'pw5' });
      assert.equal((await bed.refused(room, 'wrong', BYPASS, { password: 'wrong' })).condition, 'not-authorized');
      const { xmpp } = await bed.login(BYPASS);
      assert.equal((await joinRoom(xmpp, room, 'right', { password: 'pw5' })).affiliation, 'member');
    });

    it('a join refused for a wrong password leaves no membership behind (upstream leaves member)', async () => {
      const room = await bed.room('lb6');
      await configureRoom(bed.focus, room, { 'muc#roomconfig_roomsecret': 'pw6' });
      const holder = await bed.login(BYPASS);
      const refusal = (nick, options) => joinRoom(holder.xmpp, room, nick, options).then(() => null, (e) => e);
      // The same refusal the password check gives, as upstream's user gets it.
      const err = await refusal('wrong', { password: 'wrong' });
      assert.equal(err?.condition, 'not-authorized');
      assert.equal(err.type, 'auth');
      assert.equal(await affiliationOf(bed.focus, room, holder.bare), 'none', 'no member left behind');
      // Still refused without the password; then the right one lets them in, as a member.
      assert.equal((await refusal('nopw'))?.condition, 'not-authorized');
      assert.equal(await affiliationOf(bed.focus, room, holder.bare), 'none');
      assert.equal((await joinRoom(holder.xmpp, room, 'right', { password: 'pw6' })).affiliation, 'member');
      assert.equal(await affiliationOf(bed.focus, room, holder.bare), 'member');
    });
  });
}

describe('token lobby bypass next to token moderation', () => {
  const bed = testBed('lobby-bypass-moderation', ['e2e_lobby_standin', 'token_moderation']);
  before(bed.start);
  after(bed.stop);

  it('a token moderator with the claim is owner; a token member with it is member', async () => {
    const room = await bed.room('lbm1');
    const boss = await bed.login({ moderator: true, ...BYPASS });
    const self = await joinRoom(boss.xmpp, room, 'boss');
    assert.equal(self.affiliation, 'owner');
    assert.equal(self.role, 'moderator');
    const member = await bed.login(BYPASS);
    assert.equal((await joinRoom(member.xmpp, room, 'member')).affiliation, 'member');
    assert.equal((await bed.refused(room, 'plain', {})).condition, 'registration-required');
  });
});
