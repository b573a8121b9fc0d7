// Differential: enable_domain_verification = false (room claims only; sub, tenants and pattern
// claims are not looked at), and the muc_mapper_* options: a non-default prefix, and no
// muc_mapper_domain_base at all (upstream then finds no room, so every join is refused).
import { differentialSuite, freshRoom, GUEST_DOMAIN } from '../lib/differential.js';
import { TOKEN_HOST, APP_ID, SECRET, token, joinScenario } from './scenarios.js';

const r = (prefix = 'nd') => freshRoom(prefix);
const one = (name, claims, opts = {}, { prefix, ...extra } = {}) => {
  const a = prefix ? `${prefix}${r()}` : r();
  return { name, run: joinScenario(claims === undefined ? undefined : token(claims), [a], opts), ...extra };
};
const two = (name, claims, make, extra = {}) => {
  const rooms = make();
  return { name, run: joinScenario(token(claims), rooms), ...extra };
};

await differentialSuite('domain verification off', {
  host: { ...TOKEN_HOST, enable_domain_verification: false }, mucModules: ['token_verification'], guestHost: true,
}, [
  (() => { const a = r(); const b = r(); return { name: 'a room claim opens its room only (room-mismatch elsewhere)', run: joinScenario(token({ room: a }), [a, b]) }; })(),
  (() => { const a = r(); return { name: 'the claim is lower-cased', run: joinScenario(token({ room: a.toUpperCase() }), [a]) }; })(),
  two('a claim opens the tenant room of the same name', { room: 'plain' }, () => ['[acme]plain', '[acme]plainer']),
  one('sub naming another domain is not checked', { room: '*', sub: 'other.test' }),
  one('a pattern claim is compared as plain text', { room: 'team%d+', context: { room: { regex: true } } }, {}, { prefix: 'team1' }),
  one('a room that does not exist yet', { room: '*' }, { create: false }),
  one('a guest without a token', undefined, { domain: GUEST_DOMAIN }),
  one('a guest whose URL carries a token for another room', { room: 'elsewhere' }, { domain: GUEST_DOMAIN }),
  one('room claim a number', { room: 5 }, {}, { differences: ['room-claim-not-string'], gatehouse: { sasl: 'failure' } }),
]);

await differentialSuite('muc_mapper_domain_prefix muc, muc_mapper_domain set', {
  host: { ...TOKEN_HOST, muc_mapper_domain_prefix: 'muc', muc_mapper_domain: 'conference.meet.test' },
  mucModules: ['token_verification'],
}, [
  one('sub = the main domain maps to muc.<sub>, not this MUC', { room: '*', sub: 'meet.test' }, {}),
  one('sub "*" uses muc_mapper_domain', { room: '*', sub: '*' }),
  one('a tenant room with sub = tenant', { room: '*', sub: 'acme' }, {}, { prefix: '[acme]' }),
]);

await differentialSuite('no muc_mapper_domain_base', {
  host: { app_id: APP_ID, app_secret: SECRET }, mucModules: ['token_verification'],
}, [
  one('a token holder and an existing room', { room: '*' }, {}),
]);
