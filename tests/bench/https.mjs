// Benchmark: what one key fetch over HTTPS costs Prosody. A real Prosody on 127.0.0.1 verifies
// RS256 tokens against a LOCAL STAND-IN ASAP key server (tests/e2e/lib/keyserver.js) serving
// HTTPS with a certificate from a CA made at run time (trusted through gatehouse_ca_file, on top
// of the system's store, as an operator behind a company CA would set it up). Every token of the
// "fetch" runs names a kid not seen before, so each login makes one HTTPS request; the "cached"
// run's tokens name a kid already fetched, so the difference is the fetch itself.
// Prints Prosody's CPU per login (from /proc) and the login rate. First, the same fetch without
// Prosody: examples/https_get.rs makes that many GETs through gatehouse's HTTP client, one after
// another, and reports its own CPU per call (HTTPS_GET_BIN: a prebuilt one, e.g. of another
// commit, to compare).
// Usage: node tests/bench/https.mjs [logins=300]
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startProsody, RUN_ROOT, REPO_ROOT } from '../e2e/lib/prosody.js';
import { connect, disconnect } from '../e2e/lib/client.js';
import { startKeyServer, asapPath } from '../e2e/lib/keyserver.js';
import { makeTestCa } from '../e2e/lib/testca.js';
import { cpuSeconds, summary } from '../e2e/lib/procstat.js';
import * as jwt from '../e2e/lib/jwt.js';

const LOGINS = Number(process.argv[2] ?? 300);
const CONCURRENCY = 10;
const APP_ID = 'gatehouse-bench';
const key = jwt.generateKey('RS256', { kid: 'bench/warm' });
// One key pair published under many kids: a new kid costs the server a fetch, not us a keygen.
const kids = (prefix) => Array.from({ length: LOGINS }, (_, i) => `bench/${prefix}-${i}`);
const fetched = [...kids('seq'), ...kids('par')];
const token = (kid) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: 'room1' }), { alg: 'RS256', key, kid });

const caDir = path.join(RUN_ROOT, `bench-ca-${crypto.randomBytes(4).toString('hex')}`);
const ca = makeTestCa(caDir, { ips: ['127.0.0.1'] });
const keys = await startKeyServer(
  Object.fromEntries([key.kid, ...fetched].map((kid) => [`/asap${asapPath(kid)}`, { body: key.publicPem }])),
  { tls: { key: fs.readFileSync(ca.key, 'utf8'), cert: fs.readFileSync(ca.cert, 'utf8') } });
const prosody = await startProsody({
  name: 'bench-https',
  global: { gatehouse_ca_file: ca.ca },
  mainHost: {
    authentication: 'gatehouse_token', app_id: APP_ID, asap_key_server: `${keys.url}/asap`,
    gatehouse_key_fetch_rate: 100000, jwt_pubkey_cache_size: 4 * LOGINS,
  },
});

/** Logs in with each token, `concurrency` at a time; resolves CPU, wall time and latencies. */
async function run(tokens, concurrency) {
  const latencies = [];
  const queue = [...tokens];
  const cpu0 = cpuSeconds(prosody.pid);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const started = performance.now();
      const { xmpp } = await connect({ httpPort: prosody.httpPort, token: t });
      latencies.push(performance.now() - started);
      await disconnect(xmpp);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { cpu: cpuSeconds(prosody.pid) - cpu0, seconds, latency: summary(latencies), n: tokens.length };
}

/** examples/https_get: gatehouse's HTTP client alone, `calls` GETs of one key over HTTPS. */
async function clientOnly(calls) {
  let bin = process.env.HTTPS_GET_BIN;
  if (!bin) {
    execFileSync('cargo', ['build', '--release', '--locked', '--example', 'https_get'], { cwd: REPO_ROOT, stdio: 'inherit' });
    bin = path.join(REPO_ROOT, 'target/release/examples/https_get');
  }
  // Not execFileSync: the stand-in answers from this process's event loop.
  const { stdout } = await promisify(execFile)(bin, [`${keys.url}/asap${asapPath(key.kid)}`, ca.ca, String(calls)]);
  return stdout.trim();
}

try {
  console.log(await clientOnly(2 * LOGINS));
  await run([token(key.kid)], 1); // the first fetch, and the trust store read once
  const rows = [
    ['cached kid, one at a time', await run(Array.from({ length: LOGINS }, () => token(key.kid)), 1)],
    ['new kid (one HTTPS fetch), one at a time', await run(kids('seq').map(token), 1)],
    [`cached kid, ${CONCURRENCY} at a time`, await run(Array.from({ length: LOGINS }, () => token(key.kid)), CONCURRENCY)],
    [`new kid (one HTTPS fetch), ${CONCURRENCY} at a time`, await run(kids('par').map(token), CONCURRENCY)],
  ];
  const misses = fetched.filter((kid) => keys.hits(`/asap${asapPath(kid)}`) !== 1);
  if (misses.length) throw new Error(`${misses.length} kids were not fetched exactly once`);
  console.log(`Key fetches over HTTPS (stand-in ASAP key server, test CA via gatehouse_ca_file on top of the ` +
    `system store); ${LOGINS} logins per row; clients, stand-in and Prosody share ${os.cpus().length} CPUs:`);
  console.log('| logins | Prosody CPU per login | logins/s | login median | login p99 |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [name, r] of rows) {
    console.log(`| ${name} | ${(1000 * r.cpu / r.n).toFixed(2)} ms | ${(r.n / r.seconds).toFixed(0)} | ` +
      `${r.latency.median.toFixed(1)} ms | ${r.latency.p99.toFixed(1)} ms |`);
  }
  const perFetch = (fetchRow, cachedRow) => (1000 * (fetchRow.cpu / fetchRow.n - cachedRow.cpu / cachedRow.n)).toFixed(2);
  console.log(`Prosody CPU per HTTPS key fetch (new kid minus cached kid): ${perFetch(rows[1][1], rows[0][1])} ms one at a time, ` +
    `${perFetch(rows[3][1], rows[2][1])} ms ${CONCURRENCY} at a time`);
} finally {
  await prosody.stop();
  await keys.close();
  fs.rmSync(caDir, { recursive: true, force: true });
}
