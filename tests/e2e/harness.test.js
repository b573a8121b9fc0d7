// Smoke test of the e2e harness itself, with STOCK Prosody modules only (no gatehouse code):
// if this fails, fix the harness before believing any other e2e result.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { startProsody, MUC_DOMAIN, FOCUS } from './lib/prosody.js';
import { canConnect } from './lib/net.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, ping, disconnect } from './lib/client.js';
import * as jwt from './lib/jwt.js';
import { startKeyServer, asapPath } from './lib/keyserver.js';

describe('prosody + clients (stock modules, anonymous main host)', () => {
  let prosody;
  const clients = [];
  before(async () => {
    prosody = await startProsody({ name: 'harness', mainHost: { authentication: 'anonymous' } });
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('focus creates a room, an anonymous websocket client joins it and pings', async () => {
    const focus = await connectFocus({ httpPort: prosody.httpPort });
    clients.push(focus.xmpp);
    assert.match(focus.jid, /^focus@auth\.meet\.test\//);

    // Query parameters reach Prosody like a Jitsi client's; stock anonymous auth ignores them.
    const alice = await connect({ httpPort: prosody.httpPort, token: 'not-checked-here', room: 'room1' });
    clients.push(alice.xmpp);
    assert.match(alice.jid, /@meet\.test\//);

    const room = `room1@${MUC_DOMAIN}`;
    const created = await createRoomAsFocus(focus.xmpp, room);
    assert.equal(created.affiliation, 'owner');
    assert.ok(created.statusCodes.includes(201), 'focus created the room');
    assert.ok(created.statusCodes.includes(110), 'self-presence');

    const joined = await joinRoom(alice.xmpp, room, 'alice');
    assert.equal(joined.affiliation, 'none');
    assert.equal(joined.role, 'participant');
    assert.equal(joined.nick, 'alice');
    assert.ok(joined.statusCodes.includes(110));

    const rtt = await ping(alice.xmpp);
    assert.ok(rtt > 0 && rtt < 1000, `ping rtt ${rtt} ms`);
  });

  it('a refused join rejects with condition, type and text', async () => {
    const room = `room2@${MUC_DOMAIN}`;
    const focus = await connectFocus({ httpPort: prosody.httpPort });
    clients.push(focus.xmpp);
    await createRoomAsFocus(focus.xmpp, room);
    const bob = await connect({ httpPort: prosody.httpPort });
    clients.push(bob.xmpp);
    await assert.rejects(joinRoom(bob.xmpp, room, 'focus'), (err) => {
      assert.equal(err.condition, 'conflict');
      assert.equal(err.type, 'cancel');
      assert.deepEqual(err.children, []);
      return true;
    });
  });

  it('a SASL failure rejects with condition and text, without hanging', async () => {
    const t0 = Date.now();
    await assert.rejects(
      connectFocus({ httpPort: prosody.httpPort, password: `${FOCUS.password}-wrong` }),
      (err) => {
        assert.equal(err.condition, 'not-authorized');
        assert.equal(typeof err.text, 'string');
        return true;
      });
    assert.ok(Date.now() - t0 < 5000);
  });

  it('an unoffered SASL mechanism is reported, not hung on', async () => {
    await assert.rejects(
      connect({ httpPort: prosody.httpPort, mechanism: 'PLAIN', credentials: { username: 'x', password: 'y' } }),
      (err) => Array.isArray(err.offered) && err.offered.includes('ANONYMOUS'));
  });

  it('the log is readable and waitable from a mark', async () => {
    assert.match(prosody.readLog(), /Hello and welcome to Prosody/);
    const mark = prosody.logMark();
    assert.doesNotMatch(prosody.readLog(mark), /Authenticated as/);
    const carol = await connect({ httpPort: prosody.httpPort });
    clients.push(carol.xmpp);
    const line = await prosody.waitForLog(/Authenticated as/, 2000, mark);
    assert.ok(line.includes(carol.jid.split('/')[0]), line);
  });
});

describe('prosody lifecycle', () => {
  it('stop() ends the process and frees the ports', async () => {
    const p = await startProsody({ name: 'lifecycle' });
    assert.ok(await canConnect(p.httpPort));
    await p.stop();
    assert.equal(await canConnect(p.httpPort), false);
    assert.equal(await canConnect(p.c2sPort), false);
    assert.throws(() => process.kill(p.pid, 0), { code: 'ESRCH' });
    await p.stop(); // idempotent
  });

  it('a config Prosody cannot load rejects fast with the log tail', async () => {
    await assert.rejects(
      startProsody({ name: 'broken', extraLua: { global: 'this is not lua' } }),
      (err) => {
        assert.match(err.message, /Prosody did not start/);
        assert.match(err.message, /prosody\.cfg\.lua/); // Prosody names the file it choked on
        return true;
      });
  });

  it('a Prosody that gives up during startup rejects fast with the log tail', async () => {
    const t0 = Date.now();
    await assert.rejects(
      startProsody({ name: 'badpid', global: { pidfile: '/proc/no-such-dir/prosody.pid' } }),
      /Couldn't write pidfile/);
    assert.ok(Date.now() - t0 < 5000, 'did not wait for the start timeout');
  });
});

describe('jwt helper (checked with node:crypto verify, not with gatehouse)', () => {
  const verifyParams = {
    RS256: ['sha256', {}], RS384: ['sha384', {}], RS512: ['sha512', {}],
    PS256: ['sha256', { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
    ES256: ['sha256', { dsaEncoding: 'ieee-p1363' }], ES384: ['sha384', { dsaEncoding: 'ieee-p1363' }],
    EdDSA: [null, {}],
  };
  for (const alg of Object.keys(verifyParams)) {
    it(`${alg}: signature verifies against the exported JWK and PEM`, () => {
      const key = jwt.generateKey(alg, { kid: `k-${alg}` });
      const token = jwt.sign({ sub: 'x' }, { alg, key });
      const [h, p, s] = token.split('.');
      assert.deepEqual(jwt.decode(token).header, { alg, typ: 'JWT', kid: `k-${alg}` });
      const [hash, extra] = verifyParams[alg];
      for (const pub of [crypto.createPublicKey({ key: key.jwk, format: 'jwk' }), key.publicPem]) {
        assert.ok(crypto.verify(hash, Buffer.from(`${h}.${p}`), { key: pub, ...extra }, Buffer.from(s, 'base64url')));
      }
      const bad = jwt.corruptSignature(token).split('.')[2];
      assert.ok(!crypto.verify(hash, Buffer.from(`${h}.${p}`), { key: key.publicPem, ...extra }, Buffer.from(bad, 'base64url')));
    });
  }

  it('HS256/384/512 match an independent HMAC', () => {
    for (const [alg, hash] of [['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']]) {
      const token = jwt.sign(jwt.jitsiClaims({ appId: 'app', room: 'r' }), { alg, key: 'secret' });
      const [h, p, s] = token.split('.');
      assert.equal(s, crypto.createHmac(hash, 'secret').update(`${h}.${p}`).digest('base64url'));
    }
  });

  it('unsigned and tampered variants', () => {
    const token = jwt.sign({ a: 1 }, { alg: 'HS256', key: 's', header: { typ: undefined } });
    assert.deepEqual(jwt.decode(token).header, { alg: 'HS256' });
    assert.match(jwt.unsigned({ a: 1 }), /^[\w-]+\.[\w-]+\.$/);
    const t2 = jwt.tamperPayload(token, { a: 2 });
    assert.equal(jwt.decode(t2).payload.a, 2);
    assert.equal(t2.split('.')[2], token.split('.')[2]);
    assert.equal(jwt.decode(jwt.tamperHeader(token, { alg: 'none' })).header.alg, 'none');
    assert.equal(jwt.jitsiClaims({ appId: 'a', room: undefined }).room, undefined);
  });
});

describe('key server stand-in', () => {
  let ks;
  after(() => ks?.close());

  it('serves scripted answers, counts hits, delays and drops', async () => {
    const key = jwt.generateKey('RS256', { kid: 'asap-1' });
    ks = await startKeyServer({
      [asapPath('asap-1')]: { body: key.publicPem, headers: { 'content-type': 'text/plain' } },
      '/jwks': [{ status: 503 }, { body: jwt.jwks(key), headers: { 'cache-control': 'max-age=60' } }],
      '/slow': { delayMs: 150, body: 'late' },
      '/drop': { destroy: true },
      '/hang': { hang: true },
    });
    assert.match(asapPath('asap-1'), /^\/[0-9a-f]{64}\.pem$/);

    const pem = await fetch(ks.url + asapPath('asap-1'));
    assert.equal(await pem.text(), key.publicPem);

    assert.equal((await fetch(`${ks.url}/jwks`)).status, 503);
    const second = await fetch(`${ks.url}/jwks?x=1`);
    assert.equal(second.headers.get('cache-control'), 'max-age=60');
    assert.equal((await second.json()).keys[0].kid, 'asap-1');
    assert.equal(ks.hits('/jwks'), 2);

    const t0 = Date.now();
    assert.equal(await (await fetch(`${ks.url}/slow`)).text(), 'late');
    assert.ok(Date.now() - t0 >= 140);

    await assert.rejects(fetch(`${ks.url}/drop`));
    await assert.rejects(fetch(`${ks.url}/hang`, { signal: AbortSignal.timeout(200) }));
    assert.equal((await fetch(`${ks.url}/nope`)).status, 404);
  });
});
