// mod_gatehouse_token_expiry against a real Prosody (0.12, or 13 with PROSODY_ROOT): with
// gatehouse_token_expiry = "disconnect", a session whose verified token expires gets the grace
// period to resume its stream (XEP-0198, mod_smacks) with a fresh token; without one it is kicked
// from its rooms (status 307, reason "Token expired") and its stream is closed
// (policy-violation, "Token expired"). Off, nothing happens (the old behaviour). Tokens expire
// 2 s after they are made, the grace is 1 s, so each wait is a few seconds.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody, MUC_DOMAIN, DOMAIN, DEFAULT_PLUGIN_PATHS } from './lib/prosody.js';
import { UPSTREAM_PLUGIN_PATHS, UPSTREAM_ENV } from './lib/upstream.js';
import { connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, waitForStanza, withTimeout, xml } from './lib/client.js';
import { resumeStream } from './lib/resume.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const SECRET = 'e2e-secret-0123456789';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const PROBE_NS = 'urn:gatehouse:e2e:expiry-probe';
const GRACE = 1;
const REASON = 'Token expired';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** A token of user `name` expiring `ttl` seconds from now (signed with `key`). */
const token = (name, ttl, key = SECRET) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, ttl, context: { user: { id: name, name } } }), { alg: 'HS256', key });

/** The unavailable presence of `nick` leaving `roomJid` with status 307, as `xmpp` sees it. */
function kickOf(xmpp, roomJid, nick, timeoutMs) {
  return waitForStanza(xmpp, (s) => s.name === 'presence' && s.attrs.type === 'unavailable' && s.attrs.from === `${roomJid}/${nick}`,
    timeoutMs, `unavailable presence of ${nick}`).then((s) => {
    const x = s.getChild('x', NS_MUC_USER);
    return {
      codes: (x?.getChildren('status') ?? []).map((c) => Number(c.attrs.code)).sort(),
      reason: x?.getChild('item')?.getChildText('reason'),
      at: Date.now() / 1000,
    };
  });
}

/** The stream error that ends `xmpp`'s stream ({ condition, text }), or a timeout. Read off the
 * wire ('element'): @xmpp/client 0.14 may choke on the <a/> Prosody 13 sends just before it. */
function streamError(xmpp, timeoutMs) {
  const NS_STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';
  return withTimeout(new Promise((resolve) => {
    xmpp.on('element', (el) => {
      if (el.name !== 'stream:error' && !(el.name === 'error' && el.attrs.xmlns === 'http://etherx.jabber.org/streams')) return;
      const condition = el.getChildElements().find((c) => c.attrs.xmlns === NS_STREAMS && c.name !== 'text')?.name;
      resolve({ condition, text: el.getChildText('text', NS_STREAMS), at: Date.now() / 1000 });
    });
  }), timeoutMs, 'no stream error');
}

function testBed(name, { mainHost = {}, deployment = {} } = {}) {
  const bed = { clients: [] };
  bed.start = async () => {
    bed.prosody = await startProsody({
      name,
      ...deployment,
      // Stream management on the users' host only. Prosody asks for no acks (<r/>) here:
      // @xmpp/client 0.14 resets its count of received stanzas after answering some, and
      // Prosody closes a stream whose acks go backwards; so the tests' streams ack nothing and
      // resume with the client's count, which can only be too low (Prosody re-sends the rest).
      mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET,
        smacks_max_unacked_stanzas: 10000, ...mainHost,
        modules_enabled: ['smacks', 'e2e_expiry_probe', ...(mainHost.modules_enabled ?? [])] },
      muc: { modules_enabled: ['gatehouse_token_verification'] },
    });
    bed.focus = (await connectFocus({ httpPort: bed.prosody.httpPort })).xmpp;
    bed.clients.push(bed.focus);
  };
  bed.stop = async () => {
    await Promise.all(bed.clients.map(disconnect));
    await bed.prosody?.stop();
  };
  bed.login = async (tok) => {
    const { xmpp, jid } = await connect({ httpPort: bed.prosody.httpPort, token: tok });
    bed.clients.push(xmpp);
    return { xmpp, jid };
  };
  /** A room focus created (focus stays in it and sees who leaves and why). */
  let rooms = 0;
  bed.room = async () => {
    const roomJid = `expiry${++rooms}-${Math.random().toString(36).slice(2, 8)}@${MUC_DOMAIN}`;
    await createRoomAsFocus(bed.focus, roomJid);
    return roomJid;
  };
  /** What the module has scheduled, and the deadline of session `jid` (asked by focus). */
  bed.probe = async (jid) => {
    const reply = await bed.focus.iqCaller.request(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: PROBE_NS, jid })), 5000);
    return JSON.parse(reply.getChildText('query', PROBE_NS));
  };
  /** Waits until stream management is enabled, then drops the connection (a network change). */
  bed.drop = async (xmpp) => {
    for (let i = 0; i < 40 && !xmpp.streamManagement.id; i++) await sleep(50);
    assert.ok(xmpp.streamManagement.id, 'stream management enabled');
    const { id, inbound } = xmpp.streamManagement;
    xmpp.reconnect?.stop();
    xmpp.socket?.socket?.terminate();
    await sleep(300); // Prosody notices and puts the session into hibernation
    return { previd: id, h: inbound };
  };
  bed.resume = async (dropped, tok) => {
    const result = await resumeStream({ httpPort: bed.prosody.httpPort, domain: DOMAIN, token: tok, ...dropped });
    if (result.connection) bed.clients.push({ stop: async () => result.connection.close() });
    return result;
  };
  return bed;
}

/** A token holder with a token expiring in `ttl` s joins a new room as `nick`. */
async function joined(bed, nick, ttl = 2) {
  const roomJid = await bed.room();
  const tok = token(nick, ttl);
  const exp = nowSeconds() + ttl;
  const { xmpp, jid } = await bed.login(tok);
  await joinRoom(xmpp, roomJid, nick);
  return { xmpp, jid, roomJid, exp };
}

for (const [label, mainHost] of [
  // The option alone: mod_auth_gatehouse_token loads the module when it is set.
  ['gatehouse_token', { gatehouse_token_expiry: 'disconnect', gatehouse_token_expiry_grace: GRACE }],
]) {
  describe(`token expiry on (${label}, grace ${GRACE} s)`, () => {
    const bed = testBed(`expiry-on-${label}`, { mainHost });
    before(bed.start);
    after(bed.stop);

    it('kicks the session from its room with the reason, then closes its stream, after the grace', async () => {
      const { xmpp, jid, roomJid, exp } = await joined(bed, 'ana');
      assert.equal((await bed.probe(jid)).deadline, exp + GRACE, 'the deadline is exp + grace');
      const self = kickOf(xmpp, roomJid, 'ana', 8000);
      const seen = kickOf(bed.focus, roomJid, 'ana', 8000);
      const closed = streamError(xmpp, 8000);
      const [mine, theirs, error] = await Promise.all([self, seen, closed]);
      assert.deepEqual(mine.codes, [110, 307], 'self-presence: kicked');
      assert.equal(mine.reason, REASON);
      assert.deepEqual(theirs.codes, [307], 'the room sees a kick');
      assert.equal(theirs.reason, REASON);
      assert.deepEqual({ condition: error.condition, text: error.text }, { condition: 'policy-violation', text: REASON });
      assert.ok(mine.at >= exp + GRACE - 0.05, `not before the grace ended (kicked at ${mine.at}, exp ${exp})`);
      assert.ok(mine.at < exp + GRACE + 2, 'soon after the grace ended');
      // (The client may report the stream error before it has handled the presence ahead of it.)
      assert.ok(error.at >= exp + GRACE - 0.05 && error.at < exp + GRACE + 2, 'closed at the deadline too');
    });

    it('a resumption with a fresh token within the grace keeps the session, with the new exp scheduled', async () => {
      const { xmpp, roomJid, exp } = await joined(bed, 'bo');
      const kicked = kickOf(bed.focus, roomJid, 'bo', (exp + GRACE + 2 - Date.now() / 1000) * 1000).then(() => true, () => false);
      // Into the grace period: the token has expired, the session is still there.
      await sleep(Math.max(0, (exp + 0.2) * 1000 - Date.now()));
      const dropped = await bed.drop(xmpp);
      const fresh = token('bo', 3600);
      const result = await bed.resume(dropped, fresh);
      assert.deepEqual(result.sasl, { ok: true });
      assert.equal(result.resumed, 'resumed');
      const reply = await result.connection.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: PROBE_NS })));
      const status = JSON.parse(reply.getChildText('query', PROBE_NS));
      assert.ok(status.deadline >= nowSeconds() + 3600 - 5 + GRACE, `the fresh exp is scheduled (${status.deadline})`);
      assert.equal(await kicked, false, 'not kicked at the old deadline');
      const pong = await result.connection.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
      assert.equal(pong.attrs.type, 'result', 'the resumed session still answers after the old deadline');
    });

    for (const [what, tok] of [['an expired token', token('cy', -10)], ['a forged token', token('cy', 3600, 'wrong-secret')]]) {
      it(`a resumption with ${what} is refused and the session is closed at its deadline`, async () => {
        const { xmpp, roomJid, exp } = await joined(bed, 'cy');
        const seen = kickOf(bed.focus, roomJid, 'cy', 8000);
        await sleep(Math.max(0, (exp + 0.2) * 1000 - Date.now()));
        const dropped = await bed.drop(xmpp);
        const result = await bed.resume(dropped, tok);
        assert.equal(result.sasl.ok, false, 'the new connection is refused at SASL');
        const kick = await seen;
        assert.deepEqual(kick.codes, [307]);
        assert.equal(kick.reason, REASON);
        assert.ok(kick.at >= exp + GRACE - 0.05, 'at the deadline of the old token');
        // The hibernating session is gone: resuming it now, even with a valid token, fails.
        const late = await bed.resume(dropped, token('cy', 3600));
        assert.equal(late.resumed, 'failed');
      });
    }

    it('many sessions share one timer; their deadlines leave with them', async () => {
      const base = (await bed.probe()).sessions;
      const many = [];
      // Deadlines in falling and rising order: each earlier one moves the single timer.
      for (let i = 0; i < 40; i++) many.push(bed.login(token(`m${i}`, 3600 + (i % 2 ? i : -i))));
      const logged = await Promise.all(many);
      const status = await bed.probe();
      assert.equal(status.sessions, base + 40, 'every session is scheduled');
      assert.equal(status.timers, 1, 'one util.timer for all of them');
      await Promise.all(logged.map(({ xmpp }) => disconnect(xmpp)));
      let after;
      for (let i = 0; i < 40; i++) {
        after = await bed.probe();
        if (after.sessions === base) break;
        await sleep(50);
      }
      assert.equal(after.sessions, base, 'closed sessions leave the schedule');
      assert.ok(after.timers <= 1);
    });
  });
}

describe('token expiry behind jitsi-meet\'s stock mod_auth_token (upstream, unmodified)', () => {
  const bed = testBed('expiry-stock', {
    mainHost: { authentication: 'token', gatehouse_token_expiry: 'disconnect', gatehouse_token_expiry_grace: GRACE, modules_enabled: ['gatehouse_token_expiry'] },
    deployment: { pluginPaths: [...DEFAULT_PLUGIN_PATHS, UPSTREAM_PLUGIN_PATHS[0]], env: UPSTREAM_ENV },
  });
  before(bed.start);
  after(bed.stop);

  it('kicks and closes on the exp the stock provider verified', async () => {
    const { xmpp, jid, roomJid, exp } = await joined(bed, 'dee');
    assert.equal((await bed.probe(jid)).deadline, exp + GRACE);
    const [kick, error] = await Promise.all([kickOf(bed.focus, roomJid, 'dee', 8000), streamError(xmpp, 8000)]);
    assert.equal(kick.reason, REASON);
    assert.equal(error.condition, 'policy-violation');
  });
});

describe('token expiry off (the default): nothing changes', () => {
  const bed = testBed('expiry-off', { mainHost: { modules_enabled: ['gatehouse_token_expiry'] } });
  before(bed.start);
  after(bed.stop);

  it('a session whose token expired stays in its room', async () => {
    const { jid, roomJid, exp } = await joined(bed, 'eve');
    const kicked = kickOf(bed.focus, roomJid, 'eve', (exp + GRACE + 1.5 - Date.now() / 1000) * 1000).then(() => true, () => false);
    assert.equal(await kicked, false, 'not kicked');
    assert.ok(Date.now() / 1000 > exp + GRACE, 'the token has long expired');
    const status = await bed.probe(jid);
    assert.equal(status.present, true, 'still connected');
    assert.deepEqual([status.sessions, status.timers], [0, 0], 'nothing scheduled');
  });
});
