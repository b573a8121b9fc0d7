// Building blocks of differential scenarios: tokens and the records a scenario returns.
// A record holds only what a client, or another module reading the session, can observe.
import { sign, jitsiClaims, now } from '../lib/jwt.js';

export const APP_ID = 'diff_app';
export const SECRET = 'diff-secret-0123456789abcdef';

/** Token options every token deployment shares. */
export const TOKEN_HOST = { app_id: APP_ID, app_secret: SECRET, muc_mapper_domain_base: 'meet.test' };

/** An HS256 token with Jitsi's usual claims (see jitsiClaims) plus `claims`. */
export function token(claims = {}, { alg = 'HS256', key = SECRET, header } = {}) {
  return sign(jitsiClaims({ appId: APP_ID, ...claims }), { alg, key, header });
}

export { sign, jitsiClaims, now };

/** SASL outcome and, when logged in, the session fields. Leaves the client in `.client`. */
export async function loginRecord(side, opts) {
  const login = await side.login(opts);
  const record = login.ok ? { sasl: 'success', fields: await side.fields(login.client) }
    : { sasl: 'failure', condition: login.condition, text: login.text };
  Object.defineProperty(record, 'client', { value: login.client, enumerable: false });
  return record;
}

/**
 * A login with `tok` (and query), then a join of each room in `rooms` (created first by focus
 * unless `create: false`). Records the login, each join and the session fields after the joins.
 */
export function joinScenario(tok, rooms, { query, create = true, domain } = {}) {
  return async (side) => {
    const record = await loginRecord(side, { token: tok, query, domain });
    if (!record.client) return record;
    record.joins = {};
    for (const room of rooms) {
      if (create) await side.createRoom(room);
      record.joins[room] = await side.join(record.client, room, 'user');
    }
    record.after = await side.fields(record.client);
    return record;
  };
}
