// Configuration mistakes of the Matrix modules that Prosody's log must name at startup, against
// a real Prosody. Nothing is asked of UVS here (no stand-in is running behind the URL).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody } from './lib/prosody.js';

const MISSING_CHECK = /No MUC component loads matrix_room_check \(or matrix_power_sync, which loads it\): a Matrix-verified session can join the conference of any room, not only its own/;

const settle = () => new Promise((resolve) => setTimeout(resolve, 500));

describe('Matrix modules: what the startup log tells the operator', () => {
  const matrixHost = { authentication: 'matrix_user_verification', uvs_base_url: 'http://127.0.0.1:9/' };

  for (const [what, muc, warned] of [
    ['no room check on the MUC component: a warning', {}, true],
    ['matrix_room_check on the MUC component: no warning', { modules_enabled: ['matrix_room_check'] }, false],
    ['matrix_power_sync (which loads the check): no warning', { modules_enabled: ['matrix_power_sync'] }, false],
  ]) {
    it(what, async (t) => {
      const prosody = await startProsody({ name: 'matrix-config', mainHost: matrixHost, muc });
      t.after(() => prosody.stop());
      // The check runs on "server-started", which has fired when startProsody returns; other
      // handlers of that event may still be logging, hence the short wait either way.
      if (warned) await prosody.waitForLog(MISSING_CHECK, 3000);
      else await settle();
      assert.equal(MISSING_CHECK.test(prosody.readLog()), warned);
    });
  }

  it('token auth alone (no Matrix login) never warns', async (t) => {
    const prosody = await startProsody({ name: 'matrix-config-token', mainHost: { authentication: 'gatehouse_token', app_id: 'meet.test', app_secret: 'x' } });
    t.after(() => prosody.stop());
    await settle();
    assert.doesNotMatch(prosody.readLog(), MISSING_CHECK);
  });
});
