// A real DNS server for the tests: Debian's dnsmasq (package dnsmasq-base), answering only the
// records a test gives it, on a loopback address of its own, port 53 (which needs root).
//
// Processes see it through a resolv.conf naming it (`writeResolvConf`), bind-mounted over
// /etc/resolv.conf in a private mount namespace (`resolvConf` of startProsody/startSynapse), so
// their own stub resolvers (glibc, twisted, gatehouse's) ask it. Every name under `.test` is
// answered from the records alone (NXDOMAIN when absent, NODATA when only another type exists);
// anything else is REFUSED (no upstream). dnsmasq gives its local records TTL 0.
//
// To change the records, stop and start again on the same address: the resolv.conf stays valid.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';

import { RUN_ROOT } from './prosody.js';
import { terminate } from './process.js';

const live = new Set();
process.on('exit', () => { for (const child of live) { try { child.kill('SIGKILL'); } catch { /* gone */ } } });

const CANDIDATES = [process.env.DNSMASQ_BIN, '/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].filter(Boolean);

/** `{ bin }` when dnsmasq can serve here, else `{ missing: reason }` (for a suite's skip). */
export function findDnsmasq() {
  if (process.getuid?.() !== 0) return { missing: 'needs root (dnsmasq on port 53, resolv.conf bind mounts)' };
  const bin = CANDIDATES.find((b) => spawnSync(b, ['--version'], { timeout: 10_000 }).status === 0);
  return bin ? { bin } : { missing: 'dnsmasq is not installed (Debian package dnsmasq-base)' };
}

/** A random 127.x.y.z (not 127.0.0.x): every loopback address is ours to bind. */
export function randomLoopback() {
  const [a, b, c] = [...crypto.randomBytes(3)];
  return `127.${1 + (a % 250)}.${1 + (b % 250)}.${1 + (c % 250)}`;
}

/**
 * Writes a resolv.conf naming only `address` (world-readable: Prosody runs as its own user),
 * with the stub resolver's `timeout` (seconds per try) and `attempts`; as `name` in `dir`.
 */
export function writeResolvConf(dir, address, { timeout = 1, attempts = 2, name = 'resolv.conf' } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  fs.writeFileSync(file, `nameserver ${address}\noptions timeout:${timeout} attempts:${attempts}\n`);
  fs.chmodSync(file, 0o644);
  return file;
}

/**
 * dnsmasq's arguments for `records`:
 *   a:   { 'host.test': '127.1.2.3' }
 *   srv: [{ name: '_matrix-fed._tcp.host.test', target: 'fed.host.test' | '.', port, priority, weight }]
 *        (target '.' publishes "no such service here")
 *   unanswered: ['_tcp.host.test']  names in these domains get no answer at all (a DNS failure:
 *        dnsmasq forwards them to a port where nothing listens, and the asker times out)
 *   forward: { 'slow.test': '127.1.2.3' }  names in these domains are forwarded to that
 *        nameserver (port 53), and answered as it answers: it stands in for a domain's own
 *        nameservers, e.g. ones that never answer (a test's UDP socket reading and ignoring)
 */
function recordArgs({ a = {}, srv = [], unanswered = [], forward = {} }) {
  const args = Object.entries(a).map(([name, ip]) => `--host-record=${name},${ip}`);
  for (const domain of unanswered) args.push(`--server=/${domain}/127.0.0.1#1`);
  for (const [domain, server] of Object.entries(forward)) args.push(`--server=/${domain}/${server}`);
  for (const { name, target, port, priority = 0, weight = 0 } of srv) {
    // dnsmasq's spelling of the "." target is a record without one.
    args.push(target === '.' ? `--srv-host=${name}` : `--srv-host=${name},${target},${port},${priority},${weight}`);
  }
  return args;
}

/**
 * Starts dnsmasq on `address` (default: a random loopback address) port 53 with `records`.
 * @returns {Promise<{address: string, logFile: string, stop(): Promise<void>}>}
 */
export async function startDns({ bin = findDnsmasq().bin, address = randomLoopback(), records = {}, startTimeoutMs = 10_000 } = {}) {
  if (!bin) throw new Error(findDnsmasq().missing);
  const dir = path.join(RUN_ROOT, `dnsmasq-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'dnsmasq.log');
  const args = [
    '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=',
    '--local=/test/', `--listen-address=${address}`, '--bind-interfaces', '--port=53',
    '--log-queries', `--log-facility=${logFile}`, '--user=root',
    ...recordArgs(records),
  ];
  fs.writeFileSync(path.join(dir, 'args'), `${args.join('\n')}\n`);
  const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { if (stderr.length < 4000) stderr += d; });
  live.add(child);
  child.unref();
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = { code, signal };
    live.delete(child);
  });

  // Ready when it answers: any answer from it (NXDOMAIN included) will do.
  const resolver = new dns.promises.Resolver({ timeout: 300, tries: 1 });
  resolver.setServers([address]);
  const started = Date.now();
  for (;;) {
    if (exited) throw new Error(`dnsmasq exited (${JSON.stringify(exited)}): ${stderr.trim()}`);
    if (Date.now() - started > startTimeoutMs) {
      child.kill('SIGKILL');
      throw new Error(`dnsmasq did not answer within ${startTimeoutMs} ms: ${stderr.trim()}`);
    }
    const answered = await resolver.resolve4('dnsmasq-readiness-probe.test')
      .then(() => true, (e) => e.code === dns.NOTFOUND);
    if (answered) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  return {
    address, logFile,
    stop: () => terminate(child),
  };
}
