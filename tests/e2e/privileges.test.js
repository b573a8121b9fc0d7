// Every privilege, attacked by a session WITHOUT the verified claim that grants it (see the path
// matrix in README.md, "Privilege paths"). One real Prosody runs gatehouse_token on meet.test,
// an anonymous guest host, and on the MUC token moderation, security on demand, lobby bypass and
// the wallet gate, whose Guild API is a LOCAL STAND-IN (lib/guild.js speaking its JSON); wallets
// are keys made here. Each refusal has a positive control beside it: the same step with the right
// claim (or proof) succeeds, so the refusals can fail.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN, DEFAULT_PLUGIN_PATHS } from './lib/prosody.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV } from './lib/upstream.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, configureRoom, disconnect, xml } from './lib/client.js';
import { startGuildStandIn } from './lib/guild.js';
import { newWallet } from './lib/wallet.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const GUEST_DOMAIN = 'guest.meet.test';
const SERVICE_DOMAIN = 'recorder.meet.test'; // in muc_password_whitelist, as Jibri's host is
const NS = 'urn:gatehouse:wallet:0';
const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';
const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';
const GUILD = 'our-guild';
const GUILD_ID = 42;

const token = (claims = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', ...claims }), { alg: 'HS256', key: SECRET });
const proof = (address, signature, message) => xml('proof', { xmlns: NS, address, signature }, xml('message', {}, message));
const refusal = (promise) => promise.then(() => assert.fail('should have been refused'), (e) => e);
const bareOf = (xmpp) => xmpp.jid.bare().toString();

const bed = { clients: [] };
let roomSerial = 0;

before(async () => {
  bed.guildApi = await startGuildStandIn({ guilds: [{ id: GUILD_ID, name: 'Our Guild', urlName: GUILD, roleIds: [1] }] });
  bed.prosody = await startProsody({
    name: 'privileges',
    mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
    hosts: { [GUEST_DOMAIN]: { authentication: 'anonymous' }, [SERVICE_DOMAIN]: { authentication: 'anonymous' } },
    muc: {
      modules_enabled: ['gatehouse_token_verification', 'token_moderation', 'token_security_ondemand',
        'token_lobby_bypass', 'gatehouse_wallet', 'muc_password_whitelist'],
      gatehouse_wallet_guild_api: bed.guildApi.url,
      token_verification_allowlist: [SERVICE_DOMAIN, GUEST_DOMAIN], // guests allowed in, as deployments with guests do
      muc_password_whitelist: [SERVICE_DOMAIN], // jitsi-meet's module, unmodified, from ../shared/upstream
    },
    pluginPaths: [...DEFAULT_PLUGIN_PATHS, UPSTREAM_PLUGIN_PATHS[0]],
    env: UPSTREAM_ENV,
  });
  bed.focus = (await connectFocus({ httpPort: bed.prosody.httpPort })).xmpp;
  bed.clients.push(bed.focus);
});
after(async () => {
  await Promise.all(bed.clients.map(disconnect));
  await bed.prosody?.stop();
  await bed.guildApi?.close();
});

async function login(claims, options = {}) {
  const { xmpp } = await connect({ httpPort: bed.prosody.httpPort, token: claims && token(claims), ...options });
  bed.clients.push(xmpp);
  return xmpp;
}
const user = (fields = {}) => login({ context: { user: { name: 'U', ...fields } } });

/** A fresh room made by focus (as Jicofo does), optionally configured. */
async function newRoom(prefix, config) {
  const room = `${prefix}-${++roomSerial}@${MUC_DOMAIN}`;
  await createRoomAsFocus(bed.focus, room);
  if (config) await configureRoom(bed.focus, room, config);
  return room;
}

/** A room gated by guild GUILD by its token owner (which turns members-only on). */
async function gatedRoom(prefix) {
  const room = await newRoom(prefix);
  const owner = await login({ moderator: true, context: { user: { name: 'O' }, room: { guild: GUILD } } });
  assert.equal((await joinRoom(owner, room, 'owner')).affiliation, 'owner');
  return { room, owner };
}

const adminIq = (from, room, type, ...items) => from.iqCaller.request(
  xml('iq', { type, to: room }, xml('query', { xmlns: NS_MUC_ADMIN }, ...items)), 5000);
const affiliated = async (room, affiliation) => (await adminIq(bed.focus, room, 'get', xml('item', { affiliation })))
  .getChild('query', NS_MUC_ADMIN).getChildren('item').map((i) => i.attrs.jid);

async function roomLocks(room) {
  const reply = await bed.focus.iqCaller.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_MUC_OWNER })), 5000);
  const value = (name) => reply.getChild('query', NS_MUC_OWNER).getChild('x', 'jabber:x:data')
    .getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value');
  return { password: value('muc#roomconfig_roomsecret') || '', membersOnly: ['1', 'true'].includes(value('muc#roomconfig_membersonly')) };
}

/** A wallet the Guild stand-in counts as a member, and a signed proof for `xmpp` in `room`. */
async function signedProof(xmpp, room, { delayMs } = {}) {
  const wallet = newWallet();
  bed.guildApi.grant(wallet.address, GUILD_ID, [1]);
  if (delayMs) bed.guildApi.fail(wallet.address, { delayMs }); // answers, late
  const iq = await xmpp.iqCaller.request(xml('iq', { type: 'get', to: room }, xml('challenge', { xmlns: NS, address: wallet.address })), 5000);
  const message = iq.getChild('challenge', NS).text();
  return proof(wallet.address, wallet.sign(message), message);
}

describe('wallet gate: a proof makes a member only for a join every gate admits', () => {
  it('control: a proof with the right password joins as member, and the member rejoins without one', async () => {
    const { room, owner } = await gatedRoom('wallet-ok');
    await configureRoom(owner, room, { 'muc#roomconfig_roomsecret': 'pw' });
    const xmpp = await login({});
    const self = await joinRoom(xmpp, room, 'prover', { password: 'pw', extraChildren: [await signedProof(xmpp, room)] });
    assert.equal(self.affiliation, 'member');
    await xmpp.send(xml('presence', { to: `${room}/prover`, type: 'unavailable' }));
    assert.equal((await joinRoom(xmpp, room, 'again', { password: 'pw' })).affiliation, 'member');
  });

  it('a proof with a wrong password leaves no member behind: later the gate still asks for a proof', async () => {
    const { room, owner } = await gatedRoom('wallet-pw');
    await configureRoom(owner, room, { 'muc#roomconfig_roomsecret': 'pw' });
    const xmpp = await login({});
    const err = await refusal(joinRoom(xmpp, room, 'prover', { password: 'wrong', extraChildren: [await signedProof(xmpp, room)] }));
    assert.equal(err.condition, 'not-authorized');
    assert.ok(!(await affiliated(room, 'member')).includes(bareOf(xmpp)), 'no member affiliation');
    await configureRoom(owner, room, { 'muc#roomconfig_roomsecret': '' });
    assert.equal((await refusal(joinRoom(xmpp, room, 'later'))).condition, 'registration-required');
  });

  it('a proof does not lift a ban', async () => {
    const { room, owner } = await gatedRoom('wallet-ban');
    const xmpp = await login({});
    await adminIq(owner, room, 'set', xml('item', { jid: bareOf(xmpp), affiliation: 'outcast' }));
    const err = await refusal(joinRoom(xmpp, room, 'banned', { extraChildren: [await signedProof(xmpp, room)] }));
    assert.equal(err.condition, 'forbidden');
    assert.ok((await affiliated(room, 'outcast')).includes(bareOf(xmpp)), 'still banned');
  });

  it('control: a proof from a muc_password_whitelist host needs no password (jitsi-meet\'s module supplies it)', async () => {
    const { room, owner } = await gatedRoom('wallet-whitelist');
    await configureRoom(owner, room, { 'muc#roomconfig_roomsecret': 'pw' });
    const service = await login(undefined, { domain: SERVICE_DOMAIN });
    const self = await joinRoom(service, room, 'service', { extraChildren: [await signedProof(service, room)] });
    assert.equal(self.affiliation, 'member');
    const guest = await login(undefined, { domain: GUEST_DOMAIN });
    assert.equal((await refusal(joinRoom(guest, room, 'guest', { extraChildren: [await signedProof(guest, room)] }))).condition,
      'not-authorized', 'a host off the list still needs the password');
  });

  it('race: banned while the Guild API answers, the proven join is still refused', async () => {
    const { room, owner } = await gatedRoom('wallet-race');
    const xmpp = await login({});
    const join = refusal(joinRoom(xmpp, room, 'racer', { extraChildren: [await signedProof(xmpp, room, { delayMs: 1500 })] }));
    await new Promise((r) => setTimeout(r, 300));
    await adminIq(owner, room, 'set', xml('item', { jid: bareOf(xmpp), affiliation: 'outcast' }));
    assert.equal((await join).condition, 'forbidden');
    assert.ok((await affiliated(room, 'outcast')).includes(bareOf(xmpp)), 'still banned');
  });

  it('a bypass claim whose join is refused (nick taken) leaves no member behind', async () => {
    const { room } = await gatedRoom('wallet-bypass');
    const bypass = await user({ security_bypass: true });
    assert.equal((await joinRoom(bypass, room, 'bypass')).affiliation, 'member', 'control: the claim is honoured');
    const other = await user({ security_bypass: true });
    // Refused either way (members-only or the nick conflict); what matters is what stays behind.
    assert.ok(['conflict', 'registration-required'].includes((await refusal(joinRoom(other, room, 'bypass'))).condition));
    assert.ok(!(await affiliated(room, 'member')).includes(bareOf(other)), 'no member for a refused join');
  });
});

// Claims that look privileged but are not the booleans (or values) upstream's checks compare with.
const MALFORMED = {
  'moderator: "true"': { moderator: 'true' },
  'moderator: 1': { moderator: 1 },
  'context.user.moderator: 1': { context: { user: { name: 'M', moderator: 1 } } },
  'context.user.affiliation: "Owner"': { context: { user: { name: 'M', affiliation: 'Owner' } } },
  'security_bypass: "true"': { context: { user: { name: 'M', security_bypass: 'true' } } },
  'lobby_bypass: "true"': { context: { user: { name: 'M', lobby_bypass: 'true' } } },
  'lobby_bypass: 1': { context: { user: { name: 'M', lobby_bypass: 1 } } },
};

describe('malformed privileged claims grant nothing', () => {
  for (const [what, claims] of Object.entries(MALFORMED)) {
    it(`${what}: member, not owner; no way past a password, the lobby or a guild`, async () => {
      const open = await newRoom('malformed');
      const xmpp = await login(claims);
      assert.equal((await joinRoom(xmpp, open, 'm')).affiliation, 'member');
      const locked = await newRoom('malformed-pw', { 'muc#roomconfig_roomsecret': 'pw' });
      assert.equal((await refusal(joinRoom(await login(claims), locked, 'm'))).condition, 'not-authorized');
      const lobby = await newRoom('malformed-lobby', { 'muc#roomconfig_membersonly': 1 });
      assert.equal((await refusal(joinRoom(await login(claims), lobby, 'm'))).condition, 'registration-required');
      const { room } = await gatedRoom('malformed-guild');
      assert.equal((await refusal(joinRoom(await login(claims), room, 'm'))).condition, 'registration-required');
    });
  }

  it('context.room with a non-boolean lobby or a non-string password changes nothing', async () => {
    const room = await newRoom('malformed-room');
    await joinRoom(await login({ moderator: true, context: { room: { lobby: 'true', password: 1234 } } }), room, 'o');
    assert.deepEqual(await roomLocks(room), { password: '', membersOnly: false });
  });

  it('control: the boolean claims do all of it', async () => {
    const room = await newRoom('wellformed', { 'muc#roomconfig_roomsecret': 'pw', 'muc#roomconfig_membersonly': 1 });
    assert.equal((await joinRoom(await login({ moderator: true }), room, 'o', { password: 'pw' })).affiliation, 'owner');
    assert.equal((await joinRoom(await user({ security_bypass: true }), room, 'b')).affiliation, 'member');
    assert.equal((await joinRoom(await user({ lobby_bypass: true }), room, 'l', { password: 'pw' })).affiliation, 'member');
    const { room: gated } = await gatedRoom('wellformed-guild');
    assert.equal((await joinRoom(await user({ security_bypass: true }), gated, 'b')).affiliation, 'member');
    const open = await newRoom('wellformed-room');
    await joinRoom(await login({ context: { room: { lobby: true, password: 'set' } } }), open, 'r');
    assert.deepEqual(await roomLocks(open), { password: 'set', membersOnly: true });
  });
});

describe('after the join: a token member cannot promote themselves or change the room', () => {
  it('muc#admin: own owner/admin affiliation and moderator role are refused; the owner\'s own grants too', async () => {
    const room = await newRoom('selfpromote');
    const owner = await login({ moderator: true });
    await joinRoom(owner, room, 'owner');
    const member = await user({});
    await joinRoom(member, room, 'member');
    for (const affiliation of ['owner', 'admin']) {
      const err = await refusal(adminIq(member, room, 'set', xml('item', { jid: bareOf(member), affiliation })));
      assert.ok(['forbidden', 'not-acceptable', 'not-allowed'].includes(err.condition), `${affiliation}: ${err.condition}`);
      const byOwner = await refusal(adminIq(owner, room, 'set', xml('item', { jid: bareOf(member), affiliation })));
      assert.equal(byOwner.condition, 'not-acceptable', `the owner cannot hand out ${affiliation}`);
    }
    const role = await refusal(adminIq(member, room, 'set', xml('item', { nick: 'member', role: 'moderator' })));
    assert.ok(['forbidden', 'not-acceptable', 'not-allowed'].includes(role.condition), role.condition);
    const owners = await affiliated(room, 'owner');
    assert.ok(owners.includes(bareOf(owner)) && !owners.includes(bareOf(member)), 'control: the token owner only');
    assert.ok(!(await affiliated(room, 'admin')).includes(bareOf(member)));
    // Control: the owner may ban, and may give the member affiliation (upstream does too).
    await adminIq(owner, room, 'set', xml('item', { jid: bareOf(member), affiliation: 'member' }));
  });

  it('muc#owner: a member\'s configuration form (password, members-only, guild) is refused', async () => {
    const room = await newRoom('memberconfig');
    const member = await user({});
    await joinRoom(member, room, 'member');
    const err = await refusal(configureRoom(member, room, {
      'muc#roomconfig_roomsecret': 'mine', 'muc#roomconfig_membersonly': 1,
      'muc#roomconfig_gatehouse_guild': GUILD, 'muc#roomconfig_gatehouse_guild_required': 1,
    }));
    assert.equal(err.condition, 'forbidden');
    assert.deepEqual(await roomLocks(room), { password: '', membersOnly: false });
    // Control: the room's owner may.
    await configureRoom(bed.focus, room, { 'muc#roomconfig_roomsecret': 'theirs' });
    assert.equal((await roomLocks(room)).password, 'theirs');
  });

  it('a nick change and a presence update keep member/participant (nothing is re-granted)', async () => {
    const room = await newRoom('nickchange');
    const member = await user({});
    await joinRoom(member, room, 'before');
    const changed = joinRoom(member, room, 'after'); // a presence to a new nick is a nick change
    const self = await changed;
    assert.deepEqual([self.affiliation, self.role], ['member', 'participant']);
    const update = await joinRoom(member, room, 'after', { extraChildren: [xml('status', {}, 'moderator')] });
    assert.deepEqual([update.affiliation, update.role], ['member', 'participant']);
  });

  it('a guest carrying a correctly signed privileged ?token= gets nothing, in an open room or a gated one', async () => {
    const room = await newRoom('guest');
    const claims = { moderator: true, context: { user: { security_bypass: true, lobby_bypass: true }, room: { lobby: true } } };
    const guest = await login(claims, { domain: GUEST_DOMAIN });
    assert.equal((await joinRoom(guest, room, 'guest')).affiliation, 'none');
    assert.deepEqual(await roomLocks(room), { password: '', membersOnly: false });
    const { room: gated } = await gatedRoom('guest-guild');
    assert.equal((await refusal(joinRoom(await login(claims, { domain: GUEST_DOMAIN }), gated, 'g'))).condition, 'registration-required');
  });
});

describe('room creation: the creator\'s owner affiliation', () => {
  // Upstream's token_verification refuses a room that does not exist yet (room-does-not-exist)
  // to every session it checks, so only focus (an admin) and allow-listed hosts create rooms.
  // Were a token holder let in to create one, Prosody would make it the owner, and token
  // moderation, which skips __jicofo-health-check rooms, would not take that back there.
  it('a token member cannot create a room, so owns none (a health-check-named one included)', async () => {
    for (const node of [`created-${++roomSerial}`, `__jicofo-health-check-${++roomSerial}`]) {
      const err = await refusal(joinRoom(await user({}), `${node}@${MUC_DOMAIN}`, 'creator'));
      assert.equal(err.condition, 'not-allowed', node);
      assert.deepEqual(err.children, [{ name: 'room-does-not-exist', xmlns: 'http://jitsi.org/jitmeet' }], node);
    }
  });

  it('control: focus creates rooms and owns them', async () => {
    const room = await newRoom('focus-created');
    assert.ok((await affiliated(room, 'owner')).includes(bareOf(bed.focus)));
  });
});
