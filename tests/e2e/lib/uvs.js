// A LOCAL STAND-IN for matrix-org's Matrix user verification service (UVS), on 127.0.0.1.
//
// It is not UVS and talks to no homeserver: it knows a fixed table of OpenID tokens, rooms,
// members and power levels, and answers POST /verify/user_in_room exactly as UVS does
// (matrix-user-verification-service src/routes.js, verify.js, utils.js; REFERENCE §6):
//   * UVS_AUTH_TOKEN set and no/wrong `Authorization: Bearer` → 403, body `{}`
//   * a missing or empty field → 400, plain text "Invalid request: <field> not found or with
//     empty value in the JSON payload." (text/html, as Express's res.send(string) sends it)
//   * unknown OpenID token → {"results":{"user":false,"room_membership":null},"user_id":null,"power_levels":null}
//   * valid user, not in the room → {"results":{"user":true,"room_membership":false},"user_id":…,"power_levels":null}
//   * member → {"results":{"user":true,"room_membership":true},"user_id":…,"power_levels":{"room":…,"user":N}}
//     with `room` the m.room.power_levels content without `users`, `user` = users[user_id] || 0;
//     `power_levels: null` when the room's power levels could not be fetched.
// Tests can also make it misbehave for one OpenID token (slow, hanging, dropped, garbage,
// huge), as a struggling UVS or a proxy in front of it would.
import { startKeyServer } from './keyserver.js';

export const UVS_PATH = '/verify/user_in_room';

/** Express's JSON for res.send(object). */
const sendJson = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

const sendText = (res, status, text) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

/**
 * @param {object} o
 * @param {string} [o.authToken]   UVS_AUTH_TOKEN: when set, requests must bear it
 * @param {boolean} [o.verifyAnyHomeserver]  UVS_OPENID_VERIFY_ANY_HOMESERVER: matrix_server_name required
 * @param {Record<string,string>} [o.users]  OpenID token → Matrix user ID
 * @param {Record<string,{members:string[], powerLevels:object|null}>} [o.rooms]  room ID → state
 * @param {Record<string,object>} [o.misbehave]  OpenID token → { delayMs, hang, destroy, status, body, contentType }
 * @returns {Promise<{url, close(), requests: object[], hits(): number, misbehave: object}>}
 */
export async function startUvsStandIn({ authToken, verifyAnyHomeserver = false, users = {}, rooms = {}, misbehave = {} } = {}) {
  const requests = [];
  const pending = new Set();

  function answer(req, res, raw) {
    let body;
    try {
      body = req.headers['content-type']?.startsWith('application/json') ? JSON.parse(raw) : {};
    } catch {
      // express.json() rejects malformed JSON with its own 400 page.
      return sendText(res, 400, '<!DOCTYPE html><pre>SyntaxError: Unexpected token in JSON</pre>');
    }
    requests.push({ headers: req.headers, body });

    if (authToken) {
      const [scheme, token] = (req.headers.authorization ?? '').split(' ');
      if (scheme !== 'Bearer' || token !== authToken) return sendJson(res, 403, {});
    }
    const fields = ['token', 'room_id', ...(verifyAnyHomeserver ? ['matrix_server_name'] : [])];
    for (const field of fields) {
      const v = body?.[field];
      if (v === undefined || v === null || (typeof v === 'string' && v.length === 0)) {
        return sendText(res, 400, `Invalid request: ${field} not found or with empty value in the JSON payload.`);
      }
    }

    const script = misbehave[body.token];
    const userId = users[body.token];
    let reply;
    if (!userId) {
      reply = { results: { user: false, room_membership: null }, user_id: null, power_levels: null };
    } else if (!rooms[body.room_id]?.members.includes(userId)) {
      reply = { results: { user: true, room_membership: false }, user_id: userId, power_levels: null };
    } else {
      const content = rooms[body.room_id].powerLevels;
      let powerLevels = null;
      if (content) {
        const { users: levels = {}, ...room } = content;
        powerLevels = { room, user: levels[userId] || 0 };
      }
      reply = { results: { user: true, room_membership: true }, user_id: userId, power_levels: powerLevels };
    }

    if (!script) return sendJson(res, 200, reply);
    if (script.destroy) return req.socket.destroy();
    if (script.hang) return; // close() destroys the socket
    const send = () => {
      if (script.body === undefined) return sendJson(res, script.status ?? 200, reply);
      const text = typeof script.body === 'string' ? script.body : JSON.stringify(script.body);
      res.writeHead(script.status ?? 200, { 'content-type': script.contentType ?? 'application/json; charset=utf-8' });
      res.end(text);
    };
    if (!script.delayMs) return send();
    const timer = setTimeout(() => { pending.delete(timer); send(); }, script.delayMs);
    pending.add(timer);
  }

  const server = await startKeyServer({
    [UVS_PATH]: (req, res) => {
      if (req.method !== 'POST') return sendText(res, 404, `Cannot ${req.method} ${UVS_PATH}`);
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => answer(req, res, Buffer.concat(chunks).toString('utf8')));
    },
  });

  return {
    url: server.url,
    requests,
    misbehave,
    hits: () => server.hits(UVS_PATH),
    /** The most verification requests that were being answered at the same time. */
    peakConcurrency: () => server.peakConcurrency(),
    close: async () => {
      for (const t of pending) clearTimeout(t);
      pending.clear();
      await server.close();
    },
  };
}

/** The Jitsi room name for a Matrix room ID: RFC 4648 base32 (Element writes it upper case, unpadded). */
export function roomName(roomId, { lower = true, padded = false } = {}) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of Buffer.from(roomId, 'utf8')) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  if (padded) while (out.length % 8) out += '=';
  return lower ? out.toLowerCase() : out;
}
