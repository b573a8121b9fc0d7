// The direct homeserver mode with users of ANOTHER homeserver: two REAL Synapse homeservers
// (lib/synapse.js; from PyPI, skipped when it is not installed) federating over TLS on loopback,
// with certificates from a test CA made at test time (lib/testca.js). The room lives on "ours"
// (the configured homeserver, asked for membership and power through its admin API); a user of
// "theirs" joined it over federation, and gatehouse checks that user's OpenID token where it was
// issued: at their server, found by server discovery (an IP literal server name, so port 8448),
// over HTTPS trusting the test CA through `gatehouse_ca_file`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';

import { startProsody, MUC_DOMAIN, RUN_ROOT } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, waitForStanza, parseMucPresence, refusedLogin } from './lib/client.js';
import { freePorts } from './lib/net.js';
import { findSynapse, startSynapse, federatedRoom, openidToken, widgetLogin } from './lib/synapse.js';
import { makeTestCa } from './lib/testca.js';
import { roomName } from './lib/uvs.js';

const found = findSynapse();
// Their server name: an IP literal of its own on loopback (any 127.x.y.z is ours to bind), so
// discovery's default federation port 8448 is free to use without a network namespace.
const THEIR_HOST = `127.${[...crypto.randomBytes(3)].map((b) => 1 + (b % 250)).join('.')}`;

describe(`homeserver mode with a user of another homeserver (two real Synapse ${found.version ?? ''}, federating over TLS)`, { skip: found.missing }, () => {
  let ours;
  let theirs;
  let prosody;
  let tls;
  let admin;
  let roomId;
  const people = {};
  const clients = [];
  const stops = [];

  const roomJid = () => `${roomName(roomId)}@${MUC_DOMAIN}`;
  const matrixSettings = (extra = {}) => ({
    authentication: 'matrix_user_verification',
    matrix_user_verification_homeserver_url: ours.url,
    matrix_user_verification_homeserver_admin_token: admin.access_token,
    uvs_sync_power_levels: true,
    ...extra,
  });

  const openid = (server, who) => openidToken(server, people[who]);
  const widget = (who, openid, serverName) => widgetLogin({ roomId, name: who, openid, serverName });

  before(async () => {
    tls = makeTestCa(path.join(RUN_ROOT, `federation-ca-${crypto.randomBytes(4).toString('hex')}`),
      { dns: ['localhost'], ips: ['127.0.0.1', THEIR_HOST] });
    const [ourFederationPort] = await freePorts(1);
    [ours, theirs] = await Promise.all([
      startSynapse({ python: found.python, serverName: `127.0.0.1:${ourFederationPort}`,
        federation: { host: '127.0.0.1', port: ourFederationPort, cert: tls.cert, key: tls.key } }),
      startSynapse({ python: found.python, serverName: THEIR_HOST,
        federation: { host: THEIR_HOST, port: 8448, cert: tls.cert, key: tls.key } }),
    ]);
    admin = await ours.register('admin', { admin: true });
    people.alice = await ours.register('alice');
    people.carol = await theirs.register('carol');
    people.dave = await theirs.register('dave');
    assert.equal(people.carol.user_id, `@carol:${THEIR_HOST}`);

    // Alice's room on our server; Carol (their server) joins it over federation with power 50.
    roomId = await federatedRoom({ ours, theirs, admin, owner: people.alice, guest: people.carol });

    prosody = await startProsody({
      name: 'matrix-federation',
      global: { gatehouse_ca_file: tls.ca },
      // Their server is on loopback: private addresses must be allowed for this test bed.
      mainHost: matrixSettings({ matrix_user_verification_federation_allow_private: true }),
      muc: { modules_enabled: ['matrix_power_sync'] },
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    await createRoomAsFocus(focus, roomJid());
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    for (const stop of stops) await stop();
    await prosody?.stop();
    await Promise.all([ours?.stop(), theirs?.stop()]);
  });

  it('a user of another homeserver in the room gets in, and her power there makes her owner', async () => {
    const { xmpp } = await connect({ httpPort: prosody.httpPort, ...widget('carol', await openid(theirs, 'carol'), THEIR_HOST) });
    clients.push(xmpp);
    const synced = waitForStanza(xmpp, (s) => s.name === 'presence' && s.attrs.from === `${roomJid()}/carol` &&
      !['none', undefined].includes(parseMucPresence(s).affiliation), 5000, 'synced affiliation');
    await joinRoom(xmpp, roomJid(), 'carol');
    assert.equal(parseMucPresence(await synced).affiliation, 'owner');
    assert.match(prosody.readLog(), new RegExp(`REQUEST_COMPLETE reason:ok for @carol:${THEIR_HOST.replaceAll('.', '\\.')} in `));
  });

  it('a user of that homeserver who is not in the room is refused', async () => {
    const err = await refusedLogin(prosody.httpPort, widget('dave', await openid(theirs, 'dave'), THEIR_HOST));
    assert.equal(err.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
    assert.match(prosody.readLog(), /REQUEST_COMPLETE reason:not_in_room/);
  });

  it('their token claimed to be ours is refused: our server does not know it', async () => {
    const err = await refusedLogin(prosody.httpPort, widget('carol', await openid(theirs, 'carol'), ours.serverName));
    assert.equal(err.condition, 'access-denied');
    assert.equal(err.text, 'Token invalid or not in room');
  });

  it('our own users are still checked at our homeserver', async () => {
    const alice = await connect({ httpPort: prosody.httpPort, ...widget('alice', await openid(ours, 'alice'), ours.serverName) });
    clients.push(alice.xmpp);
  });

  it('by default, server discovery refuses private addresses: the other server is never asked', async () => {
    const strict = await startProsody({ name: 'matrix-federation-strict', global: { gatehouse_ca_file: tls.ca }, mainHost: matrixSettings() });
    stops.push(() => strict.stop());
    const err = await refusedLogin(strict.httpPort, widget('carol', await openid(theirs, 'carol'), THEIR_HOST));
    assert.equal(err.condition, 'access-denied');
    assert.match(strict.readLog(), new RegExp(`REQUEST_COMPLETE reason:federation_failed .*${THEIR_HOST.replaceAll('.', '\\.')} has only private addresses`));
  });

  it('a certificate from a CA gatehouse does not trust is refused', async () => {
    const untrusting = await startProsody({ name: 'matrix-federation-untrusted',
      mainHost: matrixSettings({ matrix_user_verification_federation_allow_private: true }) });
    stops.push(() => untrusting.stop());
    const token = await openid(theirs, 'carol');
    const err = await refusedLogin(untrusting.httpPort, widget('carol', token, THEIR_HOST));
    assert.equal(err.condition, 'access-denied');
    const log = untrusting.readLog();
    assert.match(log, /REQUEST_COMPLETE reason:federation_failed .*(certificate|UnknownIssuer|tls)/i);
    assert.ok(!log.includes(token), 'the OpenID token stays out of the log');
  });
});
