// `make run`: a local Prosody on 127.0.0.1 with gatehouse's modules enabled, a demo secret and
// a demo token, staying up until Ctrl-C. Shaped like a Jitsi deployment (lib/config.js).
// Ports: GATEHOUSE_HTTP_PORT (default 5280) and GATEHOUSE_C2S_PORT (default 5222).
import { startProsody, MUC_DOMAIN, DOMAIN, FOCUS } from './lib/prosody.js';
import { connect, joinRoom, createRoomAsFocus, connectFocus, disconnect } from './lib/client.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-demo';
const SECRET = 'gatehouse-demo-secret-change-me';
const ports = [Number(process.env.GATEHOUSE_HTTP_PORT ?? 5280), Number(process.env.GATEHOUSE_C2S_PORT ?? 5222)];

const prosody = await startProsody({
  name: 'demo',
  ports,
  mainHost: { authentication: 'gatehouse_token', app_id: APP_ID, app_secret: SECRET },
  muc: { modules_enabled: ['gatehouse_token_verification'] },
});

// A day-long token for the room "demo", and proof that it works before we say so.
const token = jwt.sign(jwt.jitsiClaims({ appId: APP_ID, room: 'demo', ttl: 86400,
  context: { user: { name: 'Demo User' } } }), { alg: 'HS256', key: SECRET });
const focus = (await connectFocus({ httpPort: prosody.httpPort })).xmpp;
await createRoomAsFocus(focus, `demo@${MUC_DOMAIN}`);
const probe = await connect({ httpPort: prosody.httpPort, token, room: 'demo' });
await joinRoom(probe.xmpp, `demo@${MUC_DOMAIN}`, 'probe');
await disconnect(probe.xmpp);

console.log(`
gatehouse demo: Prosody ${prosody.pid} is up on 127.0.0.1 (config and log in ${prosody.dir})

  WebSocket   ws://127.0.0.1:${prosody.httpPort}/xmpp-websocket?token=<token>   (domain ${DOMAIN})
  BOSH        http://127.0.0.1:${prosody.httpPort}/http-bind?token=<token>
  Room        demo@${MUC_DOMAIN}  (created by the focus user ${FOCUS.username}@${FOCUS.domain}, password ${FOCUS.password})
  app_id      ${APP_ID}
  app_secret  ${SECRET}

A demo token for room "demo", valid 24 h (HS256):

${token}

Log: tail -f ${prosody.logFile}
Ctrl-C stops Prosody.
`);

// Stay up until interrupted: the harness's SIGINT/SIGTERM handlers stop Prosody and exit.
setInterval(() => {}, 1 << 30);
