// A real, throw-away Synapse homeserver on 127.0.0.1 for the direct homeserver mode tests.
//
// Synapse is not a Debian package; it comes from PyPI (`pip install matrix-synapse`). Tests
// find it through $SYNAPSE_PYTHON (a Python whose `import synapse` works, e.g. a venv's
// bin/python), else the plain `python3`; `findSynapse()` says why it is missing so a suite can
// skip with that reason. Each start gets its own run directory (config, SQLite database,
// signing key, log) under tests/e2e/.run/, its own free port, and dies with the test process.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { RUN_ROOT } from './prosody.js';
import { freePorts } from './net.js';
import { withResolvConf } from './mountns.js';
import { terminate } from './process.js';
import * as jwt from './jwt.js';
import { roomName } from './uvs.js';

const live = new Set();
process.on('exit', () => { for (const child of live) { try { child.kill('SIGKILL'); } catch { /* gone */ } } });

/** `{ python, version }` when Synapse can be imported, else `{ missing: reason }`. */
export function findSynapse() {
  const python = process.env.SYNAPSE_PYTHON ?? 'python3';
  const probe = spawnSync(python, ['-c', 'import synapse; print(synapse.__version__)'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status === 0) return { python, version: probe.stdout.trim() };
  return { missing: `Synapse is not importable by ${python} (pip install matrix-synapse; set SYNAPSE_PYTHON to that Python)` };
}

/**
 * Starts Synapse with server name `serverName`.
 * @param {object} [o]
 * @param {{host: string, port: number, cert: string, key: string}} [o.federation]  also serve
 *   the federation API over TLS there (cert/key: PEM file paths), and federate with other
 *   test homeservers on loopback (their certificates are not checked by Synapse itself).
 *   `alsoPorts`: more ports on that host serving the same (e.g. 8448 beside a random one).
 * @param {string} [o.resolvConf]  a file Synapse sees as /etc/resolv.conf, so its own server
 *   discovery (SRV and address lookups) asks the DNS server named there (lib/dns.js); needs root
 * @returns {Promise<{url, serverName, dir, register(name, {admin}), client(token), stop()}>}
 */
export async function startSynapse({ python, serverName = 'matrix.test', federation, resolvConf, startTimeoutMs = 60_000 } = {}) {
  const dir = path.join(RUN_ROOT, `synapse-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { recursive: true });
  const [port] = await freePorts(1);
  const sharedSecret = crypto.randomBytes(24).toString('hex');
  const generous = { per_second: 1000, burst_count: 1000 };
  // JSON is YAML: no YAML writer needed.
  const config = {
    server_name: serverName,
    pid_file: path.join(dir, 'homeserver.pid'),
    listeners: [{
      port, bind_addresses: ['127.0.0.1'], type: 'http', tls: false, x_forwarded: false,
      // "federation" serves /_matrix/federation/v1/openid/userinfo, which the mode relies on.
      resources: [{ names: ['client', 'federation'], compress: false }],
    }],
    database: { name: 'sqlite3', args: { database: path.join(dir, 'homeserver.db') } },
    media_store_path: path.join(dir, 'media_store'),
    signing_key_path: path.join(dir, 'signing.key'),
    registration_shared_secret: sharedSecret,
    macaroon_secret_key: crypto.randomBytes(24).toString('hex'),
    form_secret: crypto.randomBytes(24).toString('hex'),
    report_stats: false,
    enable_metrics: false,
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    rc_message: generous, rc_registration: generous, rc_joins: { local: generous, remote: generous },
    rc_invites: { per_room: generous, per_user: generous, per_issuer: generous },
    rc_login: { address: generous, account: generous, failed_attempts: generous },
    rc_room_creation: generous,
  };
  if (federation) {
    for (const federationPort of [federation.port, ...(federation.alsoPorts ?? [])]) {
      config.listeners.push({
        port: federationPort, bind_addresses: [federation.host], type: 'http', tls: true, x_forwarded: false,
        resources: [{ names: ['federation'], compress: false }],
      });
    }
    Object.assign(config, {
      tls_certificate_path: federation.cert,
      tls_private_key_path: federation.key,
      // Test homeservers live on loopback, which Synapse refuses to federate with by default.
      ip_range_blacklist: [],
      federation_verify_certificates: false,
      allow_public_rooms_over_federation: true,
    });
  }
  const configFile = path.join(dir, 'homeserver.yaml');
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));

  const keys = spawnSync(python, ['-m', 'synapse.app.homeserver', '-c', configFile, '--generate-keys'],
    { encoding: 'utf8', timeout: 60_000 });
  if (keys.status !== 0) throw new Error(`synapse --generate-keys failed: ${keys.stderr}`);

  const logFile = path.join(dir, 'synapse.log');
  const out = fs.openSync(logFile, 'a');
  const resolver = resolvConf ? withResolvConf(resolvConf) : [];
  const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', ...resolver, python, '-m', 'synapse.app.homeserver', '-c', configFile],
    { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  live.add(child);
  child.unref();
  let exited = null;
  child.once('exit', (code, signal) => { exited = { code, signal }; live.delete(child); });

  const url = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (exited) throw new Error(`synapse exited (${JSON.stringify(exited)}); log ${logFile}`);
    if (Date.now() - started > startTimeoutMs) {
      child.kill('SIGKILL');
      throw new Error(`synapse not ready within ${startTimeoutMs} ms; log ${logFile}`);
    }
    const ok = await fetch(`${url}/_matrix/client/versions`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  /** A client-server API caller with `token`. */
  const client = (token) => async (method, apiPath, body) => {
    const res = await fetch(`${url}${apiPath}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw Object.assign(new Error(`${method} ${apiPath}: ${res.status} ${JSON.stringify(json)}`), { status: res.status, json });
    return json;
  };

  /** Registers a user through the shared-secret admin API; resolves `{ user_id, access_token }`. */
  async function register(name, { admin = false } = {}) {
    const { nonce } = await client()('GET', '/_synapse/admin/v1/register');
    const password = crypto.randomBytes(12).toString('hex');
    const mac = crypto.createHmac('sha1', sharedSecret)
      .update([nonce, name, password, admin ? 'admin' : 'notadmin'].join('\0')).digest('hex');
    return client()('POST', '/_synapse/admin/v1/register', { nonce, username: name, password, admin, mac });
  }

  return {
    url, serverName, dir, logFile, register, client,
    stop: () => terminate(child),
  };
}

/**
 * A room on `ours` created by `owner` (a user of ours) and joined over federation by `guest`
 * (a user of `theirs`), who gets power 50; `admin` (a server admin of ours) checks the join.
 * Users are `{ user_id, access_token }` as `register` gives them. Resolves the room ID.
 */
export async function federatedRoom({ ours, theirs, admin, owner, guest }) {
  const { room_id: roomId } = await ours.client(owner.access_token)('POST', '/_matrix/client/v3/createRoom', {
    room_version: '10', preset: 'public_chat',
    power_level_content_override: { users: { [owner.user_id]: 100, [guest.user_id]: 50 } },
  });
  const room = encodeURIComponent(roomId);
  await theirs.client(guest.access_token)('POST', `/_matrix/client/v3/join/${room}?server_name=${encodeURIComponent(ours.serverName)}`, {});
  const { members } = await ours.client(admin.access_token)('GET', `/_synapse/admin/v1/rooms/${room}/members`);
  if (!members.includes(guest.user_id)) throw new Error(`${guest.user_id} did not join ${roomId} over federation`);
  return roomId;
}

/** An OpenID token of `person` (`{ user_id, access_token }`) from `server`, as Element's widget asks for one. */
export async function openidToken(server, person) {
  const path = `/_matrix/client/v3/user/${encodeURIComponent(person.user_id)}/openid/request_token`;
  return (await server.client(person.access_token)('POST', path, {})).access_token;
}

/**
 * The login Element's Jitsi widget makes for `roomId`: `?token=` (an HS256 JWT with the secret
 * "notused", carrying the OpenID token and the homeserver's name) and `?room=`.
 */
export function widgetLogin({ roomId, name, openid, serverName }) {
  const claims = {
    iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*',
    context: { user: { name }, matrix: { token: openid, room_id: roomId, server_name: serverName } },
  };
  return { token: jwt.sign(claims, { alg: 'HS256', key: 'notused' }), room: roomName(roomId) };
}
