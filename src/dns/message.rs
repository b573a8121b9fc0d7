//! DNS messages (RFC 1035 §4), only as far as an SRV question needs: writing the query and
//! reading the SRV records out of the answer.
//!
//! The answer comes off the network, so reading it is bounded: every offset is checked,
//! compression pointers may only point backwards (no loops), names stay within 255 bytes, and
//! anything that does not parse is an error rather than a guess.

use super::Srv;

/// The record type of SRV (RFC 2782).
const TYPE_SRV: u16 = 33;
/// The record type of CNAME.
const TYPE_CNAME: u16 = 5;
/// The Internet class.
const CLASS_IN: u16 = 1;
/// Longest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// How many CNAME links are followed from the question to the SRV records.
const MAX_ALIASES: usize = 8;

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadAnswer {
    /// Not an answer to our question (another ID or question): ignored, as a stray datagram.
    NotOurs,
    /// The answer is cut short or breaks the format.
    Malformed(&'static str),
}

/// What the server said about the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// RCODE 0 (the records may be none) or 3, NXDOMAIN (none).
    Records {
        /// The SRV records of the name (after any CNAMEs), in the order received.
        records: Vec<Srv>,
        /// The smallest TTL among them, in seconds.
        ttl: u32,
    },
    /// The reply was cut to fit a datagram (TC): ask again over TCP.
    Truncated,
    /// Another RCODE (server failure, refused, ...): this server cannot say.
    Failed(u8),
}

/// A query for the SRV records of `name` (a DNS name, checked by the caller), with the
/// recursion-desired bit set, as a stub resolver sends it.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(18 + name.len());
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&[0x01, 0x00]); // RD
    message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, nothing else
    for label in name.trim_end_matches('.').split('.') {
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.push(0);
    message.extend_from_slice(&TYPE_SRV.to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    message
}

/// Reads the answer to [`query`]`(id, name)`.
pub fn read_answer(id: u16, name: &str, message: &[u8]) -> Result<Answer, BadAnswer> {
    let mut reader = Reader { message, at: 0 };
    if reader.u16()? != id {
        return Err(BadAnswer::NotOurs);
    }
    let flags = reader.u16()?;
    let (is_response, opcode, truncated, rcode) =
        (flags & 0x8000 != 0, (flags >> 11) & 0xf, flags & 0x0200 != 0, (flags & 0xf) as u8);
    let questions = reader.u16()?;
    let answers = reader.u16()?;
    reader.skip(4)?; // authority and additional counts: nothing there is used
    if !is_response || opcode != 0 || questions != 1 {
        return Err(BadAnswer::NotOurs);
    }
    let asked = reader.name()?;
    let (qtype, qclass) = (reader.u16()?, reader.u16()?);
    if !asked.eq_ignore_ascii_case(name.trim_end_matches('.'))
        || (qtype, qclass) != (TYPE_SRV, CLASS_IN)
    {
        return Err(BadAnswer::NotOurs);
    }
    if truncated {
        return Ok(Answer::Truncated);
    }
    match rcode {
        0 | 3 => {}
        other => return Ok(Answer::Failed(other)),
    }

    let mut aliases = vec![asked];
    let mut records = Vec::new();
    let mut ttl = u32::MAX;
    for _ in 0..answers {
        let owner = reader.name()?;
        let (rtype, class, record_ttl, length) =
            (reader.u16()?, reader.u16()?, reader.u32()?, reader.u16()? as usize);
        let end = reader.at.checked_add(length).filter(|end| *end <= message.len());
        let end = end.ok_or(BadAnswer::Malformed("record longer than the message"))?;
        let ours = class == CLASS_IN && aliases.iter().any(|a| a.eq_ignore_ascii_case(&owner));
        match rtype {
            TYPE_CNAME if ours && aliases.len() <= MAX_ALIASES => aliases.push(reader.name()?),
            TYPE_SRV if ours => {
                let (priority, weight, port) = (reader.u16()?, reader.u16()?, reader.u16()?);
                let target = reader.name()?;
                records.push(Srv { priority, weight, port, target });
                ttl = ttl.min(record_ttl);
            }
            _ => {}
        }
        if reader.at > end {
            return Err(BadAnswer::Malformed("record data overruns its length"));
        }
        reader.at = end;
    }
    Ok(Answer::Records { records, ttl: if ttl == u32::MAX { 0 } else { ttl } })
}

/// A cursor over a message; every read is bounds-checked.
struct Reader<'a> {
    message: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], BadAnswer> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.message.len());
        let end = end.ok_or(BadAnswer::Malformed("message cut short"))?;
        let bytes = &self.message[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn skip(&mut self, n: usize) -> Result<(), BadAnswer> {
        self.bytes(n).map(|_| ())
    }

    fn u16(&mut self) -> Result<u16, BadAnswer> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, BadAnswer> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name, following compression pointers (RFC 1035 §4.1.4), as dotted text without the
    /// final dot; the root is "". Pointers must point before where they are, so a chain of
    /// them ends, and any loop through a label meets the 255-byte limit; labels are kept to letters, digits, `-` and `_` so a name can be logged as is.
    fn name(&mut self) -> Result<String, BadAnswer> {
        let mut name = String::new();
        let mut at = self.at;
        let mut resume = None;
        let mut wire_length = 1;
        loop {
            let length = *self.message.get(at).ok_or(BadAnswer::Malformed("name cut short"))?;
            match length & 0xc0 {
                0x00 if length == 0 => break,
                0x00 => {
                    let start = at + 1;
                    let label = self
                        .message
                        .get(start..start + length as usize)
                        .ok_or(BadAnswer::Malformed("label cut short"))?;
                    if !label.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                    {
                        return Err(BadAnswer::Malformed(
                            "label with characters a host name has not",
                        ));
                    }
                    wire_length += 1 + label.len();
                    if wire_length > MAX_NAME {
                        return Err(BadAnswer::Malformed("name longer than 255 bytes"));
                    }
                    if !name.is_empty() {
                        name.push('.');
                    }
                    name.push_str(std::str::from_utf8(label).unwrap_or_default());
                    at = start + length as usize;
                }
                0xc0 => {
                    let low = *self
                        .message
                        .get(at + 1)
                        .ok_or(BadAnswer::Malformed("pointer cut short"))?;
                    let target = (((length & 0x3f) as usize) << 8) | low as usize;
                    if target >= at {
                        return Err(BadAnswer::Malformed(
                            "compression pointer that does not point back",
                        ));
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => return Err(BadAnswer::Malformed("unknown label type")),
            }
        }
        self.at = resume.unwrap_or(at + 1);
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "_matrix-fed._tcp.srv.test";

    /// The answer dnsmasq 2.90 gave to `query(0x1234, NAME)`: one SRV record (target
    /// fed-a.test, port 8555, TTL 0) and the target's A record as additional data.
    const DNSMASQ: &str =
        "1234858000010001000000010b5f6d61747269782d666564045f7463700373727604746573\
        740000210001c00c0021000100000000001200000000216b056665642d61047465737400c03d0001000100\
        00000000047f090909";

    fn hex(text: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(text.as_bytes()).unwrap()
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv { priority, weight, port, target: target.into() }
    }

    /// An answer to `query(7, NAME)` with the given RCODE, flags and answer records.
    fn answer(flags: u16, records: &[Vec<u8>]) -> Vec<u8> {
        let mut message = query(7, NAME);
        message[2..4].copy_from_slice(&(0x8000 | flags).to_be_bytes());
        message[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for record in records {
            message.extend_from_slice(record);
        }
        message
    }

    /// An SRV record owned by the question's name (a pointer to offset 12).
    fn srv_record(ttl: u32, priority: u16, weight: u16, port: u16, target: &[u8]) -> Vec<u8> {
        let mut record = vec![0xc0, 12, 0, 33, 0, 1];
        record.extend_from_slice(&ttl.to_be_bytes());
        record.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
        for field in [priority, weight, port] {
            record.extend_from_slice(&field.to_be_bytes());
        }
        record.extend_from_slice(target);
        record
    }

    #[test]
    fn test_query_asks_for_srv_with_recursion() {
        let expected = concat!(
            "1234",
            "0100",
            "0001",
            "0000",
            "0000",
            "0000", // ID, RD, one question
            "0b5f6d61747269782d666564",
            "045f746370",
            "03737276",
            "0474657374",
            "00", // the name
            "0021",
            "0001", // SRV, IN
        );
        assert_eq!(query(0x1234, NAME), hex(expected));
        assert_eq!(
            query(0x1234, &format!("{NAME}.")),
            query(0x1234, NAME),
            "a final dot is the root"
        );
    }

    #[test]
    fn test_reads_a_real_dnsmasq_answer() {
        assert_eq!(
            read_answer(0x1234, NAME, &hex(DNSMASQ)),
            Ok(Answer::Records { records: vec![srv(0, 0, 8555, "fed-a.test")], ttl: 0 })
        );
    }

    #[test]
    fn test_reads_several_records_and_the_smallest_ttl() {
        let message = answer(
            0,
            &[
                srv_record(300, 10, 5, 8448, b"\x01a\x04test\x00"),
                srv_record(60, 20, 0, 443, b"\x01b\xc0\x21"), // "b" + pointer to "test" in the question
            ],
        );
        assert_eq!(
            read_answer(7, NAME, &message),
            Ok(Answer::Records {
                records: vec![srv(10, 5, 8448, "a.test"), srv(20, 0, 443, "b.test")],
                ttl: 60
            })
        );
    }

    #[test]
    fn test_nxdomain_and_no_records_are_an_empty_answer() {
        assert_eq!(
            read_answer(7, NAME, &answer(3, &[])),
            Ok(Answer::Records { records: vec![], ttl: 0 })
        );
        assert_eq!(
            read_answer(7, NAME, &answer(0, &[])),
            Ok(Answer::Records { records: vec![], ttl: 0 })
        );
    }

    #[test]
    fn test_server_failures_and_truncation_are_reported() {
        assert_eq!(read_answer(7, NAME, &answer(2, &[])), Ok(Answer::Failed(2)));
        assert_eq!(read_answer(7, NAME, &answer(5, &[])), Ok(Answer::Failed(5)));
        assert_eq!(read_answer(7, NAME, &answer(0x0200, &[])), Ok(Answer::Truncated));
    }

    #[test]
    fn test_cname_to_srv_is_followed() {
        let mut cname = vec![0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 12];
        cname.extend_from_slice(b"\x05other\x04test\x00");
        // The SRV record is owned by "other.test" (the CNAME's target, at offset 43+12).
        let at = query(7, NAME).len() + 12;
        let mut record = srv_record(60, 1, 1, 9000, b"\x01t\x04test\x00");
        record[..2].copy_from_slice(&[0xc0, at as u8]);
        let message = answer(0, &[cname, record]);
        let Ok(Answer::Records { records, .. }) = read_answer(7, NAME, &message) else { panic!() };
        assert_eq!(records, vec![srv(1, 1, 9000, "t.test")]);
    }

    #[test]
    fn test_records_of_other_names_are_ignored() {
        let mut record = srv_record(60, 1, 1, 9000, b"\x01t\x04test\x00");
        record.splice(0..2, b"\x05other\x04test\x00".iter().copied());
        let message = answer(0, &[record]);
        assert_eq!(read_answer(7, NAME, &message), Ok(Answer::Records { records: vec![], ttl: 0 }));
    }

    #[test]
    fn test_answers_to_other_questions_are_not_ours() {
        let message = answer(0, &[]);
        assert_eq!(read_answer(8, NAME, &message), Err(BadAnswer::NotOurs));
        assert_eq!(read_answer(7, "_matrix._tcp.srv.test", &message), Err(BadAnswer::NotOurs));
        let mut query_back = message.clone();
        query_back[2] &= 0x7f; // a query, not a response
        assert_eq!(read_answer(7, NAME, &query_back), Err(BadAnswer::NotOurs));
    }

    #[test]
    fn test_malformed_answers_are_errors_not_panics() {
        let good = answer(0, &[srv_record(60, 1, 1, 9000, b"\x01t\x04test\x00")]);
        // Every truncation of a good answer.
        for cut in 0..good.len() {
            assert!(read_answer(7, NAME, &good[..cut]).is_err(), "cut at {cut}");
        }
        // A pointer to itself, a forward pointer, an unknown label type, a bad character.
        for target in [&b"\xc0\x3d"[..], b"\xc0\xff", b"\x80", b"\x01\x00\x00", b"\x02a.\x00"] {
            let message = answer(0, &[srv_record(60, 1, 1, 9000, target)]);
            assert!(
                matches!(read_answer(7, NAME, &message), Err(BadAnswer::Malformed(_))),
                "{target:?}"
            );
        }
        // Record data that claims less than its SRV fields use.
        let mut short = srv_record(60, 1, 1, 9000, b"\x01t\x04test\x00");
        short[11] = 2;
        assert!(read_answer(7, NAME, &answer(0, &[short])).is_err());
        // A name over 255 bytes, built from pointers back to a long label chain.
        let long: Vec<u8> =
            (0..5).flat_map(|_| [&[63u8][..], &[b'a'; 63][..]].concat()).chain([0]).collect();
        let message = answer(0, &[srv_record(60, 1, 1, 9000, &long)]);
        assert!(matches!(read_answer(7, NAME, &message), Err(BadAnswer::Malformed(_))));
    }
}
