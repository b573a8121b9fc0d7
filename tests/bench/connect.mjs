// Benchmark: connect + SASL (token) + MUC join against a real Prosody on 127.0.0.1, as
// Jitsi clients do it (WebSocket, ?token=). Prints latency (median, p99) and throughput.
// Usage: node tests/bench/connect.mjs [clients=300] [concurrency=10]
import os from 'node:os';

import { startProsody, MUC_DOMAIN } from '../e2e/lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect } from '../e2e/lib/client.js';
import * as jwt from '../e2e/lib/jwt.js';

const CLIENTS = Number(process.argv[2] ?? 300);
const CONCURRENCY = Number(process.argv[3] ?? 10);
const ROOMS = Math.max(1, Math.ceil(CLIENTS / 10)); // Jitsi rooms are small: ten per room
const APP_ID = 'gatehouse-bench';
const SECRET = 'gatehouse-bench-secret';

const prosody = await startProsody({
  name: 'bench-connect',
  mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
  muc: { modules_enabled: ['gatehouse_token_verification'] },
});
const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
for (let r = 0; r < ROOMS; r++) await createRoomAsFocus(focus, `bench${r}@${MUC_DOMAIN}`);

const token = (room) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room }), { alg: 'HS256', key: SECRET });
const connected = [];
const latencies = [];
let next = 0;
async function worker() {
  while (next < CLIENTS) {
    const i = next++;
    const room = `bench${i % ROOMS}`;
    const t0 = performance.now();
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: token(room), room });
    await joinRoom(xmpp, `${room}@${MUC_DOMAIN}`, `user${i}`);
    latencies.push(performance.now() - t0);
    connected.push(xmpp);
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
const seconds = (performance.now() - started) / 1000;

latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
console.log(`connect + token auth + join, ${CLIENTS} clients, ${CONCURRENCY} at a time, ${ROOMS} rooms ` +
  `(${os.cpus().length} CPUs, Prosody on 127.0.0.1):`);
console.log('| clients | concurrency | median ms | p99 ms | max ms | joins/s |');
console.log('|---------|-------------|-----------|--------|--------|---------|');
console.log(`| ${String(CLIENTS).padStart(7)} | ${String(CONCURRENCY).padStart(11)} | ${pct(0.5).toFixed(1).padStart(9)} | ` +
  `${pct(0.99).toFixed(1).padStart(6)} | ${latencies.at(-1).toFixed(1).padStart(6)} | ${(CLIENTS / seconds).toFixed(0).padStart(7)} |`);

await Promise.all([...connected, focus].map(disconnect));
await prosody.stop();
