// Test wallets and SIWE messages from independent implementations, never gatehouse's own code:
// keys and EIP-191 personal_sign signatures from ethers v6 (what dapps sign with), EIP-4361
// messages parsed and built by the reference `siwe` library. Keys are made here, never real ones.
import { Wallet, Signature, hexlify, randomBytes } from 'ethers';
import { SiweMessage } from 'siwe';

/**
 * A new random wallet: { address (EIP-55), sign(text) → 65-byte 0x… signature (r ‖ s ‖ v, as
 * MetaMask's personal_sign), signCompact(text) → 64-byte EIP-2098 signature }.
 */
export function newWallet() {
  // A raw random key (Wallet.createRandom derives it from a mnemonic: slow, and not needed).
  const wallet = new Wallet(hexlify(randomBytes(32)));
  return {
    address: wallet.address,
    sign: (text) => wallet.signMessageSync(text),
    signCompact: (text) => Signature.from(wallet.signMessageSync(text)).compactSerialized,
  };
}

/** Parses a challenge with the reference SIWE library (throws what it refuses). */
export function parseSiwe(text) {
  return new SiweMessage(text);
}

/** The same message rebuilt by the SIWE library from its fields, with `changes` applied. */
export function rebuildSiwe(text, changes = {}) {
  const fields = { ...new SiweMessage(text), ...changes };
  return new SiweMessage(fields).prepareMessage();
}
