// Stream resumption (XEP-0198, Prosody 13's mod_smacks) the way a Jitsi web client does it after
// a network change: a new WebSocket with ?token=<new token>&previd=<stream id>, SASL ANONYMOUS
// (the auth provider picks the old username from previd), then <resume/>.
//
// @xmpp/client 0.14 binds a resource even after a successful <resume/>, which Prosody refuses,
// so this is a minimal XMPP-over-WebSocket client (RFC 7395) for that one exchange. Every step
// is bounded by a timeout; the socket is unref'd and closed by close().
import WebSocket from 'ws';
import { xml } from '@xmpp/client';

const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_SM = 'urn:xmpp:sm:3';

/** One WebSocket frame (a complete element) as an ltx element. */
function parseFrame(text) {
  // @xmpp/xml's Parser reads a stream: it reports the root's children separately ('element').
  const parser = new xml.Parser();
  let root = null;
  parser.on('start', (el) => { root = el; });
  parser.on('element', (el) => root.append(el));
  parser.on('error', () => {});
  parser.write(text);
  return root;
}

/** Opens a connection; resolves an object with next(predicate) and send(element). */
function open(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['xmpp'], { handshakeTimeout: timeoutMs });
    const frames = [];
    const waiters = [];
    ws.once('open', () => {
      ws._socket?.unref();
      resolve({
        ws,
        send: (el) => ws.send(el.toString()),
        /** The next frame matching `predicate`, within the timeout. */
        next(predicate, what) {
          const i = frames.findIndex(predicate);
          if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0]);
          return new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
            waiters.push({ predicate, resolve: (f) => { clearTimeout(timer); res(f); } });
          });
        },
      });
    });
    ws.on('message', (data) => {
      const el = parseFrame(data.toString());
      if (!el) return;
      const w = waiters.findIndex((x) => x.predicate(el));
      if (w >= 0) waiters.splice(w, 1)[0].resolve(el);
      else frames.push(el);
    });
    ws.once('error', reject);
  });
}

/**
 * Resumes stream `previd` (acknowledging `h` stanzas) over a new connection carrying `token`.
 * Resolves { sasl: { ok, condition?, text? }, resumed: 'resumed' | 'failed' | undefined,
 * connection } where `connection.iq(element)` sends an iq on the resumed stream and resolves the
 * reply, and `connection.close()` ends it.
 */
export async function resumeStream({ httpPort, domain, token, previd, h = 0, timeoutMs = 5000 }) {
  const params = new URLSearchParams({ previd });
  if (token) params.set('token', token);
  const c = await open(`ws://127.0.0.1:${httpPort}/xmpp-websocket?${params}`, timeoutMs);
  const close = () => { try { c.ws.terminate(); } catch { /* closed */ } };
  try {
    const start = async () => {
      c.send(xml('open', { xmlns: NS_FRAMING, to: domain, version: '1.0' }));
      await c.next((e) => e.is('open', NS_FRAMING), 'stream open');
      return c.next((e) => e.name === 'stream:features' || e.name === 'features', 'stream features');
    };
    await start();
    c.send(xml('auth', { xmlns: NS_SASL, mechanism: 'ANONYMOUS' }));
    const outcome = await c.next((e) => e.attrs.xmlns === NS_SASL && ['success', 'failure'].includes(e.name), 'SASL outcome');
    if (outcome.name === 'failure') {
      const condition = outcome.children.find((k) => typeof k !== 'string' && k.name !== 'text')?.name;
      close();
      return { sasl: { ok: false, condition, text: outcome.getChildText('text') ?? '' } };
    }
    await start();
    c.send(xml('resume', { xmlns: NS_SM, previd, h: String(h) }));
    const answer = await c.next((e) => e.attrs.xmlns === NS_SM && ['resumed', 'failed'].includes(e.name), 'resume answer');
    let serial = 0;
    const connection = {
      close,
      async iq(el) {
        const id = `resume-${++serial}`;
        el.attrs.id = id;
        el.attrs.xmlns = 'jabber:client';
        c.send(el);
        return c.next((e) => e.name === 'iq' && e.attrs.id === id, `iq ${id} reply`);
      },
    };
    // Acknowledge as XEP-0198 says: h counts the stanzas handled since the stream was resumed
    // (the stanzas Prosody re-sends included), so smacks never holds or bounces them.
    let handled = h;
    c.ws.on('message', (data) => {
      const el = parseFrame(data.toString());
      if (['iq', 'message', 'presence'].includes(el?.name)) handled += 1;
      else if (el?.is('r', NS_SM)) c.send(xml('a', { xmlns: NS_SM, h: String(handled) }));
    });
    return { sasl: { ok: true }, resumed: answer.name, connection };
  } catch (err) {
    close();
    throw err;
  }
}
