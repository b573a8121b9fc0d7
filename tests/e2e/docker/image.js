// docker-jitsi-meet's Prosody container, reproduced without Docker: its config is rendered from
// the image's own templates by the image's own renderer (jitsi/tpl, built by build-tpl.sh), with
// the environment docker compose would hand the container, and laid out at the image's paths in a
// private mount namespace over the Debian 13 root (Prosody 13, the version the image installs):
//
//   /run/prosody/config/prosody.cfg.lua          tpl /defaults/prosody.cfg.lua
//   /run/prosody/config/conf.d/jitsi-meet.cfg.lua tpl /defaults/conf.d/jitsi-meet.cfg.lua
//   /run/prosody/config/conf.d/gatehouse.cfg.lua  docker/gatehouse.cfg.lua (compose mounts it in /config)
//   /run/prosody/config/certs/                    self-signed, as the image's prosodyctl cert generate
//   /prosody-plugins/                             jitsi-meet's plugins + the image's rootfs/prosody-plugins
//   /prosody-plugins-custom/                      gatehouse's tree (read-only, as compose mounts it)
//   /prosody-plugins-contrib/                     jitsi-contrib's plugins
//   /var/lib/prosody/                             the data volume
//
// Everything upstream is read from ../shared/upstream, unmodified.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { REPO_ROOT, RUN_ROOT, DEFAULT_PLUGIN_PATHS } from '../lib/prosody.js';
import { freePorts } from '../lib/net.js';
import { terminate } from '../lib/process.js';

export const UPSTREAM = path.resolve(REPO_ROOT, '../shared/upstream');
const IMAGE = path.join(UPSTREAM, 'docker-jitsi-meet');
const DEFAULTS = path.join(IMAGE, 'prosody/rootfs/defaults');
const ROOT = path.resolve(process.env.PROSODY_ROOT ?? path.join(process.env.HOME, '.cache/gatehouse/trixie'));
const TPL = process.env.TPL_BIN ?? path.join(REPO_ROOT, 'target/tpl/tpl');
const GATEHOUSE = DEFAULT_PLUGIN_PATHS[0];

/** KEY=VALUE lines of a .env file, as docker compose reads them (comments and blanks skipped). */
export function readDotEnv(file) {
  const vars = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
    if (m) vars[m[1]] = m[2].trim().replace(/^(['"])(.*)\1$/, '$2');
  }
  return vars;
}

/** The variable names docker-compose.yml's prosody service passes into the container. */
export function composeEnvironmentNames() {
  const lines = fs.readFileSync(path.join(IMAGE, 'docker-compose.yml'), 'utf8').split('\n');
  const start = lines.findIndex((l) => /^ {4}prosody:\s*$/.test(l));
  const names = [];
  let inEnv = false;
  for (const line of lines.slice(start + 1)) {
    if (/^ {4}\S/.test(line)) break; // the next service
    if (/^ {8}\S/.test(line)) { inEnv = /^ {8}environment:\s*$/.test(line); continue; }
    const m = inEnv && line.match(/^\s+-\s*([A-Za-z_][A-Za-z0-9_]*)/);
    if (m) names.push(m[1]);
  }
  if (names.length === 0) throw new Error('no environment list for prosody in docker-compose.yml');
  return names;
}

/**
 * The container's environment: docker-jitsi-meet's env.example with gatehouse's .env lines
 * appended (as docker/gatehouse.env says to) and `dotenv` on top (what an operator would write:
 * passwords, ports), filtered to what compose passes to the prosody service.
 */
export function containerEnv(dotenv = {}) {
  const all = {
    ...readDotEnv(path.join(IMAGE, 'env.example')),
    ...readDotEnv(path.join(REPO_ROOT, 'docker/gatehouse.env')),
    ...dotenv,
  };
  const env = {};
  for (const name of composeEnvironmentNames()) {
    if (all[name] !== undefined && all[name] !== '') env[name] = all[name];
  }
  return env;
}

function prosodyIds() {
  const line = fs.readFileSync(path.join(ROOT, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('prosody:'));
  if (!line) throw new Error(`no prosody user in ${ROOT}/etc/passwd (run make prosody13-root)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function chownTree(dir, { uid, gid }) {
  fs.chownSync(dir, uid, gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(p, { uid, gid });
    else fs.chownSync(p, uid, gid);
  }
}

/**
 * argv running `command` as the prosody user chrooted in the Debian 13 root, with `mounts`
 * ([source, target, "ro"?]) bound at the image's paths in a mount namespace that dies with it.
 */
function inImage(mounts, command) {
  const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
  const script = [
    'set -e',
    `mount -t proc proc ${q(`${ROOT}/proc`)}`,
    `mount --rbind /dev ${q(`${ROOT}/dev`)}`,
    ...mounts.map(([source, target, mode]) => `mkdir -p ${q(ROOT + target)} && ` +
      `mount --bind ${mode === 'ro' ? '-o ro ' : ''}${q(source)} ${q(ROOT + target)}`),
    `exec chroot ${q(ROOT)} "$@"`,
  ].join('\n');
  return ['setpriv', '--pdeathsig', 'SIGKILL', 'unshare', '--mount', '--propagation', 'private',
    'sh', '-c', script, 'sh',
    'setpriv', '--pdeathsig', 'SIGKILL', '--reuid', 'prosody', '--regid', 'prosody', '--init-groups', ...command];
}

function selfSignedCert(dir, domain) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', path.join(dir, `${domain}.key`), '-out', path.join(dir, `${domain}.crt`), '-days', '2',
    '-subj', `/CN=${domain}`, '-addext', `subjectAltName=DNS:${domain}`], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Renders the config, lays out the image and starts its Prosody. `dotenv` adds .env lines.
 * Resolves once /health (the image's mod_http_health) answers 200.
 */
export async function startImageProsody({ name = 'docker', dotenv = {}, startTimeoutMs = 20_000 } = {}) {
  if (!fs.existsSync(TPL)) throw new Error(`${TPL} missing: run make test-docker-config (it builds tpl)`);
  const [httpPort, c2sPort] = await freePorts(2);
  const focusPassword = crypto.randomBytes(12).toString('hex');
  const env = containerEnv({
    // What gen-passwords.sh and an operator choosing ports would put in .env.
    JICOFO_AUTH_PASSWORD: focusPassword, JVB_AUTH_PASSWORD: crypto.randomBytes(12).toString('hex'),
    XMPP_PORT: String(c2sPort), PROSODY_HTTP_PORT: String(httpPort),
    ...dotenv,
  });

  const dir = path.join(RUN_ROOT, `${name}-${crypto.randomBytes(4).toString('hex')}`);
  const run = path.join(dir, 'run-prosody');
  const config = path.join(run, 'config');
  for (const d of ['conf.d', 'certs']) fs.mkdirSync(path.join(config, d), { recursive: true });
  fs.mkdirSync(path.join(dir, 'var-lib-prosody/data'), { recursive: true });
  // tpl sees what the container's config script sees: the container's environment.
  const render = (template) => execFileSync(TPL, [path.join(DEFAULTS, template)], { env, encoding: 'utf8' });
  fs.writeFileSync(path.join(config, 'prosody.cfg.lua'), render('prosody.cfg.lua'));
  fs.writeFileSync(path.join(config, 'conf.d/jitsi-meet.cfg.lua'), render('conf.d/jitsi-meet.cfg.lua'));
  fs.copyFileSync(path.join(REPO_ROOT, 'docker/gatehouse.cfg.lua'), path.join(config, 'conf.d/gatehouse.cfg.lua'));
  for (const domain of ['meet.jitsi', 'auth.meet.jitsi']) selfSignedCert(path.join(config, 'certs'), domain);
  // The image copies jitsi-meet-prosody's plugins and its own rootfs/prosody-plugins into one dir.
  const plugins = path.join(dir, 'prosody-plugins');
  fs.cpSync(path.join(UPSTREAM, 'jitsi-meet/resources/prosody-plugins'), plugins, { recursive: true });
  fs.cpSync(path.join(IMAGE, 'prosody/rootfs/prosody-plugins'), plugins, { recursive: true });
  chownTree(dir, prosodyIds());

  const mounts = [
    [run, '/run/prosody'],
    [path.join(dir, 'var-lib-prosody'), '/var/lib/prosody'],
    [plugins, '/prosody-plugins', 'ro'],
    [GATEHOUSE, '/prosody-plugins-custom', 'ro'],
    [path.join(UPSTREAM, 'jitsi-contrib'), '/prosody-plugins-contrib', 'ro'],
  ];
  const cfg = '/run/prosody/config/prosody.cfg.lua';
  const logFile = path.join(dir, 'prosody.log');
  // The container's environment only, not the test runner's (SSL_CERT_FILE and the like).
  const processEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env };
  const [cmd, ...args] = inImage(mounts, ['prosodyctl', '--config', cfg, 'register', 'focus', 'auth.meet.jitsi', focusPassword]);
  execFileSync(cmd, args, { env: processEnv, stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });

  const out = fs.openSync(logFile, 'a');
  const [pcmd, ...pargs] = inImage(mounts, ['prosody', '--config', cfg, '-F']);
  const child = spawn(pcmd, pargs, { env: processEnv, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  child.unref();
  let exited = null;
  child.once('exit', (code, signal) => { exited = { code, signal }; });
  process.once('exit', () => child.kill('SIGKILL'));

  const handle = {
    dir, httpPort, c2sPort, env, logFile, focusPassword,
    readLog: () => fs.readFileSync(logFile, 'utf8'),
    config: (file = 'prosody.cfg.lua') => fs.readFileSync(path.join(config, file), 'utf8'),
    stop: () => terminate(child),
  };
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exited) break;
    const ok = await fetch(`http://127.0.0.1:${httpPort}/health`).then((r) => r.status === 200, () => false);
    if (ok) return handle;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await handle.stop();
  throw new Error(`the image's Prosody did not become healthy (${exited ? `exited ${JSON.stringify(exited)}` : 'timeout'}); ` +
    `run dir ${dir}\n--- log (tail) ---\n${handle.readLog().split('\n').slice(-40).join('\n')}`);
}
