// Starts a real, throw-away Prosody (the system's /usr/bin/prosody) for one test.
//
// Each call gets its own run directory under tests/e2e/.run/<name>-<random>/ holding the
// generated config, data/, the Prosody log and the process's stdout/stderr, and its own free
// loopback ports — so tests never share state and never touch /etc/prosody.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { renderConfig, FOCUS } from './config.js';
import { freePorts, canConnect } from './net.js';
import { withResolvConf, resolvConfMountLine } from './mountns.js';

export { DOMAIN, MUC_DOMAIN, AUTH_DOMAIN, FOCUS, FOCUS_JID } from './config.js';
export { lua } from './lua.js';

const E2E_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_ROOT = path.resolve(E2E_DIR, '../..');
export const RUN_ROOT = path.join(E2E_DIR, '.run');
const E2E_PLUGINS = path.join(E2E_DIR, 'plugins');
// GATEHOUSE_DIST (set by the Makefile) points at the tree `make build` produced.
export const DEFAULT_PLUGIN_PATHS = [process.env.GATEHOUSE_DIST ?? path.join(REPO_ROOT, 'dist/prosody-plugins'), E2E_PLUGINS];

const PROSODY = process.env.PROSODY_BIN ?? '/usr/bin/prosody';
const PROSODYCTL = process.env.PROSODYCTL_BIN ?? '/usr/bin/prosodyctl';
// PROSODY_ROOT: a Debian root holding another Prosody (`make test-prosody13`: Debian 13's
// Prosody 13, which needs Debian 13's libc). Prosody then runs chrooted there, in a private
// mount namespace where the repository, the run directory and every plugin path are bind-mounted
// at the same absolute paths, so configs and logs read the same inside and out.
const PROSODY_ROOT = process.env.PROSODY_ROOT ? path.resolve(process.env.PROSODY_ROOT) : null;
const RUN_AS = 'prosody';
const PORT_ATTEMPTS = 3;
// Logged by tests/e2e/plugins/mod_e2e_ready.lua on "server-started".
const READY_LINE = 'E2E-HARNESS-READY';
// Whichever comes first in the log decides the outcome of a start.
const READY_OR_FATAL = new RegExp(`${READY_LINE}|\\tShutting down: |Failed to open server port`);

// ---------------------------------------------------------------------------------------
// Never let a Prosody outlive the test process.
//  * setpriv --pdeathsig SIGKILL: the kernel kills Prosody if the node process dies, even by
//    SIGKILL (applied after the uid switch, so it survives it).
//  * 'exit' handler + SIGINT/SIGTERM handlers: kill whatever is still running.
const live = new Set();
function killAllSync() {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAllSync();
    process.kill(process.pid, sig); // re-raise with the default action
  });
}

// ---------------------------------------------------------------------------------------
// Running as the prosody user: Prosody 0.12 warns as root and 13 refuses (REFERENCE §10).
// When the tests themselves do not run as root we cannot switch users and run as ourselves.
const isRoot = process.getuid?.() === 0;

function userIds(name) {
  const passwd = path.join(PROSODY_ROOT ?? '/', 'etc/passwd');
  const line = fs.readFileSync(passwd, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`user ${name} not found in /etc/passwd (is the prosody package installed?)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * argv prefix that runs a command as the prosody user, dying with its parent; with
 * `resolvConf`, that file is its /etc/resolv.conf (a private mount namespace's bind mount).
 */
function asProsody(binds = [], resolvConf = null) {
  const ids = isRoot ? ['--reuid', RUN_AS, '--regid', RUN_AS, '--init-groups'] : [];
  const setpriv = ['setpriv', '--pdeathsig', 'SIGKILL', ...ids];
  if (resolvConf && !isRoot) throw new Error('resolvConf needs root (a bind mount)');
  if (!PROSODY_ROOT) {
    // The user switch comes last, after the mount (which needs root).
    return resolvConf ? ['setpriv', '--pdeathsig', 'SIGKILL', ...withResolvConf(resolvConf), ...setpriv] : setpriv;
  }
  if (!isRoot) throw new Error('PROSODY_ROOT needs root (chroot and bind mounts)');
  // unshare: the mounts vanish with the process. The root's own setpriv switches user (and
  // re-arms pdeathsig, which a uid change clears) inside the chroot.
  // Existing directories only, each once, none inside another one that is mounted anyway.
  const dirs = [...new Set([REPO_ROOT, ...binds].map((d) => path.resolve(d)))]
    .filter((d) => fs.existsSync(d) && !d.startsWith(PROSODY_ROOT + path.sep));
  const outermost = dirs.filter((d) => !dirs.some((o) => o !== d && d.startsWith(o + path.sep)));
  const script = [
    'set -e',
    `mount -t proc proc '${PROSODY_ROOT}/proc'`,
    ...['/dev', ...outermost].map((d) => `mkdir -p '${PROSODY_ROOT}${d}' && mount --rbind '${d}' '${PROSODY_ROOT}${d}'`),
    ...(resolvConf ? [resolvConfMountLine(resolvConf, PROSODY_ROOT)] : []),
    `exec chroot '${PROSODY_ROOT}' "$@"`,
  ].join('\n');
  return ['setpriv', '--pdeathsig', 'SIGKILL', 'unshare', '--mount', '--propagation', 'private',
    'sh', '-c', script, 'sh', ...setpriv];
}

/** `p` as the chrooted Prosody sees it: paths inside PROSODY_ROOT lose the root's prefix. */
function inRootPath(p) {
  const abs = path.resolve(p);
  return PROSODY_ROOT && abs.startsWith(PROSODY_ROOT + path.sep) ? abs.slice(PROSODY_ROOT.length) : p;
}

function chownTree(dir, { uid, gid }) {
  fs.chownSync(dir, uid, gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(p, { uid, gid });
    else fs.chownSync(p, uid, gid);
  }
}

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return ''; // not written yet
  }
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** The log's warn/error lines (without tracebacks, which would drown them in a tail). */
function problems(file, max = 20) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n')
      .filter((l) => /\t(warn|error)\t/.test(l)).slice(0, max).join('\n');
  } catch {
    return '';
  }
}

/**
 * Run directories are kept after a run (logs are the point of them); remove those older than
 * a few hours, once per process, so .run/ does not grow forever. Old enough to never hit a
 * directory a concurrent run is still using.
 */
const KEEP_RUNS_MS = 6 * 3600 * 1000;
let pruned = false;
function pruneOldRuns() {
  if (pruned) return;
  pruned = true;
  let entries = [];
  try { entries = fs.readdirSync(RUN_ROOT, { withFileTypes: true }); } catch { return; }
  for (const e of entries) {
    const p = path.join(RUN_ROOT, e.name);
    try {
      if (e.isDirectory() && Date.now() - fs.statSync(p).mtimeMs > KEEP_RUNS_MS) {
        fs.rmSync(p, { recursive: true, force: true });
      }
    } catch { /* a concurrent prune got it first */ }
  }
}

// ---------------------------------------------------------------------------------------

/**
 * Starts Prosody. Options (all optional):
 *   name          label for the run directory (default "prosody")
 *   mainHost      options for VirtualHost "meet.test", e.g. { authentication: "gatehouse_token",
 *                 app_id: "app", modules_enabled: ["..."] } (default authentication "anonymous")
 *   muc           options for Component "conference.meet.test" "muc"
 *   authHost      options for VirtualHost "auth.meet.test"
 *   hosts         more VirtualHosts: { "guest.meet.test": { authentication: "anonymous" } }
 *   components    more components: { "lobby.meet.test": { type: "muc", … } }
 *   global        extra global options (e.g. { modules_enabled: [...] })
 *   extraLua      { global, mainHost, muc, authHost }: raw Lua appended to each section
 *   pluginPaths   default [<repo>/dist/prosody-plugins, <repo>/tests/e2e/plugins]
 *   logLevel      "debug" | "info" | "warn" | "error" (default: $E2E_LOG_LEVEL or "info")
 *   env           extra environment variables (e.g. LUA_CPATH for gatehouse.so)
 *   startTimeoutMs  bound on startup (default 15000)
 *   ports         [httpPort, c2sPort] to use instead of free ones (for `make run`)
 *   resolvConf    a file Prosody sees as /etc/resolv.conf (e.g. naming lib/dns.js's server);
 *                 needs root
 *
 * @returns {Promise<{httpPort:number, c2sPort:number, dir:string, logFile:string,
 *   configFile:string, pid:number, readLog(since?):string, logMark():number,
 *   waitForLog(re, ms?, since?):Promise<string>, stop():Promise<void>}>}
 */
export async function startProsody(opts = {}) {
  pruneOldRuns();
  let lastError;
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      // Only a lost port race is worth retrying; config or plugin errors are not.
      if (!err.portInUse) throw err;
      lastError = err;
    }
  }
  throw lastError;
}

async function startOnce(opts) {
  const name = (opts.name ?? 'prosody').replace(/[^A-Za-z0-9_.-]/g, '_');
  const dir = path.join(RUN_ROOT, `${name}-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'certs'));

  // Fixed ports for `make run`; free ones otherwise.
  const [httpPort, c2sPort] = opts.ports ?? await freePorts(2);
  const logFile = path.join(dir, 'prosody.log');
  const stdoutFile = path.join(dir, 'stdout.log');
  const configFile = path.join(dir, 'prosody.cfg.lua');
  // The harness's own plugins (mod_e2e_ready) must stay reachable whatever the test passes.
  const pluginPaths = [...new Set([...(opts.pluginPaths ?? DEFAULT_PLUGIN_PATHS), E2E_PLUGINS])];
  fs.writeFileSync(configFile, renderConfig({
    dir, httpPort, c2sPort, logFile,
    logLevel: opts.logLevel ?? process.env.E2E_LOG_LEVEL ?? 'info',
    // A plugin path inside PROSODY_ROOT (e.g. the .deb installed there) is what Prosody sees
    // without the root's prefix; any other path is bind-mounted at the same place.
    pluginPaths: pluginPaths.map(inRootPath),
    global: opts.global, mainHost: opts.mainHost, muc: opts.muc, authHost: opts.authHost,
    extraLua: opts.extraLua, hosts: opts.hosts, components: opts.components,
  }));
  if (isRoot) chownTree(dir, userIds(RUN_AS));

  const env = { ...process.env, ...opts.env };

  // Jicofo's focus account. prosodyctl takes ~60 ms and writes the account in whatever
  // format the installed Prosody uses, which beats hand-writing data files.
  const [cmd, ...prefix] = asProsody([dir, ...pluginPaths], opts.resolvConf);
  try {
    execFileSync(cmd, [...prefix, PROSODYCTL, '--config', configFile,
      'register', FOCUS.username, FOCUS.domain, FOCUS.password],
    { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (err) {
    throw new Error(`Prosody did not start: prosodyctl register failed (${err.message.split('\n')[0]}); ` +
      `run dir ${dir}\n--- prosodyctl output ---\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }

  // -F: stay in the foreground (0.12 daemonizes by default when installed as a package).
  const out = fs.openSync(stdoutFile, 'a');
  const child = spawn(cmd, [...prefix, PROSODY, '--config', configFile, '-F'], {
    env, stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  live.add(child);
  // Don't let a forgotten stop() keep the test process alive forever: unref'd, the process
  // can end, and the 'exit' handler above then kills Prosody.
  child.unref();

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ code: null, signal: null, error })); // e.g. no setpriv
  }).then((r) => { live.delete(child); return r; });

  const handle = {
    httpPort, c2sPort, dir, logFile, configFile, pid: child.pid,
    /** The Prosody log so far, from character offset `since` (see logMark). */
    readLog: (since = 0) => readText(logFile).slice(since),
    /** The log's current length: pass it as `since` to look only at what comes next. */
    logMark: () => readText(logFile).length,
    /**
     * Resolves with the first log line (after offset `since`) matching `re`, within `ms`;
     * `signal` (an AbortSignal) cancels the wait.
     */
    waitForLog: (re, ms = 5000, since = 0, signal = undefined) => waitForLog(logFile, re, ms, signal, since),
    /** SIGTERM, then SIGKILL after 5 s. Idempotent. */
    stop: async () => {
      if (live.has(child)) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };

  // Ready = test plugin mod_e2e_ready logged "server-started" (open ports alone are not
  // proof: Prosody binds them while modules load, and can still fail after that). Abort
  // early if Prosody exits, starts shutting down, or could not bind a port.
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  try {
    const stopWaiting = new AbortController();
    const died = exited.then(({ code, signal, error }) => {
      throw error ?? new Error(`prosody exited (code ${code}, signal ${signal})`);
    });
    const line = await Promise.race([
      waitForLog(logFile, READY_OR_FATAL, startTimeoutMs, stopWaiting.signal),
      died,
    ]).finally(() => stopWaiting.abort());
    if (/Failed to open server port/.test(line)) {
      throw Object.assign(new Error('a port was taken before Prosody bound it'), { portInUse: true });
    }
    if (!line.includes(READY_LINE)) throw new Error(`Prosody gave up during startup: ${line}`);
    for (const port of [httpPort, c2sPort]) {
      if (!(await canConnect(port))) throw new Error(`port ${port} not listening after startup`);
    }
  } catch (err) {
    await handle.stop();
    const wrapped = new Error(`Prosody did not start (${err.message}); run dir ${dir}\n` +
      `--- prosody.log warnings and errors ---\n${problems(logFile)}\n` +
      `--- prosody.log (tail) ---\n${tail(logFile)}\n--- stdout/stderr (tail) ---\n${tail(stdoutFile)}`);
    wrapped.portInUse = err.portInUse || /Failed to open server port/.test(tail(logFile, 1000));
    throw wrapped;
  }
  return handle;
}

/**
 * Waits (bounded by `ms`, cancellable by `signal`) for a line of `file` matching `re`; reacts
 * to file changes via fs.watch instead of polling.
 */
function waitForLog(file, re, ms, signal, since = 0) {
  const find = () => readText(file).slice(since).split('\n').find((line) => re.test(line));
  return new Promise((resolve, reject) => {
    let watcher;
    const finish = (fn, v) => {
      clearTimeout(timer);
      watcher?.close();
      signal?.removeEventListener('abort', onAbort);
      fn(v);
    };
    const onAbort = () => finish(reject, signal.reason ?? new Error('aborted'));
    const timer = setTimeout(() => finish(reject, new Error(`no log line matching ${re} within ${ms} ms`)), ms);
    const check = () => {
      const line = find();
      if (line !== undefined) finish(resolve, line);
    };
    signal?.addEventListener('abort', onAbort);
    // Watch the directory, not the file: the file may not exist yet.
    watcher = fs.watch(path.dirname(file), check);
    check();
  });
}
