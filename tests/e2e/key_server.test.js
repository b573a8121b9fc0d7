// Token keys from remote servers, against a real Prosody. The key servers here are LOCAL
// STAND-INS (lib/keyserver.js) for a Jitsi ASAP public-key server and a JWKS endpoint: they
// serve what such servers publish, and misbehave on purpose (hang, fail).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, ping, disconnect, refusedLogin } from './lib/client.js';
import { startKeyServer, asapPath } from './lib/keyserver.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const claims = (extra = {}) => jwt.jitsiClaims({ appId: APP_ID, room: 'room1', ...extra });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('asap_key_server (RS256), with a stand-in key server that can hang', () => {
  const fast = jwt.generateKey('RS256', { kid: 'jitsi/fast' });
  const slow = jwt.generateKey('RS256', { kid: 'jitsi/slow' });
  let keys;
  let prosody;
  const clients = [];

  before(async () => {
    keys = await startKeyServer({
      [`/asap${asapPath(fast.kid)}`]: { body: fast.publicPem },
      // Answers only after 10 s: far beyond the 2 s fetch timeout configured below.
      [`/asap${asapPath(slow.kid)}`]: { body: slow.publicPem, delayMs: 10_000 },
    });
    prosody = await startProsody({
      name: 'asap',
      mainHost: {
        authentication: 'gatehouse_token', app_id: APP_ID,
        asap_key_server: `${keys.url}/asap`, gatehouse_key_fetch_timeout: 2,
      },
      muc: { modules_enabled: ['gatehouse_token_verification'] },
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    await createRoomAsFocus(focus, `room1@${MUC_DOMAIN}`);
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
    await keys?.close();
  });

  it('fetches the public key by hashed kid once, then serves it from the cache', async () => {
    for (const nick of ['k1', 'k2', 'k3']) {
      const { xmpp } = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg: 'RS256', key: fast }) });
      clients.push(xmpp);
      await joinRoom(xmpp, `room1@${MUC_DOMAIN}`, nick);
    }
    assert.equal(keys.hits(`/asap${asapPath(fast.kid)}`), 1);
  });

  it('a token without kid is refused', async () => {
    const token = jwt.sign(claims(), { alg: 'RS256', key: fast.privateKey });
    const err = await connect({ httpPort: prosody.httpPort, token }).then(() => null, (e) => e);
    assert.equal(err?.condition, 'not-allowed');
    assert.equal(err.text, "'kid' claim is missing");
  });

  it('a key server that hangs for 10 s delays neither other logins nor pings', async () => {
    const bystander = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg: 'RS256', key: fast }) });
    clients.push(bystander.xmpp);

    const started = performance.now();
    const stuck = connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg: 'RS256', key: slow }) })
      .then(() => ({ ok: true }), (err) => ({ err, ms: performance.now() - started }));

    // While that login waits for its key, others log in and the bystander pings.
    const logins = [];
    const pings = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const { xmpp } = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg: 'RS256', key: fast }) });
      logins.push(performance.now() - t0);
      clients.push(xmpp);
      pings.push(await ping(bystander.xmpp));
    }
    const outcome = await stuck;
    console.log(`# while a key fetch hung: login median ${median(logins).toFixed(1)} ms, max ${Math.max(...logins).toFixed(1)} ms; ` +
      `ping median ${median(pings).toFixed(1)} ms, max ${Math.max(...pings).toFixed(1)} ms; stuck login failed after ${outcome.ms?.toFixed(0)} ms`);
    assert.ok(Math.max(...logins) < 1000, `logins took ${logins.map(Math.round)} ms`);
    assert.ok(Math.max(...pings) < 500, `pings took ${pings.map(Math.round)} ms`);

    // The stuck login fails cleanly at the 2 s fetch timeout, long before the 10 s answer.
    assert.ok(!outcome.ok, 'the login whose key never came must fail');
    assert.equal(outcome.err.condition, 'not-allowed');
    assert.equal(outcome.err.text, 'could not obtain public key'); // upstream's text
    assert.match(prosody.readLog(), /could not obtain public key: timed out/, 'the log says why');
    assert.ok(outcome.ms >= 1500 && outcome.ms < 6000, `failed after ${outcome.ms} ms`);
  });
});

describe('cache_keys_url (JWKS), ES256 and EdDSA, with a stand-in JWKS endpoint', () => {
  for (const alg of ['ES256', 'EdDSA']) {
    it(`${alg}: a key from the JWKS verifies; an unknown kid is refused`, async (t) => {
      const key = jwt.generateKey(alg, { kid: `${alg}-1` });
      const other = jwt.generateKey(alg, { kid: `${alg}-2` });
      const keys = await startKeyServer({ '/jwks.json': { body: jwt.jwks(key), headers: { 'cache-control': 'max-age=600' } } });
      const prosody = await startProsody({
        name: `jwks-${alg}`,
        mainHost: {
          authentication: 'gatehouse_token', app_id: APP_ID,
          cache_keys_url: `${keys.url}/jwks.json`, signature_algorithm: alg,
        },
      });
      t.after(async () => { await prosody.stop(); await keys.close(); });

      const { xmpp } = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg, key }) });
      await disconnect(xmpp);
      const err = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg, key: other }) })
        .then(() => null, (e) => e);
      assert.equal(err?.condition, 'not-allowed');
      assert.equal(err.text, 'could not obtain public key'); // upstream's text
      assert.match(prosody.readLog(), new RegExp(`no public key for kid '${alg}-2'`), 'the log names the kid');
      assert.equal(keys.hits('/jwks.json'), 1, 'the document was fetched once');
    });
  }
});

describe('cache_keys_url (JWKS) whose Cache-Control max-age is absurd (stand-in JWKS endpoint)', () => {
  // u64::MAX seconds overflowed the clock arithmetic: the worker panicked, the JWKS state was
  // left half-written and every later login failed.
  for (const maxAge of ['18446744073709551615', '18446744073709551616']) {
    it(`max-age=${maxAge}: logins succeed, and keep succeeding from the cache`, async () => {
      const key = jwt.generateKey('RS256', { kid: 'k1' });
      const keys = await startKeyServer({ '/jwks.json': { body: jwt.jwks(key), headers: { 'cache-control': `public, max-age=${maxAge}` } } });
      const prosody = await startProsody({
        name: 'jwks-max-age',
        mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, cache_keys_url: `${keys.url}/jwks.json` },
      });
      try {
        for (let i = 0; i < 3; i++) {
          const { xmpp } = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg: 'RS256', key }) });
          await disconnect(xmpp);
        }
        assert.equal(keys.hits('/jwks.json'), 1);
        assert.doesNotMatch(prosody.readLog(), /panicked|failed unexpectedly/);
      } finally {
        await prosody.stop();
        await keys.close();
      }
    });
  }
});

// When the remote-call bounds themselves give up (no worker free before the deadline, too many
// calls in flight for one address), the bridge reports remote-server-timeout / resource-constraint:
// stanza conditions, not SASL ones (RFC 6120 §6.5). The client must get what upstream's
// token/util.lib.lua gives when it could not get a key: not-allowed "could not obtain public key".
describe('asap_key_server that never answers in time (stand-in key server), remote-call bounds reached', () => {
  const SLOW_DOMAIN = 'slow.meet.test';
  const hung = ['jitsi/hung-1', 'jitsi/hung-2', 'jitsi/hung-3'].map((kid) => jwt.generateKey('RS256', { kid }));
  const slowClaims = (extra = {}) => claims({ sub: SLOW_DOMAIN, ...extra });
  let keys;
  let prosody;

  before(async () => {
    // Every key answers only after 10 s, far beyond every fetch timeout below.
    keys = await startKeyServer(Object.fromEntries(hung.map((k) => [`/asap${asapPath(k.kid)}`, { body: k.publicPem, delayMs: 10_000 }])));
    const asap = { authentication: 'gatehouse_token', app_id: APP_ID, asap_key_server: `${keys.url}/asap` };
    prosody = await startProsody({
      name: 'asap-bounds',
      // One worker in all, and at most 2 calls in flight per client address (loopback is
      // not a trusted proxy here, so the tests' clients count as one address).
      global: { gatehouse_max_remote_calls: 1, gatehouse_max_remote_calls_per_address: 2, trusted_proxies: [] },
      mainHost: { ...asap, gatehouse_key_fetch_timeout: 1 },
      // This host's fetch holds the only worker for 6 s.
      hosts: { [SLOW_DOMAIN]: { ...asap, gatehouse_key_fetch_timeout: 6 } },
    });
  });
  after(async () => {
    await prosody?.stop();
    await keys?.close();
  });

  it('no worker free before the deadline, then too many calls from one address: not-allowed "could not obtain public key", the log says why', async () => {
    const hitsOf = (k) => keys.hits(`/asap${asapPath(k.kid)}`);
    // Holds the only worker (and one of the address's 2 slots) for 6 s.
    const holder = connect({ httpPort: prosody.httpPort, domain: SLOW_DOMAIN, token: jwt.sign(slowClaims(), { alg: 'RS256', key: hung[0] }) })
      .then(({ xmpp }) => disconnect(xmpp), () => null);
    for (let i = 0; i < 50 && hitsOf(hung[0]) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(hitsOf(hung[0]), 1, 'the first fetch is in flight');

    // Queued behind it: the bridge gives up after 1 s (+ its delivery grace), the key server never asked.
    const started = performance.now();
    const queued = refusedLogin(prosody.httpPort, { token: jwt.sign(claims(), { alg: 'RS256', key: hung[1] }) });
    await new Promise((r) => setTimeout(r, 200));
    // A third call from the same address while two are in flight: refused at once.
    const busy = await refusedLogin(prosody.httpPort, { token: jwt.sign(claims(), { alg: 'RS256', key: hung[2] }) });
    assert.equal(busy.condition, 'not-allowed');
    assert.equal(busy.text, 'could not obtain public key');

    const timedOut = await queued;
    const ms = performance.now() - started;
    assert.equal(timedOut.condition, 'not-allowed');
    assert.equal(timedOut.text, 'could not obtain public key');
    assert.ok(ms < 4000, `refused after ${ms.toFixed(0)} ms, before the worker was free`);
    assert.equal(hitsOf(hung[1]) + hitsOf(hung[2]), 0, 'neither was fetched');

    const log = prosody.readLog();
    assert.match(log, /warn\tToken refused for [^\n]*\(timeout\): could not obtain public key: no answer within 1s \(remote-server-timeout\)/);
    assert.match(log, /warn\tToken refused for [^\n]*\(busy\): could not obtain public key: too many remote calls in flight for this client \(resource-constraint\)/);
    await holder;
  });
});
