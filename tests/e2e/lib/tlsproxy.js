// A TLS-terminating reverse proxy: serves HTTPS with the certificate it is given and forwards
// every request to a plain-HTTP upstream (e.g. a Synapse listener), recording the TLS server
// name (SNI) and Host header each request came with. Tests use it as a server that answers
// exactly like the real one but holds another certificate: an impostor, if that certificate
// is not valid for the name the client meant to reach.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

/**
 * @param {{host: string, port: number, cert: string, key: string, upstream: string}} o
 *   upstream: base URL, e.g. http://127.0.0.1:8008
 * @returns {Promise<{seen: Array<{servername, host, path}>, close(): Promise<void>}>}
 */
export async function startTlsProxy({ host, port, cert, key, upstream }) {
  const seen = [];
  const target = new URL(upstream);
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
    seen.push({ servername: req.socket.servername, host: req.headers.host, path: req.url.split('?')[0] });
    const forward = http.request({
      host: target.hostname, port: target.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: target.host }, timeout: 10_000,
    }, (reply) => {
      res.writeHead(reply.statusCode, reply.headers);
      reply.pipe(res);
    });
    forward.on('timeout', () => forward.destroy(new Error('upstream timeout')));
    forward.on('error', () => { if (!res.headersSent) res.writeHead(502).end(); else res.destroy(); });
    req.pipe(forward);
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    seen,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
