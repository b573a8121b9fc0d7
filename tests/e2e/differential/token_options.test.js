// Differential: the token options at non-default values, in one deployment:
// allow_empty_token = true, asap_accepted_issuers = {iss-a, iss-b}, asap_accepted_audiences =
// {aud-a}, asap_require_room_claim = false, signature_algorithm = HS512 (domain verification
// stays at its default, on); on the MUC token_verification_allowlist = {guest domain} and
// token_verification_require_token_for_moderation = true. Rooms named noanon* are closed to
// unauthenticated users (room._data.allowUnauthenticatedAccess = false, mod_e2e_room_data).
import { differentialSuite, freshRoom, GUEST_DOMAIN } from '../lib/differential.js';
import { TOKEN_HOST, token, loginRecord, joinScenario } from './scenarios.js';

const HS512 = { alg: 'HS512' };
const tok = (claims = {}, opts = {}) => token({ iss: 'iss-a', aud: 'aud-a', ...claims }, { ...HS512, ...opts });
const login = (t) => (side) => loginRecord(side, { token: t });
const r = (prefix = 'opt') => freshRoom(prefix);

const spec = {
  host: {
    ...TOKEN_HOST, allow_empty_token: true, asap_accepted_issuers: ['iss-a', 'iss-b'],
    asap_accepted_audiences: ['aud-a'], asap_require_room_claim: false, signature_algorithm: 'HS512',
  },
  muc: { token_verification_allowlist: [GUEST_DOMAIN], token_verification_require_token_for_moderation: true },
  mucModules: ['token_verification', 'room_data'],
  guestHost: true,
};

// A guest or token holder joins and then submits the room configuration form.
function configScenario(t, room, { domain } = {}) {
  const join = joinScenario(t, [room], { domain });
  return async (side) => {
    const record = await join(side);
    if (record.client) record.configure = await side.configureRoom(record.client, room);
    return record;
  };
}

await differentialSuite('token options at non-default values', spec, [
  { name: 'signature_algorithm HS512: an HS512 token logs in', run: login(tok()) },
  { name: 'signature_algorithm HS512: an HS256 token is refused', run: login(tok({}, { alg: 'HS256' })) },
  { name: 'asap_accepted_issuers: a listed issuer', run: login(tok({ iss: 'iss-b' })) },
  { name: 'asap_accepted_issuers: app_id is no longer accepted', run: login(tok({ iss: 'diff_app' })) },
  { name: 'asap_accepted_audiences: a listed audience', run: login(tok({ aud: 'aud-a' })) },
  { name: 'asap_accepted_audiences: another audience', run: login(tok({ aud: 'jitsi' })) },
  { name: 'asap_accepted_audiences: an array holding a listed audience', run: login(tok({ aud: ['x', 'aud-a'] })), differences: ['array-aud'], gatehouse: { sasl: 'success' } },
  (() => { const a = r(); return { name: 'asap_require_room_claim false: a token without room opens rooms', run: joinScenario(tok({ room: undefined }), [a]) }; })(),
  (() => { const a = r(); return { name: 'allow_empty_token: no token logs in and joins', run: joinScenario(undefined, [a]) }; })(),
  (() => { const a = r(); return { name: 'allow_empty_token: no token, a room that does not exist', run: joinScenario(undefined, [a], { create: false }) }; })(),
  (() => { const a = r('noanon'); return { name: 'allow_empty_token: no token, a room closed to unauthenticated users', run: joinScenario(undefined, [a]) }; })(),
  (() => { const a = r('noanon'); return { name: 'a token holder in a room closed to unauthenticated users', run: joinScenario(tok({ room: '*' }), [a]) }; })(),
  (() => { const a = `[acme]${r('noanon')}`; return { name: 'a tenant mismatch in a room closed to unauthenticated users', run: joinScenario(tok({ room: '*', sub: 'acme', context: { tenant: 'other' } }), [a], { query: { prefix: 'acme' } }) }; })(),
  (() => { const a = r(); return { name: 'allowlisted guest domain: a guest joins', run: joinScenario(undefined, [a], { domain: GUEST_DOMAIN }) }; })(),
  (() => { const a = r(); return { name: 'require_token_for_moderation: a guest may not configure the room', run: configScenario(undefined, a, { domain: GUEST_DOMAIN }) }; })(),
  (() => { const a = r(); return { name: 'require_token_for_moderation: a token holder reaches the room owner check', run: configScenario(tok({ room: '*' }), a) }; })(),
  (() => { const a = r(); return { name: 'require_token_for_moderation: a session without a token may not configure the room', run: configScenario(undefined, a) }; })(),
]);
