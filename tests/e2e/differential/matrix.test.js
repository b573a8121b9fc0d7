// Differential: matrix-org's mod_auth_matrix_user_verification and mod_matrix_power_sync against
// gatehouse's, with Element-widget-style clients (?room=<base32 of the Matrix room ID>&token=<JWT
// signed with "notused">) and a LOCAL STAND-IN for UVS (lib/uvs.js, answering exactly as UVS
// does). Once at upstream's defaults (no UVS bearer token, no power sync), once with
// uvs_auth_token and uvs_sync_power_levels, plus token_security_ondemand and the lobby. Both
// sides also load jitsi-meet's mod_jitsi_session, as Jitsi deployments do (its lobby and
// breakout modules depend on it), so the URL's fields are Jitsi's on both.
import { differentialSuite } from '../lib/differential.js';
import { startUvsStandIn, roomName } from '../lib/uvs.js';
import { sign } from './scenarios.js';

const ROOM_ID = '!diffroom:matrix.test';
const OTHER_ROOM_ID = '!otherroom:matrix.test';
const NO_LEVELS_ROOM_ID = '!nolevels:matrix.test';
const NOT_STATE_DEFAULT_ROOM_ID = '!nostatedefault:matrix.test';
const STRING_LEVELS_ROOM_ID = '!stringlevels:matrix.test';
const LEVELS = {
  ban: 50, events_default: 0, invite: 0, kick: 50, redact: 50, state_default: 50, users_default: 0,
  users: { '@mod:matrix.test': 50, '@ana:matrix.test': 0 },
};
const { state_default: _drop, ...LEVELS_NO_STATE_DEFAULT } = LEVELS;
const UVS_BEARER = 'diff-uvs-bearer';

// OpenID tokens the stand-in knows: one per use, so gatehouse's positive-answer cache never
// answers for another scenario.
let serial = 0;
const users = {};
function openid(userId) {
  const t = `openid-diff-${++serial}`;
  users[t] = userId;
  return t;
}
// Answers for these OpenID tokens are delayed (a slow homeserver behind UVS).
const misbehave = {};
const rooms = {
  [ROOM_ID]: { members: ['@ana:matrix.test', '@mod:matrix.test'], powerLevels: LEVELS },
  [OTHER_ROOM_ID]: { members: ['@ana:matrix.test', '@mod:matrix.test'], powerLevels: { ...LEVELS, users: {} } },
  [NO_LEVELS_ROOM_ID]: { members: ['@mod:matrix.test'], powerLevels: null },
  [NOT_STATE_DEFAULT_ROOM_ID]: { members: ['@mod:matrix.test'], powerLevels: LEVELS_NO_STATE_DEFAULT },
  [STRING_LEVELS_ROOM_ID]: { members: ['@mod:matrix.test'], powerLevels: { ...LEVELS, users: { '@mod:matrix.test': '100' } } },
};

/** The JWT Element's Jitsi widget makes (HS256, secret "notused", no exp). */
function widget({ userId = '@ana:matrix.test', roomId = ROOM_ID, user = { name: 'Ana' }, key = 'notused', openidToken = openid(userId), ...claims } = {}) {
  const matrix = { token: openidToken, room_id: roomId, server_name: 'matrix.test' };
  // `context` given (even null or undefined) replaces the widget's own.
  const context = 'context' in claims ? claims.context : { user, matrix };
  return sign({ iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*', ...claims, context },
    { alg: 'HS256', key });
}

/**
 * Logs in with `token` and ?room=`jitsiRoom` (Element's upper case unless `lower`), then, when
 * logged in, joins the Jitsi room (lower case, as jitsi-meet names it) created by focus.
 */
function widgetLogin(token, { roomId = ROOM_ID, lower = false, padded = false, join = true, password } = {}) {
  return async (side) => {
    const queryRoom = roomName(roomId, { lower, padded });
    const login = await side.login({ token, room: queryRoom });
    if (!login.ok) return { sasl: 'failure', condition: login.condition, text: login.text };
    const record = { sasl: 'success', fields: await side.fields(login.client) };
    Object.defineProperty(record, 'client', { value: login.client, enumerable: false });
    if (join) {
      const room = roomName(roomId);
      await side.createRoom(room);
      if (password) await side.configureRoom(side.focus, room, { 'muc#roomconfig_passwordprotectedroom': 1, 'muc#roomconfig_roomsecret': password });
      record.first = await side.join(login.client, room, 'user');
      record.settled = record.first.ok ? await side.settled(login.client, room) : null;
    }
    return record;
  };
}

const failures = [
  { name: 'no token', run: widgetLogin(undefined) },
  { name: 'a token not signed with "notused"', run: widgetLogin(widget({ key: 'something-else' })) },
  { name: 'a token without context', run: widgetLogin(widget({ context: undefined })), differences: ['matrix-missing-context'], gatehouse: { sasl: 'failure', condition: 'bad-request' } },
  { name: 'a token whose context is null', run: widgetLogin(widget({ context: null })), differences: ['matrix-missing-context'], gatehouse: { sasl: 'failure', condition: 'bad-request' } },
  { name: 'a token without context.matrix.room_id', run: widgetLogin(widget({ context: { user: { name: 'Ana' }, matrix: { token: 'x' } } })) },
  { name: 'the Jitsi room is not the Matrix room', run: widgetLogin(widget({ roomId: ROOM_ID }), { roomId: OTHER_ROOM_ID }) },
  { name: 'not a member of the Matrix room', run: widgetLogin(widget({ userId: '@eve:matrix.test' })) },
  { name: 'an OpenID token UVS does not know', run: widgetLogin(sign({ iss: 'meet.test', sub: 'meet.test', aud: 'https://meet.test', room: '*', context: { matrix: { token: 'unknown', room_id: ROOM_ID } } }, { alg: 'HS256', key: 'notused' })) },
];

await differentialSuite('matrix at upstream defaults (no bearer, no power sync)', async () => {
  const uvs = await startUvsStandIn({ users, rooms, misbehave });
  return {
    auth: 'matrix_user_verification', host: { app_id: 'meet.test', uvs_base_url: uvs.url },
    mucModules: ['matrix_power_sync'], jitsiGlobal: ['jitsi_session'], cleanup: () => uvs.close(),
  };
}, [
  { name: 'a member logs in (Element upper-case room name) and joins', run: widgetLogin(widget()) },
  { name: 'a Matrix moderator without power sync is a member', run: widgetLogin(widget({ userId: '@mod:matrix.test' })) },
  (() => {
    const slow = openid('@ana:matrix.test');
    misbehave[slow] = { delayMs: 1500 };
    const first = widget({ openidToken: slow, user: { name: 'Ana' } });
    const second = widget({ userId: '@mod:matrix.test', user: { name: 'Mod' } });
    const room = roomName(ROOM_ID, { lower: false });
    return {
      name: 'two logins at once keep their own identity (UVS slow for the first)',
      run: async (side) => {
        const one = side.login({ token: first, room });
        await new Promise((r) => setTimeout(r, 300));
        const [a, b] = await Promise.all([one, side.login({ token: second, room })]);
        const fields = async (l) => (l.ok ? side.fields(l.client) : { login: l.condition });
        return { first: await fields(a), second: await fields(b) };
      },
      differences: { 'first.jitsi_meet_context_user': 'matrix-concurrent-logins-identity' },
      gatehouse: { first: { jitsi_meet_context_user: { name: 'Ana' } }, second: { jitsi_meet_context_user: { name: 'Mod' } } },
    };
  })(),
  { name: 'the room name lower-cased, as jitsi-meet writes it', run: widgetLogin(widget(), { lower: true }) },
  { name: 'the room name with base32 padding', run: widgetLogin(widget(), { padded: true }) },
  ...failures,
]);

await differentialSuite('matrix with uvs_auth_token, power sync, security on demand and the lobby', async () => {
  const uvs = await startUvsStandIn({ users, rooms, authToken: UVS_BEARER });
  return {
    auth: 'matrix_user_verification',
    host: { app_id: 'meet.test', uvs_base_url: uvs.url, uvs_auth_token: UVS_BEARER, uvs_sync_power_levels: true },
    mucModules: ['matrix_power_sync', 'token_security_ondemand', 'lobby'], jitsiGlobal: ['jitsi_session'],
    cleanup: () => uvs.close(),
  };
}, [
  { name: 'a member', run: widgetLogin(widget()) },
  { name: 'a Matrix moderator becomes owner', run: widgetLogin(widget({ userId: '@mod:matrix.test' })) },
  {
    name: 'a Matrix moderator of one room in the Jitsi room of another',
    run: async (side) => {
      const record = await widgetLogin(widget({ userId: '@mod:matrix.test' }), { join: false })(side);
      const other = roomName(OTHER_ROOM_ID);
      await side.createRoom(other);
      record.other = await side.join(record.client, other, 'mod');
      record.otherSettled = await side.settled(record.client, other);
      return record;
    },
    // gatehouse refuses the join itself (mod_matrix_room_check, which power sync loads).
    differences: { other: 'matrix-room-check-at-join', otherSettled: 'matrix-room-check-at-join' },
    gatehouse: { other: { ok: false, type: 'cancel', condition: 'not-allowed' }, otherSettled: null },
  },
  {
    name: 'power_levels null from UVS with power sync on', run: widgetLogin(widget({ userId: '@mod:matrix.test', roomId: NO_LEVELS_ROOM_ID }), { roomId: NO_LEVELS_ROOM_ID }),
    differences: ['matrix-power-levels-null'], gatehouse: { sasl: 'failure', condition: 'access-denied' },
  },
  {
    name: 'a power level written as a string', run: widgetLogin(widget({ userId: '@mod:matrix.test', roomId: STRING_LEVELS_ROOM_ID }), { roomId: STRING_LEVELS_ROOM_ID }),
    differences: ['matrix-power-levels-null'], gatehouse: { sasl: 'success', fields: { auth_matrix_user_verification_is_owner: true } },
  },
  { name: 'power levels without state_default', run: widgetLogin(widget({ userId: '@mod:matrix.test', roomId: NOT_STATE_DEFAULT_ROOM_ID }), { roomId: NOT_STATE_DEFAULT_ROOM_ID }) },
  {
    name: 'a widget token claiming security_bypass, in a room with a password',
    run: widgetLogin(widget({ user: { name: 'Ana', security_bypass: true } }), { password: 'pw' }),
    differences: { first: 'ondemand-verified-claims-only', settled: 'ondemand-verified-claims-only' },
    gatehouse: { first: { ok: false, condition: 'not-authorized' } },
  },
  ...failures,
]);
