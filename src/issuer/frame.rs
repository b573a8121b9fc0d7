//! Requests on the wire: one JSON object per frame, ended by NUL or by a newline.
//!
//! Upstream only split on NUL although its README promises newline too, so line-oriented
//! clients hung; both end a frame here. Empty (or whitespace-only) frames are skipped, which
//! also swallows the `\n\0` pair a client may echo back in upstream's own response style.

use std::fmt;

/// The default largest frame, in bytes: a request is a few hundred bytes; 8 KiB leaves room
/// for long display names and avatar URLs without letting a client make us buffer megabytes.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024;

/// A frame grew past the limit. The connection must be closed: the rest of the stream cannot
/// be re-synchronised reliably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// The limit, in bytes.
    pub max: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request frame exceeds {} bytes; closing the connection", self.max)
    }
}

impl std::error::Error for FrameTooLarge {}

/// Splits a byte stream into frames, whatever the reads' boundaries are.
#[derive(Debug)]
pub struct Framer {
    pending: Vec<u8>,
    max: usize,
    failed: bool,
}

impl Framer {
    /// A framer refusing frames longer than `max` bytes (terminator excluded).
    pub fn new(max: usize) -> Self {
        Framer { pending: Vec::new(), max, failed: false }
    }

    /// Appends `data` and moves every frame it completes into `frames`, in order. Frames
    /// completed before an oversized one are still delivered; then the error says to close.
    /// Once failed, the framer stays failed and delivers nothing more.
    pub fn push(&mut self, data: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), FrameTooLarge> {
        if self.failed {
            return Err(FrameTooLarge { max: self.max });
        }
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == 0 || b == b'\n') {
            if self.pending.len() + end > self.max {
                return Err(self.fail());
            }
            self.pending.extend_from_slice(&rest[..end]);
            let frame = std::mem::take(&mut self.pending);
            if !frame.iter().all(u8::is_ascii_whitespace) {
                frames.push(frame);
            }
            rest = &rest[end + 1..];
        }
        if self.pending.len() + rest.len() > self.max {
            return Err(self.fail());
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Bytes of an unfinished frame held back for the next read.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn fail(&mut self) -> FrameTooLarge {
        self.failed = true;
        self.pending = Vec::new();
        FrameTooLarge { max: self.max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_all(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for chunk in chunks {
            framer.push(chunk, &mut frames).unwrap();
        }
        frames
    }

    #[test]
    fn test_nul_and_newline_both_end_a_frame() {
        let mut framer = Framer::new(64);
        let frames = push_all(&mut framer, &[b"{\"a\":1}\0{\"b\":2}\n"]);
        assert_eq!(frames, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        assert_eq!(framer.pending(), 0);
    }

    #[test]
    fn test_frame_split_across_reads_is_joined() {
        let mut framer = Framer::new(64);
        let frames = push_all(&mut framer, &[b"{\"cha", b"nnel\":", b"\"r1\"}", b"\0"]);
        assert_eq!(frames, vec![b"{\"channel\":\"r1\"}".to_vec()]);
    }

    #[test]
    fn test_partial_frame_waits_for_its_terminator() {
        let mut framer = Framer::new(64);
        let frames = push_all(&mut framer, &[b"{\"a\":1}\0{\"b\""]);
        assert_eq!(frames, vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(framer.pending(), 4);
        let frames = push_all(&mut framer, &[b":2}\n"]);
        assert_eq!(frames, vec![b"{\"b\":2}".to_vec()]);
    }

    #[test]
    fn test_merged_frames_in_one_read_come_out_in_order() {
        let mut framer = Framer::new(64);
        let frames = push_all(&mut framer, &[b"1\n2\n3\0"]);
        assert_eq!(frames, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    }

    #[test]
    fn test_empty_and_blank_frames_are_skipped() {
        let mut framer = Framer::new(64);
        // `\n\0` after a frame (upstream's response style), CRLF line ends, stray NULs.
        let frames = push_all(&mut framer, &[b"{}\n\0\0\r\n  \n{}\r\n"]);
        assert_eq!(frames, vec![b"{}".to_vec(), b"{}\r".to_vec()]);
    }

    #[test]
    fn test_frame_at_the_limit_passes_and_one_byte_more_fails() {
        let mut framer = Framer::new(4);
        assert_eq!(push_all(&mut framer, &[b"abcd\n"]), vec![b"abcd".to_vec()]);
        let mut frames = Vec::new();
        assert_eq!(framer.push(b"abcde\n", &mut frames), Err(FrameTooLarge { max: 4 }));
        assert!(frames.is_empty());
    }

    #[test]
    fn test_unterminated_oversized_frame_fails_before_its_end_arrives() {
        let mut framer = Framer::new(8);
        let mut frames = Vec::new();
        framer.push(b"12345", &mut frames).unwrap();
        assert_eq!(framer.push(b"6789", &mut frames), Err(FrameTooLarge { max: 8 }));
        assert_eq!(framer.pending(), 0, "nothing kept once failed");
    }

    #[test]
    fn test_frames_before_an_oversized_one_are_delivered_then_it_stays_failed() {
        let mut framer = Framer::new(8);
        let mut frames = Vec::new();
        let result = framer.push(b"ok\0this one is far too long\0later\0", &mut frames);
        assert!(result.is_err());
        assert_eq!(frames, vec![b"ok".to_vec()]);
        frames.clear();
        assert!(framer.push(b"x\0", &mut frames).is_err());
        assert!(frames.is_empty());
    }

    #[test]
    fn test_error_text_names_the_limit() {
        assert_eq!(
            FrameTooLarge { max: 8192 }.to_string(),
            "request frame exceeds 8192 bytes; closing the connection"
        );
    }
}
