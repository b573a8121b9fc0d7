//! Key material from remote servers: JWKS documents and PEM files, for every algorithm.
#![no_main]

use gatehouse::keys::{parse_jwks, parse_pem};
use gatehouse::token::Algorithm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for algorithm in [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let _ = parse_jwks(algorithm, data);
        let _ = parse_pem(algorithm, data);
    }
});
