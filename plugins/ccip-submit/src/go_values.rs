//! The value formats a Chainlink node (a Go program) parses and writes back in its own form:
//! UUIDs as `uuid.Parse` takes them and durations as `time.ParseDuration` takes them, read
//! into one canonical value each so that the spec's form and the node's compare equal.

/// `text` as a UUID in the forms the node's parser (`uuid.Parse`) takes (`xxxxxxxx-xxxx-...`,
/// 32 hex digits, `{...}`, `urn:uuid:...`), lower-case with dashes.
pub(crate) fn normalize_uuid(text: &str) -> Option<String> {
    let text = text
        .strip_prefix("urn:uuid:")
        .or_else(|| text.strip_prefix('{')?.strip_suffix('}'))
        .unwrap_or(text);
    let hex: String = match text.len() {
        36 => {
            let dashes = [8, 13, 18, 23];
            if !dashes.iter().all(|&i| text.as_bytes()[i] == b'-') {
                return None;
            }
            text.chars().filter(|&c| c != '-').collect()
        }
        32 => text.to_owned(),
        _ => return None,
    };
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A Go duration (`time.ParseDuration`: `1h2m3.5s`, `500ms`, `0`) in nanoseconds.
pub(crate) fn go_duration(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut part = whole.checked_mul(scale)?;
        let mut divisor: i128 = 1;
        for digit in fraction.chars().take(18) {
            divisor *= 10;
            part += i128::from(digit.to_digit(10)?) * scale / divisor;
        }
        total = total.checked_add(part)?;
        rest = tail;
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UUID in its canonical form (lower-case, dashed).
    const CANONICAL: &str = "0eec7e1d-d0d2-476c-a1a8-72dfb6633f46";

    /// Nanoseconds in a second, a minute, an hour.
    const S: i128 = 1_000_000_000;
    const M: i128 = 60 * S;
    const H: i128 = 60 * M;

    #[test]
    fn every_form_uuid_parse_takes_is_the_canonical_uuid() {
        for form in [
            "0eec7e1d-d0d2-476c-a1a8-72dfb6633f46",
            "0EEC7E1D-D0D2-476C-A1A8-72DFB6633F46",
            "0eec7e1dd0d2476ca1a872dfb6633f46",
            "0EEC7E1DD0D2476CA1A872DFB6633F46",
            "{0eec7e1d-d0d2-476c-a1a8-72dfb6633f46}",
            "urn:uuid:0eec7e1d-d0d2-476c-a1a8-72dfb6633f46",
            "urn:uuid:0EEC7E1D-D0D2-476C-A1A8-72DFB6633F46",
        ] {
            assert_eq!(normalize_uuid(form).as_deref(), Some(CANONICAL), "{form}");
        }
    }

    #[test]
    fn what_uuid_parse_refuses_is_no_uuid() {
        for text in [
            "",
            "not-a-uuid",
            // One digit short, one digit long.
            "0eec7e1d-d0d2-476c-a1a8-72dfb6633f4",
            "0eec7e1d-d0d2-476c-a1a8-72dfb6633f466",
            // A dash moved.
            "0eec7e1dd-0d2-476c-a1a8-72dfb6633f46",
            // Dashes where hex digits should be, and the other way round.
            "0eec7e1d-d0d2-476c-a1a8-72dfb6633f-6",
            "0eec7e1d_d0d2_476c_a1a8_72dfb6633f46",
            // Not hex.
            "0eec7e1d-d0d2-476c-a1a8-72dfb6633fzz",
            "0eec7e1dd0d2476ca1a872dfb6633fzz",
            // A brace missing, or both forms at once.
            "{0eec7e1d-d0d2-476c-a1a8-72dfb6633f46",
            "{urn:uuid:0eec7e1d-d0d2-476c-a1a8-72dfb6633f46}",
            // 36 bytes, with the dashes in place, but not ASCII.
            "0eec7e1d-d0d2-476c-a1a8-72dfb663\u{e9}46",
        ] {
            assert_eq!(normalize_uuid(text), None, "{text:?}");
        }
    }

    #[test]
    fn go_durations_are_their_nanoseconds() {
        for (text, ns) in [
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("0s", 0),
            ("1ns", 1),
            ("1us", 1_000),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("500ms", 500_000_000),
            ("1s", S),
            ("1m", M),
            ("1h", H),
            ("1h2m3.5s", H + 2 * M + 3 * S + S / 2),
            ("1.5h", H + 30 * M),
            (".5s", S / 2),
            ("5.s", 5 * S),
            ("+1s", S),
            ("-1m30s", -(M + 30 * S)),
            ("0.000000001s", 1),
        ] {
            assert_eq!(go_duration(text), Some(ns), "{text}");
        }
    }

    #[test]
    fn the_nodes_form_of_a_duration_is_the_same_duration() {
        // The node shows `1m` as `1m0s` and `90s` as `1m30s` (Go's `Duration.String`).
        assert_eq!(go_duration("1m"), go_duration("1m0s"));
        assert_eq!(go_duration("90s"), go_duration("1m30s"));
        assert_eq!(go_duration("1h"), go_duration("1h0m0s"));
        assert_eq!(go_duration("1500ms"), go_duration("1.5s"));
        assert_ne!(go_duration("1m"), go_duration("1s"));
    }

    #[test]
    fn what_parse_duration_refuses_is_no_duration() {
        for text in [
            "",
            "-",
            "+",
            "1",
            "10",
            "s",
            ".",
            ".s",
            "1d",
            "1 m",
            "1m ",
            "m1",
            "1sec",
            "1.2.3s",
            // Too large: no wrap-around to a small duration (the number itself, then its
            // product with the unit, overflow an i128).
            "999999999999999999999999999999999999999999h",
            "100000000000000000000000000000h",
        ] {
            assert_eq!(go_duration(text), None, "{text:?}");
        }
    }
}
