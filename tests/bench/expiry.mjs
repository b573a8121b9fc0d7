// Benchmark: token expiry (gatehouse_token_expiry = "disconnect", mod_gatehouse_token_expiry).
// 1000 token holders connect and join rooms (10 per room) on a real Prosody, with and without
// the option: Prosody's CPU for the logins, its resident memory, and its CPU while idle for 5 s
// with 1000 deadlines pending (one timer). Then 1000 sessions whose tokens all expire in the same
// second: how long until all are kicked and closed, and the CPU that took.
// Usage: node tests/bench/expiry.mjs [clients=1000] [concurrency=20]
import os from 'node:os';

import { startProsody, MUC_DOMAIN } from '../e2e/lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect } from '../e2e/lib/client.js';
import { procStat, cpuSeconds } from '../e2e/lib/procstat.js';
import * as jwt from '../e2e/lib/jwt.js';

const CLIENTS = Number(process.argv[2] ?? 1000);
const CONCURRENCY = Number(process.argv[3] ?? 20);
const PER_ROOM = 10;
const APP_ID = 'gatehouse-bench';
const SECRET = 'gatehouse-bench-secret';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(name, { expiry, ttl }) {
  const mainHost = { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET,
    ...(expiry ? { gatehouse_token_expiry: 'disconnect', gatehouse_token_expiry_grace: 1 } : {}) };
  const prosody = await startProsody({ name: `bench-expiry-${name}`, mainHost, muc: { modules_enabled: ['gatehouse_token_verification'] } });
  const rooms = Math.ceil(CLIENTS / PER_ROOM);
  const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
  for (let r = 0; r < rooms; r++) await createRoomAsFocus(focus, `bench${r}@${MUC_DOMAIN}`);
  const exp = Math.floor(Date.now() / 1000) + ttl; // the same exp for everyone
  const token = jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*', ttl }), { alg: 'HS256', key: SECRET });
  const cpu0 = cpuSeconds(prosody.pid);
  const t0 = performance.now();
  const clients = [];
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < CLIENTS) {
      const i = next++;
      const { xmpp } = await connect({ httpPort: prosody.httpPort, token, timeoutMs: 30_000 });
      await joinRoom(xmpp, `bench${i % rooms}@${MUC_DOMAIN}`, `user${i}`, { timeoutMs: 30_000 });
      clients.push(xmpp);
    }
  }));
  const row = { name, joinsPerSecond: CLIENTS / ((performance.now() - t0) / 1000), loginCpu: cpuSeconds(prosody.pid) - cpu0 };
  const idle0 = cpuSeconds(prosody.pid);
  await sleep(5000);
  row.idleCpu = cpuSeconds(prosody.pid) - idle0;
  row.rssMb = procStat(prosody.pid).rssKb / 1024;
  if (expiry && ttl < 600) {
    const deadline = exp + 1; // + grace
    if (Date.now() / 1000 > deadline - 0.5) throw new Error(`logins took too long for ttl ${ttl}`);
    await sleep((deadline - 0.5) * 1000 - Date.now());
    const burst0 = cpuSeconds(prosody.pid);
    const open = () => clients.filter((x) => x.status !== 'disconnect' && x.status !== 'offline').length;
    for (let i = 0; i < 600 && open() > 0; i++) await sleep(50);
    row.closed = CLIENTS - open();
    row.allClosedAfter = Date.now() / 1000 - deadline;
    row.burstCpu = cpuSeconds(prosody.pid) - burst0;
  }
  await Promise.all([...clients, focus].map(disconnect));
  await prosody.stop();
  return row;
}

const rows = [
  await run('off', { expiry: false, ttl: 3600 }),
  await run('on', { expiry: true, ttl: 3600 }),
  await run('on, all expiring', { expiry: true, ttl: 60 }),
];
console.log(`token expiry, ${CLIENTS} token holders in rooms of ${PER_ROOM}, ${CONCURRENCY} logins at a time; ` +
  `clients and Prosody share ${os.cpus().length} CPUs:`);
console.log('| gatehouse_token_expiry | joins/s | Prosody CPU for the logins | CPU idle 5 s | RSS | all kicked + closed | CPU for that |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.joinsPerSecond.toFixed(0)} | ${r.loginCpu.toFixed(2)} s | ${r.idleCpu.toFixed(2)} s | ` +
    `${r.rssMb.toFixed(1)} MB | ${r.closed !== undefined ? `${r.closed} in ${r.allClosedAfter.toFixed(2)} s after the deadline` : '–'} | ` +
    `${r.burstCpu !== undefined ? `${r.burstCpu.toFixed(2)} s` : '–'} |`);
}
