//! Sizes (`"1GB"`) and durations (`"30min"`) as written in a spec.

use std::time::Duration;

/// Parses an integer with an optional unit of B, kB, MB, GB or TB (1024-based, any case).
/// A bare integer is bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let (number, unit) = split_number(s)
        .ok_or_else(|| format!("`{s}` is not a size; write an integer and a unit, like \"1GB\""))?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => {
            return Err(format!(
                "`{unit}` is not a size unit; use B, kB, MB, GB or TB"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parses an integer with a unit: ms, s, min, h or d (and their longer spellings).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(s).ok_or_else(|| {
        format!("`{s}` is not a duration; write an integer and a unit, like \"30min\"")
    })?;
    let millis: u64 = match unit {
        "ms" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "" => {
            return Err(format!(
                "`{s}` has no unit; write it like \"30min\" or \"90s\""
            ))
        }
        _ => {
            return Err(format!(
                "`{unit}` is not a duration unit; use ms, s, min, h or d"
            ))
        }
    };
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Renders a duration in the largest unit that divides it, for messages.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `"  12 GB "` → `(12, "GB")`; `None` if there is no leading integer.
fn split_number(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    Some((number.parse().ok()?, unit.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("512 kB"), Ok(512 << 10));
        assert_eq!(parse_size("3MB"), Ok(3 << 20));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in ["", "GB", "1XB", "1.5GB", "-1GB", "99999999999TB", "1 G B"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30min"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7 days"), Ok(Duration::from_secs(7 * 86400)));
        for bad in ["", "30", "30m", "1.5h", "h", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(60)), "1min");
        assert_eq!(format_duration(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
