//! Ethereum wallet proofs: EIP-191 `personal_sign` digests, strict signature parsing and
//! public-key recovery, EIP-55 checksum addresses.
//!
//! A wallet signs with `personal_sign`; the server recovers the signer's address from the
//! signature and compares it with the address the client claims. Parsing is strict: a
//! signature that any honest wallet would not produce (high s, zero or overflowing scalars, an
//! odd `v`) is refused rather than normalised, so one proof has exactly one accepted encoding.
//! Sign-In with Ethereum messages live in [`siwe`], single-use challenges in [`challenge`].

pub mod challenge;
pub mod room_text;
pub mod siwe;

use std::fmt;

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, VerifyingKey};
use sha3::{Digest, Keccak256};

/// A 20-byte Ethereum account address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// Parses `0x` + 40 hex digits. All-lower or all-upper case is accepted as is; mixed case
    /// must be a correct EIP-55 checksum, since a wrong one means a mistyped address.
    pub fn parse(text: &str) -> Result<Address, WalletError> {
        let hex = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .ok_or_else(|| WalletError::BadAddress(abbreviate(text)))?;
        if hex.len() != 40 {
            return Err(WalletError::BadAddress(abbreviate(text)));
        }
        let bytes = decode_hex(hex).ok_or_else(|| WalletError::BadAddress(abbreviate(text)))?;
        let mut out = [0u8; 20];
        out.copy_from_slice(&bytes);
        let address = Address(out);
        let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && address.to_checksum()[2..] != *hex {
            return Err(WalletError::BadChecksum(text.to_string()));
        }
        Ok(address)
    }

    /// The address of an uncompressed SEC1 public key (`0x04 ‖ x ‖ y`).
    pub fn from_public_key(key: &VerifyingKey) -> Address {
        let point = key.to_sec1_point(false);
        let bytes = point.as_bytes();
        // An uncompressed point is always 65 bytes; skip the 0x04 tag.
        let hash = Keccak256::digest(bytes.get(1..).unwrap_or_default());
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// The EIP-55 mixed-case form, `0x` included.
    pub fn to_checksum(&self) -> String {
        let lower = self.to_lowercase();
        let hash = Keccak256::digest(&lower.as_bytes()[2..]);
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower[2..].chars().enumerate() {
            let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
            out.push(if nibble >= 8 { c.to_ascii_uppercase() } else { c });
        }
        out
    }

    /// `0x` + lower-case hex, as the Guild API wants it.
    pub fn to_lowercase(&self) -> String {
        format!("0x{}", encode_hex(&self.0))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

/// A 65-byte `r ‖ s ‖ v` signature, or a 64-byte EIP-2098 compact one (`r ‖ yParity·2²⁵⁵ + s`),
/// that passed every strictness rule.
#[derive(Debug, Clone)]
pub struct RecoverableSignature {
    signature: EcdsaSignature,
    recovery_id: RecoveryId,
}

impl RecoverableSignature {
    /// Parses `0x` + 130 (or, EIP-2098, 128) hex digits (the `0x` is optional).
    pub fn parse(text: &str) -> Result<RecoverableSignature, WalletError> {
        let hex = text.strip_prefix("0x").unwrap_or(text);
        let bytes = decode_hex(hex).ok_or(WalletError::NotHex)?;
        Self::from_bytes(&bytes)
    }

    /// Checks and splits raw signature bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<RecoverableSignature, WalletError> {
        let mut rs = [0u8; 64];
        let recovery = match bytes.len() {
            65 => {
                rs.copy_from_slice(&bytes[..64]);
                match bytes[64] {
                    0 | 27 => 0,
                    1 | 28 => 1,
                    other => return Err(WalletError::BadV { v: other }),
                }
            }
            // EIP-2098: the top bit of the second half is the y parity, the rest is s.
            64 => {
                rs.copy_from_slice(bytes);
                let parity = rs[32] >> 7;
                rs[32] &= 0x7f;
                parity
            }
            len => return Err(WalletError::BadLength { len }),
        };
        let (r, s) = rs.split_at(32);
        check_scalar(r, WalletError::ZeroR, WalletError::ROverflow)?;
        check_scalar(s, WalletError::ZeroS, WalletError::SOverflow)?;
        if s > HALF_ORDER.as_slice() {
            return Err(WalletError::HighS);
        }
        let signature = EcdsaSignature::from_slice(&rs).map_err(|_| WalletError::Unrecoverable)?;
        // k256 0.14 recovers from a high-s signature without complaint: check it again with the
        // library's own rule, so the byte comparison above cannot drift from it.
        if signature.normalize_s() != signature {
            return Err(WalletError::HighS);
        }
        let recovery_id =
            RecoveryId::from_byte(recovery).ok_or(WalletError::BadV { v: recovery })?;
        Ok(RecoverableSignature { signature, recovery_id })
    }

    /// The address whose key produced this signature over `digest`.
    pub fn recover(&self, digest: &[u8; 32]) -> Result<Address, WalletError> {
        VerifyingKey::recover_from_prehash(digest, &self.signature, self.recovery_id)
            .map(|key| Address::from_public_key(&key))
            .map_err(|_| WalletError::Unrecoverable)
    }
}

/// Why a signature or address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletError {
    /// The signature is not hexadecimal.
    NotHex,
    /// The signature is neither 65 bytes long nor 64 (EIP-2098).
    BadLength {
        /// Bytes received.
        len: usize,
    },
    /// The last byte is not one of 27, 28, 0, 1.
    BadV {
        /// The byte received.
        v: u8,
    },
    /// `r` is zero.
    ZeroR,
    /// `s` is zero.
    ZeroS,
    /// `r` is not below the curve order.
    ROverflow,
    /// `s` is not below the curve order.
    SOverflow,
    /// `s` is in the upper half of the order (EIP-2); wallets only produce low s.
    HighS,
    /// No public key matches the signature.
    Unrecoverable,
    /// The signature is valid but made by another address than the one claimed.
    WrongSigner {
        /// The address that signed, EIP-55.
        recovered: String,
    },
    /// Not `0x` + 40 hex digits.
    BadAddress(String),
    /// A mixed-case address whose EIP-55 checksum is wrong.
    BadChecksum(String),
}

impl WalletError {
    /// A stable kebab-case code for Lua.
    pub fn code(&self) -> &'static str {
        match self {
            WalletError::NotHex => "signature-not-hex",
            WalletError::BadLength { .. } => "signature-length",
            WalletError::BadV { .. } => "signature-bad-v",
            WalletError::ZeroR => "signature-zero-r",
            WalletError::ZeroS => "signature-zero-s",
            WalletError::ROverflow => "signature-r-overflow",
            WalletError::SOverflow => "signature-s-overflow",
            WalletError::HighS => "signature-high-s",
            WalletError::Unrecoverable => "signature-unrecoverable",
            WalletError::WrongSigner { .. } => "wrong-signer",
            WalletError::BadAddress(_) => "bad-address",
            WalletError::BadChecksum(_) => "bad-checksum",
        }
    }
}

impl fmt::Display for WalletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalletError::NotHex => write!(f, "signature is not hexadecimal"),
            WalletError::BadLength { len } => {
                write!(f, "signature is {len} bytes, expected 65 (or 64, EIP-2098)")
            }
            WalletError::BadV { v } => write!(f, "signature v is {v}, expected 27, 28, 0 or 1"),
            WalletError::ZeroR => write!(f, "signature r is zero"),
            WalletError::ZeroS => write!(f, "signature s is zero"),
            WalletError::ROverflow => write!(f, "signature r is not below the curve order"),
            WalletError::SOverflow => write!(f, "signature s is not below the curve order"),
            WalletError::HighS => write!(f, "signature s is high (EIP-2)"),
            WalletError::Unrecoverable => write!(f, "no public key matches the signature"),
            WalletError::WrongSigner { recovered } => {
                write!(f, "signed by {recovered}, not the claimed address")
            }
            WalletError::BadAddress(text) => write!(f, "not an Ethereum address: {text}"),
            WalletError::BadChecksum(text) => write!(f, "wrong EIP-55 checksum: {text}"),
        }
    }
}

impl std::error::Error for WalletError {}

/// The EIP-191 `personal_sign` digest of `message`.
pub fn personal_digest(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// The address that `personal_sign`ed `message` with `signature`.
pub fn recover_personal(message: &[u8], signature: &str) -> Result<Address, WalletError> {
    RecoverableSignature::parse(signature)?.recover(&personal_digest(message))
}

/// Checks that `claimed` `personal_sign`ed `message`.
pub fn verify_personal(
    message: &[u8],
    signature: &str,
    claimed: &Address,
) -> Result<(), WalletError> {
    let recovered = recover_personal(message, signature)?;
    if &recovered != claimed {
        return Err(WalletError::WrongSigner { recovered: recovered.to_checksum() });
    }
    Ok(())
}

/// What a joining client proves: the SIWE text it signed, the signature, its address.
#[derive(Debug, Clone, Copy)]
pub struct Proof<'a> {
    /// The SIWE message exactly as signed.
    pub message: &'a str,
    /// `0x` + 130 (or, EIP-2098, 128) hex digits.
    pub signature: &'a str,
    /// The address the client claims.
    pub address: &'a str,
}

/// Where, by whom and when a proof is checked.
#[derive(Debug, Clone, Copy)]
pub struct Venue<'a> {
    /// The Jitsi domain the SIWE message must name.
    pub domain: &'a str,
    /// The room's URI the SIWE message must name.
    pub uri: &'a str,
    /// The chain id the SIWE message must name.
    pub chain_id: u64,
    /// The room's JID, which the challenge is bound to.
    pub room: &'a str,
    /// The joining user's bare JID, which the challenge is bound to.
    pub requester: &'a str,
}

/// A proof that holds: the address signed a live challenge for this user, room and address.
/// Its challenge is not spent yet: the caller spends it ([`challenge::ChallengeStore::spend`])
/// once the answer is final, so a Guild outage does not cost the user their signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The signer.
    pub address: Address,
    /// The challenge's nonce.
    pub nonce: String,
}

/// Checks a proof: the address is well formed, the SIWE message parses, names this server,
/// room, chain and address and is within its validity window, its nonce is a live challenge for
/// this user, room and address, and the address signed the text. A bad signature over a live
/// challenge is a final refusal and spends it; every other refusal leaves it for a retry.
pub fn check_proof(
    store: &challenge::ChallengeStore,
    proof: &Proof<'_>,
    venue: &Venue<'_>,
    now: crate::clock::UnixTime,
    instant: std::time::Instant,
) -> Result<CheckedProof, ProofError> {
    let address = Address::parse(proof.address).map_err(ProofError::Address)?;
    let message = siwe::SiweMessage::parse(proof.message).map_err(ProofError::Message)?;
    let expected = siwe::Expected {
        domain: venue.domain,
        uri: venue.uri,
        chain_id: venue.chain_id,
        address: &address,
        nonce: None,
        now,
    };
    message.verify(&expected).map_err(ProofError::Message)?;
    let binding = venue.binding(&address);
    store.check(&message.nonce, binding, now, instant).map_err(ProofError::Challenge)?;
    if let Err(error) = verify_personal(proof.message.as_bytes(), proof.signature, &address) {
        // Final: the challenge was this user's, and what they sent is not a signature of it.
        let _ = store.spend(&message.nonce, binding, now, instant);
        return Err(ProofError::Signature(error));
    }
    Ok(CheckedProof { address, nonce: message.nonce })
}

impl<'v> Venue<'v> {
    /// The binding a challenge for this venue and `address` must have.
    pub fn binding<'a>(&self, address: &'a Address) -> challenge::Binding<'a>
    where
        'v: 'a,
    {
        challenge::Binding { requester: self.requester, room: self.room, address }
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The claimed address is malformed.
    Address(WalletError),
    /// The SIWE message is malformed, names something else, or is out of its time window.
    Message(siwe::SiweError),
    /// The nonce is not a live challenge for this user, room and address.
    Challenge(challenge::ChallengeError),
    /// The signature is malformed or made by another key.
    Signature(WalletError),
}

impl ProofError {
    /// The broad class, for the stanza error: `bad-signature`, `bad-message`, or the
    /// challenge's own code (`unknown-challenge`, `expired-challenge`, `used-challenge`, …).
    pub fn condition(&self) -> &'static str {
        match self {
            ProofError::Address(_) | ProofError::Signature(_) => "bad-signature",
            ProofError::Message(siwe::SiweError::Expired) => "expired-challenge",
            ProofError::Message(_) => "bad-message",
            ProofError::Challenge(error) => error.code(),
        }
    }

    /// The precise code of the underlying error.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Address(e) | ProofError::Signature(e) => e.code(),
            ProofError::Message(e) => e.code(),
            ProofError::Challenge(e) => e.code(),
        }
    }
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::Address(e) | ProofError::Signature(e) => e.fmt(f),
            ProofError::Message(e) => e.fmt(f),
            ProofError::Challenge(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ProofError {}

/// Lower-case hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Decodes hex in either case; `None` for odd length or a non-hex digit.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()
}

fn check_scalar(bytes: &[u8], zero: WalletError, overflow: WalletError) -> Result<(), WalletError> {
    if bytes.iter().all(|b| *b == 0) {
        return Err(zero);
    }
    // Big-endian byte strings of equal length compare like the numbers they encode.
    if bytes >= ORDER.as_slice() {
        return Err(overflow);
    }
    Ok(())
}

/// What shows in an error: an address-sized prefix of client text, never a whole blob.
fn abbreviate(text: &str) -> String {
    text.chars().take(48).collect()
}

/// secp256k1's group order n.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// n / 2, rounded down: the largest low s.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

#[cfg(test)]
mod tests;
