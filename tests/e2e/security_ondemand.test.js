// mod_token_security_ondemand against a real Prosody: a token's context.room switches the room
// password and lobby after its holder joins; context.user.security_bypass gets its holder past
// both. Twice: on a plain Prosody (members-only stands in for the lobby) and with a test
// stand-in for Jitsi's lobby modules that records the events it receives.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, waitForStanza, xml, affiliationOf, configureRoom } from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const JITMEET = 'http://jitsi.org/jitmeet';

const token = (context = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', context }), { alg: 'HS256', key: SECRET });
const BYPASS = { user: { security_bypass: true } };

/** One Prosody with token auth, the room check and security on demand (plus `mucModules`). */
function testBed(name, mucModules = [], mucOptions = {}) {
  const bed = { clients: [] };
  bed.start = async () => {
    bed.prosody = await startProsody({
      name,
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
      muc: { modules_enabled: ['gatehouse_token_verification', 'token_security_ondemand', ...mucModules], ...mucOptions },
    });
    bed.focus = (await connectFocus({ httpPort: bed.prosody.httpPort })).xmpp;
    bed.clients.push(bed.focus);
  };
  bed.stop = async () => {
    await Promise.all(bed.clients.map(disconnect));
    await bed.prosody?.stop();
  };
  /** A new room, created by focus as Jicofo does. */
  bed.room = async (node) => {
    const roomJid = `${node}@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, roomJid);
    return roomJid;
  };
  /** Logs in with a token whose context is `context`, joins `roomJid`; resolves the session. */
  bed.join = async (roomJid, nick, context, options) => {
    const { xmpp } = await connect({ httpPort: bed.prosody.httpPort, token: token(context) });
    bed.clients.push(xmpp);
    const self = await joinRoom(xmpp, roomJid, nick, options);
    return { xmpp, self };
  };
  /** The error a join is refused with (fails the test if the join succeeds). */
  bed.refused = async (roomJid, nick, context, options) => {
    const err = await bed.join(roomJid, nick, context, options).then(() => null, (e) => e);
    assert.ok(err, `${nick} should have been refused`);
    return err;
  };
  return bed;
}

/** Sends a groupchat message and waits for its echo: proof the sender is still in the room. */
async function stillInRoom(xmpp, roomJid, nick) {
  const body = `still here ${Math.random()}`;
  const echo = waitForStanza(xmpp, (s) => s.name === 'message' && s.attrs.from === `${roomJid}/${nick}` &&
    s.getChildText('body') === body || (s.name === 'message' && s.attrs.type === 'error'), 5000, 'groupchat echo');
  await xmpp.send(xml('message', { to: roomJid, type: 'groupchat' }, xml('body', {}, body)));
  const stanza = await echo;
  assert.notEqual(stanza.attrs.type, 'error', `${nick} is no longer in ${roomJid}`);
}

const count = (text, re) => (text.match(new RegExp(re, 'g')) ?? []).length;

describe('security on demand on a plain Prosody (members-only stands in for the lobby)', () => {
  const bed = testBed('security-plain');
  before(bed.start);
  after(bed.stop);

  it('context.room.password sets the password; bypass skips it; "" clears it', async () => {
    const room = await bed.room('pw1');
    await bed.join(room, 'setter', { room: { password: 'secret-pw' } });

    const err = await bed.refused(room, 'nopw', {});
    assert.equal(err.condition, 'not-authorized');
    await bed.join(room, 'withpw', {}, { password: 'secret-pw' });
    await bed.join(room, 'bypass', BYPASS);
    await bed.join(room, 'bypass-wrong-pw', BYPASS, { password: 'wrong' });
    assert.equal((await bed.refused(room, 'wrongpw', {}, { password: 'wrong' })).condition, 'not-authorized');

    await bed.join(room, 'clearer', { room: { password: '' } }, { password: 'secret-pw' });
    await bed.join(room, 'open-again', {});
    assert.ok(!bed.prosody.readLog().includes('secret-pw'), 'the password is never logged');
  });

  it('the same password in every token is applied and announced (status 104) once, a new one once more', async () => {
    const room = await bed.room('pw104');
    const watcher = await bed.join(room, 'watcher', {});
    let announced = 0;
    watcher.xmpp.on('stanza', (s) => {
      const x = s.name === 'message' && s.attrs.from === room && s.getChild('x', 'http://jabber.org/protocol/muc#user');
      if (x && x.getChildren('status').some((status) => status.attrs.code === '104')) announced++;
    });
    const mark = bed.prosody.logMark();
    await bed.join(room, 'first', { room: { password: 'same-pw' } });
    for (let i = 0; i < 4; i++) {
      await bed.join(room, `again${i}`, { room: { password: 'same-pw' } }, { password: 'same-pw' });
    }
    await stillInRoom(watcher.xmpp, room, 'watcher'); // every earlier broadcast has arrived
    assert.equal(announced, 1, 'one change, one announcement');
    assert.equal(count(bed.prosody.readLog(mark), 'changed pw104@conference\\.meet\\.test by token'), 1);

    await bed.join(room, 'changer', { room: { password: 'new-pw' } }, { password: 'same-pw' });
    await stillInRoom(watcher.xmpp, room, 'watcher');
    assert.equal(announced, 2, 'a real change is announced');
    assert.equal((await bed.refused(room, 'old-pw', {}, { password: 'same-pw' })).condition, 'not-authorized');
  });

  it('context.room.lobby = true protects the room; bypass gets in; lobby = false opens it', async () => {
    const room = await bed.room('lobby1');
    const closer = await bed.join(room, 'closer', { room: { lobby: true } });
    await stillInRoom(closer.xmpp, room, 'closer');

    assert.equal((await bed.refused(room, 'waiting', {})).condition, 'registration-required');
    const bypass = await bed.join(room, 'bypass', BYPASS);
    assert.equal(bypass.self.affiliation, 'member');
    // A second lobby = true changes nothing (and keeps the room closed).
    await bed.join(room, 'closer2', { ...BYPASS, room: { lobby: true } });
    assert.equal((await bed.refused(room, 'waiting2', {})).condition, 'registration-required');

    await bed.join(room, 'opener', { ...BYPASS, room: { lobby: false } });
    await bed.join(room, 'after-open', {});
    await stillInRoom(closer.xmpp, room, 'closer');

    const log = bed.prosody.readLog();
    assert.equal(count(log, "Token lobby requests use the room's members-only mode"), 1, 'mode logged once');
    assert.equal(count(log, "Jitsi's lobby \\("), 0);
    assert.match(log, /changed lobby1@conference\.meet\.test by token: set-members-only/);
  });

  it('password and lobby together, and the bypass passes both', async () => {
    const room = await bed.room('both1');
    await bed.join(room, 'closer', { room: { lobby: true, password: 'pw2' } });
    assert.equal((await bed.refused(room, 'plain', {}, { password: 'pw2' })).condition, 'registration-required');
    assert.equal((await bed.refused(room, 'plain2', {})).condition, 'registration-required');
    await bed.join(room, 'bypass', BYPASS);
  });

  it('skips health-check rooms, tokens without context.room, and lobby values that are not booleans', async () => {
    const health = await bed.room('__jicofo-health-check-e2e');
    await bed.join(health, 'h', { room: { lobby: true, password: 'pw' } });
    await bed.join(health, 'h2', {});

    const room = await bed.room('odd1');
    await bed.join(room, 'string-true', { room: { lobby: 'true', password: 1234 } });
    await bed.join(room, 'no-context-room', { user: { name: 'x' } });
    await bed.join(room, 'plain', {});
  });
});

describe('security on demand with Jitsi\'s lobby modules (test stand-in)', () => {
  const bed = testBed('security-jitsi-lobby', ['e2e_lobby_standin']);
  before(bed.start);
  after(bed.stop);

  it('fires create-persistent-lobby-room and destroy-lobby-room with the upstream fields', async () => {
    const room = await bed.room('lobby2');
    const mark = bed.prosody.logMark();
    const closer = await bed.join(room, 'closer', { room: { lobby: true } });
    await bed.prosody.waitForLog(
      /observed create-persistent-lobby-room room=lobby2@conference\.meet\.test skip_display_name_check=true/, 5000, mark);
    await stillInRoom(closer.xmpp, room, 'closer');

    const err = await bed.refused(room, 'waiting', {});
    assert.equal(err.condition, 'registration-required');
    assert.deepEqual(err.children, [{ name: 'lobbyroom', xmlns: JITMEET }]);
    await bed.join(room, 'bypass', BYPASS);
    await bed.join(room, 'closer2', { ...BYPASS, room: { lobby: true } }); // already on: no event

    await bed.join(room, 'opener', { ...BYPASS, room: { lobby: false } });
    // members_only=false: members-only was cleared before the lobby was destroyed.
    await bed.prosody.waitForLog(
      /observed destroy-lobby-room room=lobby2@conference\.meet\.test newjid=lobby2@conference\.meet\.test members_only=false/,
      5000, mark);
    await bed.join(room, 'after-open', {});

    const log = bed.prosody.readLog(mark);
    assert.equal(count(log, 'observed create-persistent-lobby-room'), 1);
    assert.equal(count(log, 'observed destroy-lobby-room'), 1);
    const whole = bed.prosody.readLog();
    assert.equal(count(whole, "Token lobby requests use Jitsi's lobby"), 1, 'mode logged once');
    assert.equal(count(whole, 'members-only mode'), 0);
  });

  it('a password request next to Jitsi\'s lobby', async () => {
    const room = await bed.room('lobby3');
    await bed.join(room, 'closer', { room: { lobby: true, password: 'pw3' } });
    assert.equal((await bed.refused(room, 'plain', {})).condition, 'registration-required');
    await bed.join(room, 'bypass', BYPASS);
    await bed.join(room, 'opener', { ...BYPASS, room: { lobby: false, password: '' } });
    await bed.join(room, 'plain-after', {});
  });
});

describe('security on demand: a bypass join that the room lock refuses', () => {
  // Prosody's own default: a new room stays locked until its owner configures it.
  const bed = testBed('security-locked', [], { muc_room_locking: true });
  before(bed.start);
  after(bed.stop);

  it('is refused as upstream refuses it (item-not-found) and leaves no membership behind (upstream leaves member)', async () => {
    const room = `lk1@${MUC_DOMAIN}`;
    const created = await joinRoom(bed.focus, room, 'focus'); // locked: not configured yet
    assert.ok(created.statusCodes.includes(201), 'a new room');
    const { xmpp, jid } = await connect({ httpPort: bed.prosody.httpPort, token: token(BYPASS) });
    bed.clients.push(xmpp);
    const bare = jid.split('/')[0];
    const err = await joinRoom(xmpp, room, 'bypass').then(() => null, (e) => e);
    assert.equal(err?.condition, 'item-not-found');
    assert.equal(err.type, 'cancel');
    assert.equal(await affiliationOf(bed.focus, room, bare), 'none', 'no member left behind');

    // The owner configures the room (which unlocks it) with a password: a join without the
    // password and without the claim is refused; the bypass holder gets in as a member.
    await configureRoom(bed.focus, room, { 'muc#roomconfig_roomsecret': 'pw-lk1' });
    assert.equal((await bed.refused(room, 'plain', {})).condition, 'not-authorized');
    assert.equal((await joinRoom(xmpp, room, 'bypass')).affiliation, 'member');
    assert.equal(await affiliationOf(bed.focus, room, bare), 'member');
  });
});
