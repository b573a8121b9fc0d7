// mod_gatehouse_wallet against a real Prosody: guild-gated rooms, proven with a wallet signature
// over a server-issued SIWE challenge. The Guild API is a LOCAL STAND-IN (lib/keyserver.js
// speaking the Guild API's JSON), not guild.xyz; wallets are keys made here, never real ones.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, waitForStanza, ping, xml } from './lib/client.js';
import { startKeyServer } from './lib/keyserver.js';
import { newWallet } from './lib/wallet.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const NS = 'urn:gatehouse:wallet:0';
const NS_OWNER = 'http://jabber.org/protocol/muc#owner';
const GUILD = 'our-guild';
const CHALLENGE_TTL = 3; // seconds, short so the expiry test need not wait 5 minutes
const GUILD_TIMEOUT = 1.5; // seconds

const token = (context = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', context }), { alg: 'HS256', key: SECRET });
const membershipPath = (address) => `/v2/users/${address.toLowerCase()}/memberships`;
const roles = (access) => ({ guildId: 42, isAdmin: false, roles: [{ roleId: 1, access: false }, { roleId: 2, access }] });

/**
 * One test bed: a Guild API stand-in serving `routes` (plus the guild itself), a Prosody whose
 * MUC runs the wallet module with `muc` options on top of the defaults, and focus logged in.
 * Registers its own teardown with before/after.
 */
function walletBed(name, routes, muc) {
  const bed = { clients: [] };
  before(async () => {
    bed.guildApi = await startKeyServer({
      [`/v2/guilds/${GUILD}`]: { body: { id: 42, name: 'Our Guild', urlName: GUILD } },
      ...routes(),
    });
    const { modules = [], ...options } = muc;
    bed.prosody = await startProsody({
      name,
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
      muc: {
        modules_enabled: ['gatehouse_token_verification', 'token_moderation', 'gatehouse_wallet', ...modules],
        gatehouse_wallet_guild_api: bed.guildApi.url,
        ...options,
      },
    });
    bed.focus = (await connectFocus({ httpPort: bed.prosody.httpPort })).xmpp;
    bed.clients.push(bed.focus);
  });
  after(async () => {
    await Promise.all(bed.clients.map(disconnect));
    await bed.prosody?.stop();
    await bed.guildApi?.close();
  });
  return bed;
}

describe('guild-gated rooms (Guild API stand-in)', () => {
  const member = newWallet();
  const outsider = newWallet();
  const slow = newWallet();
  // The Guild API stand-in: one guild, members by address, one address whose lookup hangs.
  const bed = walletBed('wallet', () => ({
    [membershipPath(member.address)]: { body: roles(true) },
    [membershipPath(outsider.address)]: { body: roles(false) },
    [membershipPath(slow.address)]: { hang: true },
  }), { gatehouse_wallet_guild_timeout: GUILD_TIMEOUT, gatehouse_wallet_challenge_ttl: CHALLENGE_TTL });

  const login = async (context = {}) => {
    const { xmpp } = await connect({ httpPort: bed.prosody.httpPort, token: token(context) });
    bed.clients.push(xmpp);
    return xmpp;
  };
  /** A room created by focus and gated by its first token holder (an owner by token). */
  const gatedRoom = async (node) => {
    const room = `${node}@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, room);
    const owner = await login({ user: { moderator: true }, room: { guild: GUILD } });
    const self = await joinRoom(owner, room, 'owner');
    assert.equal(self.affiliation, 'owner');
    return { room, owner };
  };
  const askChallenge = async (xmpp, room, address) => {
    const iq = await xmpp.iqCaller.request(xml('iq', { type: 'get', to: room }, xml('challenge', { xmlns: NS, address })), 5000);
    const c = iq.getChild('challenge', NS);
    return { message: c.text(), nonce: c.attrs.nonce, expires: c.attrs.expires };
  };
  const proof = (address, signature, message) => xml('proof', { xmlns: NS, address, signature }, xml('message', {}, message));
  /** Logs in, asks for a challenge for `wallet`, signs it with `signer`, joins with the proof. */
  const proveAndJoin = async (room, nick, wallet, { signer = wallet, challenge } = {}) => {
    const xmpp = await login();
    const c = challenge ?? await askChallenge(xmpp, room, wallet.address);
    const signature = signer.sign(c.message);
    const join = joinRoom(xmpp, room, nick, { extraChildren: [proof(wallet.address, signature, c.message)] });
    return { xmpp, challenge: c, signature, self: await join };
  };
  const refusal = (promise) => promise.then(() => assert.fail('join should have been refused'), (e) => e);
  const configure = (xmpp, room, fields) => xmpp.iqCaller.request(
    xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_OWNER },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
        ...Object.entries(fields).map(([v, value]) => xml('field', { var: v }, xml('value', {}, String(value))))))),
    5000);

  it('advertises the requirement and hands out SIWE challenges with fresh nonces', async () => {
    const { room } = await gatedRoom('adv');
    const xmpp = await login();
    const info = await xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })), 5000);
    const query = info.getChild('query');
    assert.ok(query.getChildren('feature').some((f) => f.attrs.var === NS), 'feature advertised');
    const fields = Object.fromEntries(query.getChild('x', 'jabber:x:data').getChildren('field')
      .map((f) => [f.attrs.var, f.getChildText('value')]));
    assert.equal(fields['muc#roominfo_gatehouse_guild'], GUILD);
    assert.equal(fields['muc#roominfo_gatehouse_guild_url'], `https://guild.xyz/${GUILD}`);

    const a = await askChallenge(xmpp, room, member.address.toLowerCase());
    const b = await askChallenge(xmpp, room, member.address);
    assert.notEqual(a.nonce, b.nonce);
    assert.match(a.message, new RegExp(`^meet\\.test wants you to sign in with your Ethereum account:\\n${member.address}\\n\\n` +
      `Join the room adv, open to members of the guild ${GUILD}\\.\\n\\nURI: https://meet\\.test/adv\\nVersion: 1\\n` +
      `Chain ID: 1\\nNonce: ${a.nonce}\\nIssued At: \\S+Z\\nExpiration Time: ${a.expires}$`));
    // A room without a requirement has no challenge to give, and a bad address gets none.
    const open = `open@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, open);
    const none = await askChallenge(xmpp, open, member.address).then(() => null, (e) => e);
    assert.equal(none?.condition, 'item-not-found');
    const bad = await askChallenge(xmpp, room, '0xnot-an-address').then(() => null, (e) => e);
    assert.equal(bad?.condition, 'bad-request');
  });

  it('admits a guild member with a valid signature; others never see the proof', async () => {
    const { room, owner } = await gatedRoom('members');
    // Without a proof the room is closed, as any members-only room.
    const plain = await refusal(joinRoom(await login(), room, 'plain'));
    assert.equal(plain.condition, 'registration-required');

    const seen = [];
    owner.on('stanza', (s) => { if (s.name === 'presence') seen.push(s.toString()); });
    const joined = await proveAndJoin(room, 'member', member);
    assert.equal(joined.self.affiliation, 'member');
    assert.equal(joined.self.role, 'participant');
    if (!seen.some((s) => s.includes(`${room}/member`))) {
      await waitForStanza(owner, () => seen.some((s) => s.includes(`${room}/member`)), 5000, 'member presence');
    }
    // A presence update carrying a proof is stripped too.
    const update = waitForStanza(owner, (s) => s.name === 'presence' && s.getChildText('status') === 'hi', 5000, 'presence update');
    await joined.xmpp.send(xml('presence', { to: `${room}/member` }, xml('status', {}, 'hi'),
      proof(member.address, joined.signature, joined.challenge.message)));
    await update;
    for (const stanza of seen) {
      assert.ok(!stanza.includes(NS) && !stanza.includes(joined.signature.slice(2)), `proof leaked: ${stanza}`);
    }
    assert.ok(!bed.prosody.readLog().includes(joined.signature.slice(2)), 'the signature is never logged');
    assert.equal(bed.guildApi.hits(membershipPath(member.address)), 1);
  });

  it('refuses a non-member, a wrong signer, a replayed signature and an expired challenge', async () => {
    const { room } = await gatedRoom('refusals');

    const notMember = await refusal(proveAndJoin(room, 'outsider', outsider));
    assert.equal(notMember.condition, 'forbidden');
    assert.match(notMember.text, /Not a member of the guild: our-guild/);

    const wrongSigner = await refusal(proveAndJoin(room, 'impostor', member, { signer: outsider }));
    assert.equal(wrongSigner.condition, 'not-authorized');
    assert.match(wrongSigner.text, /^Bad signature: signed by 0x[0-9a-fA-F]{40}, not the claimed address$/);

    const first = await proveAndJoin(room, 'first', member);
    const xmpp = await login();
    const replayed = await refusal(joinRoom(xmpp, room, 'replay', {
      extraChildren: [proof(member.address, first.signature, first.challenge.message)] }));
    assert.equal(replayed.condition, 'not-authorized');
    assert.equal(replayed.text, 'Challenge already used: ask the room for a new one');

    const late = await askChallenge(await login(), room, member.address);
    await new Promise((r) => setTimeout(r, (CHALLENGE_TTL + 1) * 1000));
    const expired = await refusal(proveAndJoin(room, 'late', member, { challenge: late }));
    assert.equal(expired.condition, 'not-authorized');
    assert.equal(expired.text, 'Challenge expired: ask the room for a new one');

    const forged = (await askChallenge(await login(), room, member.address)).message.replace(/Nonce: \w+/, 'Nonce: 0000000000000000');
    const unknown = await refusal(proveAndJoin(room, 'forged', member, { challenge: { message: forged } }));
    assert.equal(unknown.text, 'Unknown challenge: ask the room for a new one');
  });

  it('bypass holders and admins are never asked; a failing Guild API is "unavailable"', async () => {
    const { room } = await gatedRoom('bypass');
    const bypass = await joinRoom(await login({ user: { security_bypass: true } }), room, 'bypass');
    assert.equal(bypass.affiliation, 'member');
    // A second session of the admin focus joins as a new occupant, without a proof.
    const focus2 = (await connectFocus({ httpPort: bed.prosody.httpPort })).xmpp;
    bed.clients.push(focus2);
    assert.equal((await joinRoom(focus2, room, 'focus2')).affiliation, 'owner');

    const broken = newWallet();
    bed.guildApi.route(membershipPath(broken.address), { status: 503 });
    const down = await refusal(proveAndJoin(room, 'broken', broken));
    assert.equal(down.condition, 'service-unavailable');
    assert.equal(down.text, 'Guild service unavailable, try again later: guild API: http status: 503');
    // The challenge was spent only by a successful check: the stand-in recovers, a new one works.
    bed.guildApi.route(membershipPath(broken.address), { body: roles(true) });
    assert.equal((await proveAndJoin(room, 'recovered', broken)).self.affiliation, 'member');
  });

  it('the owner switches the requirement off (anyone gets in) and on again', async () => {
    const { room, owner } = await gatedRoom('toggle');
    assert.equal((await refusal(joinRoom(await login(), room, 'before'))).condition, 'registration-required');

    await configure(owner, room, { 'muc#roomconfig_gatehouse_guild_required': 0 });
    const anyone = await joinRoom(await login(), room, 'anyone');
    assert.equal(anyone.role, 'participant');
    const none = await askChallenge(await login(), room, member.address).then(() => null, (e) => e);
    assert.equal(none?.condition, 'item-not-found', 'no challenges while switched off');

    await configure(owner, room, { 'muc#roomconfig_gatehouse_guild_required': 1 });
    assert.equal((await refusal(joinRoom(await login(), room, 'after'))).condition, 'registration-required');
    assert.equal((await proveAndJoin(room, 'member', member)).self.affiliation, 'member');
    // Someone who is not an owner cannot switch it.
    const forbidden = await configure(await login(), room,
      { 'muc#roomconfig_gatehouse_guild_required': 0 }).then(() => null, (e) => e);
    assert.equal(forbidden?.condition, 'forbidden');
    assert.match(bed.prosody.readLog(), /set the guild requirement of toggle@conference\.meet\.test to none/);
  });

  it('while the Guild API hangs, others are not delayed and the waiting join fails at the timeout', async () => {
    const { room } = await gatedRoom('hang');
    const waiting = await login();
    const c = await askChallenge(waiting, room, slow.address);
    const t0 = performance.now();
    const hanging = joinRoom(waiting, room, 'slow', {
      extraChildren: [proof(slow.address, slow.sign(c.message), c.message)], timeoutMs: 10_000 })
      .then(() => assert.fail('join should have failed'), (e) => Object.assign(e, { ms: performance.now() - t0 }));

    // Meanwhile: pings from another client and a whole member join elsewhere.
    await new Promise((r) => setTimeout(r, 200));
    const other = await login();
    const pings = [];
    for (let i = 0; i < 5; i++) pings.push(await ping(other));
    const j0 = performance.now();
    const { room: room2 } = await gatedRoom('hang-other');
    await proveAndJoin(room2, 'member', member);
    const otherJoin = performance.now() - j0;

    const err = await hanging;
    console.log(`# Guild API hanging: ${pings.length} pings from another client, max ${Math.max(...pings).toFixed(1)} ms; ` +
      `a whole gated room + member join elsewhere ${otherJoin.toFixed(0)} ms; the waiting join failed after ${err.ms.toFixed(0)} ms ` +
      `(guild timeout ${GUILD_TIMEOUT * 1000} ms)`);
    assert.ok(Math.max(...pings) < 200, 'pings are not held up');
    assert.ok(otherJoin < 1000, 'other joins are not held up');
    assert.equal(err.condition, 'service-unavailable');
    assert.match(err.text, /^Guild service unavailable, try again later: guild API: timed out after 1500 ms$/);
    assert.ok(err.ms >= GUILD_TIMEOUT * 1000 - 50 && err.ms < GUILD_TIMEOUT * 1000 + 1500, `failed after ${err.ms} ms`);
    assert.ok(bed.guildApi.hits(membershipPath(slow.address)) >= 1);
  });
});

describe('guild-gated rooms with Jitsi\'s lobby modules (test stand-in) and an API key', () => {
  const member = newWallet();
  const bed = walletBed('wallet-lobby', () => ({
    [membershipPath(member.address)]: { body: [roles(true)] }, // the list form of the answer
  }), { modules: ['e2e_lobby_standin'], gatehouse_wallet_guild_api_key: 'stand-in-key' });

  it('a gated room turns the lobby on; a proven member walks past it; off destroys it', async () => {
    const login = async (context = {}) => {
      const { xmpp } = await connect({ httpPort: bed.prosody.httpPort, token: token(context) });
      bed.clients.push(xmpp);
      return xmpp;
    };
    const room = `lobbied@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, room);
    const mark = bed.prosody.logMark();
    const owner = await login({ user: { moderator: true }, room: { guild: GUILD } });
    await joinRoom(owner, room, 'owner');
    await bed.prosody.waitForLog(/observed create-persistent-lobby-room room=lobbied@conference\.meet\.test/, 5000, mark);

    const waiting = await joinRoom(await login(), room, 'waiting').then(() => null, (e) => e);
    assert.equal(waiting?.condition, 'registration-required');
    assert.deepEqual(waiting.children, [{ name: 'lobbyroom', xmlns: 'http://jitsi.org/jitmeet' }]);

    const xmpp = await login();
    const iq = await xmpp.iqCaller.request(xml('iq', { type: 'get', to: room }, xml('challenge', { xmlns: NS, address: member.address })), 5000);
    const message = iq.getChild('challenge', NS).text();
    const self = await joinRoom(xmpp, room, 'member', {
      extraChildren: [xml('proof', { xmlns: NS, address: member.address, signature: member.sign(message) }, xml('message', {}, message))] });
    assert.equal(self.affiliation, 'member');
    const asked = bed.guildApi.requests.filter((r) => r.path.startsWith('/v2/'));
    assert.ok(asked.length >= 2 && asked.every((r) => r.headers['x-api-key'] === 'stand-in-key'), 'API key sent');

    await owner.iqCaller.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_OWNER },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
        xml('field', { var: 'muc#roomconfig_gatehouse_guild_required' }, xml('value', {}, 'false'))))), 5000);
    await bed.prosody.waitForLog(/observed destroy-lobby-room room=lobbied@conference\.meet\.test .*members_only=false/, 5000, mark);
    await joinRoom(await login(), room, 'anyone');
  });
});

describe('the seed fork\'s client format (gatehouse_wallet_legacy_format = true; Guild API stand-in)', () => {
  const member = newWallet();
  const bed = walletBed('wallet-legacy', () => ({
    [membershipPath(member.address)]: { body: roles(true) },
  }), { gatehouse_wallet_legacy_format: true });

  it('Guild:/Challenge: in the description, Signature:/Address: features; the code rotates after each use', async () => {
    const login = async (context = {}) => {
      const { xmpp } = await connect({ httpPort: bed.prosody.httpPort, token: token(context) });
      bed.clients.push(xmpp);
      return xmpp;
    };
    const description = async (xmpp, room) => {
      const info = await xmpp.iqCaller.request(
        xml('iq', { type: 'get', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })), 5000);
      const field = info.getChild('query').getChild('x', 'jabber:x:data').getChildren('field')
        .find((f) => f.attrs.var === 'muc#roominfo_description');
      return field?.getChildText('value');
    };
    const features = (signature, address) => xml('features', {},
      xml('feature', { var: `Signature:${signature}` }), xml('feature', { var: `Address:${address}` }));

    const room = `legacy@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, room);
    const owner = await login({ user: { moderator: true }, room: { guild: GUILD } });
    await joinRoom(owner, room, 'owner');
    const seen = [];
    owner.on('stanza', (s) => { if (s.name === 'presence') seen.push(s.toString()); });

    const xmpp = await login();
    const first = await description(xmpp, room);
    const code = first.match(/^Guild:our-guild;Challenge:([0-9a-f]{20})$/)?.[1];
    assert.ok(code, `description: ${first}`);
    const signature = member.sign(`Please sign to verify your identity, verification code is ${code}`);
    const self = await joinRoom(xmpp, room, 'member', { extraChildren: [features(signature, member.address)] });
    assert.equal(self.affiliation, 'member');

    const second = await description(owner, room);
    assert.notEqual(second, first, 'the code rotated after its use');
    const replay = await joinRoom(await login(), room, 'replay', { extraChildren: [features(signature, member.address)] })
      .then(() => null, (e) => e);
    assert.equal(replay?.condition, 'not-authorized');
    assert.match(replay.text, /^Bad signature/);
    if (!seen.some((s) => s.includes(`${room}/member`))) {
      await waitForStanza(owner, () => seen.some((s) => s.includes(`${room}/member`)), 5000, 'member presence');
    }
    assert.ok(seen.every((s) => !s.includes('Signature:') && !s.includes(signature.slice(2))), 'features stripped');
  });
});
