//! Matrix inputs: base32 room names and UVS replies (any status, any body), with and without
//! power-level sync.
#![no_main]

use gatehouse::matrix::{decide, room_id_from_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = room_id_from_name(name);
    }
    let status = data.first().map_or(200, |b| if b % 4 == 0 { 403 } else { 200 });
    let _ = decide(status, data, false);
    let _ = decide(status, data, true);
});
