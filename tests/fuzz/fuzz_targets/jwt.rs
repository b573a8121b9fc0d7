//! JWT parsing and verification on arbitrary text: header, payload and signature segments,
//! for each algorithm family. Must never panic; every input is an answer.
#![no_main]

use gatehouse::clock::UnixTime;
use gatehouse::keys::{KeyCacheConfig, KeySourceConfig};
use gatehouse::token::{self, Algorithm, Check, Policy, Verifier};
use libfuzzer_sys::fuzz_target;

const RSA_PUBLIC: &str = include_str!("../../fixtures/keys/rsa_public.pem");
const EC_PUBLIC: &str = include_str!("../../fixtures/keys/ec256_public.pem");
const ED_PUBLIC: &str = include_str!("../../fixtures/keys/ed25519_public.pem");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = token::decode_unverified(text);
    let verifiers = [
        (Algorithm::HS256, KeySourceConfig::Secret(b"fuzz".to_vec())),
        (Algorithm::RS256, KeySourceConfig::PublicKeyPem(RSA_PUBLIC.into())),
        (Algorithm::ES256, KeySourceConfig::PublicKeyPem(EC_PUBLIC.into())),
        (Algorithm::EdDSA, KeySourceConfig::PublicKeyPem(ED_PUBLIC.into())),
    ];
    for (algorithm, source) in verifiers {
        let policy = Policy::new(algorithm, "fuzz");
        if let Ok(verifier) = Verifier::new(policy, source, KeyCacheConfig::default()) {
            match verifier.check(text, UnixTime(1_700_000_000)) {
                Check::Done(_) => {}
                Check::NeedsKey(_) => panic!("a static key never needs a fetch"),
            }
        }
    }
});
