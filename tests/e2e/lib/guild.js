// A local HTTP server on 127.0.0.1 that STANDS IN for the Guild.xyz API (REFERENCE.md §7:
// @guildxyz/sdk 2.6.9 callGuildAPI, @guildxyz/types, guild.xyz's useMembership.ts). It is not
// Guild.xyz: it speaks the documented JSON of the three calls gatehouse makes, and each test
// scripts who is a member and how the service fails.
//
//   GET /v2/guilds/{idOrUrlName}                    → { id, name, urlName, … }
//   GET /v2/users/{address}/memberships?guildId=ID  → { guildId, isAdmin, joinedAt, roleIds,
//                                                      roles: [{ roleId, access, requirements }] }
//   GET /v2/users/{address}/memberships             → [{ guildId, roleIds, isAdmin, isOwner, joinedAt }]
//   errors                                          → { errors: [{ msg }] } with the status
//
// With `apiKey` set, a request that carries `x-guild-auth` must carry that key and an
// `x-guild-service` name (the SDK's pair), else 401 { errors: [{ msg }] }.
import http from 'node:http';

const JOINED = '2024-05-01T12:00:00.000Z';

/**
 * @param {object} o
 * @param {Array<{id:number, name:string, urlName:string, roleIds:number[]}>} o.guilds
 * @param {string} [o.apiKey]      the key the service accepts in x-guild-auth
 * @param {boolean} [o.listOnly]   answer the memberships path with the list form even when
 *                                 asked with ?guildId= (as the SDK's user.getMemberships sees it)
 */
export async function startGuildStandIn({ guilds, apiKey, listOnly = false }) {
  const byKey = new Map();
  for (const g of guilds) {
    byKey.set(String(g.id), g);
    byKey.set(g.urlName, g);
  }
  const roles = new Map(); // lower-case address → Map(guildId → roleIds)
  const failures = new Map(); // lower-case address → { status, msg } | { hang } | { delayMs }
  const hitCount = new Map();
  const requests = [];
  const sockets = new Set();
  const timers = new Set();

  const send = (res, status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-correlation-id': `standin-${requests.length}` });
    res.end(JSON.stringify(body));
  };
  const error = (res, status, msg) => send(res, status, { errors: [{ msg }] });

  const membership = (guild, granted, withRoles) => {
    const base = { guildId: guild.id, roleIds: granted, isAdmin: false, joinedAt: JOINED };
    if (!withRoles) return { ...base, isOwner: false };
    return { ...base, roles: guild.roleIds.map((roleId) => ({ roleId, access: granted.includes(roleId), requirements: [] })) };
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    requests.push({ method: req.method, path: url.pathname, query: url.search, headers: req.headers, at: performance.now() });
    if (req.method !== 'GET') return error(res, 405, 'Method not allowed');
    if (apiKey && req.headers['x-guild-auth'] !== undefined &&
        (req.headers['x-guild-auth'] !== apiKey || !req.headers['x-guild-service'])) {
      return error(res, 401, 'Invalid API key or service');
    }
    let m = url.pathname.match(/^\/v2\/guilds\/([^/]+)$/);
    if (m) {
      const g = byKey.get(decodeURIComponent(m[1]));
      if (!g) return error(res, 404, 'Guild not found');
      return send(res, 200, { id: g.id, name: g.name, urlName: g.urlName, imageUrl: '', description: '', memberCount: 2, tags: [] });
    }
    m = url.pathname.match(/^\/v2\/users\/([^/]+)\/memberships$/);
    if (!m) return error(res, 404, 'Not found');
    const address = decodeURIComponent(m[1]).toLowerCase();
    hitCount.set(address, (hitCount.get(address) ?? 0) + 1);
    const failure = failures.get(address);
    const answer = () => {
      if (failure?.status) return error(res, failure.status, failure.msg ?? 'Something went wrong');
      const mine = roles.get(address) ?? new Map();
      const guildId = url.searchParams.get('guildId');
      if (guildId !== null && !listOnly) {
        const g = byKey.get(guildId);
        if (!g) return error(res, 404, 'Guild not found');
        return send(res, 200, membership(g, mine.get(g.id) ?? [], true));
      }
      return send(res, 200, [...mine].filter(([, ids]) => ids.length)
        .map(([id, ids]) => membership(byKey.get(String(id)), ids, false)));
    };
    if (failure?.hang) return; // close() destroys the socket
    if (failure?.delayMs) {
      const t = setTimeout(() => { timers.delete(t); answer(); }, failure.delayMs);
      timers.add(t);
      return;
    }
    answer();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const lower = (address) => address.toLowerCase();

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** Grants `address` these roles of guild `guildId` (an empty list: no role). */
    grant: (address, guildId, roleIds) => {
      const mine = roles.get(lower(address)) ?? new Map();
      mine.set(guildId, roleIds);
      roles.set(lower(address), mine);
      failures.delete(lower(address));
    },
    /** Makes the memberships call for `address` fail: { status, msg } | { hang } | { delayMs }. */
    fail: (address, how) => failures.set(lower(address), how),
    /** Lets the memberships call for `address` answer again. */
    recover: (address) => failures.delete(lower(address)),
    /** How many memberships requests asked about `address`. */
    hits: (address) => hitCount.get(lower(address)) ?? 0,
    close: () => new Promise((resolve) => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
