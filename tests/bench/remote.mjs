// Benchmark: remote calls under load (issue 12), against a real Prosody on 127.0.0.1 with LOCAL
// STAND-INS for the remote services (UVS: tests/e2e/lib/uvs.js, Guild API: lib/guild.js, ASAP
// key server and JWKS endpoint: lib/keyserver.js), each answering after a fixed delay:
//   (1) 150 and 500 concurrent Matrix logins, UVS answering in 800 ms; matrix-org's stock module
//       (../shared/upstream) side by side in the same setup;
//   (2) 150 concurrent first joins of guild-gated rooms, Guild API answering in 800 ms;
//   (3) cold key cache: 200 concurrent logins, ASAP and JWKS answering in 500 ms, with the
//       number of requests each stand-in received;
//   (4) 1000 forged logins with unknown kids in a burst while real logins go on, against the
//       same real logins without the flood.
// Prosody's RSS and thread count at the peak of each run and a minute after (1) and (4).
// Prints tables. Usage: node tests/bench/remote.mjs [only=1,2,3,4]
import os from 'node:os';

import { startProsody, MUC_DOMAIN } from '../e2e/lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, xml } from '../e2e/lib/client.js';
import { startUvsStandIn, roomName } from '../e2e/lib/uvs.js';
import { startGuildStandIn } from '../e2e/lib/guild.js';
import { startKeyServer, asapPath } from '../e2e/lib/keyserver.js';
import { newWallet } from '../e2e/lib/wallet.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV } from '../e2e/lib/upstream.js';
import { procStat, summary } from '../e2e/lib/procstat.js';
import * as jwt from '../e2e/lib/jwt.js';

const ONLY = new Set((process.argv[2] ?? '1,2,3,4').split(','));
const APP_ID = 'gatehouse-bench';
const SECRET = 'gatehouse-bench-secret';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tables = [];

/** Samples the process's RSS and threads every 100 ms until stop(); returns the peaks. */
function watch(pid) {
  let peak = procStat(pid);
  const timer = setInterval(() => {
    try {
      const now = procStat(pid);
      peak = { rssKb: Math.max(peak.rssKb, now.rssKb), threads: Math.max(peak.threads, now.threads) };
    } catch { /* exited */ }
  }, 100);
  return { stop: () => { clearInterval(timer); return peak; } };
}

/** Runs `task(i)` for i < n all at once; returns { ok, failures, ms (latencies of the ok ones) }. */
async function concurrently(n, task) {
  const results = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const t0 = performance.now();
    try {
      const value = await task(i);
      return { value, ms: performance.now() - t0 };
    } catch (err) {
      return { err, ms: performance.now() - t0 };
    }
  }));
  const ok = results.filter((r) => !r.err);
  const failures = {};
  for (const { err } of results.filter((r) => r.err)) {
    const why = `${err.condition ?? 'error'}: ${err.text ?? err.message}`.slice(0, 90);
    failures[why] = (failures[why] ?? 0) + 1;
  }
  return { ok, failures, ms: ok.map((r) => r.ms), all: results };
}

const fmt = (ms) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);
const mb = (kb) => `${(kb / 1024).toFixed(0)} MB`;
const failText = (failures) => Object.entries(failures).map(([k, v]) => `${v}× ${k}`).join('; ') || '-';

// (1) Matrix logins while UVS answers every request in 800 ms --------------------------------
async function matrixLogins() {
  const ROOMS = 50;
  const users = {};
  const misbehave = {};
  const rooms = {};
  for (let i = 0; i < 500; i++) {
    const roomId = `!bench${i % ROOMS}:matrix.test`;
    users[`openid-${i}`] = `@u${i}:matrix.test`;
    misbehave[`openid-${i}`] = { delayMs: 800 };
    (rooms[roomId] ??= { members: [], powerLevels: { state_default: 50, users: {} } }).members.push(`@u${i}:matrix.test`);
  }
  const rows = [];
  for (const side of ['stock', 'gatehouse']) {
    for (const n of [150, 500]) {
      const uvs = await startUvsStandIn({ users, rooms, misbehave });
      const prosody = await startProsody({
        name: `bench-uvs-${side}-${n}`,
        mainHost: { authentication: 'matrix_user_verification', app_id: 'meet.test', uvs_base_url: uvs.url,
          ...(side === 'gatehouse' ? { matrix_user_verification_cache_ttl: 0 } : {}) },
        ...(side === 'stock' ? { pluginPaths: UPSTREAM_PLUGIN_PATHS, env: UPSTREAM_ENV } : {}),
      });
      const before = procStat(prosody.pid);
      const peak = watch(prosody.pid);
      const run = await concurrently(n, async (i) => {
        const roomId = `!bench${i % ROOMS}:matrix.test`;
        const token = jwt.sign({ iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*',
          context: { user: { name: `u${i}` }, matrix: { token: `openid-${i}`, room_id: roomId, server_name: 'matrix.test' } } },
        { alg: 'HS256', key: 'notused' });
        return (await connect({ httpPort: prosody.httpPort, token, room: roomName(roomId), timeoutMs: 60_000 })).xmpp;
      });
      const top = peak.stop();
      await Promise.all(run.ok.map((r) => disconnect(r.value)));
      let after;
      if (n === 500 && side === 'gatehouse') {
        await sleep(60_000);
        after = procStat(prosody.pid);
      }
      await prosody.stop();
      await uvs.close();
      rows.push({ side, n, run, before, top, after, peakUvs: uvs.peakConcurrency() });
    }
  }
  const lines = ['(1) Matrix logins at once, UVS stand-in answering every request in 800 ms',
    '| module | logins | admitted | median | p99 | max | UVS requests at once (peak) | Prosody RSS / threads: idle → peak → 1 min after | refused |',
    '|---|---:|---:|---:|---:|---:|---:|---|---|'];
  for (const r of rows) {
    const s = summary(r.run.ms);
    lines.push(`| ${r.side === 'stock' ? "matrix-org's" : 'gatehouse'} | ${r.n} | ${r.run.ok.length} | ${fmt(s.median)} | ${fmt(s.p99)} | ` +
      `${fmt(s.max)} | ${r.peakUvs} | ${mb(r.before.rssKb)} / ${r.before.threads} → ${mb(r.top.rssKb)} / ${r.top.threads}` +
      `${r.after ? ` → ${mb(r.after.rssKb)} / ${r.after.threads}` : ''} | ${failText(r.run.failures)} |`);
  }
  tables.push(lines.join('\n'));
}

// (2) First joins of guild-gated rooms while the Guild API answers in 800 ms -----------------
async function guildJoins() {
  const N = 150;
  const PER_ROOM = 10;
  const GUILD_ID = 42;
  const guildApi = await startGuildStandIn({ guilds: [{ id: GUILD_ID, name: 'Bench Guild', urlName: 'bench-guild', roleIds: [1] }] });
  const prosody = await startProsody({
    name: 'bench-guild',
    mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
    muc: { modules_enabled: ['gatehouse_token_verification', 'token_moderation', 'gatehouse_wallet'], gatehouse_wallet_guild_api: guildApi.url },
  });
  const token = (context = {}, claims = {}) => jwt.sign({ ...jwt.jitsiClaims({ appId: APP_ID, room: '*', context }), ...claims }, { alg: 'HS256', key: SECRET });
  const login = async (context, claims) => (await connect({ httpPort: prosody.httpPort, token: token(context, claims), timeoutMs: 60_000 })).xmpp;
  const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
  const clients = [focus];
  const rooms = [];
  for (let r = 0; r < N / PER_ROOM; r++) {
    const room = `gated${r}@${MUC_DOMAIN}`;
    await createRoomAsFocus(focus, room);
    const owner = await login({ user: { moderator: true }, room: { guild: 'bench-guild' } }, { moderator: true });
    clients.push(owner);
    await joinRoom(owner, room, 'owner');
    rooms.push(room);
  }
  // Each joiner: a member wallet, logged in, holding a challenge for its room (not timed).
  const joiners = await Promise.all(Array.from({ length: N }, async (_, i) => {
    const wallet = newWallet();
    guildApi.grant(wallet.address, GUILD_ID, [1]);
    guildApi.fail(wallet.address, { delayMs: Number(process.env.GUILD_DELAY_MS ?? 800) });
    const xmpp = await login();
    clients.push(xmpp);
    const room = rooms[i % rooms.length];
    const iq = await xmpp.iqCaller.request(xml('iq', { type: 'get', to: room }, xml('challenge', { xmlns: 'urn:gatehouse:wallet:0', address: wallet.address })), 30_000);
    const message = iq.getChild('challenge', 'urn:gatehouse:wallet:0').text();
    return { xmpp, room, proof: xml('proof', { xmlns: 'urn:gatehouse:wallet:0', address: wallet.address, signature: wallet.sign(message) }, xml('message', {}, message)) };
  }));
  const before = procStat(prosody.pid);
  const peak = watch(prosody.pid);
  const joinsStarted = performance.now();
  const run = await concurrently(N, (i) => joinRoom(joiners[i].xmpp, joiners[i].room, `member${i}`,
    { extraChildren: [joiners[i].proof], timeoutMs: 60_000 }));
  const top = peak.stop();
  if (process.env.BENCH_DEBUG) {
    const at = guildApi.requests.filter((r) => r.path.includes('/memberships')).map((r) => r.at - joinsStarted);
    console.error(`membership requests arrived ${Math.min(...at).toFixed(0)}..${Math.max(...at).toFixed(0)} ms after the joins started`);
  }
  const guildLookups = guildApi.requests.filter((r) => r.path.startsWith('/v2/guilds/')).length;
  const memberships = guildApi.requests.filter((r) => r.path.includes('/memberships')).length;
  await Promise.all(clients.map(disconnect));
  await prosody.stop();
  await guildApi.close();
  const s = summary(run.ms);
  tables.push(['(2) First joins of guild-gated rooms at once (15 rooms of 10), Guild API stand-in answering memberships in 800 ms',
    '| joins | admitted | median | p99 | max | Guild API requests (guild / memberships) | Prosody RSS / threads: idle → peak | refused |',
    '|---:|---:|---:|---:|---:|---|---|---|',
    `| ${N} | ${run.ok.length} | ${fmt(s.median)} | ${fmt(s.p99)} | ${fmt(s.max)} | ${guildLookups} / ${memberships} | ` +
    `${mb(before.rssKb)} / ${before.threads} → ${mb(top.rssKb)} / ${top.threads} | ${failText(run.failures)} |`].join('\n'));
}

// (3) Cold key cache: 200 logins at once, key servers answering in 500 ms --------------------
async function coldKeys() {
  const N = 200;
  const key = jwt.generateKey('RS256', { kid: 'bench/key1' });
  const rows = [];
  for (const kind of ['secret', 'asap', 'jwks']) {
    const keys = await startKeyServer({
      [`/asap${asapPath(key.kid)}`]: { body: key.publicPem, delayMs: 500 },
      '/jwks.json': { body: jwt.jwks(key), delayMs: 500, headers: { 'cache-control': 'max-age=3600' } },
    });
    const prosody = await startProsody({
      name: `bench-keys-${kind}`,
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID,
        ...({ secret: { app_secret: SECRET }, asap: { asap_key_server: `${keys.url}/asap` }, jwks: { cache_keys_url: `${keys.url}/jwks.json` } })[kind] },
    });
    const before = procStat(prosody.pid);
    const peak = watch(prosody.pid);
    const run = await concurrently(N, async () => (await connect({ httpPort: prosody.httpPort,
      token: kind === 'secret' ? jwt.sign(jwt.jitsiClaims({ appId: APP_ID }), { alg: 'HS256', key: SECRET })
        : jwt.sign(jwt.jitsiClaims({ appId: APP_ID }), { alg: 'RS256', key }), timeoutMs: 60_000 })).xmpp);
    const top = peak.stop();
    await Promise.all(run.ok.map((r) => disconnect(r.value)));
    await prosody.stop();
    await keys.close();
    rows.push({ kind, run, before, top, requests: keys.requests.length });
  }
  const lines = ['(3) Cold key cache: 200 logins at once with one key, key server stand-ins answering in 500 ms',
    '| key source | logins | admitted | median | p99 | requests the key server received | Prosody RSS / threads: idle → peak | refused |',
    '|---|---:|---:|---:|---:|---:|---|---|'];
  for (const r of rows) {
    const s = summary(r.run.ms);
    const name = { secret: 'app_secret (HS256, no key server: the cost of 200 logins alone)', asap: 'asap_key_server', jwks: 'cache_keys_url (JWKS)' }[r.kind];
    lines.push(`| ${name} | ${N} | ${r.run.ok.length} | ${fmt(s.median)} | ${fmt(s.p99)} | ` +
      `${r.requests} | ${mb(r.before.rssKb)} / ${r.before.threads} → ${mb(r.top.rssKb)} / ${r.top.threads} | ${failText(r.run.failures)} |`);
  }
  tables.push(lines.join('\n'));
}

// (4) 1000 forged logins with unknown kids in a burst while real logins go on ----------------
async function forgedFlood() {
  const FORGED = 1000;
  const REAL = 100;
  const real = jwt.generateKey('RS256', { kid: 'bench/real' });
  const forger = jwt.generateKey('RS256', { kid: 'x' });
  const keys = await startKeyServer({ [`/asap${asapPath(real.kid)}`]: { body: real.publicPem } });
  for (let i = 0; i < FORGED; i++) keys.route(`/asap${asapPath(`forged-${i}`)}`, { status: 404, body: 'no such key', delayMs: 500 });
  const prosody = await startProsody({
    name: 'bench-forged',
    mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, asap_key_server: `${keys.url}/asap` },
  });
  const realLogin = async () => (await connect({ httpPort: prosody.httpPort,
    token: jwt.sign(jwt.jitsiClaims({ appId: APP_ID }), { alg: 'RS256', key: real }), timeoutMs: 60_000 })).xmpp;
  await disconnect(await realLogin()); // the real key is in use already
  /** REAL real logins, 10 at a time. */
  const realLogins = async () => {
    const ms = [];
    const failures = {};
    let next = 0;
    await Promise.all(Array.from({ length: 10 }, async () => {
      while (next < REAL) {
        next++;
        const t0 = performance.now();
        try {
          await disconnect(await realLogin());
          ms.push(performance.now() - t0);
        } catch (err) {
          const why = `${err.condition}: ${err.text ?? err.message}`;
          failures[why] = (failures[why] ?? 0) + 1;
        }
      }
    }));
    return { ms, failures };
  };
  const quiet = await realLogins();
  const before = procStat(prosody.pid);
  const peak = watch(prosody.pid);
  const asked0 = keys.requests.length;
  const floodStarted = performance.now();
  const flood = concurrently(FORGED, async (i) => {
    const token = jwt.sign(jwt.jitsiClaims({ appId: APP_ID }), { alg: 'RS256', key: forger.privateKey, kid: `forged-${i}` });
    return (await connect({ httpPort: prosody.httpPort, token, timeoutMs: 60_000 })).xmpp;
  });
  await sleep(200); // the flood is under way
  const during = await realLogins();
  const forged = await flood;
  const floodSeconds = (performance.now() - floodStarted) / 1000;
  const top = peak.stop();
  const asked = keys.requests.length - asked0;
  await sleep(60_000);
  const after = procStat(prosody.pid);
  await prosody.stop();
  await keys.close();
  const q = summary(quiet.ms);
  const d = summary(during.ms);
  tables.push([`(4) ${FORGED} forged logins (unknown kids, key server answering 404 in 500 ms) in a burst, while ${REAL} real logins go on (10 at a time)`,
    '| real logins | succeeded | median | p99 | refused |', '|---|---:|---:|---:|---|',
    `| without the flood | ${quiet.ms.length} / ${REAL} | ${fmt(q.median)} | ${fmt(q.p99)} | ${failText(quiet.failures)} |`,
    `| during the flood | ${during.ms.length} / ${REAL} | ${fmt(d.median)} | ${fmt(d.p99)} | ${failText(during.failures)} |`,
    '',
    `Forged logins admitted: ${forged.ok.length} of ${FORGED}; key server requests they caused: ${asked} in ${floodSeconds.toFixed(1)} s; ` +
    `Prosody RSS / threads: idle ${mb(before.rssKb)} / ${before.threads} → peak ${mb(top.rssKb)} / ${top.threads} → ` +
    `a minute after ${mb(after.rssKb)} / ${after.threads}.`].join('\n'));
}

if (ONLY.has('1')) await matrixLogins();
if (ONLY.has('2')) await guildJoins();
if (ONLY.has('3')) await coldKeys();
if (ONLY.has('4')) await forgedFlood();

console.log(`Remote calls under load; clients, stand-ins and Prosody 0.12 share ${os.cpus().length} CPUs on 127.0.0.1 ` +
  `(${os.cpus()[0].model.trim()}); load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}.\n`);
console.log(tables.join('\n\n'));
