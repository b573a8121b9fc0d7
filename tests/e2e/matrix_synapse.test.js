// The direct homeserver mode of mod_auth_matrix_user_verification (no UVS) against a REAL
// Synapse homeserver (lib/synapse.js; from PyPI, skipped when it is not installed), with
// mod_matrix_power_sync on the MUC: real OpenID tokens, real rooms, real power levels. The
// server name carries a port (`matrix.test:8448`, users `@bob:matrix.test:8448`), as Matrix
// allows and as some deployments use.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, waitForStanza, parseMucPresence } from './lib/client.js';
import { findSynapse, startSynapse } from './lib/synapse.js';
import { roomName } from './lib/uvs.js';
import * as jwt from './lib/jwt.js';

const found = findSynapse();
const SERVER_NAME = 'matrix.test:8448';

describe(`direct homeserver mode against a real Synapse ${found.version ?? ''}`, { skip: found.missing }, () => {
  let synapse;
  let prosody;
  let admin;
  const people = {};
  const rooms = {};
  const clients = [];
  const openidTokens = [];

  /** A fresh OpenID token of `who`, as Element asks its homeserver for one. */
  async function openid(who) {
    const { user_id: userId, access_token: token } = people[who];
    const reply = await synapse.client(token)('POST', `/_matrix/client/v3/user/${encodeURIComponent(userId)}/openid/request_token`, {});
    openidTokens.push(reply.access_token);
    return reply.access_token;
  }

  async function widgetLogin(who, roomId, { token, serverName = SERVER_NAME } = {}) {
    const matrix = { token: token ?? await openid(who), room_id: roomId, server_name: serverName };
    if (serverName === null) delete matrix.server_name;
    const claims = {
      iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*',
      context: { user: { name: who }, matrix },
    };
    const session = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims, { alg: 'HS256', key: 'notused' }), room: roomName(roomId) });
    clients.push(session.xmpp);
    return session;
  }

  async function syncedAffiliation(xmpp, roomId, nick) {
    const roomJid = `${roomName(roomId)}@${MUC_DOMAIN}`;
    const synced = waitForStanza(xmpp, (s) => s.name === 'presence' && s.attrs.from === `${roomJid}/${nick}` &&
      !['none', undefined].includes(parseMucPresence(s).affiliation), 5000, `synced affiliation in ${roomJid}`);
    await joinRoom(xmpp, roomJid, nick);
    return parseMucPresence(await synced).affiliation;
  }

  before(async () => {
    synapse = await startSynapse({ python: found.python, serverName: SERVER_NAME });
    admin = await synapse.register('admin', { admin: true });
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'fred']) people[name] = await synapse.register(name);
    const alice = synapse.client(people.alice.access_token);
    const bob = synapse.client(people.bob.access_token);
    // Version 10 lists the creator in `users` (100); version 12 leaves creators out of it
    // (REFERENCE §6), which UVS reads as power 0.
    for (const version of ['10', '12']) {
      const { room_id: roomId } = await alice('POST', '/_matrix/client/v3/createRoom',
        { room_version: version, preset: 'private_chat', invite: [people.bob.user_id] });
      await bob('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
      rooms[version] = roomId;
    }
    prosody = await startProsody({
      name: 'matrix-synapse',
      mainHost: {
        authentication: 'matrix_user_verification',
        matrix_user_verification_homeserver_url: synapse.url,
        matrix_user_verification_homeserver_admin_token: admin.access_token,
        uvs_sync_power_levels: true,
        matrix_user_verification_membership_check_interval: 1,
      },
      muc: { modules_enabled: ['matrix_power_sync'] },
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    for (const roomId of Object.values(rooms)) await createRoomAsFocus(focus, `${roomName(roomId)}@${MUC_DOMAIN}`);
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
    await synapse?.stop();
  });

  it('users of a server name with a port (@alice:matrix.test:8448) are recognised', async () => {
    assert.equal(people.alice.user_id, `@alice:${SERVER_NAME}`);
    await widgetLogin('alice', rooms['10']);
  });

  it('a widget token without server_name is refused, as UVS refuses it (400)', async () => {
    const err = await widgetLogin('bob', rooms['10'], { serverName: null }).then(() => null, (e) => e);
    assert.equal(err?.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
    assert.match(prosody.readLog(), /REQUEST_COMPLETE reason:missing_server_name/);
  });

  it('a server name that is only a suffix of the user\'s (the port) is refused', async () => {
    const err = await widgetLogin('bob', rooms['10'], { serverName: '8448' }).then(() => null, (e) => e);
    assert.equal(err?.condition, 'access-denied');
  });

  it('the room creator (power 100) is owner, a joined member (power 0) is member', async () => {
    const alice = await widgetLogin('alice', rooms['10']);
    assert.equal(await syncedAffiliation(alice.xmpp, rooms['10'], 'alice'), 'owner');
    const bob = await widgetLogin('bob', rooms['10']);
    assert.equal(await syncedAffiliation(bob.xmpp, rooms['10'], 'bob'), 'member');
  });

  it('in a version 12 room the creator is owner though absent from power_levels.users', async () => {
    const alice = await widgetLogin('alice', rooms['12']);
    assert.equal(await syncedAffiliation(alice.xmpp, rooms['12'], 'alice-12'), 'owner');
    const bob = await widgetLogin('bob', rooms['12']);
    assert.equal(await syncedAffiliation(bob.xmpp, rooms['12'], 'bob-12'), 'member');
  });

  it('a user who is not in the room is refused with the upstream error', async () => {
    const err = await widgetLogin('carol', rooms['10']).then(() => null, (e) => e);
    assert.equal(err?.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
  });

  it('an OpenID token the homeserver does not know is refused', async () => {
    const err = await widgetLogin('bob', rooms['10'], { token: 'not-an-openid-token' }).then(() => null, (e) => e);
    assert.equal(err?.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
    assert.match(prosody.readLog(), /REQUEST_COMPLETE reason:invalid_token/);
  });

  it('a user who left the room is refused on the next login', async () => {
    const token = await openid('bob');
    const { room_id: roomId } = await synapse.client(people.alice.access_token)('POST', '/_matrix/client/v3/createRoom',
      { room_version: '11', preset: 'public_chat' });
    const bob = synapse.client(people.bob.access_token);
    await bob('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
    await widgetLogin('bob', roomId, { token });
    await bob('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {});
    // Another OpenID token, so the positive-answer cache of the first login does not apply.
    const err = await widgetLogin('bob', roomId).then(() => null, (e) => e);
    assert.equal(err?.condition, 'access-denied');
  });

  it('a demoted user reusing the same OpenID token (as Element does) is not owner from the cache', async () => {
    const alice = synapse.client(people.alice.access_token);
    const bob = synapse.client(people.bob.access_token);
    const { room_id: roomId } = await alice('POST', '/_matrix/client/v3/createRoom',
      { room_version: '11', preset: 'public_chat', power_level_content_override: { users: { [people.alice.user_id]: 100, [people.bob.user_id]: 50 } } });
    await bob('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
    await createRoomAsFocus(clients[0], `${roomName(roomId)}@${MUC_DOMAIN}`);
    const token = await openid('bob');
    const first = await widgetLogin('bob', roomId, { token });
    assert.equal(await syncedAffiliation(first.xmpp, roomId, 'bob-mod'), 'owner');
    await disconnect(first.xmpp);
    const levels = await alice('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`);
    await alice('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`,
      { ...levels, users: { ...levels.users, [people.bob.user_id]: 0 } });
    // The membership answer may still be reused (30 s), an owner answer only for 5 s.
    await new Promise((resolve) => setTimeout(resolve, 5500));
    const again = await widgetLogin('bob', roomId, { token });
    assert.equal(await syncedAffiliation(again.xmpp, roomId, 'bob-demoted'), 'member');
  });

  describe('the periodic membership re-check (every second here)', () => {
    let roomId;
    const inCall = {};
    const tokens = {}; // each participant's OpenID token, reused as Element reuses it
    const alice = () => synapse.client(people.alice.access_token);
    const roomPath = () => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
    const nickJid = (nick) => `${roomName(roomId)}@${MUC_DOMAIN}/${nick}`;
    const selfPresence = (who, predicate, what) => waitForStanza(inCall[who], (s) => s.name === 'presence' &&
      s.attrs.from === nickJid(who) && predicate(s), 6000, what);

    before(async () => {
      const users = { [people.alice.user_id]: 100, [people.bob.user_id]: 50 };
      ({ room_id: roomId } = await alice()('POST', '/_matrix/client/v3/createRoom',
        { room_version: '11', preset: 'public_chat', power_level_content_override: { users } }));
      await createRoomAsFocus(clients[0], `${roomName(roomId)}@${MUC_DOMAIN}`);
      for (const who of ['bob', 'dave', 'erin', 'fred']) {
        await synapse.client(people[who].access_token)('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
        tokens[who] = await openid(who);
        inCall[who] = (await widgetLogin(who, roomId, { token: tokens[who] })).xmpp;
        const expected = who === 'bob' ? 'owner' : 'member';
        assert.equal(await syncedAffiliation(inCall[who], roomId, who), expected);
      }
    });

    for (const [how, action] of [['kicked', 'kick'], ['banned', 'ban']]) {
      const who = how === 'kicked' ? 'dave' : 'erin';
      it(`a participant ${how} from the Matrix room is removed from the call with a reason, cannot rejoin, and a new login with the same OpenID token is asked again (refused, not admitted from the cache)`, async () => {
        const removed = selfPresence(who, (s) => s.attrs.type === 'unavailable', `${who} removed`);
        await alice()('POST', `${roomPath()}/${action}`, { user_id: people[who].user_id, reason: 'test' });
        const presence = await removed;
        const x = presence.getChild('x', 'http://jabber.org/protocol/muc#user');
        assert.ok(x.getChildren('status').some((st) => st.attrs.code === '307'), 'status 307: removed by the room');
        assert.equal(x.getChild('item').getChildText('reason'), 'You are no longer a member of the Matrix room');
        const again = await joinRoom(inCall[who], `${roomName(roomId)}@${MUC_DOMAIN}`, `${who}-again`).then(() => null, (e) => e);
        assert.equal(again?.condition, 'not-allowed');
        assert.equal(again.text, 'You are no longer a member of the Matrix room');
        // Within the 30 s the positive answer of their login is cached: the re-check dropped it.
        const mark = prosody.logMark();
        const relogin = await widgetLogin(who, roomId, { token: tokens[who] }).then(() => null, (e) => e);
        assert.ok(relogin, 'a new login with the same OpenID token must be refused');
        assert.equal(relogin.condition, 'access-denied');
        assert.equal(relogin.text, 'Token invalid or not in room');
        assert.doesNotMatch(prosody.readLog(mark), /REQUEST_COMPLETE reason:ok/);
      });
    }

    it('a participant demoted in Matrix loses ownership in the call; one promoted gains it', async () => {
      const levels = await alice()('GET', `${roomPath()}/state/m.room.power_levels/`);
      const demoted = selfPresence('bob', (s) => parseMucPresence(s).affiliation === 'member', 'bob demoted');
      const promoted = selfPresence('fred', (s) => parseMucPresence(s).affiliation === 'owner', 'fred promoted');
      await alice()('PUT', `${roomPath()}/state/m.room.power_levels/`,
        { ...levels, users: { ...levels.users, [people.bob.user_id]: 0, [people.fred.user_id]: 50 } });
      await Promise.all([demoted, promoted]);
      const log = prosody.readLog();
      assert.match(log, /Matrix power of fred \(@fred:matrix\.test:8448\) in \S+ changed: owner = true/);
      assert.match(log, /Removing dave \(@dave:matrix\.test:8448\) from \S+: no longer in Matrix room !/);
    });
  });

  it('writes neither OpenID tokens nor the admin token to the log', async () => {
    const log = prosody.readLog();
    assert.ok(!log.includes(admin.access_token), 'admin token in the log');
    for (const token of openidTokens) assert.ok(!log.includes(token), 'OpenID token in the log');
    assert.match(log, /Verifying with the homeserver at http:\/\/127\.0\.0\.1:\d+ directly/);
  });
});
