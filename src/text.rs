//! Small text helpers shared by summaries, logs and messages.

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
pub fn short_oid(s: &str) -> &str {
    &s[..s.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(one_line("héllo\nworld", 2), "h…");
        assert_eq!(one_line("abc", 3), "abc");
        assert_eq!(short_oid("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_oid("01"), "01");
    }
}
