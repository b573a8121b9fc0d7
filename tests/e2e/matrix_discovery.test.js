// Matrix server discovery in the direct homeserver mode, against a real DNS server: a user of
// another homeserver whose server name is a DNS name (`theirs.test`) logs in, and gatehouse
// must find that server the way the server-server API says ("Resolving server names"):
// `/.well-known/matrix/server` delegation (with or without a port, and through a redirect to
// `www.`), SRV records (`_matrix-fed._tcp`, then the deprecated `_matrix._tcp`), then port
// 8448. And within bounds, whatever a hostile or broken name holds: an SRV target whose
// nameservers never answer is given up by the login's deadline (Prosody answering others
// meanwhile), and a userinfo reply over 64 KiB is not read.
//
// Real parts: dnsmasq (lib/dns.js) serves each scenario's records on a loopback address of its
// own, port 53; Prosody and both Synapses see it as their /etc/resolv.conf (a bind mount in a
// private mount namespace), so each does its own lookups through it. Two real Synapses federate
// over TLS (certificates from a test CA): "ours" (the configured homeserver, asked for
// membership and power) and "theirs" (`theirs.test`, which issued carol's OpenID token). Carol
// joins the room on ours over federation once, with these DNS records, which shows through
// Synapse's own discovery that SRV records of this shape work. The well-known document comes
// from a static file server (Node https, lib/wellknown.js), which also plays the redirecting
// apex domain and a hostile server's oversized userinfo reply; a TLS-terminating relay
// (lib/tlsproxy.js) in front of their Synapse plays a server holding another certificate; a UDP
// socket that reads and never answers plays a domain's silent nameservers (dnsmasq forwards
// that domain to it).
// Each scenario gets a fresh Prosody, since discovery results are cached per process.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';

import { startProsody, MUC_DOMAIN, RUN_ROOT } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, waitForStanza, parseMucPresence, refusedLogin, ping } from './lib/client.js';
import { freePorts } from './lib/net.js';
import { findSynapse, startSynapse, federatedRoom, openidToken, widgetLogin } from './lib/synapse.js';
import { findDnsmasq, startDns, randomLoopback, writeResolvConf } from './lib/dns.js';
import { startWellKnownServer } from './lib/wellknown.js';
import { startTlsProxy } from './lib/tlsproxy.js';
import { makeTestCa } from './lib/testca.js';
import { roomName } from './lib/uvs.js';

/**
 * A nameserver that never answers: a UDP socket on `address` port 53 reading every query and
 * ignoring it, as a domain's nameservers do when down or dropping packets. Counts the queries.
 * @returns {Promise<{queries(): number, close(): Promise<void>}>}
 */
async function startSilentNameserver(address) {
  const socket = dgram.createSocket('udp4');
  let queries = 0;
  let closed = false;
  socket.on('message', () => { queries += 1; });
  await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(53, address, resolve);
  });
  return {
    queries: () => queries,
    close: () => new Promise((resolve) => {
      if (closed) { resolve(); return; }
      closed = true;
      socket.close(() => resolve());
    }),
  };
}

const synapse = findSynapse();
const dnsmasq = findDnsmasq();
const THEIRS = 'theirs.test';

// Loopback addresses of their own: their Synapse (T), the well-known server (W), the relay
// (R), the DNS server (D) and the silent nameserver (S).
const [T, W, R, D, S] = (() => {
  const picked = new Set();
  while (picked.size < 5) picked.add(randomLoopback());
  return [...picked];
})();

describe(`server discovery with real dnsmasq, two real Synapse ${synapse.version ?? ''} and real Prosody (well-known from a static file server)`,
  { skip: synapse.missing ?? dnsmasq.missing }, () => {
    const dir = path.join(RUN_ROOT, `discovery-${crypto.randomBytes(4).toString('hex')}`);
    let tls;
    let resolvConf;
    let dns;
    let wellKnown;
    let ours;
    let theirs;
    let admin;
    let roomId;
    let theirPort;
    let relayPort;
    let silent;
    const people = {};

    // A records every scenario builds on: their Synapse's federation host, and their name at
    // the well-known server (which answers 404 unless the scenario serves a document).
    const FED = { 'fed.theirs.test': T };
    const srv = (name, target, port) => ({ name, target, port });

    const WELL_KNOWN = '/.well-known/matrix/server';
    /** What gatehouse (not a Synapse) asked of the well-known server since `from`. */
    const askedByGatehouse = (from) => wellKnown.requests.slice(from)
      .filter((r) => r.agent?.startsWith('gatehouse/'))
      .map(({ host, servername, path: asked }) => ({ host, servername, path: asked }));

    const roomJid = () => `${roomName(roomId)}@${MUC_DOMAIN}`;
    const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

    const openid = (server, who) => openidToken(server, people[who]);
    const widget = (who, openid, serverName) => widgetLogin({ roomId, name: who, openid, serverName });

    /** Serves `records` (restarting dnsmasq on the same address), `document` and `routes` at W. */
    async function publish(records, document = null, routes = []) {
      await dns?.stop();
      dns = await startDns({ bin: dnsmasq.bin, address: D, records });
      wellKnown.set(document);
      wellKnown.route(routes);
    }

    /**
     * One scenario: its DNS records, well-known document and routes, a fresh Prosody resolving
     * through them (by `conf`, the shared resolv.conf unless given), with `options` on its main
     * host, focus's room; runs `body(prosody, clients)`, then stops that Prosody.
     */
    async function scenario(name, { records, document = null, routes = [], conf = resolvConf, options = {} }, body) {
      await publish(records, document, routes);
      const prosody = await startProsody({
        name: `matrix-discovery-${name}`,
        resolvConf: conf,
        global: { gatehouse_ca_file: tls.ca },
        mainHost: {
          ...options,
          authentication: 'matrix_user_verification',
          matrix_user_verification_homeserver_url: ours.url,
          matrix_user_verification_homeserver_admin_token: admin.access_token,
          uvs_sync_power_levels: true,
          // Every test server is on loopback: private addresses must be allowed here.
          matrix_user_verification_federation_allow_private: true,
        },
        muc: { modules_enabled: ['matrix_power_sync'] },
      });
      const clients = [];
      try {
        const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
        clients.push(focus);
        await createRoomAsFocus(focus, roomJid());
        await body(prosody, clients);
      } finally {
        await Promise.all(clients.map(disconnect));
        await prosody.stop();
      }
    }

    /** Carol (of theirs.test) logs in, joins, and is made owner by her power 50. */
    async function admitted(prosody, clients) {
      const token = await openid(theirs, 'carol');
      const { xmpp } = await connect({ httpPort: prosody.httpPort, ...widget('carol', token, THEIRS) });
      clients.push(xmpp);
      const synced = waitForStanza(xmpp, (s) => s.name === 'presence' && s.attrs.from === `${roomJid()}/carol` &&
        !['none', undefined].includes(parseMucPresence(s).affiliation), 5000, 'synced affiliation');
      await joinRoom(xmpp, roomJid(), 'carol');
      assert.equal(parseMucPresence(await synced).affiliation, 'owner');
      const log = prosody.readLog();
      assert.match(log, new RegExp(`REQUEST_COMPLETE reason:ok for ${escape(people.carol.user_id)} in `));
      assert.ok(!log.includes(token), 'the OpenID token stays out of the log');
    }

    /**
     * Carol is refused as a federation failure; resolves the log line saying why. Her login is
     * with a token of theirs.test unless `login` gives another `{ token, serverName }`.
     */
    async function refused(prosody, login = null) {
      const { token, serverName } = login ?? { token: await openid(theirs, 'carol'), serverName: THEIRS };
      const err = await refusedLogin(prosody.httpPort, widget('carol', token, serverName));
      assert.equal(err.condition, 'access-denied');
      assert.equal(err.text, 'Token invalid or not in room');
      const log = prosody.readLog();
      assert.ok(!log.includes(token), 'the OpenID token stays out of the log');
      const line = log.split('\n').find((l) => l.includes('REQUEST_COMPLETE reason:'));
      assert.match(line ?? '', /REQUEST_COMPLETE reason:federation_failed /);
      return line;
    }

    before(async () => {
      tls = makeTestCa(path.join(dir, 'ca'), {
        dns: ['localhost', THEIRS, 'fed.theirs.test', 'deleg.test', `www.${THEIRS}`, 'huge.test'], ips: ['127.0.0.1', T],
      });
      resolvConf = writeResolvConf(dir, D);
      let ourFederationPort;
      [theirPort, relayPort, ourFederationPort] = await freePorts(3);
      wellKnown = await startWellKnownServer({ host: W, cert: tls.cert, key: tls.key });
      silent = await startSilentNameserver(S);
      // Carol's join makes ours look theirs.test up (for its signing key): through SRV.
      await publish({ a: { ...FED, [THEIRS]: W }, srv: [srv(`_matrix-fed._tcp.${THEIRS}`, 'fed.theirs.test', theirPort)] });
      [ours, theirs] = await Promise.all([
        startSynapse({ python: synapse.python, serverName: `127.0.0.1:${ourFederationPort}`, resolvConf,
          federation: { host: '127.0.0.1', port: ourFederationPort, cert: tls.cert, key: tls.key } }),
        startSynapse({ python: synapse.python, serverName: THEIRS, resolvConf,
          federation: { host: T, port: theirPort, alsoPorts: [8448], cert: tls.cert, key: tls.key } }),
      ]);
      admin = await ours.register('admin', { admin: true });
      people.alice = await ours.register('alice');
      people.carol = await theirs.register('carol');
      assert.equal(people.carol.user_id, `@carol:${THEIRS}`);

      // Alice's room on our server; Carol (their server) joins it over federation with power 50.
      roomId = await federatedRoom({ ours, theirs, admin, owner: people.alice, guest: people.carol });
      // To check the join, ours fetched theirs' signing key: theirs.test has no well-known and
      // nothing on port 8448 here, so ours' own discovery can only have come by the SRV record.
      assert.match(fs.readFileSync(ours.logFile, 'utf8'),
        /\[theirs\.test\] Completed request: 200 OK .*matrix-federation:\/\/theirs\.test\/_matrix\/key\/v2\/server/);
      assert.match(fs.readFileSync(dns.logFile, 'utf8'), /query\[SRV\] _matrix-fed\._tcp\.theirs\.test /);
    });
    after(async () => {
      await Promise.all([ours?.stop(), theirs?.stop(), dns?.stop(), wellKnown?.close(), silent?.close()]);
    });

    it('a: SRV _matrix-fed._tcp.theirs.test → fed.theirs.test:<port>, no well-known: admitted, owner', () =>
      scenario('srv', {
        records: { a: { ...FED, [THEIRS]: W }, srv: [srv(`_matrix-fed._tcp.${THEIRS}`, 'fed.theirs.test', theirPort)] },
      }, admitted));

    it('b: well-known delegates to fed.theirs.test:<port>: admitted', () =>
      scenario('wellknown-port', {
        records: { a: { ...FED, [THEIRS]: W } },
        document: { 'm.server': `fed.theirs.test:${theirPort}` },
      }, admitted));

    it('c: well-known delegates to deleg.test (no port), SRV on deleg.test: admitted, TLS and Host name deleg.test', async () => {
      // The SRV target is a relay whose certificate is valid for deleg.test only: the login
      // works only if TLS checks the delegated name (not theirs.test, not the SRV target).
      const cert = tls.issue('deleg-only', { dns: ['deleg.test'] });
      const relay = await startTlsProxy({ host: R, port: relayPort, ...cert, upstream: theirs.url });
      try {
        await scenario('wellknown-srv', {
          records: { a: { ...FED, [THEIRS]: W, 'relay.test': R }, srv: [srv('_matrix-fed._tcp.deleg.test', 'relay.test', relayPort)] },
          document: { 'm.server': 'deleg.test' },
        }, admitted);
        assert.ok(relay.seen.length > 0, 'the delegated server was asked');
        for (const { servername, host } of relay.seen) {
          assert.equal(servername, 'deleg.test');
          assert.match(host, /^deleg\.test(:\d+)?$/);
        }
      } finally {
        await relay.close();
      }
    });

    it('d: only the deprecated SRV _matrix._tcp.theirs.test: admitted', () =>
      scenario('srv-deprecated', {
        records: { a: { ...FED, [THEIRS]: W }, srv: [srv(`_matrix._tcp.${THEIRS}`, 'fed.theirs.test', theirPort)] },
      }, admitted));

    it('e: no well-known, no SRV: theirs.test port 8448: admitted', () =>
      scenario('port-8448', { records: { a: { [THEIRS]: T } } }, admitted));

    it('f: SRV target "." (no federation here) refuses, even though port 8448 would answer', () =>
      scenario('srv-dot', {
        records: { a: { [THEIRS]: T }, srv: [srv(`_matrix-fed._tcp.${THEIRS}`, '.')] },
      }, async (prosody) => {
        assert.match(await refused(prosody), /SRV/);
      }));

    it('g: SRV to a server holding a certificate for its own name, valid for theirs.test: admitted; TLS and Host name theirs.test', async () => {
      const cert = tls.issue('theirs-only', { dns: [THEIRS] });
      const relay = await startTlsProxy({ host: R, port: relayPort, ...cert, upstream: theirs.url });
      try {
        await scenario('srv-relay', {
          records: { a: { ...FED, [THEIRS]: W, 'relay.test': R }, srv: [srv(`_matrix-fed._tcp.${THEIRS}`, 'relay.test', relayPort)] },
        }, admitted);
        assert.ok(relay.seen.length > 0, 'the SRV target was asked');
        for (const { servername, host } of relay.seen) {
          assert.equal(servername, THEIRS);
          assert.match(host, /^theirs\.test(:\d+)?$/);
        }
      } finally {
        await relay.close();
      }
    });

    it('g: SRV to a server whose certificate is valid for the SRV target but not theirs.test: refused, and it never sees the token', async () => {
      const cert = tls.issue('impostor', { dns: ['relay.test', 'other.test'] });
      const relay = await startTlsProxy({ host: R, port: relayPort, ...cert, upstream: theirs.url });
      try {
        await scenario('srv-impostor', {
          records: { a: { ...FED, [THEIRS]: W, 'relay.test': R }, srv: [srv(`_matrix-fed._tcp.${THEIRS}`, 'relay.test', relayPort)] },
        }, async (prosody) => {
          assert.match(await refused(prosody), /certificate|tls|name/i);
        });
        assert.deepEqual(relay.seen, [], 'no request reached the impostor');
      } finally {
        await relay.close();
      }
    });

    it('h: the SRV lookup fails (no answer): refused, even though port 8448 would answer', () =>
      scenario('srv-timeout', {
        records: { a: { [THEIRS]: T }, unanswered: [`_tcp.${THEIRS}`] },
      }, async (prosody) => {
        assert.match(await refused(prosody), /SRV|DNS|timed out|timeout/i);
      }));

    it('i: well-known on the apex redirects to www: admitted; theirs.test asked, then www.theirs.test', async () => {
      // A common setup: the apex domain's web server sends everything to www. The redirect is
      // followed (an https URL, www.theirs.test's address screened), and only www serves the
      // document: the login works only if the redirect was followed.
      const www = `www.${THEIRS}`;
      const from = wellKnown.requests.length;
      await scenario('wellknown-redirect', {
        records: { a: { ...FED, [THEIRS]: W, [www]: W } },
        routes: [
          { host: THEIRS, path: WELL_KNOWN, status: 301, headers: { location: `https://${www}${WELL_KNOWN}` } },
          { host: www, path: WELL_KNOWN, body: { 'm.server': `fed.theirs.test:${theirPort}` } },
        ],
      }, admitted);
      assert.deepEqual(askedByGatehouse(from), [
        { host: THEIRS, servername: THEIRS, path: WELL_KNOWN },
        { host: www, servername: www, path: WELL_KNOWN },
      ]);
    });

    it('j: an SRV target whose address lookup never answers is refused within the deadline; Prosody answers others meanwhile', async (t) => {
      // fed.slow.test's nameservers (S, a socket that reads and never answers) are silent. The
      // stub resolver here has glibc's defaults (timeout:5 attempts:2: getaddrinfo gives up after
      // some 10 s), so the 3 s verification deadline comes first and must bound the lookup. (With
      // the shared resolv.conf's timeout:1 attempts:2, getaddrinfo gives up by itself after some
      // 2 s, a temporary failure, which gatehouse logs in the resolver's words: "address lookup
      // of the targets of SRV … failed: DNS: … Temporary failure in name resolution".)
      const timeoutS = 3;
      const conf = writeResolvConf(dir, D, { timeout: 5, attempts: 2, name: 'resolv-glibc-defaults.conf' });
      const asked = silent.queries();
      await scenario('srv-target-silent', {
        records: {
          a: { [THEIRS]: W },
          srv: [srv(`_matrix-fed._tcp.${THEIRS}`, 'fed.slow.test', theirPort)],
          forward: { 'slow.test': S },
        },
        conf,
        options: { matrix_user_verification_timeout: timeoutS },
      }, async (prosody, [focus]) => {
        const token = await openid(theirs, 'carol');
        const started = performance.now();
        let settled = false;
        const login = refused(prosody, { token, serverName: THEIRS }).then((line) => ({ line }), (error) => ({ error }));
        login.then(() => { settled = true; });
        // The focus pings Prosody while carol waits (bounded: the login settles within seconds).
        const pings = [];
        for (let i = 0; i < 50 && !settled; i++) {
          pings.push(await ping(focus, { timeoutMs: 1000 }));
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const { line, error } = await login;
        const took = performance.now() - started;
        t.diagnostic(`refused after ${Math.round(took)} ms; ${pings.length} pings answered meanwhile, ` +
          `slowest ${Math.round(Math.max(...pings))} ms; the silent nameserver got ${silent.queries() - asked} queries`);
        if (error) throw error;
        assert.match(line, /address lookup of the targets of SRV _matrix-fed\._tcp\.theirs\.test failed: DNS timed out/);
        assert.ok(took < timeoutS * 1000 + 1500, `refused after ${Math.round(took)} ms`);
        assert.ok(took > timeoutS * 1000 - 500, `refused after ${Math.round(took)} ms: before the deadline, so not by it`);
        assert.ok(pings.length >= 10, `${pings.length} pings answered while the login waited`);
        assert.ok(silent.queries() > asked, 'the lookup of fed.slow.test reached its silent nameserver');
      });
    });

    it('k: a userinfo reply over 64 KiB is refused as a federation failure: "reply larger than 65536 bytes"', () => {
      // huge.test:443 (a name with a port: no well-known, no SRV) answers the userinfo question
      // for its own user, with padding that makes the reply some 100 KiB.
      const token = crypto.randomBytes(16).toString('hex');
      const userinfo = '/_matrix/federation/v1/openid/userinfo';
      const from = wellKnown.requests.length;
      return scenario('userinfo-huge', {
        records: { a: { [THEIRS]: W, 'huge.test': W } },
        routes: [{ host: 'huge.test', path: userinfo, body: { sub: '@carol:huge.test:443', pad: 'x'.repeat(100 * 1024) } }],
      }, async (prosody) => {
        const line = await refused(prosody, { token, serverName: 'huge.test:443' });
        assert.match(line, /reply larger than 65536 bytes/);
        const asked = askedByGatehouse(from);
        assert.deepEqual(asked.map((r) => [r.servername, r.path]), [['huge.test', userinfo]]);
        // The URL is https://huge.test:443/...; the HTTP client leaves the default port out of Host.
        assert.match(asked[0].host, /^huge\.test(:443)?$/);
      });
    });
  });
