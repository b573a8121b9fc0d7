// Differential: jitsi-meet's mod_auth_token + mod_token_verification against gatehouse's
// mod_auth_gatehouse_token + mod_gatehouse_token_verification, every option at upstream's
// default (enable_domain_verification on, room claim required, issuers {app_id}, audiences
// {"*"}), with a guest VirtualHost as Jitsi's "secure domain" setup has.
import { differentialSuite, freshRoom, GUEST_DOMAIN } from '../lib/differential.js';
import { TOKEN_HOST, token, loginRecord, joinScenario, sign, now, APP_ID } from './scenarios.js';

const login = (tok, opts = {}) => (side) => loginRecord(side, { token: tok, ...opts });
const t = now();
const maskExpiredSeconds = (record) => {
  if (typeof record.text === 'string') record.text = record.text.replace(/\(\d+\.0 sec since expired/, '(N.0 sec since expired');
  return record;
};

const sasl = [
  { name: 'a valid token logs in and binds the session fields', run: login(token({ room: '*' })) },
  {
    name: 'context claims are bound as upstream binds them',
    run: login(token({
      room: 'r', context: {
        user: { id: 'u1', name: 'Ana', email: 'ana@example.com', moderator: 'true' },
        group: 'g1', features: { recording: true }, tenant: 'acme', room: { lobby: false },
      },
    })),
  },
  { name: 'user_id without context becomes context.user.id', run: login(token({ room: '*', user_id: 'u7' })) },
  { name: 'a context that is a string binds nothing from it', run: login(token({ room: '*', context: 'x' })) },
  { name: 'no token: not-allowed "token required"', run: login(undefined) },
  { name: 'a bad signature', run: login(token({}, { key: 'wrong' })) },
  { name: 'another algorithm than the configured one', run: login(token({}, { alg: 'HS512' })) },
  { name: 'alg none', run: login(`${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: APP_ID, aud: 'jitsi', sub: 'meet.test', room: '*' })).toString('base64url')}.`) },
  { name: 'no typ', run: login(token({}, { header: { typ: undefined } })), differences: ['typ-optional'] },
  { name: 'typ other than JWT', run: login(token({}, { header: { typ: 'JWS' } })) },
  // The two sides check the token a few milliseconds apart, so "N sec since expired" may differ
  // by one second across a second boundary: compare the text with that count masked (the format
  // itself is checked in token_auth.test.js).
  { name: 'expired', run: async (side) => maskExpiredSeconds(await login(token({ exp: t - 100, iat: t - 3700 }))(side)) },
  { name: 'not yet valid (nbf)', run: login(token({ nbf: t + 600 })) },
  { name: 'exp that is not a number', run: login(token({ exp: String(t + 600) })) },
  { name: 'no iss', run: login(token({ iss: undefined })) },
  { name: 'an iss not accepted', run: login(token({ iss: 'someone-else' })) },
  { name: 'no aud', run: login(token({ aud: undefined })) },
  { name: 'an array aud with the default audiences {"*"}', run: login(token({ aud: ['a', 'b'] })) },
  { name: 'no room claim', run: login(token({ room: undefined })) },
  { name: 'no sub claim', run: login(token({ sub: undefined })) },
  { name: 'a token that is not three segments', run: login('abc.def') },
  { name: 'a token that is not base64url JSON', run: login('!!!.???.xxx'), differences: ['malformed-token-clean-refusal'], gatehouse: { sasl: 'failure', condition: 'not-allowed' } },
];

// Rooms: all created by focus first, as Jicofo does, unless the scenario says otherwise.
const r = () => freshRoom('room');
const rooms = [
  (() => { const a = r(); return { name: 'a room that does not exist yet is refused (room-does-not-exist)', run: joinScenario(token({ room: '*' }), [a], { create: false }) }; })(),
  (() => { const a = r(); return { name: 'room "*" opens an existing room', run: joinScenario(token({ room: '*' }), [a]) }; })(),
  (() => { const a = r(); const b = r(); return { name: 'a room claim opens its room only', run: joinScenario(token({ room: a }), [a, b])}; })(),
  (() => { const a = r(); return { name: 'the room claim is compared lower-cased', run: joinScenario(token({ room: a.toUpperCase() }), [a]) }; })(),
  (() => { const a = r(); return { name: 'a sub naming another domain is refused (domain verification is on by default)', run: joinScenario(token({ room: '*', sub: 'other.test' }), [a]) }; })(),
  (() => { const a = r(); return { name: 'sub "*" matches any domain', run: joinScenario(token({ room: '*', sub: '*' }), [a]) }; })(),
];

const tenants = [
  (() => { const a = `[acme]${r()}`; return { name: 'a tenant room opens for sub = tenant', run: joinScenario(token({ room: '*', sub: 'acme' }), [a]) }; })(),
  (() => { const a = `[acme]${r()}`; return { name: 'a tenant room is refused for sub = the main domain', run: joinScenario(token({ room: '*', sub: 'meet.test' }), [a]) }; })(),
  (() => { const a = `[acme]${r()}`; const b = r(); return { name: 'a tenant room claim without the tenant', run: joinScenario(token({ room: a.slice(6), sub: 'acme' }), [a, b])}; })(),
  (() => { const a = `[acme]${r()}`; return { name: 'context.tenant differs from ?prefix= (tenant mismatch marked)', run: joinScenario(token({ room: '*', sub: 'acme', context: { tenant: 'other' } }), [a], { query: { prefix: 'acme' } })}; })(),
  (() => { const a = `[acme]${r()}`; return { name: 'context.tenant equals ?prefix=', run: joinScenario(token({ room: '*', sub: 'acme', context: { tenant: 'acme' } }), [a], { query: { prefix: 'acme' } }) }; })(),
];

const pattern = (room, extra = {}) => token({ room, context: { room: { regex: true } }, ...extra });
const patterns = [
  (() => { const a = `team1${r()}`; return { name: 'a pattern claim opens the room it matches whole', run: joinScenario(pattern('team%d+.*'), [a])}; })(),
  (() => { const a = `team1-secret${r()}`; return { name: 'an unanchored pattern matching part of the room does not open it', run: joinScenario(pattern('team%d+'), [a]) }; })(),
  (() => { const a = `banana${r()}`; return { name: 'pattern "a" does not open every room with an a', run: joinScenario(pattern('a'), [a]) }; })(),
  (() => { const a = `[acme]sales${r()}`; return { name: 'an anchored pattern on a tenant room', run: joinScenario(pattern('^sales.*', { sub: 'acme' }), [a])}; })(),
  (() => { const a = `[acme]sales-q3${r()}`; return { name: 'an anchored pattern matching a prefix of a tenant room', run: joinScenario(pattern('^sales', { sub: 'acme' }), [a]) }; })(),
  (() => { const a = `x${r()}`; return { name: 'regex "true" (a string) counts as true', run: joinScenario(token({ room: 'x.*', context: { room: { regex: 'true' } } }), [a])}; })(),
  (() => { const a = `x${r()}`; return { name: 'an invalid pattern (invalid-regex)', run: joinScenario(pattern('x[') , [a])}; })(),
];

const claims = [
  (() => { const a = r(); return { name: 'room claim null', run: joinScenario(token({ room: null }), [a]), differences: ['room-claim-not-string'], gatehouse: { sasl: 'failure' } }; })(),
  (() => { const a = r(); return { name: 'room claim a number', run: joinScenario(token({ room: 5 }), [a]), differences: ['room-claim-not-string'], gatehouse: { sasl: 'failure' } }; })(),
  (() => { const a = r(); return { name: 'room claim an array', run: joinScenario(token({ room: [a] }), [a]), differences: ['room-claim-not-string'], gatehouse: { sasl: 'failure' } }; })(),
  (() => { const a = r(); return { name: 'room claim an object', run: joinScenario(token({ room: { name: a } }), [a]), differences: ['room-claim-not-string'], gatehouse: { sasl: 'failure' } }; })(),
  (() => { const a = r(); return { name: 'sub claim a number', run: joinScenario(token({ room: '*', sub: 5 }), [a])}; })(),
  (() => { const a = r(); return { name: 'context.room that is not a table', run: joinScenario(token({ room: a, context: { room: 'x' } }), [a]) }; })(),
];

const guests = [
  (() => { const a = r(); return { name: 'a guest (another host) without a token', run: joinScenario(undefined, [a], { domain: GUEST_DOMAIN })}; })(),
  (() => { const a = r(); return { name: 'a guest whose URL carries a valid token', run: joinScenario(token({ room: '*' }), [a], { domain: GUEST_DOMAIN })}; })(),
  (() => { const a = r(); return { name: 'a guest whose URL carries a forged token', run: joinScenario(sign({ room: '*', sub: '*', context: { user: { moderator: true } } }, { alg: 'HS256', key: 'forged' }), [a], { domain: GUEST_DOMAIN })}; })(),
];

await differentialSuite('token auth + verification, upstream defaults', { host: TOKEN_HOST, mucModules: ['token_verification'], guestHost: true },
  [...sasl, ...rooms, ...tenants, ...patterns, ...claims, ...guests]);

