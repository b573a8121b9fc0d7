// Token keys from remote servers, against a real Prosody. The key servers here are LOCAL
// STAND-INS (lib/keyserver.js) for a Jitsi ASAP public-key server and a JWKS endpoint: they
// serve what such servers publish, and misbehave on purpose (hang, fail).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, ping, disconnect } from './lib/client.js';
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
