//! Wallet inputs: SIWE messages, signatures, addresses, and Guild API replies. The input is
//! split at the first NUL: the part before is a SIWE message, the part after a signature text
//! (and, as raw bytes, a Guild API reply body).
#![no_main]

use gatehouse::clock::UnixTime;
use gatehouse::guild::{parse_guild, parse_membership};
use gatehouse::wallet::siwe::{Expected, SiweMessage};
use gatehouse::wallet::{recover_personal, Address, RecoverableSignature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (message, rest) = data.split_at(split);
    let rest = rest.get(1..).unwrap_or_default();
    let _ = parse_guild("guild", 200, rest);
    let _ = parse_membership(1, 200, rest);
    let (Ok(message), Ok(signature)) = (std::str::from_utf8(message), std::str::from_utf8(rest)) else {
        return;
    };
    let _ = Address::parse(signature);
    let _ = RecoverableSignature::parse(signature);
    let _ = recover_personal(message.as_bytes(), signature);
    if let Ok(parsed) = SiweMessage::parse(message) {
        // What parses must print back and parse to the same message.
        let again = SiweMessage::parse(&parsed.to_text()).expect("a printed message parses");
        assert_eq!(again.to_text(), parsed.to_text());
        let address = parsed.address;
        let expected = Expected {
            domain: &parsed.domain,
            uri: &parsed.uri,
            chain_id: parsed.chain_id,
            address: &address,
            nonce: None,
            now: UnixTime(1_700_000_000),
        };
        let _ = parsed.verify(&expected);
    }
});
