// A static file server over HTTPS for Matrix server discovery's delegation document: it serves
// `/.well-known/matrix/server` with whatever document the test last set (404 when none), and
// 404 for every other path. Nothing more; it stands in for a web server in front of a domain.
//
// A test may also give it routes (`route`), answered before the document: one per Host name
// and path, each a fixed status, headers and body. They stand in for what such a web server
// may be set up to answer besides: a redirect of the apex domain's well-known to `www.`, or a
// hostile "homeserver" answering a federation path with a body far larger than its answer
// should be.
import fs from 'node:fs';
import https from 'node:https';

const PATH = '/.well-known/matrix/server';

/** An object is sent as JSON, a string as is. */
const encode = (body) => (typeof body === 'string' ? body : JSON.stringify(body));

/**
 * Listens on `host`:`port` (443 by default: discovery fetches https://<name>/..., so that port;
 * binding it needs root) with the PEM `cert`/`key` files.
 * @returns {Promise<{set(doc: object|string|null): void,
 *   route(routes: Array<{host, path, status?, headers?, body?}>): void,
 *   requests: Array<{path, host, servername, agent}>, close(): Promise<void>}>}
 */
export async function startWellKnownServer({ host, port = 443, cert, key }) {
  let body = null;
  let routes = [];
  const requests = [];
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
    const path = new URL(req.url, 'https://x').pathname;
    requests.push({ path, host: req.headers.host, servername: req.socket.servername, agent: req.headers['user-agent'] });
    // The Host header's name (a port, when the URL had one, does not count).
    const name = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const route = routes.find((r) => r.host === name && r.path === path);
    if (route) {
      res.writeHead(route.status ?? 200, { 'content-type': 'application/json', ...route.headers })
        .end(route.body === undefined ? '' : encode(route.body));
      return;
    }
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
    set: (doc) => { body = doc === null ? null : encode(doc); },
    /**
     * The routes to answer from now on, replacing any before: a request whose Host name (port
     * aside) is `host` and whose path is `path` gets `status` (200), `headers` and `body` (an
     * object is sent as JSON). Every other request gets the document or 404, as before.
     */
    route: (list = []) => { routes = list; },
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
