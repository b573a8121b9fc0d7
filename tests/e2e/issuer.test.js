// mod_gatehouse_issuer and the gatehouse-issuer binary: the Chat Admin Server protocol against
// a real Prosody. Tokens minted over the protocol are used by real XMPP clients to join rooms
// through gatehouse's own auth provider and room check. The game server of `outbound` mode is
// a stand-in (lib/cas.js) playing what a DGD/SkotOS server does.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { startProsody, DOMAIN, MUC_DOMAIN, REPO_ROOT, RUN_ROOT, DEFAULT_PLUGIN_PATHS } from './lib/prosody.js';
import {
  connect, connectFocus, joinRoom, createRoomAsFocus, disconnect, withTimeout, waitForStanza, parseMucPresence,
} from './lib/client.js';
import { openCas, startGameServer, tokenRequest } from './lib/cas.js';
import { freePorts, canConnect } from './lib/net.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-issuer-test';
const SECRET = 'issuer-e2e-secret-0123456789';
const REPLY_OK = /^\{"success":true,"message":"OK","token":"[\w-]+\.[\w-]+\.[\w-]+","time":\d+(,"seq":.+)?\}\n\0$/;
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Wherever cargo put the binary: GATEHOUSE_ISSUER_BIN, else the (shared) target directory.
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target');
const ISSUER_BIN = [
  process.env.GATEHOUSE_ISSUER_BIN,
  path.join(TARGET_DIR, 'release/gatehouse-issuer'),
  path.join(TARGET_DIR, 'debug/gatehouse-issuer'),
].find((p) => p && fs.existsSync(p));

/** Logs in with `token` and joins `room`; resolves with the self-presence or rejects. */
async function joinWith(prosody, clients, token, room, nick) {
  const { xmpp } = await connect({ httpPort: prosody.httpPort, token, room });
  clients.push(xmpp);
  return joinRoom(xmpp, `${room}@${MUC_DOMAIN}`, nick);
}

const prosodyOptions = (issuerPort, extraGlobal = {}) => ({
  global: {
    modules_enabled: ['gatehouse_issuer'],
    gatehouse_issuer_host: DOMAIN,
    gatehouse_issuer_ports: [issuerPort],
    gatehouse_issuer_interfaces: ['127.0.0.1'],
    gatehouse_issuer_max_validity: 3600,
    ...extraGlobal,
  },
  mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
  muc: { modules_enabled: ['gatehouse_token_verification'] },
});

describe('mod_gatehouse_issuer: tokens over the CAS protocol, used to join rooms', () => {
  let prosody;
  let game;
  let issuerPort;
  const clients = [];
  const issued = [];
  const cas = [];
  const open = async () => { const c = await openCas(issuerPort); cas.push(c); return c; };
  const mint = async (extra, terminator) => {
    const c = await open();
    const reply = await c.request(tokenRequest(extra), terminator);
    c.close();
    if (reply.token) issued.push(reply.token);
    return reply;
  };

  before(async () => {
    let gamePort;
    [issuerPort, gamePort] = await freePorts(2);
    game = await startGameServer(gamePort);
    prosody = await startProsody({
      name: 'issuer',
      ...prosodyOptions(issuerPort, {
        gatehouse_issuer_outbound_host: '127.0.0.1',
        gatehouse_issuer_outbound_port: gamePort,
        gatehouse_issuer_reconnect_min: 0.2,
        gatehouse_issuer_reconnect_max: 1,
      }),
    });
    const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
    clients.push(focus);
    for (const room of ['r1', 'r2']) await createRoomAsFocus(focus, `${room}@${MUC_DOMAIN}`);
  });
  after(async () => {
    for (const c of cas) c.close();
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
    await game?.stop();
  });

  it('listens on the configured loopback port and says so', async () => {
    assert.ok(await canConnect(issuerPort));
    assert.match(prosody.readLog(), /Issuing tokens for meet\.test \(iss gatehouse-issuer-test\) on port\(s\) \d+/);
  });

  it('a token for r1 joins r1 and is refused in r2', async () => {
    const c = await open();
    const reply = await c.request(tokenRequest({ channel: 'r1', seq: 1 }));
    assert.match(reply.raw, REPLY_OK, 'upstream reply shape, "\\n\\0" terminated');
    assert.equal(reply.seq, 1);
    assert.ok(Math.abs(reply.time - jwt.now()) <= 2, 'time is the server clock');
    issued.push(reply.token);
    const self = await joinWith(prosody, clients, reply.token, 'r1', 'ana');
    assert.ok(self.statusCodes.includes(110));
    const err = await joinWith(prosody, clients, reply.token, 'r2', 'ana2').catch((e) => e);
    assert.equal(err.condition, 'not-allowed');
    assert.equal(err.text, 'Room and token mismatched');
  });

  it('minted claims: iss, aud, sub, room, iat, nbf, exp, moderator, context.user object', async () => {
    const reply = await mint({ email: 'ana@example.com', avatar: 'https://example.com/a.png', validFor: 300 });
    const { header, payload } = jwt.decode(reply.token);
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT' });
    assert.equal(payload.exp - payload.iat, 300, 'validFor gives an exp (upstream gave none)');
    assert.equal(payload.nbf, payload.iat);
    assert.deepEqual({ ...payload, iat: 0, nbf: 0, exp: 0 }, {
      iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: 'r1', iat: 0, nbf: 0, exp: 0, moderator: false,
      context: { user: { name: 'Ana', email: 'ana@example.com', avatar: 'https://example.com/a.png', moderator: false } },
    });
  });

  it('requests may end with a newline as well as NUL, several per read', async () => {
    const c = await open();
    c.send(`${JSON.stringify(tokenRequest({ seq: 'a' }))}\n${JSON.stringify(tokenRequest({ seq: 'b' }))}\0`);
    const [a, b] = [await c.reply(), await c.reply()];
    assert.deepEqual([a.success, a.seq, b.success, b.seq], [true, 'a', true, 'b']);
    issued.push(a.token, b.token);
  });

  it('bad requests get success:false with a precise message and the connection stays usable', async () => {
    const c = await open();
    const cases = [
      ['{"cmd":', /^bad JSON: /],
      [tokenRequest({ cmd: 'other' }), /^unknown cmd 'other'/],
      [tokenRequest({ displayName: undefined }), /^missing field 'displayName'$/],
      [tokenRequest({ moderator: 'true' }), /^'moderator' must be a boolean$/],
      [tokenRequest({ validUntil: jwt.now() + 60 }), /^give only one of 'validUntil' and 'validFor'$/],
      [tokenRequest({ validFor: undefined }), /^one of 'validUntil' or 'validFor' is required$/],
      [tokenRequest({ validFor: undefined, validUntil: jwt.now() - 5 }), /^'validUntil' \d+ is not in the future/],
      [tokenRequest({ validFor: 7200 }), /^validity of 7200 s exceeds the maximum of 3600 s$/],
    ];
    for (const [request, message] of cases) {
      const reply = await c.request(typeof request === 'string' ? request : { ...request, seq: 5 });
      assert.equal(reply.success, false, JSON.stringify(request));
      assert.equal(reply.token, '');
      assert.match(reply.message, message);
      assert.match(reply.raw, /\n\0$/);
    }
    assert.equal((await c.request(tokenRequest({ seq: 6 }))).success, true);
    assert.match(prosody.readLog(), /Refused a request from 127\.0\.0\.1: 'moderator' must be a boolean/);
  });

  it('a frame over the limit is refused and the connection closed; the server carries on', async () => {
    const c = await open();
    c.send('{"cmd":"jwt_token","displayName":"' + 'x'.repeat(9000));
    const reply = await c.reply();
    assert.equal(reply.success, false);
    assert.equal(reply.message, 'request frame exceeds 8192 bytes; closing the connection');
    await c.waitClosed();
    assert.equal((await mint()).success, true);
  });

  it('a validFor: 2 token works at once and is refused once it has expired', async () => {
    const reply = await mint({ channel: 'r1', validFor: 2 });
    const { payload } = jwt.decode(reply.token);
    await joinWith(prosody, clients, reply.token, 'r1', 'brief');
    const wait = payload.exp * 1000 + 100 - Date.now();
    assert.ok(wait < 3000, `bounded wait (${wait} ms)`);
    await sleep(Math.max(0, wait));
    const err = await connect({ httpPort: prosody.httpPort, token: reply.token }).then(
      ({ xmpp }) => { clients.push(xmpp); return null; }, (e) => e);
    assert.ok(err, 'an expired token must not log in');
    assert.equal(err.condition, 'not-allowed');
    assert.match(err.text, /^Not acceptable by exp/);
  });

  it('outbound: serves requests on its connection to the game server and reconnects after a restart', async () => {
    let link = await game.nextConnection();
    const first = await link.request(tokenRequest({ seq: 'game-1' }));
    assert.match(first.raw, REPLY_OK);
    assert.equal(first.seq, 'game-1');
    issued.push(first.token);
    await joinWith(prosody, clients, first.token, 'r1', 'from-game');

    // The game server goes away and comes back a moment later on the same port.
    const mark = prosody.logMark();
    await game.stop();
    await prosody.waitForLog(/Lost the connection to the game server/, 5000, mark);
    await sleep(500);
    game = await startGameServer(game.port);
    link = await game.nextConnection(10_000);
    const again = await link.request(tokenRequest({ seq: 'game-2' }));
    assert.equal(again.success, true);
    issued.push(again.token);
    assert.match(prosody.readLog(mark), /Reconnecting to the game server at 127\.0\.0\.1:\d+ in/);
    assert.match(prosody.readLog(mark), /Connected to the game server/);
  });

  it('never writes a token or the secret to the log', () => {
    const log = prosody.readLog();
    assert.ok(issued.length >= 5);
    for (const token of issued) assert.ok(!log.includes(token), 'a token was logged');
    assert.ok(!log.includes(SECRET), 'the secret was logged');
    assert.match(log, /Issued a token for channel "r1" \(moderator: false, expires \d+\) to 127\.0\.0\.1/);
  });

  it('the standalone gatehouse-issuer binary serves the same protocol (upstream config file)',
    { skip: !ISSUER_BIN && 'gatehouse-issuer not built (cargo build --release --bin gatehouse-issuer)' },
    async () => {
      const [gamePort] = await freePorts(1);
      const binaryGame = await startGameServer(gamePort);
      const dir = fs.mkdtempSync(path.join(RUN_ROOT, 'issuer-bin-'));
      const configFile = path.join(dir, 'config.json');
      // Upstream's config-example.json shape, trailing comma included.
      fs.writeFileSync(configFile, `{
    "jitsi": { "domain": "${DOMAIN}" },
    "jwt": { "app_id": "${APP_ID}", "secret": "${SECRET}" },
    "inbound": { "host": "127.0.0.1", "port": 0 },
    "outbound": { "host": "127.0.0.1", "port": ${gamePort} },
}
`);
      // --pdeathsig: the binary dies with this process, however it ends.
      const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', ISSUER_BIN, configFile],
        { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      try {
        const port = await withTimeout(new Promise((resolve, reject) => {
          child.stderr.setEncoding('utf8');
          child.stderr.on('data', (chunk) => {
            stderr += chunk;
            const m = stderr.match(/listening on 127\.0\.0\.1:(\d+) \(inbound\)/);
            if (m) resolve(Number(m[1]));
          });
          child.once('exit', (code) => reject(new Error(`gatehouse-issuer exited (${code}): ${stderr}`)));
        }), 5000, 'gatehouse-issuer did not start listening');
        assert.match(stderr, /line 5: trailing comma ignored/);

        const c = await openCas(port);
        cas.push(c);
        const reply = await c.request(tokenRequest({ channel: 'r2', seq: 3 }));
        assert.match(reply.raw, REPLY_OK);
        await joinWith(prosody, clients, reply.token, 'r2', 'from-binary');
        const bad = await c.request('[1]\n');
        assert.deepEqual([bad.success, bad.message], [false, 'request must be a JSON object']);

        const link = await binaryGame.nextConnection();
        const viaGame = await link.request(tokenRequest({ seq: 'bin-game' }));
        assert.equal(viaGame.success, true);
        assert.ok(!stderr.includes(reply.token) && !stderr.includes(SECRET), 'no credentials on stderr');
      } finally {
        child.kill('SIGTERM');
        await binaryGame.stop();
      }
    });
});

describe('mod_gatehouse_issuer enabled on the VirtualHost, with a shared secret and channel list', () => {
  let prosody;
  let issuerPort;
  before(async () => {
    [issuerPort] = await freePorts(1);
    const options = prosodyOptions(issuerPort, {
      gatehouse_issuer_shared_secret: 'game-shared',
      gatehouse_issuer_channels: ['r1', 'Lobby'],
    });
    // No gatehouse_issuer_host: the VirtualHost that enables it lends its app_id/app_secret.
    delete options.global.gatehouse_issuer_host;
    options.global.modules_enabled = [];
    options.mainHost.modules_enabled = ['gatehouse_issuer'];
    prosody = await startProsody({ name: 'issuer-host', ...options });
  });
  after(() => prosody?.stop());

  it('reads the token options of the host it is enabled on', async () => {
    const c = await openCas(issuerPort);
    const reply = await c.request(tokenRequest({ secret: 'game-shared', channel: 'lobby' }));
    c.close();
    assert.equal(reply.success, true, reply.message);
    const { payload } = jwt.decode(reply.token);
    assert.deepEqual([payload.iss, payload.sub, payload.room], [APP_ID, DOMAIN, 'lobby']);
  });

  it('requires the shared secret and refuses channels off the list', async () => {
    const c = await openCas(issuerPort);
    assert.equal((await c.request(tokenRequest())).message, "missing field 'secret'");
    assert.equal((await c.request(tokenRequest({ secret: 'guess' }))).message, "wrong 'secret'");
    assert.equal((await c.request(tokenRequest({ secret: 'game-shared', channel: 'r2' }))).message,
      "channel 'r2' is not allowed");
    c.close();
    assert.ok(!prosody.readLog().includes('game-shared'), 'the shared secret was logged');
  });
});

// The interfaces are the port manager's own choice (core/portmanager.lua on 0.12 and 13):
// gatehouse_issuer_interfaces, else gatehouse_issuer_interface, else local_interfaces.
for (const [what, options, refused] of [
  ['gatehouse_issuer_interfaces = { "0.0.0.0" }', { gatehouse_issuer_interfaces: ['0.0.0.0'] }, '0\\.0\\.0\\.0'],
  ['gatehouse_issuer_interface = "*" (singular)', { gatehouse_issuer_interfaces: undefined, gatehouse_issuer_interface: '*' }, '\\*'],
  ['gatehouse_issuer_interfaces = "::" (a string)', { gatehouse_issuer_interfaces: '::' }, '::'],
  ['local_interfaces = { "0.0.0.0" }', { gatehouse_issuer_interfaces: undefined, local_interfaces: ['0.0.0.0'] }, '0\\.0\\.0\\.0'],
]) {
  describe(`mod_gatehouse_issuer refuses a non-loopback interface unless allowed: ${what}`, () => {
    let prosody;
    let issuerPort;
    before(async () => {
      [issuerPort] = await freePorts(1);
      prosody = await startProsody({ name: 'issuer-remote', ...prosodyOptions(issuerPort, options) });
    });
    after(() => prosody?.stop());

    it('logs why and opens no port', async () => {
      await prosody.waitForLog(new RegExp(`Refusing to listen on ${refused}: not a loopback interface`));
      assert.equal(await canConnect(issuerPort), false);
    });
  });
}

describe('mod_gatehouse_issuer: the plural option wins over the singular one, as in the port manager', () => {
  let prosody;
  let issuerPort;
  before(async () => {
    [issuerPort] = await freePorts(1);
    prosody = await startProsody({
      name: 'issuer-plural',
      ...prosodyOptions(issuerPort, { gatehouse_issuer_interfaces: ['127.0.0.1'], gatehouse_issuer_interface: '*' }),
    });
  });
  after(() => prosody?.stop());

  it('listens on 127.0.0.1 only, without a refusal', async () => {
    assert.equal(await canConnect(issuerPort), true);
    assert.doesNotMatch(prosody.readLog(), /Refusing to listen/);
  });
});

// Token moderation is another module (mod_token_moderation); this runs once it is built.
const MODERATION_BUILT = fs.existsSync(path.join(DEFAULT_PLUGIN_PATHS[0], 'mod_token_moderation.lua'));
describe('a moderator: true token yields an owner when token moderation is on',
  { skip: !MODERATION_BUILT && 'mod_token_moderation is not in the built plugins yet' }, () => {
    let prosody;
    let issuerPort;
    const clients = [];
    before(async () => {
      [issuerPort] = await freePorts(1);
      const options = prosodyOptions(issuerPort);
      options.muc.modules_enabled.push('token_moderation');
      prosody = await startProsody({ name: 'issuer-moderation', ...options });
      const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
      clients.push(focus);
      await createRoomAsFocus(focus, `r1@${MUC_DOMAIN}`);
    });
    after(async () => {
      await Promise.all(clients.map(disconnect));
      await prosody?.stop();
    });

    it('moderator: true → owner; moderator: false → member', async () => {
      const c = await openCas(issuerPort);
      const owner = await c.request(tokenRequest({ moderator: true }));
      const member = await c.request(tokenRequest({ moderator: false }));
      c.close();
      const { xmpp: ownerXmpp } = await connect({ httpPort: prosody.httpPort, token: owner.token });
      clients.push(ownerXmpp);
      const ownerPresence = await waitForAffiliation(ownerXmpp, 'boss', 'owner');
      assert.equal(ownerPresence.affiliation, 'owner');
      const memberSelf = await joinWith(prosody, clients, member.token, 'r1', 'player');
      assert.equal(memberSelf.affiliation, 'member');
    });
  });

/** Joins r1 and waits for a self-presence with `affiliation` (token moderation may send two). */
async function waitForAffiliation(xmpp, nick, affiliation) {
  const seen = waitForStanza(xmpp, (s) => s.name === 'presence'
    && s.attrs.from === `r1@${MUC_DOMAIN}/${nick}` && parseMucPresence(s).affiliation === affiliation,
  10_000, `${affiliation} self-presence`);
  await joinRoom(xmpp, `r1@${MUC_DOMAIN}`, nick);
  return parseMucPresence(await seen);
}
