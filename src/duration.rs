//! Durations as people write them in orch.yaml and tickets: `90s`, `5m`,
//! `1h30m`, `250ms`.

use std::time::Duration;

/// The longest duration orch accepts: longer than any agent run or pause
/// should last, and far from where adding it to a clock could overflow.
pub const MAX: Duration = Duration::from_secs(365 * 86400);

/// Parse `250ms`, `90s`, `5m`, `2h`, `1d` or a sequence such as `1h30m`,
/// at most [`MAX`].
/// A bare number is refused: `timeout: 30` could mean seconds or minutes, and
/// guessing wrong kills an agent early or lets it hang for hours.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration; write it like 90s, 5m or 1h30m"
            ));
        }
        let value: u64 = rest[..digits].parse().map_err(|_| {
            format!("`{text}` is longer than 365d, the longest duration orch accepts")
        })?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86400)),
            "" => {
                return Err(format!(
                    "`{text}` has no unit; write it like {value}s or {value}m"
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}`; use ms, s, m, h or d"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    if total > MAX {
        return Err(format!(
            "`{text}` is longer than 365d, the longest duration orch accepts"
        ));
    }
    Ok(total)
}

/// The shortest faithful rendering: `1h30m`, `250ms`, `0s`.
pub fn display(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        if ms < 1000 {
            return format!("{ms}ms");
        }
        return format!("{:.1}s", d.as_secs_f64());
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// serde adapter: a duration written as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Dur).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sequences() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 2h "), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn refuses_bare_numbers_and_unknown_units() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("3w").unwrap_err().contains("unknown unit"));
        assert!(parse("m").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn refuses_what_is_too_long_to_add_to_a_clock() {
        assert_eq!(parse("365d"), Ok(MAX));
        for text in ["366d", "18446744073709551615s", "99999999999999999999999h"] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("longer than 365d"), "{text}: {e}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for text in ["250ms", "90s", "5m", "1h30m", "1d2h"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&display(d)).unwrap(), d, "{text}");
        }
        assert_eq!(display(Duration::from_secs(5400)), "1h30m");
    }
}
