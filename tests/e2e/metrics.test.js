// Metrics and refusal logs: gatehouse's counters through Prosody's own statistics, read back
// from mod_http_openmetrics (GET /metrics), the same on Prosody 0.12 and 13. The key server is
// a LOCAL STAND-IN (lib/keyserver.js) for a Jitsi ASAP public-key server.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startProsody } from './lib/prosody.js';
import { connect, disconnect } from './lib/client.js';
import { startKeyServer, asapPath } from './lib/keyserver.js';
import * as jwt from './lib/jwt.js';

const APP_ID = 'gatehouse-test';
const claims = (extra = {}) => jwt.jitsiClaims({ appId: APP_ID, room: 'room1', ...extra });

/** The value of the first sample whose name and labels match, or 0 when there is none. */
function sample(text, name, labels = {}) {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = line.match(/^([^{\s]+)(?:\{([^}]*)\})?\s+(\S+)/);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('metrics: tokens by reason, remote calls, cache hits', () => {
  const key = jwt.generateKey('RS256', { kid: 'jitsi/metrics' });
  let keys;
  let prosody;
  const clients = [];
  const metrics = async () => {
    const res = await fetch(`http://127.0.0.1:${prosody.httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    return res.text();
  };

  before(async () => {
    keys = await startKeyServer({ [`/asap${asapPath(key.kid)}`]: { body: key.publicPem } });
    prosody = await startProsody({
      name: 'metrics',
      global: {
        modules_enabled: ['http_openmetrics'],
        statistics: 'internal',
        statistics_interval: 'manual',
      },
      mainHost: {
        authentication: 'gatehouse_token', app_id: APP_ID,
        asap_key_server: `${keys.url}/asap`, gatehouse_key_fetch_timeout: 2,
      },
    });
  });
  after(async () => {
    await Promise.all(clients.map(disconnect));
    await prosody?.stop();
    await keys?.close();
  });

  it('counts verified and refused tokens, the key fetch and the cache hits', async () => {
    for (let i = 0; i < 3; i++) {
      const { xmpp } = await connect({ httpPort: prosody.httpPort, token: jwt.sign(claims(), { alg: 'RS256', key }) });
      clients.push(xmpp);
    }
    const expired = jwt.sign(claims({ exp: Math.floor(Date.now() / 1000) - 3600 }), { alg: 'RS256', key });
    const mark = prosody.logMark();
    const err = await connect({ httpPort: prosody.httpPort, token: expired }).then(() => null, (e) => e);
    assert.ok(err?.condition, 'the expired token is refused');

    const text = await metrics();
    const tokens = 'prosody_mod_auth_gatehouse_token__tokens_total';
    assert.equal(sample(text, tokens, { host: 'meet.test', outcome: 'verified', reason: 'ok' }), 3, text);
    const refused = text.split('\n').filter((l) => l.startsWith(tokens) && l.includes('outcome="refused"'));
    assert.equal(refused.length, 1, `one refusal reason: ${refused.join('; ')}`);
    assert.match(refused[0], /reason="[a-z0-9_-]+"\}\s+1$/);

    // One key fetch (the first login), then the cache.
    const calls = 'prosody_mod_auth_gatehouse_token__remote_calls_seconds_count';
    assert.equal(sample(text, calls, { outcome: 'ok' }), 1, text);
    assert.equal(keys.hits(`/asap${asapPath(key.kid)}`), 1);
    const lookups = 'prosody_mod_auth_gatehouse_token__cache_lookups_total';
    assert.equal(sample(text, lookups, { result: 'miss' }), 1, text);
    // The two later logins; a refusal is not counted (it may not have needed the key).
    assert.equal(sample(text, lookups, { result: 'hit' }), 2, text);

    // One log line for the refusal, with the reason, and never the token.
    const log = prosody.readLog(mark);
    const lines = log.split('\n').filter((l) => l.includes('Token refused'));
    assert.equal(lines.length, 1, log);
    assert.ok(!log.includes(expired) && !log.includes(expired.split('.')[2]), 'the token is never logged');
  });

  it('a missing token is counted as refused with reason no-token', async () => {
    const err = await connect({ httpPort: prosody.httpPort }).then(() => null, (e) => e);
    assert.ok(err?.condition);
    const text = await metrics();
    assert.equal(sample(text, 'prosody_mod_auth_gatehouse_token__tokens_total', { outcome: 'refused', reason: 'no-token' }), 1, text);
  });
});
