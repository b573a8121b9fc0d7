// mod_token_moderation against a real Prosody: the verified token decides owner or member, in
// the first self-presence; nobody else makes owners; Jicofo's focus user (an admin) gets no
// errors for its owner grants. Also with stock-mod_auth_token-shaped sessions and with a lobby.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, xml } from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';

const token = (extra = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', ...extra }), { alg: 'HS256', key: SECRET });
const bare = (jid) => jid.split('/')[0];

function testBed(name, { global = {}, mucModules = [] } = {}) {
  const bed = { clients: [] };
  bed.start = async () => {
    bed.prosody = await startProsody({
      name,
      global,
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
      muc: { modules_enabled: ['gatehouse_token_verification', 'token_moderation', ...mucModules] },
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
    const { xmpp, jid } = await connect({ httpPort: bed.prosody.httpPort, token: token(claims) });
    bed.clients.push(xmpp);
    const self = roomJid ? await joinRoom(xmpp, roomJid, nick, options) : null;
    return { xmpp, jid, bare: bare(jid), self };
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

/** The room's owner list, as an owner sees it. */
async function owners(owner, roomJid) {
  const reply = await owner.iqCaller.request(
    xml('iq', { type: 'get', to: roomJid },
      xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { affiliation: 'owner' }))),
    5000,
  );
  return reply.getChild('query', NS_MUC_ADMIN).getChildren('item').map((item) => item.attrs.jid);
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

  it('a token member who creates a room is not made its owner', async () => {
    const { self } = await bed.join(`fresh${Date.now()}@${MUC_DOMAIN}`, 'creator', {});
    assert.ok(self.statusCodes.includes(201), 'room created by this join');
    assert.equal(self.affiliation, 'member');
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
