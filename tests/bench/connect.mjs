// Benchmark: connect + SASL + MUC join against a real Prosody on 127.0.0.1, as Jitsi clients
// do it (WebSocket, ?token=), for 100, 500 and 1000 clients; the same through Matrix user
// verification with a LOCAL UVS STAND-IN answering in 50 ms; and Prosody's resident memory
// with and without gatehouse. Prints one table.
// Usage: node tests/bench/connect.mjs [concurrency=20]
import os from 'node:os';

import { startProsody, MUC_DOMAIN } from '../e2e/lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect } from '../e2e/lib/client.js';
import { startUvsStandIn, roomName } from '../e2e/lib/uvs.js';
import { procStat, summary } from '../e2e/lib/procstat.js';
import * as jwt from '../e2e/lib/jwt.js';

const CONCURRENCY = Number(process.argv[2] ?? 20);
const PER_ROOM = 10; // Jitsi rooms are small
const APP_ID = 'gatehouse-bench';
const SECRET = 'gatehouse-bench-secret';

/** Connects `clients` clients (each: connect, authenticate, join), CONCURRENCY at a time. */
async function run(name, { clients, mainHost, muc = {}, login, focusRooms = false }) {
  const prosody = await startProsody({ name: `bench-${name}`, mainHost, muc });
  const idle = procStat(prosody.pid);
  const rooms = Math.max(1, Math.ceil(clients / PER_ROOM));
  let focus;
  if (focusRooms) {
    focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    for (let r = 0; r < rooms; r++) await createRoomAsFocus(focus, `bench${r}@${MUC_DOMAIN}`);
  }
  const connected = [];
  const latencies = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < clients) {
      const i = next++;
      const t0 = performance.now();
      const { options, room } = login(i, i % rooms);
      const { xmpp } = await connect({ httpPort: prosody.httpPort, timeoutMs: 30_000, ...options });
      await joinRoom(xmpp, `${room}@${MUC_DOMAIN}`, `user${i}`, { timeoutMs: 30_000 });
      latencies.push(performance.now() - t0);
      connected.push(xmpp);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const loaded = procStat(prosody.pid);
  await Promise.all([...connected, focus].filter(Boolean).map(disconnect));
  await prosody.stop();
  const s = summary(latencies);
  return { name, clients, ...s, perSecond: clients / seconds, idleMb: idle.rssKb / 1024, loadedMb: loaded.rssKb / 1024 };
}

const tokenHost = { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET };
const tokenLogin = (i, r) => ({
  room: `bench${r}`,
  options: { token: jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: `bench${r}` }), { alg: 'HS256', key: SECRET }) },
});

const rows = [];
rows.push(await run('anonymous', {
  clients: 1000, mainHost: { authentication: 'anonymous' },
  login: (i, r) => ({ room: `bench${r}`, options: {} }),
}));
for (const clients of [100, 500, 1000]) {
  rows.push(await run('token', {
    clients, mainHost: tokenHost, muc: { modules_enabled: ['gatehouse_token_verification'] },
    focusRooms: true, login: tokenLogin,
  }));
}

// Token expiry (gatehouse_token_expiry = "disconnect"): one timer per host, none per stanza
// (tests/bench/expiry.mjs measures its CPU and the kicks).
// Same logins as the 1000-client token row; compare joins/s and memory with it.
rows.push(await run('token + expiry timers', {
  clients: 1000,
  mainHost: { ...tokenHost, gatehouse_token_expiry: 'disconnect' },
  muc: { modules_enabled: ['gatehouse_token_verification'] },
  focusRooms: true, login: tokenLogin,
}));

// Matrix: every OpenID token is a member of its room; UVS answers each check after 50 ms.
const users = {};
const roomsById = {};
const misbehave = {};
for (let i = 0; i < 500; i++) {
  const roomId = `!bench${Math.floor(i / PER_ROOM)}:matrix.test`;
  users[`openid-${i}`] = `@u${i}:matrix.test`;
  misbehave[`openid-${i}`] = { delayMs: 50 };
  (roomsById[roomId] ??= { members: [], powerLevels: { state_default: 50, users: {} } }).members.push(`@u${i}:matrix.test`);
}
const uvs = await startUvsStandIn({ users, rooms: roomsById, misbehave });
for (const clients of [100, 500]) {
  rows.push(await run('matrix-uvs-50ms', {
    clients,
    mainHost: { authentication: 'matrix_user_verification', app_id: 'meet.test', uvs_base_url: uvs.url, matrix_user_verification_cache_ttl: 0 },
    login: (i) => {
      const roomId = `!bench${Math.floor(i / PER_ROOM)}:matrix.test`;
      const token = jwt.sign({ iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*',
        context: { user: { name: `u${i}` }, matrix: { token: `openid-${i}`, room_id: roomId, server_name: 'matrix.test' } } },
      { alg: 'HS256', key: 'notused' });
      return { room: roomName(roomId), options: { token, room: roomName(roomId) } };
    },
  }));
}
await uvs.close();

console.log(`connect + auth + MUC join, ${CONCURRENCY} clients at a time, ${PER_ROOM} per room; clients and Prosody ` +
  `share ${os.cpus().length} CPUs on 127.0.0.1 (${os.cpus()[0].model.trim()}):`);
console.log('| auth | clients | median ms | p99 ms | max ms | joins/s | Prosody RSS idle → loaded |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.clients} | ${r.median.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(1)} | ` +
    `${r.perSecond.toFixed(0)} | ${r.idleMb.toFixed(1)} → ${r.loadedMb.toFixed(1)} MB |`);
}
