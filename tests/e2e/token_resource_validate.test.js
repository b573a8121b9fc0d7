// Issue 11 item 12: jitsi-meet's mod_muc_resource_validate (upstream, unmodified, loaded from
// ../shared/upstream) applies `anonymous_strict` only to hosts whose auth provider is listed in
// `anonymous_auth_methods` (default anonymous, jitsi-anonymous, token). With
// authentication = "gatehouse_token" the README's one-line fix lists gatehouse's provider too.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN, DEFAULT_PLUGIN_PATHS } from './lib/prosody.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect } from './lib/client.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV, checkUpstream } from './lib/upstream.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const token = () => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: '*' }), { alg: 'HS256', key: SECRET });

async function bed(name, muc) {
  checkUpstream();
  const prosody = await startProsody({
    name,
    // gatehouse's tree first; upstream's directory only supplies mod_muc_resource_validate.
    pluginPaths: [...DEFAULT_PLUGIN_PATHS, UPSTREAM_PLUGIN_PATHS[0]],
    env: UPSTREAM_ENV,
    mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
    muc: { modules_enabled: ['gatehouse_token_verification', 'muc_resource_validate'], anonymous_strict: true, ...muc },
  });
  const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
  await createRoomAsFocus(focus, `room1@${MUC_DOMAIN}`);
  return { prosody, focus };
}

for (const [what, muc, enforced] of [
  ['without the one-liner, anonymous_strict silently skips gatehouse_token users (why the README documents it)', {}, false],
  ['with anonymous_auth_methods listing gatehouse_token, anonymous_strict applies to token users as with "token"',
    { anonymous_auth_methods: ['anonymous', 'jitsi-anonymous', 'token', 'gatehouse_token'] }, true],
]) {
  describe(`mod_muc_resource_validate (upstream): ${what}`, () => {
    let t;
    const clients = [];
    before(async () => { t = await bed('resource-validate', muc); clients.push(t.focus); });
    after(async () => {
      await Promise.all(clients.map(disconnect));
      await t?.prosody.stop();
    });

    it(enforced ? 'a nick other than the UUID prefix is refused; the prefix joins' : 'a nick other than the UUID prefix joins', async () => {
      const { xmpp, jid } = await connect({ httpPort: t.prosody.httpPort, token: token() });
      clients.push(xmpp);
      const other = await joinRoom(xmpp, `room1@${MUC_DOMAIN}`, 'someoneelse').then(() => null, (e) => e);
      if (!enforced) {
        assert.equal(other, null, 'joined: the check did not apply');
        return;
      }
      assert.equal(other?.condition, 'not-allowed');
      assert.equal(other.text, 'Invalid anonymous user ID');
      await joinRoom(xmpp, `room1@${MUC_DOMAIN}`, jid.split('@')[0].slice(0, 8));
    });
  });
}
