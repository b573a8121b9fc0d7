use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;

use super::challenge::{Binding, ChallengeError, ChallengeStore};
use super::siwe::{format_time, parse_time, Expected, SiweError, SiweMessage};
use super::*;
use crate::clock::UnixTime;

/// A test key derived from a label: never a real wallet.
fn key(label: &str) -> SigningKey {
    SigningKey::from_slice(&Keccak256::digest(label.as_bytes())).unwrap()
}

fn address_of(key: &SigningKey) -> Address {
    Address::from_public_key(key.verifying_key())
}

/// `personal_sign` as a wallet does it: r ‖ s ‖ (27 + recovery id), low s.
fn personal_sign(key: &SigningKey, message: &str) -> Vec<u8> {
    let (signature, recovery_id) =
        key.sign_prehash_recoverable(&personal_digest(message.as_bytes()));
    let mut bytes = signature.to_bytes().to_vec();
    bytes.push(27 + recovery_id.to_byte());
    bytes
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", encode_hex(bytes))
}

#[test]
fn test_published_personal_sign_vectors_recover_their_addresses() {
    let vectors = [
        (
            "hello world",
            "0xddd0a7290af9526056b4e35a077b9a11b513aa0028ec6c9880948544508f3c63265e99e47ad31bb2cab9646c504576b3abc6939a1710afc08cbf3034d73214b81c",
            "0x14791697260E4c9A71f18484C9f997B308e59325",
        ),
        (
            "Some data",
            "0xb91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a0291c",
            "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
        ),
    ];
    for (message, signature, address) in vectors {
        let recovered = recover_personal(message.as_bytes(), signature).unwrap();
        assert_eq!(recovered.to_checksum(), address, "{message}");
        verify_personal(message.as_bytes(), signature, &Address::parse(address).unwrap()).unwrap();
    }
}

#[test]
fn test_eip55_examples() {
    for example in [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0xde709f2102306220921060314715629080e2fb77",
    ] {
        let address = Address::parse(example).unwrap();
        assert_eq!(address.to_checksum(), example);
        assert_eq!(Address::parse(&example.to_lowercase()).unwrap(), address);
    }
    let wrong = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
    assert!(matches!(Address::parse(wrong), Err(WalletError::BadChecksum(_))));
    for bad in [
        "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        "0x1234",
        "0xzzeb6053f3e94c9b9a09f33669435e7ef1beaed",
        "",
    ] {
        assert!(matches!(Address::parse(bad), Err(WalletError::BadAddress(_))), "{bad}");
    }
}

#[test]
fn test_generated_keys_sign_and_recover_with_either_v_encoding() {
    let key = key("alice");
    let mut signature = personal_sign(&key, "hi there");
    assert_eq!(recover_personal(b"hi there", &hex(&signature)).unwrap(), address_of(&key));
    signature[64] -= 27; // 0/1, as some hardware wallets send
    assert_eq!(recover_personal(b"hi there", &hex(&signature)).unwrap(), address_of(&key));
}

/// EIP-2098: r ‖ (yParity << 255 | s).
fn compact(signature: &[u8]) -> Vec<u8> {
    let mut out = signature[..64].to_vec();
    if signature[64].is_multiple_of(2) {
        out[32] |= 0x80; // v 28 (or 1): parity 1
    }
    out
}

#[test]
fn test_eip2098_compact_signatures_recover_like_their_long_form() {
    let key = key("alice");
    // Enough messages that both parities occur.
    let mut parities = [false; 2];
    for i in 0..16 {
        let text = format!("message {i}");
        let long = personal_sign(&key, &text);
        parities[usize::from(long[64] - 27)] = true;
        let short = compact(&long);
        assert_eq!(short.len(), 64);
        assert_eq!(recover_personal(text.as_bytes(), &hex(&short)).unwrap(), address_of(&key));
        // The other parity is another key: never the signer.
        let mut flipped = short.clone();
        flipped[32] ^= 0x80;
        assert_ne!(recover_personal(text.as_bytes(), &hex(&flipped)).ok(), Some(address_of(&key)));
    }
    assert_eq!(parities, [true, true], "both parities tried");
    // The strictness rules hold for the compact form too: zero r, zero s, high s.
    let good = compact(&personal_sign(&key, "m"));
    let mut zero_r = good.clone();
    zero_r[..32].fill(0);
    assert_eq!(RecoverableSignature::from_bytes(&zero_r).unwrap_err(), WalletError::ZeroR);
    let mut zero_s = good.clone();
    zero_s[32..].fill(0);
    assert_eq!(RecoverableSignature::from_bytes(&zero_s).unwrap_err(), WalletError::ZeroS);
    let mut high = good.clone();
    high[32..].copy_from_slice(&HALF_ORDER);
    high[63] += 1;
    assert_eq!(RecoverableSignature::from_bytes(&high).unwrap_err(), WalletError::HighS);
}

#[test]
fn test_tampered_message_and_wrong_signer_are_refused() {
    let alice = key("alice");
    let signature = hex(&personal_sign(&alice, "join room a"));
    let recovered = recover_personal(b"join room b", &signature).unwrap();
    assert_ne!(recovered, address_of(&alice));
    let error = verify_personal(b"join room b", &signature, &address_of(&alice)).unwrap_err();
    assert!(matches!(error, WalletError::WrongSigner { .. }));
    let bob = address_of(&key("bob"));
    assert!(matches!(
        verify_personal(b"join room a", &signature, &bob),
        Err(WalletError::WrongSigner { .. })
    ));
}

#[test]
fn test_malformed_signatures_have_distinct_errors() {
    let good = personal_sign(&key("alice"), "m");
    let parse = |bytes: &[u8]| RecoverableSignature::from_bytes(bytes).unwrap_err();
    assert_eq!(parse(&good[..63]), WalletError::BadLength { len: 63 });
    assert_eq!(parse(&[good.as_slice(), &[0]].concat()), WalletError::BadLength { len: 66 });
    assert_eq!(parse(&[]), WalletError::BadLength { len: 0 });
    for v in [2u8, 26, 29, 35, 255] {
        let mut bad = good.clone();
        bad[64] = v;
        assert_eq!(parse(&bad), WalletError::BadV { v });
    }
    let mut zero_r = good.clone();
    zero_r[..32].fill(0);
    assert_eq!(parse(&zero_r), WalletError::ZeroR);
    let mut zero_s = good.clone();
    zero_s[32..64].fill(0);
    assert_eq!(parse(&zero_s), WalletError::ZeroS);
    let mut big_r = good.clone();
    big_r[..32].copy_from_slice(&ORDER);
    assert_eq!(parse(&big_r), WalletError::ROverflow);
    let mut big_s = good.clone();
    big_s[32..64].fill(0xff);
    assert_eq!(parse(&big_s), WalletError::SOverflow);
    assert_eq!(RecoverableSignature::parse("0xnothex").unwrap_err(), WalletError::NotHex);
    assert_eq!(RecoverableSignature::parse("0x123").unwrap_err(), WalletError::NotHex);
}

#[test]
fn test_high_s_twin_of_a_valid_signature_is_refused() {
    let key = key("alice");
    let good = personal_sign(&key, "m");
    // (r, n - s, v ^ 1) is the same signature to the curve: refusing it is the EIP-2 rule.
    let mut twin = good.clone();
    let s: [u8; 32] = good[32..64].try_into().unwrap();
    twin[32..64].copy_from_slice(&sub(&ORDER, &s));
    twin[64] = if good[64] == 27 { 28 } else { 27 };
    assert_eq!(RecoverableSignature::from_bytes(&twin).unwrap_err(), WalletError::HighS);
    // Just above n/2 is high; n/2 itself is the largest low s.
    let mut edge = good.clone();
    edge[32..64].copy_from_slice(&HALF_ORDER);
    assert_ne!(RecoverableSignature::from_bytes(&edge).err(), Some(WalletError::HighS));
    let mut above = HALF_ORDER;
    above[31] += 1;
    edge[32..64].copy_from_slice(&above);
    assert_eq!(RecoverableSignature::from_bytes(&edge).unwrap_err(), WalletError::HighS);
}

/// a - b for 256-bit big-endian numbers, a ≥ b.
fn sub(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = a[i] as i16 - b[i] as i16 - borrow;
        borrow = if d < 0 { 1 } else { 0 };
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

// --- SIWE ---------------------------------------------------------------------------------

const NOW: UnixTime = UnixTime(1_780_000_000);

fn message(address: Address) -> SiweMessage {
    SiweMessage {
        scheme: None,
        domain: "meet.example.org".into(),
        address,
        statement: Some("Join room standup, gated by guild our-guild.".into()),
        uri: "https://meet.example.org/standup".into(),
        chain_id: 1,
        nonce: "0123456789abcdef".into(),
        issued_at: NOW,
        expiration_time: Some(UnixTime(NOW.0 + 300)),
        not_before: None,
        request_id: None,
        resources: vec![],
    }
}

fn expected(address: &Address) -> Expected<'_> {
    Expected {
        domain: "meet.example.org",
        uri: "https://meet.example.org/standup",
        chain_id: 1,
        address,
        nonce: Some("0123456789abcdef"),
        now: NOW,
    }
}

#[test]
fn test_siwe_text_has_the_eip4361_layout_and_round_trips() {
    let address = Address::parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").unwrap();
    let mut built = message(address);
    let text = built.to_text();
    let times = format!(
        "Issued At: {}\nExpiration Time: {}",
        format_time(NOW),
        format_time(UnixTime(NOW.0 + 300))
    );
    assert_eq!(
        text,
        format!(
            "meet.example.org wants you to sign in with your Ethereum account:\n\
             0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n\nJoin room standup, gated by guild \
             our-guild.\n\nURI: https://meet.example.org/standup\nVersion: 1\nChain ID: 1\n\
             Nonce: 0123456789abcdef\n{times}"
        )
    );
    assert_eq!(SiweMessage::parse(&text).unwrap(), built);
    built.statement = None;
    built.not_before = Some(NOW);
    built.request_id = Some("req-1".into());
    built.resources = vec!["https://a.example/x".into(), "ipfs://bafy".into()];
    assert_eq!(SiweMessage::parse(&built.to_text()).unwrap(), built);
    built.verify(&expected(&address)).unwrap();
}

#[test]
fn test_optional_scheme_before_the_domain_is_eip4361_and_must_be_the_sites() {
    let address = address_of(&key("alice"));
    let with_scheme = SiweMessage { scheme: Some("https".into()), ..message(address) };
    let text = with_scheme.to_text();
    assert!(text.starts_with("https://meet.example.org wants you to sign in"), "{text}");
    let parsed = SiweMessage::parse(&text).unwrap();
    assert_eq!(parsed, with_scheme);
    parsed.verify(&expected(&address)).unwrap();
    let other = SiweMessage { scheme: Some("http".into()), ..message(address) };
    assert_eq!(
        SiweMessage::parse(&other.to_text()).unwrap().verify(&expected(&address)),
        Err(SiweError::Mismatch { field: "scheme" })
    );
}

#[test]
fn test_rfc3339_times() {
    assert_eq!(format_time(UnixTime(0)), "1970-01-01T00:00:00Z");
    assert_eq!(parse_time("2021-09-30T16:25:24Z"), Some(UnixTime(1_633_019_124)));
    assert_eq!(parse_time("2021-09-30T16:25:24.123Z"), Some(UnixTime(1_633_019_124)));
    assert_eq!(parse_time("2021-09-30T18:25:24+02:00"), Some(UnixTime(1_633_019_124)));
    assert_eq!(parse_time(&format_time(NOW)), Some(NOW));
    for bad in [
        "2021-09-30 16:25:24Z",
        "2021-02-30T16:25:24Z",
        "2021-09-30T16:25:24",
        "2021-09-30T16:25:24+2:00",
        "2021-09-30T16:25:24+02:+0",
        "+021-09-30T16:25:24Z",
        "2021-09-30T16:25:24.Z",
        "2021-09-30T16:25:2éZ",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

#[test]
fn test_malformed_siwe_fields_have_distinct_errors() {
    let address = address_of(&key("alice"));
    let text = message(address).to_text();
    let checksum = address.to_checksum();
    let cases: Vec<(String, SiweError)> = vec![
        (text.replace('\n', "\r\n"), SiweError::CarriageReturn),
        (text.replace("wants you to sign in", "wants you to log in"), SiweError::BadHeader),
        (text.replacen("meet.example.org", "meet example", 1), SiweError::BadDomain),
        (text.replacen("meet.example.org", "", 1), SiweError::BadDomain),
        (text.replace(&checksum, &checksum.to_lowercase()), SiweError::BadAddress),
        (text.replace(&checksum, "0x1234"), SiweError::BadAddress),
        (text.replace(".\n\nURI", ".\nURI"), SiweError::BadStatement),
        (text.replace("room standup", "room caf%C3%A9"), SiweError::BadStatement),
        (text.replace("room standup", "room café"), SiweError::BadStatement),
        (text.replace("room standup", "room a\tb"), SiweError::BadStatement),
        (text.replace("room standup", "room \"x\""), SiweError::BadStatement),
        (text.replacen("meet.example.org", "https//meet.example.org", 1), SiweError::BadDomain),
        (text.replacen("meet.example.org", "1http://meet.example.org", 1), SiweError::BadDomain),
        (text.replacen("meet.example.org", "https://", 1), SiweError::BadDomain),
        (text.replace("example.org/standup", "example.org/café"), SiweError::BadUri),
        (text.replace("example.org/standup", "example.org/100%"), SiweError::BadUri),
        (text.replace("example.org/standup", "example.org/a%zz"), SiweError::BadUri),
        (
            text.replace("URI: https://meet.example.org/standup", "URI: not a uri"),
            SiweError::BadUri,
        ),
        (text.replace("URI: ", "Uri: "), SiweError::BadUri),
        (text.replace("Version: 1", "Version: 2"), SiweError::BadVersion),
        (text.replace("Chain ID: 1", "Chain ID: one"), SiweError::BadChainId),
        (text.replace("Chain ID: 1", "Chain ID: -1"), SiweError::BadChainId),
        (text.replace("0123456789abcdef", "short"), SiweError::BadNonce),
        (text.replace("0123456789abcdef", "0123456789-bcdef"), SiweError::BadNonce),
        (text.replace("Issued At: 20", "Issued At: x0"), SiweError::BadIssuedAt),
        (
            text.replace("Expiration Time: 20", "Expiration Time: yesterday 20"),
            SiweError::BadExpirationTime,
        ),
        (format!("{text}\nNot Before: soon"), SiweError::BadNotBefore),
        (format!("{text}\nRequest ID: a\tb"), SiweError::BadRequestId),
        (format!("{text}\nResources:\n* https://x.example"), SiweError::BadResources),
        (format!("{text}\n"), SiweError::TrailingText),
        (format!("{text}\nExtra: field"), SiweError::TrailingText),
    ];
    for (bad, error) in cases {
        assert_eq!(SiweMessage::parse(&bad), Err(error.clone()), "{error:?}:\n{bad}");
    }
}

#[test]
fn test_siwe_fields_are_checked_against_the_server() {
    let address = address_of(&key("alice"));
    let m = message(address);
    let ok = expected(&address);
    m.verify(&ok).unwrap();
    let mismatch = |field| Err(SiweError::Mismatch { field });
    assert_eq!(m.verify(&Expected { domain: "evil.example", ..ok.clone() }), mismatch("domain"));
    assert_eq!(
        m.verify(&Expected { uri: "https://meet.example.org/other", ..ok.clone() }),
        mismatch("URI")
    );
    assert_eq!(m.verify(&Expected { chain_id: 10, ..ok.clone() }), mismatch("Chain ID"));
    assert_eq!(
        m.verify(&Expected { nonce: Some("ffffffffffffffff"), ..ok.clone() }),
        mismatch("Nonce")
    );
    let bob = address_of(&key("bob"));
    assert_eq!(m.verify(&Expected { address: &bob, ..ok.clone() }), mismatch("address"));
    assert_eq!(
        m.verify(&Expected { now: UnixTime(NOW.0 + 300), ..ok.clone() }),
        Err(SiweError::Expired)
    );
    assert_eq!(
        m.verify(&Expected { now: UnixTime(NOW.0 - 61), ..ok.clone() }),
        Err(SiweError::NotYetValid)
    );
    let later = SiweMessage { not_before: Some(UnixTime(NOW.0 + 10)), ..m.clone() };
    assert_eq!(later.verify(&ok), Err(SiweError::NotYetValid));
}

// --- challenges and the whole proof ----------------------------------------------------------

const ROOM: &str = "standup@conference.meet.example.org";
const ALICE_JID: &str = "alice@meet.example.org";

fn venue() -> Venue<'static> {
    Venue {
        domain: "meet.example.org",
        uri: "https://meet.example.org/standup",
        chain_id: 1,
        room: ROOM,
        requester: ALICE_JID,
    }
}

fn store() -> ChallengeStore {
    ChallengeStore::new(Duration::from_secs(300), 100, 8)
}

fn bind<'a>(requester: &'a str, room: &'a str, address: &'a Address) -> Binding<'a> {
    Binding { requester, room, address }
}

/// A challenge issued at `now` to Alice's session and the SIWE text for it, as the plugin
/// builds them.
fn challenge_text(store: &ChallengeStore, address: Address, now: UnixTime, t: Instant) -> String {
    let issued = store.issue(bind(ALICE_JID, ROOM, &address), now, t).unwrap();
    assert!(issued.nonce.len() >= 8 && issued.nonce.bytes().all(|b| b.is_ascii_alphanumeric()));
    SiweMessage {
        nonce: issued.nonce,
        issued_at: now,
        expiration_time: Some(issued.expires),
        ..message(address)
    }
    .to_text()
}

/// What the plugin does for an admission: check, then spend.
fn admit(
    store: &ChallengeStore,
    proof: &Proof<'_>,
    venue: &Venue<'_>,
    now: UnixTime,
    t: Instant,
) -> Result<Address, ProofError> {
    let checked = check_proof(store, proof, venue, now, t)?;
    store
        .spend(&checked.nonce, venue.binding(&checked.address), now, t)
        .map_err(ProofError::Challenge)?;
    Ok(checked.address)
}

#[test]
fn test_proof_admits_once_then_is_a_replay() {
    let store = store();
    let alice = key("alice");
    let address = address_of(&alice);
    let t = Instant::now();
    let text = challenge_text(&store, address, NOW, t);
    let signature = hex(&personal_sign(&alice, &text));
    let claimed = address.to_checksum();
    let proof = Proof { message: &text, signature: &signature, address: &claimed };
    assert_eq!(admit(&store, &proof, &venue(), NOW, t), Ok(address));
    let replay = admit(&store, &proof, &venue(), UnixTime(NOW.0 + 1), t).unwrap_err();
    assert_eq!(replay, ProofError::Challenge(ChallengeError::Used));
    assert_eq!(replay.condition(), "used-challenge");
}

#[test]
fn test_a_checked_proof_is_not_spent_until_the_caller_says_so() {
    // The Guild API is asked between check and spend: an outage must not cost the challenge.
    let store = store();
    let alice = key("alice");
    let address = address_of(&alice);
    let t = Instant::now();
    let text = challenge_text(&store, address, NOW, t);
    let signature = hex(&personal_sign(&alice, &text));
    let claimed = address.to_checksum();
    let proof = Proof { message: &text, signature: &signature, address: &claimed };
    let first = check_proof(&store, &proof, &venue(), NOW, t).unwrap();
    let again = check_proof(&store, &proof, &venue(), NOW, t).unwrap();
    assert_eq!(first, again);
    // Two joins racing with one proof: only one spend succeeds.
    let binding = venue().binding(&address);
    assert_eq!(store.spend(&first.nonce, binding, NOW, t), Ok(()));
    assert_eq!(store.spend(&again.nonce, binding, NOW, t), Err(ChallengeError::Used));
}

#[test]
fn test_compact_signature_and_scheme_prefixed_message_prove() {
    let store = store();
    let alice = key("alice");
    let address = address_of(&alice);
    let t = Instant::now();
    let ours = challenge_text(&store, address, NOW, t);
    // What a SIWE library makes of the same fields with `scheme: "https"`.
    let theirs = format!("https://{ours}");
    let signature = hex(&compact(&personal_sign(&alice, &theirs)));
    let claimed = address.to_checksum();
    let proof = Proof { message: &theirs, signature: &signature, address: &claimed };
    assert_eq!(admit(&store, &proof, &venue(), NOW, t), Ok(address));
}

#[test]
fn test_proof_refusals_are_distinct() {
    let store = store();
    let alice = key("alice");
    let address = address_of(&alice);
    let claimed = address.to_checksum();
    let t = Instant::now();

    // Signed by someone else: a final refusal, which spends the challenge.
    let text = challenge_text(&store, address, NOW, t);
    let mallory = hex(&personal_sign(&key("mallory"), &text));
    let wrong = admit(
        &store,
        &Proof { message: &text, signature: &mallory, address: &claimed },
        &venue(),
        NOW,
        t,
    );
    assert_eq!(wrong.unwrap_err().condition(), "bad-signature");
    let good = hex(&personal_sign(&alice, &text));
    let after = admit(
        &store,
        &Proof { message: &text, signature: &good, address: &claimed },
        &venue(),
        NOW,
        t,
    );
    assert_eq!(after, Err(ProofError::Challenge(ChallengeError::Used)));

    // Expired: past the challenge's lifetime (the message says so before the store does).
    let text = challenge_text(&store, address, NOW, t);
    let signature = hex(&personal_sign(&alice, &text));
    let proof = Proof { message: &text, signature: &signature, address: &claimed };
    let late = admit(&store, &proof, &venue(), UnixTime(NOW.0 + 300), t).unwrap_err();
    assert_eq!(late, ProofError::Message(SiweError::Expired));
    assert_eq!(late.condition(), "expired-challenge");
    assert_eq!(
        store.check(
            &SiweMessage::parse(&text).unwrap().nonce,
            venue().binding(&address),
            UnixTime(NOW.0 + 300),
            t
        ),
        Err(ChallengeError::Expired)
    );

    // Not yet valid: a clock far behind the issue time.
    let early = admit(&store, &proof, &venue(), UnixTime(NOW.0 - 3600), t).unwrap_err();
    assert_eq!(early, ProofError::Message(SiweError::NotYetValid));

    // A nonce the server never issued.
    let forged = message(address).to_text();
    let signature = hex(&personal_sign(&alice, &forged));
    let unknown = admit(
        &store,
        &Proof { message: &forged, signature: &signature, address: &claimed },
        &venue(),
        NOW,
        t,
    );
    assert_eq!(unknown.unwrap_err(), ProofError::Challenge(ChallengeError::Unknown));

    // Another user, room, address, a malformed address, a tampered message, another URI:
    // none of these spends the challenge.
    let text = challenge_text(&store, address, NOW, t);
    let signature = hex(&personal_sign(&alice, &text));
    let proof = Proof { message: &text, signature: &signature, address: &claimed };
    let other_user = Venue { requester: "mallory@meet.example.org", ..venue() };
    assert_eq!(
        admit(&store, &proof, &other_user, NOW, t).unwrap_err(),
        ProofError::Challenge(ChallengeError::WrongRequester)
    );
    let other_room = Venue { room: "other@conference.meet.example.org", ..venue() };
    assert_eq!(
        admit(&store, &proof, &other_room, NOW, t).unwrap_err(),
        ProofError::Challenge(ChallengeError::WrongRoom)
    );
    let bob_key = key("bob");
    let bob = address_of(&bob_key).to_checksum();
    let bob_text = text.replace(&claimed, &bob);
    let bob_signature = hex(&personal_sign(&bob_key, &bob_text));
    let as_bob = Proof { message: &bob_text, signature: &bob_signature, address: &bob };
    assert_eq!(
        admit(&store, &as_bob, &venue(), NOW, t).unwrap_err(),
        ProofError::Challenge(ChallengeError::WrongAddress)
    );
    let as_junk = Proof { address: "0xjunk", ..proof };
    assert!(matches!(admit(&store, &as_junk, &venue(), NOW, t), Err(ProofError::Address(_))));
    let other_uri = Venue { uri: "https://meet.example.org/other", ..venue() };
    assert_eq!(
        admit(&store, &proof, &other_uri, NOW, t).unwrap_err(),
        ProofError::Message(SiweError::Mismatch { field: "URI" })
    );
    // After all those refusals the challenge is still good.
    assert!(admit(&store, &proof, &venue(), NOW, t).is_ok());
    // A tampered message is a bad signature over a live challenge: final.
    let text = challenge_text(&store, address, NOW, t);
    let signature = hex(&personal_sign(&alice, &text));
    let tampered = text.replace("Join room standup", "Join room standby");
    let changed = Proof { message: &tampered, signature: &signature, address: &claimed };
    assert!(matches!(
        admit(&store, &changed, &venue(), NOW, t),
        Err(ProofError::Signature(WalletError::WrongSigner { .. }))
    ));
}

#[test]
fn test_challenges_are_random_and_forgotten_at_expiry() {
    let store = store();
    let address = address_of(&key("alice"));
    let t = Instant::now();
    let a = store.issue(bind(ALICE_JID, ROOM, &address), NOW, t).unwrap();
    let b = store
        .issue(bind(ALICE_JID, "other@conference.meet.example.org", &address), NOW, t)
        .unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(a.expires, UnixTime(NOW.0 + 300));
    assert_eq!(store.len(), 2);
    let later = t + Duration::from_secs(301);
    assert_eq!(
        store.check(&a.nonce, bind(ALICE_JID, ROOM, &address), UnixTime(NOW.0 + 301), later),
        Err(ChallengeError::Unknown)
    );
    assert_eq!(store.len(), 0, "expired challenges leave the store");
}

#[test]
fn test_one_live_challenge_per_user_room_and_address() {
    let store = store();
    let address = address_of(&key("alice"));
    let t = Instant::now();
    let binding = bind(ALICE_JID, ROOM, &address);
    let first = store.issue(binding, NOW, t).unwrap();
    let second = store.issue(binding, NOW, t).unwrap();
    assert_eq!(store.check(&first.nonce, binding, NOW, t), Err(ChallengeError::Unknown));
    assert_eq!(store.check(&second.nonce, binding, NOW, t), Ok(()));
    assert_eq!(store.len(), 1);
}

#[test]
fn test_no_flood_by_other_users_makes_a_live_challenge_fail() {
    // The report: 12,000 requests turned a victim's signed, unexpired challenge into "Unknown
    // challenge". Here a flooder loses only their own entries, and a full store refuses new
    // challenges instead of evicting anyone's.
    let store = ChallengeStore::new(Duration::from_secs(300), 1_000, 8);
    let t = Instant::now();
    let victim = address_of(&key("victim"));
    let theirs = store.issue(bind(ALICE_JID, ROOM, &victim), NOW, t).unwrap();
    // One flooder, any address, any room, many times: their own budget, never more.
    for i in 0..12_000u32 {
        let target = if i % 2 == 0 { victim } else { Address([(i % 251) as u8; 20]) };
        store.issue(bind("mallory@meet.example.org", ROOM, &target), NOW, t).unwrap();
    }
    assert_eq!(store.len(), 1 + 8);
    // Many flooders: the store fills, then refuses; the victim's challenge stands.
    let mut refused = 0;
    for i in 0..2_000u32 {
        let flooder = format!("flooder{i}@meet.example.org");
        if store.issue(bind(&flooder, ROOM, &victim), NOW, t) == Err(ChallengeError::Full) {
            refused += 1;
        }
    }
    assert_eq!(store.len(), 1_000, "memory stays bounded");
    assert_eq!(refused, 2_000 - (1_000 - 9));
    assert_eq!(store.check(&theirs.nonce, bind(ALICE_JID, ROOM, &victim), NOW, t), Ok(()));
    // Once the flood expires there is room again.
    let later = t + Duration::from_secs(301);
    assert!(store
        .issue(bind("late@meet.example.org", ROOM, &victim), UnixTime(NOW.0 + 301), later)
        .is_ok());
    assert_eq!(store.len(), 1);
}

#[test]
fn test_store_operations_do_not_grow_with_the_store() {
    // O(1)/O(log n): the time per issue in a full store of 100,000 stays within a small factor
    // of that in a store of 1,000 (the old linear eviction scanned the whole store: ×100).
    let per_issue = |capacity: usize| {
        let store = ChallengeStore::new(Duration::from_secs(300), capacity, 8);
        let t = Instant::now();
        for i in 0..capacity {
            let user = format!("u{i}");
            store.issue(bind(&user, ROOM, &Address([1; 20])), NOW, t).unwrap();
        }
        let started = Instant::now();
        for i in 0..2_000usize {
            let user = format!("u{}", i % 100);
            let _ = store.issue(bind(&user, ROOM, &Address([(i % 256) as u8; 20])), NOW, t);
            let _ = store.check("0123456789abcdef", bind(&user, ROOM, &Address([1; 20])), NOW, t);
        }
        assert_eq!(store.len(), capacity);
        started.elapsed()
    };
    let small = per_issue(1_000);
    let large = per_issue(100_000);
    assert!(large < small * 10 + Duration::from_millis(50), "1k: {small:?}, 100k: {large:?}");
}
