// JWT signing for tests, using only node:crypto.
//
// Deliberately independent of gatehouse's Rust implementation (and of any JWT library):
// tokens the tests present are built from first principles, so a bug shared by the
// verifier and a signing library cannot hide itself.
import crypto from 'node:crypto';

/** base64url without padding (RFC 7515 §2). */
export function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

const segment = (obj) => b64url(typeof obj === 'string' ? obj : JSON.stringify(obj));

// alg -> how node:crypto signs it.
const ALGS = {
  HS256: { kind: 'hmac', hash: 'sha256' },
  HS384: { kind: 'hmac', hash: 'sha384' },
  HS512: { kind: 'hmac', hash: 'sha512' },
  RS256: { kind: 'rsa', hash: 'sha256' },
  RS384: { kind: 'rsa', hash: 'sha384' },
  RS512: { kind: 'rsa', hash: 'sha512' },
  PS256: { kind: 'rsa-pss', hash: 'sha256' },
  PS384: { kind: 'rsa-pss', hash: 'sha384' },
  PS512: { kind: 'rsa-pss', hash: 'sha512' },
  ES256: { kind: 'ec', hash: 'sha256', curve: 'prime256v1' },
  ES384: { kind: 'ec', hash: 'sha384', curve: 'secp384r1' },
  EdDSA: { kind: 'ed25519', hash: null },
};
export const SUPPORTED_ALGS = Object.keys(ALGS);

function spec(alg) {
  const s = ALGS[alg];
  if (!s) throw new Error(`unsupported alg ${alg}`);
  return s;
}

/** Signature bytes over `input` (the "header.payload" string) per JWS (RFC 7518). */
function signatureFor(alg, input, key) {
  const s = spec(alg);
  switch (s.kind) {
    case 'hmac':
      return crypto.createHmac(s.hash, typeof key === 'string' ? Buffer.from(key) : key).update(input).digest();
    case 'rsa':
      return crypto.sign(s.hash, Buffer.from(input), key);
    case 'rsa-pss':
      // JWA: salt length = hash length.
      return crypto.sign(s.hash, Buffer.from(input), {
        key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST,
      });
    case 'ec':
      // JWS wants raw r||s, not DER.
      return crypto.sign(s.hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    case 'ed25519':
      return crypto.sign(null, Buffer.from(input), key);
    default:
      throw new Error(`unreachable: ${s.kind}`);
  }
}

/**
 * Generates a key for `alg` (HS*: a random 32-byte secret as a string).
 * @returns {{alg, kid, secret?, privateKey?, publicKey?, privatePem?, publicPem?, jwk?}}
 *   `jwk` is the public JWK with kid/alg/use — ready for a JWKS document.
 */
export function generateKey(alg, { kid = `kid-${crypto.randomBytes(4).toString('hex')}`, modulusLength = 2048 } = {}) {
  const s = spec(alg);
  if (s.kind === 'hmac') return { alg, kid, secret: crypto.randomBytes(32).toString('hex') };
  // The pair comes out as PEM and the KeyObjects are made from it. Node 20 can deadlock when a
  // KeyObject of a generated pair exports a JWK while the garbage collector destroys the pair's
  // generation job (both lock the key's mutex: seen as a hung harness.test.js in CI, main thread
  // in ExportJWKRsaKey -> ~KeyGenJob -> uv_mutex_lock); keys made from PEM have mutexes of their own.
  const pem = { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } };
  let pair;
  if (s.kind === 'rsa' || s.kind === 'rsa-pss') pair = crypto.generateKeyPairSync('rsa', { modulusLength, ...pem });
  else if (s.kind === 'ec') pair = crypto.generateKeyPairSync('ec', { namedCurve: s.curve, ...pem });
  else pair = crypto.generateKeyPairSync('ed25519', pem);
  const privateKey = crypto.createPrivateKey(pair.privateKey);
  const publicKey = crypto.createPublicKey(pair.publicKey);
  return {
    alg, kid, privateKey, publicKey,
    privatePem: pair.privateKey,
    publicPem: pair.publicKey,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
  };
}

/** A JWKS document (`{ keys: [...] }`) from generateKey() results. */
export function jwks(...keys) {
  return { keys: keys.map((k) => k.jwk) };
}

/**
 * Signs `payload`.
 * @param {object|string} payload  claims (a string is used verbatim, for malformed-JSON tests)
 * @param {object} o
 * @param {string} o.alg
 * @param {*} o.key      HMAC secret (string/Buffer), KeyObject/PEM, or a generateKey() result
 * @param {string} [o.kid]  defaults to key.kid when `key` is a generateKey() result
 * @param {object} [o.header]  merged over { alg, typ: "JWT", kid }; set a field to undefined to drop it
 */
export function sign(payload, { alg, key, kid, header = {} } = {}) {
  if (!alg) throw new Error('sign: alg is required');
  let material = key;
  if (key && typeof key === 'object' && 'alg' in key && 'kid' in key) {
    material = key.secret ?? key.privateKey;
    kid ??= key.kid;
  }
  const h = Object.fromEntries(Object.entries({ alg, typ: 'JWT', kid, ...header }).filter(([, v]) => v !== undefined));
  const input = `${segment(h)}.${segment(payload)}`;
  return `${input}.${b64url(signatureFor(alg, input, material))}`;
}

/** An `alg: none` token with an empty signature segment. */
export function unsigned(payload, header = {}) {
  return `${segment({ alg: 'none', typ: 'JWT', ...header })}.${segment(payload)}.`;
}

/** Splits a token and decodes header and payload (no verification). */
export function decode(token) {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
    signature: s,
  };
}

/** Re-encodes the payload with `changes` but keeps the old signature (→ invalid signature). */
export function tamperPayload(token, changes) {
  const [h, , s] = token.split('.');
  const { payload } = decode(token);
  return `${h}.${segment({ ...payload, ...changes })}.${s}`;
}

/** Re-encodes the header with `changes` but keeps payload and signature. */
export function tamperHeader(token, changes) {
  const [, p, s] = token.split('.');
  const { header } = decode(token);
  return `${segment({ ...header, ...changes })}.${p}.${s}`;
}

/** Flips one bit of the signature. */
export function corruptSignature(token) {
  const [h, p, s] = token.split('.');
  const sig = Buffer.from(s, 'base64url');
  sig[0] ^= 0x01;
  return `${h}.${p}.${b64url(sig)}`;
}

/** Seconds since the epoch (what exp/nbf/iat hold). */
export const now = () => Math.floor(Date.now() / 1000);

/**
 * Typical Jitsi claims: iss = appId, aud "jitsi", sub "meet.test", room "*", iat now, exp now + ttl.
 * Any other field overrides or adds a claim (set it to undefined to drop the claim).
 */
export function jitsiClaims({ appId, ttl = 3600, ...extra } = {}) {
  const t = now();
  const claims = { iss: appId, aud: 'jitsi', sub: 'meet.test', room: '*', iat: t, exp: t + ttl, ...extra };
  return Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
}
