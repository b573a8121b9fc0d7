// A static file server over HTTPS for Matrix server discovery's delegation document: it serves
// `/.well-known/matrix/server` with whatever document the test last set (404 when none), and
// 404 for every other path. Nothing more; it stands in for a web server in front of a domain.
import fs from 'node:fs';
import https from 'node:https';

const PATH = '/.well-known/matrix/server';

/**
 * Listens on `host`:`port` (443 by default: discovery fetches https://<name>/..., so that port;
 * binding it needs root) with the PEM `cert`/`key` files.
 * @returns {Promise<{set(doc: object|string|null): void, requests: Array<{path, host, servername}>,
 *   close(): Promise<void>}>}
 */
export async function startWellKnownServer({ host, port = 443, cert, key }) {
  let body = null;
  const requests = [];
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
    const path = new URL(req.url, 'https://x').pathname;
    requests.push({ path, host: req.headers.host, servername: req.socket.servername });
    if (path !== PATH || body === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    /** The document to serve from now on (an object is sent as JSON; null: 404). */
    set: (doc) => { body = doc === null ? null : typeof doc === 'string' ? doc : JSON.stringify(doc); },
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
