// Key servers behind a private certificate authority, against a real Prosody. A test CA is made
// at test time (openssl), and a LOCAL STAND-IN ASAP key server (lib/keyserver.js) serves over
// HTTPS with a certificate that CA signed. gatehouse trusts the system's CA store (what
// OpenSSL, Prosody and curl trust; SSL_CERT_FILE overrides it, as for OpenSSL) plus the
// global gatehouse_ca_file, and nothing else.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { startProsody, RUN_ROOT } from './lib/prosody.js';
import { connect, disconnect, refusedLogin } from './lib/client.js';
import { startKeyServer, asapPath } from './lib/keyserver.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';

/** A CA and a server certificate for 127.0.0.1 it signed, in a fresh directory under .run/. */
function makeTestCa() {
  const dir = path.join(RUN_ROOT, `test-ca-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=gatehouse e2e private CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644); // Prosody reads ca.pem
  const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
  return { dir, caFile: path.join(dir, 'ca.pem'), key: read('server.key'), cert: read('server.pem') };
}

describe('HTTPS key server behind a private CA (test CA made at test time, stand-in key server)', () => {
  const key = jwt.generateKey('RS256', { kid: 'private/ca-1' });
  const keyPath = `/asap${asapPath(key.kid)}`;
  const token = () => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: 'room1' }), { alg: 'RS256', key });
  let ca;
  let keys;

  before(async () => {
    ca = makeTestCa();
    keys = await startKeyServer({ [keyPath]: { body: key.publicPem } }, { tls: { key: ca.key, cert: ca.cert } });
  });
  after(async () => {
    await keys?.close();
    if (ca) fs.rmSync(ca.dir, { recursive: true, force: true });
  });

  const start = (name, { global = {}, env } = {}) => startProsody({
    name, global, env,
    mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, asap_key_server: `${keys.url}/asap` },
  });

  it('with the system store only, a server signed by an unknown CA is refused', async (t) => {
    const prosody = await start('ca-system-only');
    t.after(() => prosody.stop());
    const err = await refusedLogin(prosody.httpPort, { token: token() });
    assert.equal(err.condition, 'not-allowed');
    assert.equal(err.text, 'could not obtain public key'); // upstream's text; the log says why
    assert.match(prosody.readLog(), /could not obtain public key: .*(UnknownIssuer|certificate)/i);
    assert.equal(keys.hits(keyPath), 0, 'no request got past the TLS handshake');
    assert.match(prosody.readLog(), /HTTPS trusts (\d+ CA certificates from the system store|no system CA store found)/);
  });

  it('gatehouse_ca_file (relative to the config file) makes that CA trusted', async (t) => {
    const hits = keys.hits(keyPath);
    // Run directories are siblings under .run/, so this resolves from the config's directory.
    const prosody = await start('ca-file', { global: { gatehouse_ca_file: `../${path.basename(ca.dir)}/ca.pem` } });
    t.after(() => prosody.stop());
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: token() });
    await disconnect(xmpp);
    assert.equal(keys.hits(keyPath), hits + 1);
    assert.match(prosody.readLog(), /HTTPS trusts .*and 1 from gatehouse_ca_file/);
  });

  it('a CA in the system store (SSL_CERT_FILE, as OpenSSL reads it) is trusted without the option', async (t) => {
    const hits = keys.hits(keyPath);
    // The store is then that file alone (an empty SSL_CERT_DIR: no directory of the host's CAs).
    const prosody = await start('ca-system-store', { env: { SSL_CERT_FILE: ca.caFile, SSL_CERT_DIR: '' } });
    t.after(() => prosody.stop());
    const { xmpp } = await connect({ httpPort: prosody.httpPort, token: token() });
    await disconnect(xmpp);
    assert.equal(keys.hits(keyPath), hits + 1);
    assert.match(prosody.readLog(), /HTTPS trusts 1 CA certificates from the system store/);
  });

  it('a gatehouse_ca_file that cannot be read stops the modules, so no login gets through', async (t) => {
    const prosody = await start('ca-file-missing', { global: { gatehouse_ca_file: '/nonexistent/company-ca.pem' } });
    t.after(() => prosody.stop());
    await prosody.waitForLog(/gatehouse_ca_file: cannot read \/nonexistent\/company-ca\.pem/);
    // Prosody 0.12 refuses the SASL exchange; 13 offers no mechanism at all (the client waits).
    const err = await connect({ httpPort: prosody.httpPort, token: token(), timeoutMs: 3000 })
      .then(({ xmpp }) => { disconnect(xmpp); return null; }, (e) => e);
    assert.ok(err, 'a login got through with the token provider not loaded');
  });
});
