// A throw-away certificate authority for HTTPS tests, made with the openssl CLI at test time
// (never committed): a CA and one server certificate for the given DNS names and IP addresses,
// written under `dir`. Returns the PEM file paths, and `issue(name, {dns, ips})` for more server
// certificates from the same CA (e.g. one that is valid, but for another name).
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

  /** A server certificate `<name>.pem` (key `<name>.key`) for these names and addresses. */
  function issue(name, { dns: names = [], ips: addrs = [] } = {}) {
    openssl('req', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${names[0] ?? addrs[0]}`);
    const san = [...names.map((d) => `DNS:${d}`), ...addrs.map((ip) => `IP:${ip}`)].join(',');
    fs.writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n` +
      'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
      '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '7', '-extfile', file(`${name}.ext`));
    return { cert: file(`${name}.pem`), key: file(`${name}.key`) };
  }

  const { cert, key } = issue('server', { dns, ips });
  // Synapse runs as this user too; Prosody (the prosody user) only needs the CA.
  fs.chmodSync(file('ca.pem'), 0o644);
  return { ca: file('ca.pem'), cert, key, issue };
}
