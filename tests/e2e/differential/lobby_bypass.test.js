// Differential: jitsi-contrib's mod_token_lobby_bypass against gatehouse's module of the same
// name, with jitsi-meet's token_verification, the lobby turned on by a token
// (token_security_ondemand) and Jitsi's lobby played by mod_e2e_lobby_standin. Skipped until
// this build of gatehouse ships mod_token_lobby_bypass.
import { differentialSuite, freshRoom, gatehouseHas, GUEST_DOMAIN } from '../lib/differential.js';
import { TOKEN_HOST, token, sign } from './scenarios.js';

const skip = gatehouseHas('token_lobby_bypass') || process.env.DIFF_FORCE ? false : 'this gatehouse build has no mod_token_lobby_bypass';
const LOBBY_ON = token({ context: { room: { lobby: true } } });

/** Focus creates a room; a token turns its lobby on (unless `lobby` is false); `t` joins. */
function knock(t, { lobby = true, domain } = {}) {
  return async (side) => {
    const room = freshRoom('lb');
    await side.createRoom(room);
    const record = {};
    if (lobby) {
      const opener = await side.login({ token: LOBBY_ON });
      record.opener = await side.join(opener.client, room, 'opener');
    }
    const login = await side.login({ token: t, domain });
    if (!login.ok) return { ...record, login: login.condition };
    record.join = await side.join(login.client, room, 'knocker');
    record.settled = record.join.ok ? await side.settled(login.client, room) : null;
    return record;
  };
}

const forged = sign({ room: '*', sub: '*', context: { user: { lobby_bypass: true } } }, { alg: 'HS256', key: 'not-the-secret' });

await differentialSuite('token_lobby_bypass', {
  host: TOKEN_HOST, guestHost: true, muc: { token_verification_allowlist: [GUEST_DOMAIN] },
  mucModules: ['token_verification', 'token_security_ondemand', 'token_lobby_bypass', 'lobby'],
}, [
  { name: 'context.user.lobby_bypass true passes the lobby', run: knock(token({ context: { user: { lobby_bypass: true } } })), skip },
  { name: 'lobby_bypass false knocks', run: knock(token({ context: { user: { lobby_bypass: false } } })), skip },
  { name: 'lobby_bypass "true" (a string) knocks', run: knock(token({ context: { user: { lobby_bypass: 'true' } } })), skip },
  { name: 'a token without the claim knocks', run: knock(token({})), skip },
  { name: 'lobby_bypass in a room without a lobby', run: knock(token({ context: { user: { lobby_bypass: true } } }), { lobby: false }), skip },
  { name: 'a guest whose URL carries a forged bypass token', run: knock(forged, { domain: GUEST_DOMAIN }), skip },
]);
