//! Chat Admin Server protocol: arbitrary bytes fed to one connection in arbitrary chunks
//! (the first byte picks the chunk size), so framing, parsing and minting all see them.
#![no_main]

use std::sync::Arc;

use gatehouse::clock::UnixTime;
use gatehouse::issuer::{Issuer, IssuerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let mut config = IssuerConfig::new("fuzz", b"fuzz-secret".to_vec(), "meet.test");
    config.max_frame_bytes = 512;
    let Ok(issuer) = Issuer::new(config) else { return };
    let issuer = Arc::new(issuer);
    let mut connection = issuer.connection();
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        let _ = connection.feed(piece, UnixTime(1_700_000_000));
    }
});
