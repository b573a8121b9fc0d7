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

/** A token holder with `t` is banned (by focus), then knocks at a room whose lobby is on. */
function bannedKnock(t) {
  return async (side) => {
    const room = freshRoom('lb');
    await side.createRoom(room);
    const opener = await side.login({ token: LOBBY_ON });
    await side.join(opener.client, room, 'opener');
    const login = await side.login({ token: t });
    const ban = await side.setAffiliation(side.focus, room, login.client.jid.bare().toString(), 'outcast');
    const join = await side.join(login.client, room, 'banned');
    return { ban, join, after: await side.affiliationOf(room, login.client) };
  };
}

/** Focus creates a room and makes it members-only (no lobby modules loaded); `t` joins. */
function membersOnlyKnock(t) {
  return async (side) => {
    const room = freshRoom('lb');
    await side.createRoom(room);
    const config = await side.configureRoom(side.focus, room, { 'muc#roomconfig_membersonly': 1 });
    const login = await side.login({ token: t });
    const join = await side.join(login.client, room, 'knocker');
    return { config: config.ok, join };
  };
}

/**
 * A room whose lobby is on and which has a password; a holder of `t` joins with a wrong password,
 * then with none, then with the right one. Records each answer and the affiliation after each.
 */
function wrongPasswordKnock(t) {
  return async (side) => {
    const room = freshRoom('lb');
    await side.createRoom(room);
    await side.configureRoom(side.focus, room, { 'muc#roomconfig_roomsecret': 'pw' });
    const opener = await side.login({ token: LOBBY_ON });
    await side.join(opener.client, room, 'opener', { password: 'pw' });
    const login = await side.login({ token: t });
    const record = { wrong: await side.join(login.client, room, 'wrong', { password: 'wrong' }) };
    record.afterWrong = await side.affiliationOf(room, login.client);
    record.none = await side.join(login.client, room, 'nopw');
    record.afterNone = await side.affiliationOf(room, login.client);
    record.right = await side.join(login.client, room, 'right', { password: 'pw' });
    return record;
  };
}

const BYPASS = token({ context: { user: { lobby_bypass: true } } });
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
  {
    name: 'a banned user with lobby_bypass true', run: bannedKnock(BYPASS), skip,
    differences: { join: 'lobby-bypass-keeps-bans', after: 'lobby-bypass-keeps-bans' },
    gatehouse: { join: { ok: false, condition: 'registration-required' }, after: 'outcast' },
  },
  {
    name: 'lobby_bypass true with a wrong password is refused, then with none, then admitted with the right one',
    run: wrongPasswordKnock(BYPASS), skip,
    differences: { afterWrong: 'lobby-bypass-refused-join-leaves-nothing', afterNone: 'lobby-bypass-refused-join-leaves-nothing' },
    gatehouse: { wrong: { ok: false, condition: 'not-authorized' }, afterWrong: 'none', afterNone: 'none', right: { ok: true, affiliation: 'member' } },
  },
]);

// Without Jitsi's lobby modules a members-only room is the lobby (as for token_security_ondemand).
await differentialSuite('token_lobby_bypass without Jitsi\'s lobby modules', {
  host: TOKEN_HOST,
  mucModules: ['token_verification', 'token_lobby_bypass'],
}, [
  {
    name: 'lobby_bypass true in a members-only room', run: membersOnlyKnock(BYPASS), skip,
    differences: { join: 'lobby-bypass-members-only-fallback' },
    gatehouse: { join: { ok: true, affiliation: 'member', role: 'participant' } },
  },
  { name: 'no claim in a members-only room', run: membersOnlyKnock(token({})), skip },
]);
