// A local HTTP server on 127.0.0.1 that STANDS IN for the remote services a token
// deployment fetches keys from:
//   * a Jitsi ASAP public-key server  (GET <asap_key_server>/<hex(sha256(kid))>.pem)
//   * a JWKS endpoint                 (GET <cache_keys_url>, a { keys: [...] } document)
// It is not an implementation of either; each test scripts exactly what it answers,
// including failures (status codes, slow answers, dropped connections), and counts hits.
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';

/** The path under which an ASAP key server publishes the key `kid`. */
export function asapPath(kid) {
  return `/${crypto.createHash('sha256').update(kid).digest('hex')}.pem`;
}

/**
 * A route answer:
 *   { status = 200, body = "" (string | Buffer | object → JSON), headers = {},
 *     delayMs = 0,        answer after this long
 *     hang = false,       never answer (until close())
 *     destroy = false }   drop the connection without an answer
 * or a function (req, res) for anything else. An array of answers is used in order, one per
 * hit, the last one repeating (e.g. [{ status: 500 }, { body: jwks }] for "fails, then works").
 */
function pick(spec, hit) {
  return Array.isArray(spec) ? spec[Math.min(hit, spec.length - 1)] : spec;
}

/**
 * @param {Record<string, object|Function|Array>} [routes] path → answer
 * @param {{tls?: {key: string, cert: string}}} [options] tls: serve HTTPS with this key and
 *   certificate chain (PEM) instead of plain HTTP; `url` then starts with https://
 * @returns {Promise<{url:string, port:number, route(path, answer):void, hits(path):number,
 *   requests:Array<{method,path,headers}>, close():Promise<void>}>}
 */
export async function startKeyServer(routes = {}, { tls } = {}) {
  const table = new Map(Object.entries(routes));
  const hitCount = new Map();
  const requests = [];
  const timers = new Set();
  const sockets = new Set();
  let inFlight = 0;
  let peak = 0;

  const handler = (req, res) => {
    inFlight += 1;
    peak = Math.max(peak, inFlight);
    res.on('close', () => { inFlight -= 1; });
    const path = new URL(req.url, 'http://x').pathname;
    const n = hitCount.get(path) ?? 0;
    hitCount.set(path, n + 1);
    requests.push({ method: req.method, path, headers: req.headers });

    const spec = table.has(path) ? pick(table.get(path), n) : { status: 404, body: 'no such route\n' };
    if (typeof spec === 'function') return spec(req, res);
    if (spec.destroy) return req.socket.destroy();
    if (spec.hang) return; // close() destroys the socket

    const answer = () => {
      let body = spec.body ?? '';
      const headers = { ...spec.headers };
      if (typeof body === 'object' && !Buffer.isBuffer(body)) {
        body = JSON.stringify(body);
        headers['content-type'] ??= 'application/json';
      }
      res.writeHead(spec.status ?? 200, headers);
      res.end(body);
    };
    if (spec.delayMs) {
      const t = setTimeout(() => { timers.delete(t); answer(); }, spec.delayMs);
      timers.add(t);
    } else {
      answer();
    }
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  // TLS connections show up as 'secureConnection' too, but 'connection' sees every socket.
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    /** Adds or replaces the answer for `path` (resets nothing else). */
    route: (path, spec) => table.set(path, spec),
    /** How many requests hit `path` so far. */
    hits: (path) => hitCount.get(path) ?? 0,
    /** The most requests that were being answered at the same time. */
    peakConcurrency: () => peak,
    close: () => new Promise((resolve) => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
