// A throw-away certificate authority for HTTPS tests, made with the openssl CLI at test time
// (never committed): a CA and one server certificate for the given DNS names and IP addresses,
// written under `dir`. Returns the PEM file paths.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export function makeTestCa(dir, { dns = [], ips = [] } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const file = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '7',
    '-subj', '/CN=gatehouse e2e test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', `/CN=${dns[0] ?? ips[0]}`);
  const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((ip) => `IP:${ip}`)].join(',');
  fs.writeFileSync(file('server.ext'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n` +
    'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
    '-CAcreateserial', '-out', file('server.pem'), '-days', '7', '-extfile', file('server.ext'));
  // Synapse runs as this user too; Prosody (the prosody user) only needs the CA.
  fs.chmodSync(file('ca.pem'), 0o644);
  return { ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') };
}
