// Loopback TCP helpers: find free ports, wait until a port accepts connections.
import net from 'node:net';

const HOST = '127.0.0.1';

/**
 * Returns `count` distinct free TCP ports on 127.0.0.1. All probe listeners stay open until
 * every port is chosen, so the kernel cannot hand out the same port twice. (Another process
 * may still grab a port before Prosody binds it; startProsody detects that and retries.)
 */
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, HOST, resolve);
      });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
  }
}

/** Resolves true if a TCP connection to 127.0.0.1:port succeeds within `timeoutMs`. */
export function canConnect(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    const done = (ok) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
