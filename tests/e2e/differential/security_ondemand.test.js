// Differential: jitsi-contrib's mod_token_security_ondemand against gatehouse's, with
// jitsi-meet's token_verification, with Jitsi's lobby (played by mod_e2e_lobby_standin) and
// without it. After each scenario a plain token holder tries the room ("probe"), so what the
// claims did to the room is observable; focus counts the room's status-104 messages. Guests
// whose URL carries a forged token are harmless upstream too (their provider binds no claims);
// the Matrix suite covers tokens whose claims nobody verified.
import { differentialSuite, freshRoom, GUEST_DOMAIN } from '../lib/differential.js';
import { TOKEN_HOST, token, sign } from './scenarios.js';

const r = (prefix = 'sec') => freshRoom(prefix);
const ctx = (context) => token({ context });
const PLAIN = token({});

/** Joins with `t` (a fresh client): the first self-presence, or the refusal. */
async function joinWith(side, t, room, nick, { domain, password } = {}) {
  const login = await side.login({ token: t, domain });
  if (!login.ok) return { login: login.condition };
  return side.join(login.client, room, nick, { password });
}

/**
 * Focus creates the room; the tokens in `joins` join in order ({ t, nick, password?, domain? });
 * then a plain token holder probes the room, with and without `probePassword`.
 */
function story(joins, { roomPrefix, probePassword } = {}) {
  return async (side) => {
    const room = r(roomPrefix);
    await side.createRoom(room);
    const count = side.count104(room);
    const record = { joins: [] };
    for (const j of joins) record.joins.push(await joinWith(side, j.t, room, j.nick, j));
    record.probe = await joinWith(side, PLAIN, room, 'probe');
    if (probePassword) record.probeWithPassword = await joinWith(side, PLAIN, room, 'probe2', { password: probePassword });
    record.features = await side.roomFeatures(room);
    record.status104 = count();
    return record;
  };
}

const forged = (context) => sign({ room: '*', sub: '*', context }, { alg: 'HS256', key: 'not-the-secret' });

const common = [
  { name: 'context.room.password sets the password', run: story([{ t: ctx({ room: { password: 'pw' } }), nick: 'setter' }], { probePassword: 'pw' }), differences: { status104: 'ondemand-announces-changes' } },
  {
    name: 'the same password claim on three joins',
    run: story(['a', 'b', 'c'].map((nick) => ({ t: ctx({ room: { password: 'pw' } }), nick, password: nick === 'a' ? undefined : 'pw' })), { probePassword: 'pw' }),
    differences: { status104: 'ondemand-announces-changes' }, gatehouse: { status104: 1 },
  },
  { name: 'password "" clears the password', run: story([{ t: ctx({ room: { password: 'pw' } }), nick: 'setter' }, { t: ctx({ room: { password: '' } }), nick: 'clearer', password: 'pw' }]), differences: { status104: 'ondemand-announces-changes' }, gatehouse: { status104: 2 } },
  { name: 'a password that is not a string is ignored', run: story([{ t: ctx({ room: { password: 1234 } }), nick: 'setter' }]) },
  { name: 'security_bypass gets past the password', run: story([{ t: ctx({ room: { password: 'pw' } }), nick: 'setter' }, { t: ctx({ user: { security_bypass: true } }), nick: 'bypass' }]), differences: { status104: 'ondemand-announces-changes' } },
  { name: 'security_bypass with a wrong password', run: story([{ t: ctx({ room: { password: 'pw' } }), nick: 'setter' }, { t: ctx({ user: { security_bypass: true } }), nick: 'bypass', password: 'wrong' }]), differences: { 'joins.1': 'ondemand-bypass-replaces-password', status104: 'ondemand-announces-changes' } },
  { name: 'security_bypass "true" (a string) is ignored', run: story([{ t: ctx({ room: { password: 'pw' } }), nick: 'setter' }, { t: ctx({ user: { security_bypass: 'true' } }), nick: 'bypass' }]), differences: { status104: 'ondemand-announces-changes' } },
  { name: 'a health-check room is skipped', run: story([{ t: ctx({ room: { password: 'pw', lobby: true } }), nick: 'setter' }], { roomPrefix: '__jicofo-health-check-' }) },
  {
    name: 'a guest whose URL carries a forged token with a password claim',
    run: story([{ t: forged({ room: { password: 'pw' } }), nick: 'guest', domain: GUEST_DOMAIN }]),
  },
];

await differentialSuite('security on demand with the lobby', {
  host: TOKEN_HOST, guestHost: true, muc: { token_verification_allowlist: [GUEST_DOMAIN] },
  mucModules: ['token_verification', 'token_security_ondemand', 'lobby'],
}, [
  ...common,
  { name: 'context.room.lobby true turns the lobby on', run: story([{ t: ctx({ room: { lobby: true } }), nick: 'opener' }]) },
  { name: 'context.room.lobby false turns it off again', run: story([{ t: ctx({ room: { lobby: true } }), nick: 'opener' }, { t: ctx({ room: { lobby: false }, user: { security_bypass: true } }), nick: 'closer' }]), differences: { status104: 'ondemand-announces-changes' } },
  { name: 'lobby "true" (a string) is ignored', run: story([{ t: ctx({ room: { lobby: 'true' } }), nick: 'opener' }]) },
  { name: 'security_bypass gets past the lobby', run: story([{ t: ctx({ room: { lobby: true } }), nick: 'opener' }, { t: ctx({ user: { security_bypass: true } }), nick: 'bypass' }]) },
  {
    name: 'a guest whose URL carries a forged bypass token knocks at the lobby',
    run: story([{ t: ctx({ room: { lobby: true } }), nick: 'opener' }, { t: forged({ user: { security_bypass: true } }), nick: 'guest', domain: GUEST_DOMAIN }]),
  },
]);

await differentialSuite('security on demand without the lobby modules', {
  host: TOKEN_HOST, guestHost: true, muc: { token_verification_allowlist: [GUEST_DOMAIN] },
  mucModules: ['token_verification', 'token_security_ondemand'],
}, [
  ...common,
  {
    name: 'context.room.lobby true without the lobby modules', run: story([{ t: ctx({ room: { lobby: true } }), nick: 'opener' }]),
    differences: { probe: 'ondemand-members-only-fallback', features: 'ondemand-members-only-fallback', status104: 'ondemand-members-only-fallback' },
  },
]);

/**
 * Rooms stay locked until their owner configures them (Prosody's default): focus joins a new
 * room without configuring it; a holder of `t` joins (refused by the lock), then focus configures
 * the room with a password and the holder joins again.
 */
function lockedRoomJoin(t) {
  return async (side) => {
    await side.createRoom(r('setup')); // focus logs in
    const room = r('lk');
    const created = await side.join(side.focus, room, 'focus');
    const login = await side.login({ token: t });
    const record = { created: created.ok, locked: await side.join(login.client, room, 'bypass') };
    record.afterLocked = await side.affiliationOf(room, login.client);
    record.config = (await side.configureRoom(side.focus, room, { 'muc#roomconfig_roomsecret': 'pw' })).ok;
    record.probe = await joinWith(side, PLAIN, room, 'probe');
    record.unlocked = await side.join(login.client, room, 'bypass2');
    return record;
  };
}

await differentialSuite('security on demand with room locking', {
  host: TOKEN_HOST,
  muc: { muc_room_locking: true },
  mucModules: ['token_verification', 'token_security_ondemand'],
}, [
  {
    name: 'security_bypass in a locked room is refused by the lock, then admitted once it is configured',
    run: lockedRoomJoin(ctx({ user: { security_bypass: true } })),
    differences: { afterLocked: 'ondemand-bypass-refused-join-leaves-nothing' },
    gatehouse: { locked: { ok: false, condition: 'item-not-found' }, afterLocked: 'none', unlocked: { ok: true, affiliation: 'member' } },
  },
]);
