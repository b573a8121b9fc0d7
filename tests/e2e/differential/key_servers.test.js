// Differential: the token options that fetch keys, against LOCAL STAND-INS for an ASAP key
// server and a JWKS endpoint (lib/keyserver.js) both sides share: asap_key_server,
// cache_keys_url, both at once, and signature_algorithm defaulting to RS256 with either.
import { differentialSuite, freshRoom } from '../lib/differential.js';
import { startKeyServer, asapPath } from '../lib/keyserver.js';
import { APP_ID, loginRecord, joinScenario, jitsiClaims, sign } from './scenarios.js';
import { generateKey, jwks } from '../lib/jwt.js';

const known = generateKey('RS256', { kid: 'diff-known' });
const other = generateKey('RS256', { kid: 'diff-other' }); // published nowhere
const inJwksOnly = generateKey('RS256', { kid: 'diff-jwks-only' });
const ec = generateKey('ES256', { kid: 'diff-ec' });

const claims = (extra = {}) => jitsiClaims({ appId: APP_ID, ...extra });
const rs = (key, extra, header) => sign(claims(extra), { alg: 'RS256', key, header });
const login = (t) => (side) => loginRecord(side, { token: t });
const HOST = { app_id: APP_ID, muc_mapper_domain_base: 'meet.test' };

// What the key servers publish, shared by the suites.
async function keyServer() {
  return startKeyServer({
    [`/asap${asapPath(known.kid)}`]: { body: known.publicPem },
    [`/asap${asapPath(ec.kid)}`]: { body: ec.publicPem },
    '/jwks.json': { body: jwks(known, inJwksOnly), headers: { 'cache-control': 'max-age=600' } },
    '/jwks-one.json': { body: jwks(known), headers: { 'cache-control': 'max-age=600' } },
  });
}

const common = [
  { name: 'an RS256 token whose kid the server publishes', run: login(rs(known)) },
  (() => { const a = freshRoom('key'); return { name: 'it joins a room', run: joinScenario(rs(known, { room: a }), [a]) }; })(),
  { name: 'a kid naming a published key, signed by another key', run: login(rs(other, {}, { kid: known.kid })) },
  { name: 'no kid', run: login(rs(known, {}, { kid: undefined })) },
  { name: 'an HS256 token with a kid (alg confusion)', run: login(sign(claims(), { alg: 'HS256', key: known.publicPem, kid: known.kid })) },
  { name: 'an ES256 token while the server expects RS256', run: login(sign(claims(), { alg: 'ES256', key: ec })) },
];

await differentialSuite('asap_key_server', async () => {
  const keys = await keyServer();
  return { host: { ...HOST, asap_key_server: `${keys.url}/asap` }, mucModules: ['token_verification'], cleanup: () => keys.close() };
}, [
  ...common,
  { name: 'signed by a key whose kid the server does not publish', run: login(rs(other)) },
]);

await differentialSuite('cache_keys_url (JWKS)', async () => {
  const keys = await keyServer();
  return { host: { ...HOST, cache_keys_url: `${keys.url}/jwks.json` }, mucModules: ['token_verification'], cleanup: () => keys.close() };
}, [
  ...common,
  { name: 'a key only the JWKS holds', run: login(rs(inJwksOnly)) },
  {
    name: 'a kid the JWKS does not hold', run: login(rs(other)),
    differences: ['jwks-unknown-kid-clean-refusal'], gatehouse: { sasl: 'failure', condition: 'not-allowed' },
  },
]);

await differentialSuite('cache_keys_url with one key, token without kid', async () => {
  const keys = await keyServer();
  return { host: { ...HOST, cache_keys_url: `${keys.url}/jwks-one.json` }, mucModules: ['token_verification'], cleanup: () => keys.close() };
}, [
  { name: 'no kid while the JWKS holds one key', run: login(rs(known, {}, { kid: undefined })) },
]);

await differentialSuite('asap_key_server and cache_keys_url both set', async () => {
  const keys = await keyServer();
  return {
    host: { ...HOST, asap_key_server: `${keys.url}/asap`, cache_keys_url: `${keys.url}/jwks.json` },
    mucModules: ['token_verification'], cleanup: () => keys.close(),
  };
}, [
  { name: 'a key the ASAP server publishes', run: login(rs(known)) },
  { name: 'a key only the JWKS holds', run: login(rs(inJwksOnly)) },
]);
