//! Small text helpers shared by summaries, logs and messages.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The first line of `s`, cut to at most `max` bytes (on a character
/// boundary) with an ellipsis when cut.
pub fn one_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// The first 12 characters of an object id, as git shows it.
/// The first `n` items joined with ", ", and how many more there are.
pub fn list_some(items: &[String], n: usize) -> String {
    let shown = items[..items.len().min(n)].join(", ");
    match items.len().saturating_sub(n) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

pub fn short_oid(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// Text from tickets, agents or `orch submit` made safe to print on a
/// terminal: every control character (C0, DEL and C1) is shown escaped,
/// `\r` as `\r` and the others as `\xNN`, so an escape sequence (a
/// clipboard write by OSC 52, a screen clear) is read, never obeyed.
/// Line breaks (`\n`, and `\r\n` as a pair) and tabs are kept: for text of
/// several lines. Backslashes are left as they are. Bidirectional
/// embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) are
/// shown as `\u{202e}`: they reorder what a reader sees of the rest of the
/// line ("Trojan Source").
pub fn visible(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// [`visible`] for a one-line field (a title, a reason): line breaks and
/// tabs are escaped too, as `\n` and `\t`.
pub fn visible_line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, multi_line: bool) -> Cow<'_, str> {
    let keep = |c: char, next: Option<char>| {
        (!c.is_control() && !is_bidi_control(c))
            || (multi_line && (c == '\n' || c == '\t' || (c == '\r' && next == Some('\n'))))
    };
    let mut chars = s.char_indices().peekable();
    let first = loop {
        match chars.next() {
            None => return Cow::Borrowed(s),
            Some((i, c)) if !keep(c, chars.peek().map(|p| p.1)) => break i,
            Some(_) => {}
        }
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    let mut chars = s[first..].chars().peekable();
    while let Some(c) = chars.next() {
        if keep(c, chars.peek().copied()) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_bidi_control(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// [`visible`] for bytes that arrive in chunks (a log file, followed): a
/// character or a `\r\n` cut by a chunk's end waits for the next chunk,
/// and bytes that are not UTF-8 are shown as `\xNN`.
#[derive(Debug, Default)]
pub struct VisibleStream {
    pending: Vec<u8>,
}

impl VisibleStream {
    /// Append the visible form of `chunk` to `out`, holding back an
    /// incomplete end.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        self.convert(false, out);
    }

    /// Append what is held back, at the end of the input.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.convert(true, out);
    }

    fn convert(&mut self, end: bool, out: &mut Vec<u8>) {
        let bytes = &self.pending;
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let (valid, bad) = match std::str::from_utf8(rest) {
                Ok(s) => (s, None),
                Err(e) => (
                    // Valid up to there, by the error's own word.
                    std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
                    Some(e.error_len()),
                ),
            };
            // A '\r' at the very end may be the first half of a "\r\n".
            let held_cr = !end && bad.is_none() && valid.ends_with('\r');
            let valid = if held_cr {
                &valid[..valid.len() - 1]
            } else {
                valid
            };
            out.extend_from_slice(visible(valid).as_bytes());
            at += valid.len();
            match bad {
                None => break,
                Some(None) if !end => break, // a character cut by the chunk's end
                Some(len) => {
                    let len = len.unwrap_or(bytes.len() - at);
                    for b in &bytes[at..at + len] {
                        let _ = write!(VecWriter(out), "\\x{b:02x}");
                    }
                    at += len;
                }
            }
        }
        self.pending.drain(..at);
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The Levenshtein distance between two strings, by characters: how many
/// insertions, deletions and substitutions turn one into the other.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The known word `word` was probably meant as, if any: the same once case
/// and `-` for `_` are set aside (a CLI flag's spelling), or within two
/// edits of it for words of four characters or more. A longer word may be
/// a key of its own that merely looks alike; a short one too often is.
///
/// Three-character words are allowed one edit (`arg` for `args`); two
/// swapped neighbours count as one edit (`evn` for `env`); and a word of
/// four characters or more that a known word starts with is that word
/// (`depends` for `depends_on`).
pub fn meant<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = |w: &str| w.trim().to_lowercase().replace(['-', ' '], "_");
    let word = norm(word);
    if let Some(k) = known.iter().find(|k| norm(k) == word) {
        return Some(k);
    }
    let len = word.chars().count();
    if len < 3 {
        return None;
    }
    if len >= 4
        && let Some(k) = known.iter().find(|k| k.starts_with(&word))
    {
        return Some(k);
    }
    let allowed = if len < 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| {
            let d = if swapped_neighbours(&word, k) {
                1
            } else {
                edit_distance(&word, k)
            };
            (d, *k)
        })
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Whether `a` is `b` with two neighbouring characters swapped.
fn swapped_neighbours(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() != b.len() {
        return false;
    }
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    matches!(differ.as_slice(), [i, j] if *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_typo_meant() {
        let keys = [
            "depends_on",
            "priority",
            "args",
            "env",
            "events",
            "max_attempts",
        ];
        assert_eq!(meant("depends-on", &keys), Some("depends_on"));
        assert_eq!(meant("depends", &keys), Some("depends_on"));
        assert_eq!(meant("priorty", &keys), Some("priority"));
        assert_eq!(meant("arg", &keys), Some("args"));
        assert_eq!(meant("evn", &keys), Some("env"));
        assert_eq!(meant("max_attemps", &keys), Some("max_attempts"));
        assert_eq!(meant("foo", &keys), None);
        assert_eq!(meant("notes", &keys), None);
        assert_eq!(meant("ab", &keys), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("depends_on", "depends_on"), 0);
        assert_eq!(edit_distance("priorty", "priority"), 1);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn meant_words() {
        let known = ["title", "priority", "depends_on", "timeout", "land"];
        assert_eq!(meant("depends-on", &known), Some("depends_on"));
        assert_eq!(meant("Depends_On", &known), Some("depends_on"));
        assert_eq!(meant("dependson", &known), Some("depends_on"));
        assert_eq!(meant("timout", &known), Some("timeout"));
        assert_eq!(
            meant("prio", &known),
            Some("priority"),
            "the start of a known word"
        );
        assert_eq!(meant("pri", &known), None, "too short to tell");
        assert_eq!(
            meant("lnd", &known),
            Some("land"),
            "one edit of a short word"
        );
        assert_eq!(meant("colour", &known), None);
    }

    #[test]
    fn bidi_controls_are_shown_not_obeyed() {
        assert_eq!(
            visible_line("a\u{202e}b\u{2066}c\u{2069}"),
            "a\\u{202e}b\\u{2066}c\\u{2069}"
        );
        assert_eq!(visible("x\u{202a}\ny"), "x\\u{202a}\ny");
        // Right-to-left text itself is not a control: it stays.
        assert_eq!(visible_line("שלום"), "שלום");
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(one_line("héllo\nworld", 2), "h…");
        assert_eq!(one_line("abc", 3), "abc");
        assert_eq!(short_oid("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_oid("01"), "01");
    }

    #[test]
    fn control_characters_are_made_visible() {
        let osc52 = "title \x1b]52;c;aGVsbG8=\x07 and \x1b[2J";
        assert_eq!(
            visible(osc52),
            "title \\x1b]52;c;aGVsbG8=\\x07 and \\x1b[2J"
        );
        assert_eq!(visible_line(osc52), visible(osc52));
        // DEL and the C1 controls (an 8-bit CSI, a NEL) too.
        assert_eq!(visible("a\u{7f}b\u{9b}2Jc\u{85}"), "a\\x7fb\\x9b2Jc\\x85");
        assert_eq!(visible("nul\0"), "nul\\x00");
    }

    #[test]
    fn layout_is_kept_only_in_multi_line_text() {
        assert_eq!(visible("a\tb\nc\r\nd\re"), "a\tb\nc\r\nd\\re");
        assert_eq!(visible("end\r"), "end\\r");
        assert_eq!(visible_line("a\tb\nc\r\nd"), "a\\tb\\nc\\r\\nd");
    }

    #[test]
    fn plain_text_is_borrowed_and_unchanged() {
        for s in [
            "",
            "plain",
            "héllo wörld ✓ `code` C:\\path\\x1b",
            "line\nline\ttab",
        ] {
            assert!(matches!(visible(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
        assert!(matches!(visible_line("one line"), Cow::Borrowed(_)));
        assert!(matches!(visible_line("two\nlines"), Cow::Owned(_)));
    }

    fn stream(chunks: &[&[u8]]) -> String {
        let mut v = VisibleStream::default();
        let mut out = Vec::new();
        for c in chunks {
            v.push(c, &mut out);
        }
        v.finish(&mut out);
        String::from_utf8(out).expect("the visible form is UTF-8")
    }

    #[test]
    fn a_stream_is_made_visible_across_chunk_ends() {
        let whole = "é\x1b]52;c;aGk=\x07 ok\r\nnext\u{9b}\n".as_bytes();
        let expected = "é\\x1b]52;c;aGk=\\x07 ok\r\nnext\\x9b\n";
        for cut in 0..=whole.len() {
            assert_eq!(
                stream(&[&whole[..cut], &whole[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        let bytewise: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(stream(&bytewise), expected);
    }

    #[test]
    fn a_stream_shows_bytes_that_are_not_utf8() {
        assert_eq!(stream(&[b"a\xffb\x9b2J"]), "a\\xffb\\x9b2J");
        // A character cut short by the end of the input.
        assert_eq!(stream(&[b"ok\xc3"]), "ok\\xc3");
        assert_eq!(stream(&[b"cr at the end\r"]), "cr at the end\\r");
        let mut v = VisibleStream::default();
        let mut out = Vec::new();
        v.push(b"held\xc3", &mut out);
        assert_eq!(out, b"held");
        v.push(b"\xa9", &mut out);
        assert_eq!(out, "heldé".as_bytes());
    }
}
