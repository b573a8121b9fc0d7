//! Lua 5.4 pattern matching (`string.match` semantics) with a bounded cost.
//!
//! Jitsi's token auth lets a JWT `room` claim be a Lua pattern matched against the room name.
//! This module is a port of `match`/`do_match` from Lua 5.4's `lstrlib.c`, working on bytes with
//! the C locale's character classes (and the deprecated `%z`), so answers agree with the real
//! interpreter.
//!
//! Because the pattern comes from a token, evaluation is bounded by a [`Budget`]: pattern length
//! and quantifier count are checked before matching, every matcher step spends one unit of a
//! step budget, and recursion is capped like Lua's `MAXCCALLS` (200). Errors Lua would raise
//! become [`PatternError::Malformed`]. As in Lua, a malformed part is only reported when the
//! matcher reaches it: `"(a"` against `"b"` is no match, against `"a"` it is an error.

use std::fmt;

/// Most captures in one pattern, as Lua's `LUA_MAXCAPTURES`.
const MAX_CAPTURES: usize = 32;
/// Deepest nesting of matcher calls, as `lstrlib.c`'s `MAXCCALLS`.
const MAX_CALLS: usize = 200;
const L_ESC: u8 = b'%';

/// Limits on the cost of evaluating one pattern taken from an untrusted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Longest accepted pattern, in bytes. Defaults to 128.
    pub max_pattern_len: usize,
    /// Most quantifiers accepted (as counted by [`count_quantifiers`]). Defaults to 3.
    pub max_quantifiers: usize,
    /// Most matcher steps (single-character tests, match attempts, backtracks) before giving
    /// up with [`PatternError::TooCostly`]. Defaults to 100000.
    pub max_steps: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_pattern_len: 128, max_quantifiers: 3, max_steps: 100_000 }
    }
}

/// Why a pattern could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern is longer than [`Budget::max_pattern_len`].
    TooLong {
        /// Pattern length in bytes.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },
    /// The pattern has more quantifiers than [`Budget::max_quantifiers`].
    TooManyQuantifiers {
        /// Quantifiers found.
        count: usize,
        /// The limit it exceeded.
        max: usize,
    },
    /// Lua would raise an error for this pattern; the text says why (e.g. `missing ']'`).
    Malformed(&'static str),
    /// The step budget ran out before the matcher reached an answer.
    TooCostly,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::TooLong { len, max } => {
                write!(f, "pattern too long ({len} bytes, max {max})")
            }
            PatternError::TooManyQuantifiers { count, max } => {
                write!(f, "too many quantifiers in pattern ({count}, max {max})")
            }
            PatternError::Malformed(why) => write!(f, "malformed pattern ({why})"),
            PatternError::TooCostly => f.write_str("pattern too costly to match"),
        }
    }
}

impl std::error::Error for PatternError {}

/// Whether `subject` contains a match of `pattern` (like `string.match(subject, pattern) ~= nil`,
/// anchors `^` honoured), within the limits of `budget`.
///
/// # Errors
///
/// As [`matched`].
pub fn is_match(pattern: &str, subject: &str, budget: &Budget) -> Result<bool, PatternError> {
    Ok(matched(pattern, subject, budget)?.is_some())
}

/// What `string.match(subject, pattern)` returns first: the first capture if the pattern has
/// any (a position capture `()` as its decimal position, as `tostring` shows it), else the whole
/// match; `None` when nothing matches. Jitsi compares this value with the room name, so a
/// pattern that matches only part of the name does not admit it.
///
/// # Errors
///
/// [`PatternError::TooLong`] or [`PatternError::TooManyQuantifiers`] before any matching,
/// [`PatternError::Malformed`] where Lua would raise an error, and [`PatternError::TooCostly`]
/// when `budget.max_steps` runs out.
pub fn matched(
    pattern: &str,
    subject: &str,
    budget: &Budget,
) -> Result<Option<String>, PatternError> {
    let len = pattern.len();
    if len > budget.max_pattern_len {
        return Err(PatternError::TooLong { len, max: budget.max_pattern_len });
    }
    let count = count_quantifiers(pattern);
    if count > budget.max_quantifiers {
        return Err(PatternError::TooManyQuantifiers { count, max: budget.max_quantifiers });
    }
    // str_find_aux: a leading '^' anchors; it is not part of the pattern proper.
    let (anchor, pat) = match pattern.as_bytes() {
        [b'^', rest @ ..] => (true, rest),
        all => (false, all),
    };
    let src = subject.as_bytes();
    let mut ms = MatchState {
        src,
        pat,
        level: 0,
        depth: MAX_CALLS,
        steps: budget.max_steps,
        capture: [Capture { init: 0, len: CapLen::Unfinished }; MAX_CAPTURES],
    };
    // Try every start position, including the empty suffix at the end (`s1++ < src_end`).
    for s1 in 0..=src.len() {
        ms.level = 0;
        ms.depth = MAX_CALLS;
        if let Some(end) = ms.do_match(s1, 0)? {
            // push_captures raises this for a capture still open when the match succeeds.
            if ms.capture[..ms.level].iter().any(|c| matches!(c.len, CapLen::Unfinished)) {
                return Err(PatternError::Malformed("unfinished capture"));
            }
            let bytes = match ms.capture[..ms.level].first() {
                None => &src[s1..end],
                Some(Capture { init, len: CapLen::Len(len) }) => &src[*init..*init + *len],
                Some(Capture { init, .. }) => return Ok(Some((init + 1).to_string())),
            };
            return Ok(Some(String::from_utf8_lossy(bytes).into_owned()));
        }
        if anchor {
            break;
        }
    }
    Ok(None)
}

/// Counts the unescaped `*`, `+`, `-` and `?` that act as quantifiers in `pattern`: those
/// following a single-character class, as the matcher reads it. Characters inside `[set]`s,
/// after `%`, or in item positions (such as `(*`) are literals and not counted. Counting stops
/// at a malformed part, which the matcher can never get past.
#[must_use]
pub fn count_quantifiers(pattern: &str) -> usize {
    let pat = pattern.as_bytes();
    let mut p = usize::from(at(pat, 0) == b'^');
    let mut count = 0;
    // Walks items the way do_match does, so only real suffixes are counted.
    while p < pat.len() {
        match (at(pat, p), at(pat, p + 1)) {
            (b'(', b')') => p += 2,
            (b'(' | b')', _) => p += 1,
            (L_ESC, b'b') => p += 4,
            (L_ESC, b'0'..=b'9') => p += 2,
            (L_ESC, b'f') => match class_end(pat, p + 2) {
                Ok(ep) if at(pat, p + 2) == b'[' => p = ep,
                _ => break,
            },
            _ => match class_end(pat, p) {
                Ok(ep) if matches!(at(pat, ep), b'*' | b'+' | b'-' | b'?') => {
                    count += 1;
                    p = ep + 1;
                }
                Ok(ep) => p = ep,
                Err(_) => break,
            },
        }
    }
    count
}

/// Byte `i` of `s`, or 0 past the end. Lua strings carry a NUL terminator that lstrlib.c reads
/// (e.g. `*ep` after the last class); this reproduces those reads without out-of-bounds access.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// Index just past the single-character class starting at `p` (lstrlib.c `classEnd`).
fn class_end(pat: &[u8], mut p: usize) -> Result<usize, PatternError> {
    let c = at(pat, p);
    p += 1;
    match c {
        L_ESC => {
            if p >= pat.len() {
                return Err(PatternError::Malformed("ends with '%'"));
            }
            Ok(p + 1)
        }
        b'[' => {
            if at(pat, p) == b'^' {
                p += 1;
            }
            // A ']' right after '[' (or '[^') is a member, hence do-while: look for a ']'.
            loop {
                if p >= pat.len() {
                    return Err(PatternError::Malformed("missing ']'"));
                }
                let c = at(pat, p);
                p += 1;
                if c == L_ESC && p < pat.len() {
                    p += 1; // skip escapes such as '%]'
                }
                if at(pat, p) == b']' {
                    return Ok(p + 1);
                }
            }
        }
        _ => Ok(p),
    }
}

/// Whether `c` is in class `%cl` (lstrlib.c `match_class`), with C-locale ASCII definitions:
/// bytes >= 128 are in no class. An upper-case class letter means the complement.
fn match_class(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        // C isspace includes '\v', which is_ascii_whitespace does not.
        b's' => c == b' ' || (b'\t'..=b'\r').contains(&c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0,      // deprecated since 5.2, but Lua 5.4 still honours it
        _ => return cl == c, // '%.' etc.: an escaped literal
    };
    res != cl.is_ascii_uppercase()
}

/// Whether `c` is in the set `pat[p..=ec]`, where `p` is at '[' and `ec` at ']'
/// (lstrlib.c `matchbracketclass`).
fn match_bracket_class(pat: &[u8], c: u8, mut p: usize, ec: usize) -> bool {
    let mut sig = true;
    if at(pat, p + 1) == b'^' {
        sig = false;
        p += 1;
    }
    loop {
        p += 1;
        if p >= ec {
            return !sig;
        }
        if at(pat, p) == L_ESC {
            p += 1;
            if match_class(c, at(pat, p)) {
                return sig;
            }
        } else if at(pat, p + 1) == b'-' && p + 2 < ec {
            // A range; a '-' first or last in the set is a literal.
            p += 2;
            if at(pat, p - 2) <= c && c <= at(pat, p) {
                return sig;
            }
        } else if at(pat, p) == c {
            return sig;
        }
    }
}

/// Length of a capture: still open, a position capture `()`, or closed with a length.
#[derive(Clone, Copy)]
enum CapLen {
    Unfinished,
    Position,
    Len(usize),
}

#[derive(Clone, Copy)]
struct Capture {
    init: usize,
    len: CapLen,
}

/// Result of a match attempt: `Some(end)` of the match in the subject, or `None` for no match.
type Attempt = Result<Option<usize>, PatternError>;

/// lstrlib.c's `MatchState`, with indices instead of pointers, plus the step budget.
struct MatchState<'a> {
    src: &'a [u8],
    pat: &'a [u8],
    /// Captures in use, at most `MAX_CAPTURES` (`start_capture` checks): indexing is in bounds.
    level: usize,
    /// Calls left before "pattern too complex" (`matchdepth`).
    depth: usize,
    steps: u64,
    capture: [Capture; MAX_CAPTURES],
}

impl MatchState<'_> {
    /// Spends `n` steps of the budget.
    fn spend(&mut self, n: u64) -> Result<(), PatternError> {
        self.steps = self.steps.checked_sub(n).ok_or(PatternError::TooCostly)?;
        Ok(())
    }

    fn single_match(&mut self, s: usize, p: usize, ep: usize) -> Result<bool, PatternError> {
        self.spend(1)?;
        let Some(&c) = self.src.get(s) else { return Ok(false) };
        Ok(match at(self.pat, p) {
            b'.' => true,
            L_ESC => match_class(c, at(self.pat, p + 1)),
            b'[' => match_bracket_class(self.pat, c, p, ep - 1),
            lit => lit == c,
        })
    }

    /// `%bxy`: a balanced run from `x` to the matching `y`, `p` pointing at `x`.
    fn match_balance(&mut self, s: usize, p: usize) -> Attempt {
        if p + 1 >= self.pat.len() {
            return Err(PatternError::Malformed("missing arguments to '%b'"));
        }
        let (b, e) = (at(self.pat, p), at(self.pat, p + 1));
        if self.src.get(s) != Some(&b) {
            return Ok(None);
        }
        let mut cont = 1usize;
        for (i, &c) in self.src.iter().enumerate().skip(s + 1) {
            self.spend(1)?;
            if c == e {
                cont -= 1;
                if cont == 0 {
                    return Ok(Some(i + 1));
                }
            } else if c == b {
                cont += 1;
            }
        }
        Ok(None) // the subject ends out of balance
    }

    /// Greedy `*` (and `+` after its first match): take the longest run, then back off.
    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Attempt {
        let mut i = 0;
        while self.single_match(s + i, p, ep)? {
            i += 1;
        }
        loop {
            if let Some(end) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(end));
            }
            let Some(fewer) = i.checked_sub(1) else { return Ok(None) };
            i = fewer;
        }
    }

    /// Lazy `-`: try the rest first, then one more repetition.
    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> Attempt {
        loop {
            if let Some(end) = self.do_match(s, ep + 1)? {
                return Ok(Some(end));
            }
            if !self.single_match(s, p, ep)? {
                return Ok(None);
            }
            s += 1;
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, len: CapLen) -> Attempt {
        if self.level >= MAX_CAPTURES {
            return Err(PatternError::Malformed("too many captures"));
        }
        self.capture[self.level] = Capture { init: s, len };
        self.level += 1;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.level -= 1; // undo capture
        }
        Ok(res)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Attempt {
        // Close the innermost capture still open.
        let Some(l) =
            (0..self.level).rev().find(|&l| matches!(self.capture[l].len, CapLen::Unfinished))
        else {
            return Err(PatternError::Malformed("invalid pattern capture"));
        };
        self.capture[l].len = CapLen::Len(s - self.capture[l].init);
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.capture[l].len = CapLen::Unfinished; // undo capture
        }
        Ok(res)
    }

    /// Back-reference `%1`-`%9` (`digit` is the ASCII digit after '%').
    fn match_capture(&mut self, s: usize, digit: u8) -> Attempt {
        let l = usize::from(digit.wrapping_sub(b'1'));
        let Some(cap) = self.capture[..self.level].get(l).copied() else {
            return Err(PatternError::Malformed("invalid capture index"));
        };
        match cap.len {
            CapLen::Unfinished => Err(PatternError::Malformed("invalid capture index")),
            // Lua compares against (size_t)CAP_POSITION, which never fits: no match.
            CapLen::Position => Ok(None),
            CapLen::Len(len) => {
                self.spend(len as u64 + 1)?;
                let here = self.src.get(s..s + len);
                let seen = self.src.get(cap.init..cap.init + len);
                Ok((here.is_some() && here == seen).then_some(s + len))
            }
        }
    }

    /// lstrlib.c `match`, with its depth limit: each call nests at most `MAX_CALLS` deep.
    fn do_match(&mut self, s: usize, p: usize) -> Attempt {
        let Some(depth) = self.depth.checked_sub(1) else {
            return Err(PatternError::Malformed("pattern too complex"));
        };
        self.depth = depth;
        let res = self.match_items(s, p);
        self.depth += 1;
        res
    }

    /// The body of `match`; the loop stands for its `goto init` tail calls.
    fn match_items(&mut self, mut s: usize, mut p: usize) -> Attempt {
        loop {
            self.spend(1)?;
            if p >= self.pat.len() {
                return Ok(Some(s));
            }
            match (at(self.pat, p), at(self.pat, p + 1)) {
                (b'(', b')') => return self.start_capture(s, p + 2, CapLen::Position),
                (b'(', _) => return self.start_capture(s, p + 1, CapLen::Unfinished),
                (b')', _) => return self.end_capture(s, p + 1),
                // '$' is an anchor only as the last pattern character.
                (b'$', _) if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                (L_ESC, b'b') => match self.match_balance(s, p + 2)? {
                    Some(end) => (s, p) = (end, p + 4),
                    None => return Ok(None),
                },
                (L_ESC, b'f') => {
                    p += 2;
                    if at(self.pat, p) != b'[' {
                        return Err(PatternError::Malformed("missing '[' after '%f'"));
                    }
                    let ep = class_end(self.pat, p)?;
                    // The subject's start and end read as '\0', as in C.
                    let prev = if s == 0 { 0 } else { at(self.src, s - 1) };
                    let cur = at(self.src, s);
                    if match_bracket_class(self.pat, prev, p, ep - 1)
                        || !match_bracket_class(self.pat, cur, p, ep - 1)
                    {
                        return Ok(None);
                    }
                    p = ep;
                }
                (L_ESC, d @ b'0'..=b'9') => match self.match_capture(s, d)? {
                    Some(end) => (s, p) = (end, p + 2),
                    None => return Ok(None),
                },
                // Default: a single-character class with an optional suffix.
                _ => {
                    let ep = class_end(self.pat, p)?;
                    let suffix = at(self.pat, ep);
                    if !self.single_match(s, p, ep)? {
                        if !matches!(suffix, b'*' | b'?' | b'-') {
                            return Ok(None); // '+' or no suffix needs one match
                        }
                        p = ep + 1; // accept the empty match
                        continue;
                    }
                    match suffix {
                        b'?' => match self.do_match(s + 1, ep + 1)? {
                            Some(end) => return Ok(Some(end)),
                            None => p = ep + 1,
                        },
                        b'+' => return self.max_expand(s + 1, p, ep),
                        b'*' => return self.max_expand(s, p, ep),
                        b'-' => return self.min_expand(s, p, ep),
                        _ => (s, p) = (s + 1, ep),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, subjects it matches, subjects it does not): the real answers of `lua5.4`'s
    /// `string.match(subject, pattern)`, checked with the interpreter.
    const CASES: &[(&str, &[&str], &[&str])] = &[
        ("^%[tenant%]room%d+$", &["[tenant]room42"], &["[tenant]room", "x[tenant]room1"]),
        ("^%[tenant%]room%d+$", &[], &["[tenant]room1x", "[other]room1"]),
        ("^%[other%].*$", &["[other]anything goes", "[other]"], &["[tenant]x"]),
        ("room", &["myroom1", "room"], &["roo", ""]),
        ("^room$", &["room"], &["rooms", "myroom"]),
        ("^$", &[""], &["x"]),
        ("", &["anything", ""], &[]),
        ("$", &["abc"], &[]),
        ("a$b", &["a$b"], &["ab"]),
        ("^^", &["^x"], &["x"]),
        ("x^", &["x^"], &["x"]),
        ("^%a+$", &["Hello"], &["Hello1", ""]),
        ("^%d%d%d$", &["123"], &["12a"]),
        ("%D", &["12a"], &["123"]),
        ("^%l+%u+$", &["abcDEF"], &["ABCdef"]),
        ("^%s*$", &[" \t\n\x0b\x0c\r", ""], &[" x"]),
        ("%p", &["abc.", "_"], &["abc"]),
        ("^%w+$", &["abc1"], &["abc_1"]),
        ("^%x+$", &["DeadBeef09"], &["xyz"]),
        ("%c", &["a\x07b", "\x7f"], &["ab"]),
        ("^%g+$", &["a!b"], &["a b"]),
        ("%G", &["ab c"], &["abc"]),
        ("%a", &["é1a"], &["é1"]),
        ("^caf.$", &[], &["café"]),
        ("^caf..$", &["café"], &[]),
        ("^a%zb$", &["a\0b"], &["a0b"]),
        ("^[a-z0-9]+$", &["room42"], &["Room42"]),
        ("^[^%s]+$", &["no-space"], &["has space"]),
        ("^[%w_-]+$", &["my_room-1"], &["my room"]),
        ("^[]]$", &["]"], &["["]),
        ("^[%]]$", &["]"], &["%"]),
        ("^[a-]$", &["-", "a"], &["b"]),
        ("^[^]]$", &["a"], &["]"]),
        ("^my-room$", &["myyyroom", "mroom"], &["my-room"]),
        ("^my%-room$", &["my-room"], &["myroom"]),
        ("^a-b$", &["aaab", "b"], &["aaa"]),
        ("^a?b$", &["b", "ab"], &["aab"]),
        ("^a+$", &["aaa"], &[""]),
        ("^.-b", &["aaab"], &["aaa"]),
        ("%b()", &["f(a(b)c)"], &["f(a(b c"]),
        ("^%b()$", &["(())"], &["(()"]),
        ("%f[%w]room", &["the room", "room"], &["theroom"]),
        ("room%f[%W]", &["room", "room!"], &["rooms"]),
        ("^(%a+)-%1$", &["abc-abc"], &["abc-abd"]),
        ("^(%d+)%.(%d+)$", &["1.2"], &["1.a"]),
        ("(a)(b)%2%1", &["abba"], &["abab"]),
        ("()a()", &["xa"], &["x"]),
        ("()%1", &[], &["a"]),
        ("(a", &[], &["b"]),
    ];

    /// (pattern, subject) where Lua raises an error, with the reason reported here.
    const MALFORMED: &[(&str, &str, &str)] = &[
        ("%1", "a", "invalid capture index"),
        ("(a%1)", "aa", "invalid capture index"),
        ("%0", "a", "invalid capture index"),
        ("a%", "a", "ends with '%'"),
        ("[a", "", "missing ']'"),
        ("(a", "a", "unfinished capture"),
        ("a)", "a", "invalid pattern capture"),
        ("%b", "a", "missing arguments to '%b'"),
        ("%fx", "a", "missing '[' after '%f'"),
    ];

    fn roomy() -> Budget {
        Budget { max_pattern_len: 1024, max_quantifiers: 1024, max_steps: 1_000_000 }
    }

    #[test]
    fn test_matches_agree_with_lua() {
        for &(pattern, yes, no) in CASES {
            for (subjects, want) in [(yes, true), (no, false)] {
                for subject in subjects {
                    let got = is_match(pattern, subject, &roomy());
                    assert_eq!(got, Ok(want), "{pattern:?} on {subject:?}");
                }
            }
        }
    }

    #[test]
    fn test_lua_errors_are_malformed() {
        for &(pattern, subject, why) in MALFORMED {
            let got = is_match(pattern, subject, &roomy());
            assert_eq!(got, Err(PatternError::Malformed(why)), "{pattern:?} on {subject:?}");
        }
        let captures = format!("{}{}", "(".repeat(33), ")".repeat(33));
        let got = is_match(&captures, "x", &roomy());
        assert_eq!(got, Err(PatternError::Malformed("too many captures")));
        // Lua's MAXCCALLS: 250 nested optional items exceed the 200 allowed.
        let got = is_match(&"a?".repeat(250), &"a".repeat(250), &roomy());
        assert_eq!(got, Err(PatternError::Malformed("pattern too complex")));
    }

    #[test]
    fn test_pathological_pattern_is_too_costly() {
        let budget = Budget { max_quantifiers: 8, ..Budget::default() };
        let subject = "a".repeat(120);
        let got = is_match("(.-)(.-)(.-)(.-)x", &subject, &budget);
        assert_eq!(got, Err(PatternError::TooCostly));
        // The same pattern is fine where it succeeds quickly.
        assert_eq!(is_match("(.-)(.-)(.-)(.-)x", "aax", &budget), Ok(true));
    }

    #[test]
    fn test_step_budget_counts_every_attempt() {
        let none = Budget { max_steps: 0, ..Budget::default() };
        assert_eq!(is_match("", "", &none), Err(PatternError::TooCostly));
        let few = Budget { max_steps: 10, ..Budget::default() };
        assert_eq!(is_match("^a", "a", &few), Ok(true));
        assert_eq!(is_match("z", &"a".repeat(50), &few), Err(PatternError::TooCostly));
    }

    #[test]
    fn test_limits_are_checked_before_matching() {
        let b = Budget::default();
        assert_eq!((b.max_pattern_len, b.max_quantifiers, b.max_steps), (128, 3, 100_000));
        let long = "a".repeat(129);
        assert_eq!(is_match(&long, "", &b), Err(PatternError::TooLong { len: 129, max: 128 }));
        assert_eq!(is_match(&"a".repeat(128), &"a".repeat(128), &b), Ok(true));
        let too_many = Err(PatternError::TooManyQuantifiers { count: 4, max: 3 });
        assert_eq!(is_match("a*b*c*d*", "", &b), too_many);
        // Checked first, even where the matcher would report a malformed pattern.
        assert_eq!(is_match("a*b*c*d*[", "", &b), too_many);
    }

    #[test]
    fn test_count_quantifiers_only_counts_real_suffixes() {
        let cases = [
            ("a*b+c-d?", 4),
            ("[*+-?]", 0),
            ("%*%+%-%?", 0),
            ("^*", 0),
            ("**", 1),
            ("(*)()-", 0),
            ("my-room", 1),
            ("%b()*%f[%w]*%1*", 0),
            ("[a-z]+%d*$", 2),
            ("a%", 0),
            ("x[a*", 0),
        ];
        for (pattern, want) in cases {
            assert_eq!(count_quantifiers(pattern), want, "{pattern:?}");
        }
    }

    #[test]
    fn test_errors_display_short_lowercase_messages() {
        let shown = [
            (PatternError::TooLong { len: 200, max: 128 }, "pattern too long (200 bytes, max 128)"),
            (
                PatternError::TooManyQuantifiers { count: 4, max: 3 },
                "too many quantifiers in pattern (4, max 3)",
            ),
            (PatternError::Malformed("missing ']'"), "malformed pattern (missing ']')"),
            (PatternError::TooCostly, "pattern too costly to match"),
        ];
        for (err, text) in shown {
            assert_eq!(err.to_string(), text);
        }
    }

    #[test]
    fn test_never_panics_on_short_arbitrary_patterns() {
        // Every pattern of up to 4 bytes over the special characters, on a few subjects.
        let alphabet = b"%[]()^$*+-?.abf1";
        let mut stack = vec![Vec::new()];
        while let Some(pat) = stack.pop() {
            let pattern = String::from_utf8_lossy(&pat).into_owned();
            for subject in ["", "a", "ab(a)]", "b]-%"] {
                let _ = is_match(&pattern, subject, &roomy());
            }
            if pat.len() < 4 {
                stack.extend(alphabet.iter().map(|&c| [&pat[..], &[c]].concat()));
            }
        }
    }
}
