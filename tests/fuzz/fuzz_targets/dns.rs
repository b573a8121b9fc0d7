//! DNS answers off the network, as the SRV lookup of Matrix server discovery reads them: any
//! bytes, as the answer to a fixed question (the ID taken from the input, so the reader gets past
//! the header check). Every outcome is fine but a panic; names read are host-name text.
#![no_main]

use gatehouse::dns::message::{read_answer, Answer};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "_matrix-fed._tcp.example.org";

fuzz_target!(|data: &[u8]| {
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    if let Ok(Answer::Records { records, .. }) = read_answer(id, NAME, data) {
        for record in records {
            assert!(record.target.len() <= 255);
            assert!(record.target.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        }
    }
});
