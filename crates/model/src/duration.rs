//! The one duration syntax of the registry's inputs: a whole number and a unit.

use std::time::Duration;

/// Reads `text` as a whole number of `ms`, `s`, `m` or `h` (a bare number is seconds when
/// `bare_seconds`). `None` when it is not such a number, or too large.
pub fn parse_duration(text: &str, bare_seconds: bool) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let millis = match unit {
        "ms" => Some(n),
        "" if bare_seconds => n.checked_mul(1000),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    millis.map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_with_a_unit() {
        let ms = Duration::from_millis;
        let cases = [
            ("1500ms", false, Some(ms(1500))),
            ("60s", false, Some(ms(60_000))),
            ("5m", false, Some(ms(300_000))),
            ("1h", false, Some(ms(3_600_000))),
            ("30", true, Some(ms(30_000))),
            ("30", false, None),
            ("", true, None),
            ("s", true, None),
            ("1.5s", true, None),
            ("-1s", true, None),
            ("5d", true, None),
            ("18446744073709551615s", true, None),
        ];
        for (text, bare_seconds, want) in cases {
            assert_eq!(parse_duration(text, bare_seconds), want, "{text:?}");
        }
    }
}
