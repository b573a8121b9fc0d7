// The Chat Admin Server protocol from the client's side: JSON requests ended by NUL or
// newline, replies ended by "\n\0". Also a stand-in game server (what a DGD/SkotOS server does
// for the issuer's `outbound` mode: listen, accept the issuer's connection, send requests on it).
//
// Every wait is bounded, and sockets are unref'd so a forgotten one cannot keep the run alive.
import net from 'node:net';

import { withTimeout } from './client.js';

const HOST = '127.0.0.1';
const REPLY_END = '\n\0';

/**
 * Wraps a connected socket: `request(obj)` sends one frame and resolves with the next reply
 * (parsed, plus `.raw`); `send(bytes)` writes raw bytes; `reply()` waits for the next reply;
 * `closed` resolves when the peer closes.
 */
export function casSocket(sock, { timeoutMs = 5000 } = {}) {
  sock.unref();
  let pending = '';
  const replies = [];
  const waiters = [];
  const deliver = () => {
    while (replies.length && waiters.length) waiters.shift()(replies.shift());
  };
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    pending += chunk;
    let end;
    while ((end = pending.indexOf(REPLY_END)) >= 0) {
      const raw = pending.slice(0, end + REPLY_END.length);
      pending = pending.slice(end + REPLY_END.length);
      replies.push(Object.assign(JSON.parse(raw.slice(0, end)), { raw }));
    }
    deliver();
  });
  sock.on('error', () => { /* the `closed` promise reports the end */ });
  const closed = new Promise((resolve) => sock.once('close', resolve));
  const api = {
    sock,
    closed,
    send: (bytes) => sock.write(bytes),
    reply: (ms = timeoutMs) => withTimeout(new Promise((resolve) => { waiters.push(resolve); deliver(); }),
      ms, `no CAS reply within ${ms} ms`),
    request: (obj, terminator = '\0') => {
      sock.write(`${typeof obj === 'string' ? obj : JSON.stringify(obj)}${terminator}`);
      return api.reply();
    },
    waitClosed: (ms = timeoutMs) => withTimeout(closed, ms, `connection not closed within ${ms} ms`),
    close: () => sock.destroy(),
  };
  return api;
}

/** Connects to a CAS port on 127.0.0.1. */
export async function openCas(port, { timeoutMs = 5000 } = {}) {
  const sock = net.connect({ host: HOST, port });
  await withTimeout(new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  }), timeoutMs, `CAS connect to ${port} timed out`).catch((err) => { sock.destroy(); throw err; });
  return casSocket(sock, { timeoutMs });
}

/**
 * A stand-in game server on 127.0.0.1:`port`: `nextConnection(ms)` resolves with a casSocket
 * for the issuer's next connection; `stop()` drops every connection and stops listening.
 */
export async function startGameServer(port) {
  const accepted = [];
  const waiters = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    const wrapped = casSocket(sock);
    if (waiters.length) waiters.shift()(wrapped);
    else accepted.push(wrapped);
  });
  server.unref();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, resolve);
  });
  return {
    port,
    nextConnection: (ms = 10_000) => withTimeout(new Promise((resolve) => {
      if (accepted.length) resolve(accepted.shift());
      else waiters.push(resolve);
    }), ms, `no connection to the game server within ${ms} ms`),
    stop: () => new Promise((resolve) => {
      for (const sock of sockets) sock.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A typical request; `extra` overrides fields (undefined drops one). */
export function tokenRequest(extra = {}) {
  const request = {
    cmd: 'jwt_token', displayName: 'Ana', channel: 'r1', moderator: false, validFor: 600, ...extra,
  };
  return Object.fromEntries(Object.entries(request).filter(([, v]) => v !== undefined));
}
