//! Text from outside (plugins, callers) on its way to a terminal, a log line or an error
//! message: control characters escaped, so that a newline cannot forge a log line or a table
//! row and an escape sequence cannot drive the operator's terminal; and echoes cut short.

pub use jobhost_runtime::text::printable;

/// `value`, from a caller, as an error message shows it: quoted with control characters
/// escaped, and cut to its first 64 characters (saying how long it was) so that an answer
/// never echoes a huge input back.
pub fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    if value.chars().count() <= MAX_CHARS {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(MAX_CHARS).collect();
    format!("{head:?}… ({} bytes)", value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_escaped_and_cut() {
        assert_eq!(shown("job-1"), "\"job-1\"");
        assert_eq!(shown("a\nb\u{1b}[31m"), "\"a\\nb\\u{1b}[31m\"");
        let long = "x".repeat(65_536);
        let echoed = shown(&long);
        assert!(echoed.len() < 100, "{echoed}");
        assert!(echoed.ends_with("… (65536 bytes)"), "{echoed}");
    }
}
