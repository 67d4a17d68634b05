//! Plugin text on its way to a log line or a terminal: control characters escaped, so that
//! a newline in a plugin's version or log line cannot forge a node log line or a table row,
//! and an escape sequence cannot drive the operator's terminal.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`); other
/// characters, non-ASCII included, unchanged. Borrowed when there was nothing to escape.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` cut to at most `max` bytes (on a character boundary), ending with a note of how
/// long it was when it was cut. `max` should leave room for the note (about 40 bytes).
pub fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let note = format!("… (cut: {} bytes in all)", text.len());
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_within_the_limit_saying_so() {
        assert_eq!(cut("short".into(), 100), "short");
        let long = "é".repeat(1000);
        let cut = cut(long, 256);
        assert!(cut.len() <= 256, "{}", cut.len());
        assert!(cut.ends_with("… (cut: 2000 bytes in all)"), "{cut}");
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(printable("plain é ✓"), Cow::Borrowed("plain é ✓")));
        assert_eq!(
            printable("row\nforged\r\t\u{1b}[31mred\u{7f}"),
            "row\\nforged\\r\\t\\u{1b}[31mred\\u{7f}"
        );
    }
}
