// docker-jitsi-meet's own Prosody config with gatehouse (docker/gatehouse.env, docker/gatehouse.cfg.lua),
// rendered by the image's renderer from the image's templates and run in Prosody 13 with
// jitsi-meet's real plugins around gatehouse's (see image.js). No stand-ins: Jitsi's lobby,
// meeting-id, domain-mapper and password-whitelist modules are the real ones. Then Jitsi-shaped
// clients over WebSocket: a token login, a join, security on demand and token moderation.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startImageProsody, containerEnv } from './image.js';
import { connect, joinRoom, createRoomAsFocus, disconnect } from '../lib/client.js';
import * as jwt from '../lib/jwt.js';

// docker/gatehouse.env's app; the domains are the image's defaults (meet.jitsi, muc.meet.jitsi).
const { JWT_APP_ID: APP_ID, JWT_APP_SECRET: SECRET } = containerEnv();
const DOMAIN = 'meet.jitsi';
const MUC = 'muc.meet.jitsi';

const token = (claims = {}) => jwt.sign(jwt.jitsiClaims({ appId: APP_ID, sub: DOMAIN, room: '*', ...claims }),
  { alg: 'HS256', key: SECRET });

describe("docker-jitsi-meet's rendered config with gatehouse, on Prosody 13 with jitsi-meet's plugins", () => {
  let prosody;
  let focus;
  const clients = [];
  const login = async (tok) => {
    const { xmpp, jid } = await connect({ httpPort: prosody.httpPort, domain: DOMAIN, token: tok });
    clients.push(xmpp);
    return { xmpp, jid };
  };
  const room = async (node) => {
    const roomJid = `${node}@${MUC}`;
    await createRoomAsFocus(focus, roomJid);
    return roomJid;
  };
  const refusedJoin = async (roomJid, nick, claims, options) => {
    const { xmpp } = await login(token(claims));
    const err = await joinRoom(xmpp, roomJid, nick, options).then(() => null, (e) => e);
    assert.ok(err, `${nick} should have been refused`);
    return err;
  };

  before(async () => {
    prosody = await startImageProsody({ name: 'docker-config' });
    // Jicofo's account, registered as the image's 70-register-setup does; PLAIN over WebSocket.
    focus = (await connect({
      httpPort: prosody.httpPort, domain: `auth.${DOMAIN}`, mechanism: 'PLAIN',
      credentials: { username: 'focus', password: prosody.focusPassword },
    })).xmpp;
    clients.push(focus);
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
  });

  it('the image renders gatehouse into its config, and every module loads', () => {
    const site = prosody.config('conf.d/jitsi-meet.cfg.lua');
    assert.match(site, /plugin_paths = \{ "\/prosody-plugins-custom", "\/prosody-plugins\/", "\/prosody-plugins-contrib" \}/);
    assert.match(site, /VirtualHost "meet\.jitsi"\s+authentication = "gatehouse_token"/);
    for (const mod of ['token_security_ondemand', 'token_moderation', 'gatehouse_token_verification']) {
      assert.match(site, new RegExp(`Component "muc\\.meet\\.jitsi" "muc"[^]*?"${mod}";`), mod);
    }
    const failures = prosody.readLog().split('\n').filter((l) => /Error initializing module|Failed to load|Unable to load/.test(l));
    assert.deepEqual(failures, []);
    const log = prosody.readLog();
    assert.match(log, /meet\.jitsi:(auth_gatehouse_token|gatehouse_token_verification|token_security_ondemand|token_moderation)\s+info\s+HTTPS trusts/);
  });

  it('a token logs in and joins the room it names; a token for another room is refused at the join', async () => {
    const roomJid = await room('standup');
    const { xmpp, jid } = await login(token({ room: 'standup', context: { user: { name: 'Ana' } } }));
    assert.match(jid, /@meet\.jitsi\//);
    const self = await joinRoom(xmpp, roomJid, 'ana');
    assert.ok(self.statusCodes.includes(110));
    const other = await login(token({ room: 'elsewhere' }));
    const err = await joinRoom(other.xmpp, roomJid, 'eve').then(() => null, (e) => e);
    assert.equal(err?.condition, 'not-allowed');
  });

  it('a bad signature is refused at login', async () => {
    const forged = jwt.sign(jwt.jitsiClaims({ appId: APP_ID, sub: DOMAIN }), { alg: 'HS256', key: 'not-the-secret' });
    const err = await connect({ httpPort: prosody.httpPort, domain: DOMAIN, token: forged }).then(
      ({ xmpp }) => { clients.push(xmpp); return null; }, (e) => e);
    assert.equal(err?.condition, 'not-allowed');
  });

  it("security on demand: context.room.lobby turns on Jitsi's real lobby; security_bypass gets past it", async () => {
    const roomJid = await room('lobbied');
    const closer = await login(token({ context: { room: { lobby: true } } }));
    await joinRoom(closer.xmpp, roomJid, 'closer');
    const err = await refusedJoin(roomJid, 'waiting', {});
    assert.equal(err.condition, 'registration-required');
    // Jitsi's lobby answers, naming its lobby room (members-only alone would not).
    const lobbyroom = err.stanza.getChild('error').getChild('lobbyroom', 'http://jitsi.org/jitmeet');
    assert.equal(lobbyroom?.text(), `lobbied@lobby.${DOMAIN}`);
    assert.match(prosody.readLog(), /Token lobby requests use Jitsi's lobby/);
    const bypass = await login(token({ context: { user: { security_bypass: true } } }));
    await joinRoom(bypass.xmpp, roomJid, 'bypass');
  });

  it('security on demand: context.room.password sets the room password', async () => {
    const roomJid = await room('locked');
    const setter = await login(token({ context: { room: { password: 'pw-docker' } } }));
    await joinRoom(setter.xmpp, roomJid, 'setter');
    assert.equal((await refusedJoin(roomJid, 'nopw', {})).condition, 'not-authorized');
    const withPw = await login(token());
    await joinRoom(withPw.xmpp, roomJid, 'withpw', { password: 'pw-docker' });
  });

  it('token moderation: a moderator token makes an owner, any other token a member', async () => {
    const roomJid = await room('moderated');
    const mod = await login(token({ moderator: true }));
    const modSelf = await joinRoom(mod.xmpp, roomJid, 'mod');
    assert.equal(modSelf.affiliation, 'owner');
    assert.equal(modSelf.role, 'moderator');
    // docker/gatehouse.cfg.lua keeps token_moderation_accept_context_user = true.
    const ctx = await login(token({ context: { user: { moderator: true } } }));
    assert.equal((await joinRoom(ctx.xmpp, roomJid, 'ctxmod')).affiliation, 'owner');
    const guest = await login(token({ moderator: false }));
    const guestSelf = await joinRoom(guest.xmpp, roomJid, 'guest');
    assert.equal(guestSelf.affiliation, 'member');
    assert.equal(guestSelf.role, 'participant');
  });
});
