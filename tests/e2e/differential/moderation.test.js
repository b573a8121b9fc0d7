// Differential: nvonahsen's mod_token_moderation against gatehouse's, with jitsi-meet's
// token_verification (guests on guest.meet.test are allow-listed, so token_moderation decides
// for them too), without and with the lobby (jitsi-contrib's token_security_ondemand turns it
// on from a token; Jitsi's lobby modules are played by tests/e2e/plugins/mod_e2e_lobby_standin).
import { differentialSuite, freshRoom, GUEST_DOMAIN } from '../lib/differential.js';
import { TOKEN_HOST, token, sign } from './scenarios.js';

const r = () => freshRoom('mod');
const FIRST = 'moderation-first-presence';

/** Logs in with `t` and joins `room`: the first self-presence and the one the join settles on. */
async function joinAs(side, t, room, nick, { domain, password } = {}) {
  const login = await side.login({ token: t, domain });
  if (!login.ok) return { login: { condition: login.condition, text: login.text } };
  const first = await side.join(login.client, room, nick, { password });
  const record = { first, settled: first.ok ? await side.settled(login.client, room) : null };
  Object.defineProperty(record, 'client', { value: login.client, enumerable: false });
  return record;
}

/** Focus creates a room, then one user joins with `t`. */
function oneUser(t, opts) {
  return async (side) => {
    const room = r();
    const focus = await side.createRoom(room);
    const user = await joinAs(side, t, room, 'user', opts);
    return { focus, user, focusNow: await side.affiliationOf(room, side.focus) };
  };
}

/** A token moderator and a token member; then `act(side, room, owner, member)` is recorded. */
function ownerAndMember(act) {
  return async (side) => {
    const room = r();
    await side.createRoom(room);
    const owner = await joinAs(side, token({ moderator: true }), room, 'owner');
    const member = await joinAs(side, token({ moderator: false }), room, 'member');
    const action = await act(side, room, owner.client, member.client);
    return { owner, member, action, memberNow: await side.affiliationOf(room, member.client) };
  };
}

const forged = sign({ room: '*', sub: '*', moderator: true }, { alg: 'HS256', key: 'not-the-secret' });
const jidOf = (client) => client.jid.bare().toString();

await differentialSuite('token moderation without the lobby', {
  host: TOKEN_HOST, guestHost: true,
  muc: { token_verification_allowlist: [GUEST_DOMAIN] },
  mucModules: ['token_verification', 'token_moderation', 'internal_affiliation'],
}, [
  { name: 'a token with moderator true becomes owner', run: oneUser(token({ moderator: true })), differences: { 'user.first': FIRST } },
  { name: 'a token with moderator false becomes member', run: oneUser(token({ moderator: false })), differences: { 'user.first': FIRST } },
  { name: 'a token without moderator becomes member', run: oneUser(token({})), differences: { 'user.first': FIRST } },
  { name: 'moderator "true" (a string) is not a moderator', run: oneUser(token({ moderator: 'true' })), differences: { 'user.first': FIRST } },
  {
    name: 'context.user.moderator true', run: oneUser(token({ context: { user: { moderator: true } } })),
    differences: { user: 'moderation-context-user-claims' },
  },
  {
    name: 'a guest whose URL carries a forged moderator token', run: oneUser(forged, { domain: GUEST_DOMAIN }),
    differences: { user: 'moderation-verified-claims-only' },
    gatehouse: { user: { first: { affiliation: 'none' }, settled: { affiliation: 'none' } } },
  },
  { name: 'a guest without a token', run: oneUser(undefined, { domain: GUEST_DOMAIN }) },
  {
    name: 'an owner cannot make a token member owner',
    run: ownerAndMember((side, room, owner, member) => side.setAffiliation(owner, room, jidOf(member), 'owner')),
    differences: { 'owner.first': FIRST, 'member.first': FIRST },
  },
  {
    name: 'an owner gives a token member the moderator role',
    run: ownerAndMember((side, room, owner) => side.setRole(owner, room, 'member', 'moderator')),
    differences: { 'owner.first': FIRST, 'member.first': FIRST, action: 'moderation-moderator-role' },
    gatehouse: { action: 'not-acceptable' },
  },
  {
    name: "focus (Jicofo) grants owner to a token member",
    run: ownerAndMember((side, room, owner, member) => side.setAffiliation(side.focus, room, jidOf(member), 'owner')),
    differences: { 'owner.first': FIRST, 'member.first': FIRST, action: 'moderation-focus-grants' },
  },
  {
    name: 'a server-internal change (actor true) makes a token member owner',
    run: ownerAndMember((side, room, owner, member) => side.internalAffiliation(room, jidOf(member), 'owner')),
    differences: { 'owner.first': FIRST, 'member.first': FIRST, action: 'moderation-internal-changes', memberNow: 'moderation-internal-changes' },
    gatehouse: { action: { ok: true }, memberNow: 'owner' },
  },
  {
    // room:set_affiliation(nil, …) is refused by Prosody itself (0.12 and 13) before any event:
    // the actor-less changes of item 6a are set_affiliation(true, …), whose event has actor nil.
    name: 'a change with no actor at all (nil) is refused by Prosody itself, on both sides',
    run: ownerAndMember((side, room, owner, member) => side.internalAffiliation(room, jidOf(member), 'owner', { actor: 'nil' })),
    differences: { 'owner.first': FIRST, 'member.first': FIRST },
    gatehouse: { action: { ok: false, condition: 'not-acceptable' }, memberNow: 'member' },
  },
  {
    name: 'a server-internal change (actor true) makes a token member outcast',
    run: ownerAndMember((side, room, owner, member) => side.internalAffiliation(room, jidOf(member), 'outcast')),
    differences: { 'owner.first': FIRST, 'member.first': FIRST },
  },
]);

// The lobby: a token holder with context.room.lobby = true turns it on when joining.
const lobbyOn = token({ context: { room: { lobby: true } } });

await differentialSuite('token moderation with the lobby', {
  host: TOKEN_HOST,
  mucModules: ['token_verification', 'token_moderation', 'token_security_ondemand', 'lobby'],
}, [
  {
    name: 'with the lobby on, a token moderator and a token member knock',
    run: async (side) => {
      const room = r();
      await side.createRoom(room);
      const opener = await joinAs(side, lobbyOn, room, 'opener');
      const moderator = await joinAs(side, token({ moderator: true }), room, 'moderator');
      const member = await joinAs(side, token({ moderator: false }), room, 'member');
      return { opener, moderator, member };
    },
    differences: { 'opener.first': FIRST, moderator: 'moderation-with-lobby' },
  },
  {
    name: 'a join refused by the password leaves an affiliation that passes a later lobby (upstream)',
    run: async (side) => {
      const room = r();
      await side.createRoom(room);
      const setter = await joinAs(side, token({ context: { room: { password: 'pw' } } }), room, 'setter');
      const late = await joinAs(side, token({}), room, 'late');
      const lateAfterRefusal = late.client ? await side.affiliationOf(room, late.client) : null;
      const opener = await joinAs(side, lobbyOn, room, 'opener', { password: 'pw' });
      const retry = late.client ? await side.join(late.client, room, 'late', { password: 'pw' }) : null;
      return { setter, late, lateAfterRefusal, opener, retry };
    },
    differences: { 'setter.first': FIRST, 'opener.first': FIRST, lateAfterRefusal: 'moderation-admitted-joins-only', retry: 'moderation-admitted-joins-only' },
    gatehouse: { lateAfterRefusal: 'none', retry: { ok: false, condition: 'registration-required' } },
  },
]);
