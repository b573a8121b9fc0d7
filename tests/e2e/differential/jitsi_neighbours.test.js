// Differential: jitsi-meet modules that sit beside the auth modules and key on them, loaded
// unmodified on both sides. mod_muc_resource_validate applies anonymous_strict only to hosts
// whose `authentication` is listed in anonymous_auth_methods (default anonymous,
// jitsi-anonymous, token): with "gatehouse_token" the operator adds it to the list (README,
// install section). And a token host without app_id: upstream's provider refuses to load.
import { differentialSuite, freshRoom } from '../lib/differential.js';
import { TOKEN_HOST, SECRET, token, loginRecord, joinScenario } from './scenarios.js';

/** Joins with the occupant nick `nick`, or the first 8 characters of the user's JID node. */
function joinWithNick(nick) {
  return async (side) => {
    const room = freshRoom('rv');
    const login = await side.login({ token: token({ room: '*' }) });
    if (!login.ok) return { login: login.condition };
    await side.createRoom(room);
    return { join: await side.join(login.client, room, nick ?? login.client.jid.local.slice(0, 8)) };
  };
}

const strict = (list) => ({
  host: TOKEN_HOST, mucModules: ['token_verification'], jitsiMuc: ['muc_resource_validate'],
  muc: { anonymous_strict: true, ...(list ? { anonymous_auth_methods: list } : {}) },
});

await differentialSuite('muc_resource_validate anonymous_strict, gatehouse_token listed', strict(['anonymous', 'jitsi-anonymous', 'token', 'gatehouse_token']), [
  { name: 'a token holder whose nick is not its JID prefix', run: joinWithNick('user') },
  { name: 'a token holder whose nick is its JID prefix', run: joinWithNick() },
]);

await differentialSuite('muc_resource_validate anonymous_strict, default list', strict(), [
  {
    name: 'a token holder whose nick is not its JID prefix', run: joinWithNick('user'),
    differences: ['anonymous-auth-methods-provider-name'], gatehouse: { join: { ok: true } },
  },
]);

await differentialSuite('a token host without app_id', { host: { app_secret: SECRET, muc_mapper_domain_base: 'meet.test' }, mucModules: ['token_verification'] }, [
  { name: 'a valid token', run: (side) => loginRecord(side, { token: token({ room: '*' }) }) },
  (() => { const a = freshRoom('noapp'); return { name: 'an existing room', run: joinScenario(token({ room: '*' }), [a]) }; })(),
]);
