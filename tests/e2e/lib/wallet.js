// A test wallet: a fresh secp256k1 key made in the test (never a real wallet) that signs the
// way MetaMask's personal_sign does (EIP-191, r ‖ s ‖ 27+v), with the EIP-55 address.
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex');

/** EIP-55 checksum form of a 0x-prefixed address. */
export function checksum(address) {
  const lower = address.slice(2).toLowerCase();
  const hash = hex(keccak_256(Buffer.from(lower, 'ascii')));
  return '0x' + [...lower].map((c, i) => (parseInt(hash[i], 16) >= 8 ? c.toUpperCase() : c)).join('');
}

/** A new random wallet: { address, sign(text) → 0x… signature }. */
export function newWallet() {
  const key = secp256k1.utils.randomSecretKey();
  const publicKey = secp256k1.getPublicKey(key, false);
  const address = checksum('0x' + hex(keccak_256(publicKey.slice(1)).slice(12)));
  return {
    address,
    sign(text) {
      const message = Buffer.from(text, 'utf8');
      const prefixed = Buffer.concat([Buffer.from(`\x19Ethereum Signed Message:\n${message.length}`), message]);
      // 'recovered' is recovery ‖ r ‖ s; Ethereum wallets send r ‖ s ‖ (27 + recovery).
      const sig = secp256k1.sign(keccak_256(prefixed), key, { prehash: false, format: 'recovered' });
      return '0x' + hex(sig.slice(1)) + (27 + sig[0]).toString(16);
    },
  };
}
