//! Durations in the config are strings with a unit (SPEC §7): `"30s"`, `"60m"`, `"8h"`, `"2d"`.

use std::time::Duration;

/// Parses `<integer><unit>` with unit `s`, `m`, `h` or `d`. `Err` says what is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("'{text}' is not a duration; write a whole number with a unit: \"30s\", \"60m\", \"8h\", \"1d\"")
    })?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "" => return Err(format!("'{text}' has no unit; add s, m, h or d (e.g. \"{n}m\")")),
        _ => return Err(format!("'{text}' has unknown unit '{unit}'; use s, m, h or d")),
    };
    n.checked_mul(mult).map(Duration::from_secs).ok_or_else(|| format!("'{text}' is too long"))
}

/// Formats a duration in the largest unit that divides it exactly (`480m` -> "8h").
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    for (unit, mult) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s % mult == 0 {
            return format!("{}{unit}", s / mult);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("480m").unwrap(), Duration::from_secs(28800));
        assert_eq!(parse_duration("8h").unwrap(), Duration::from_secs(28800));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("5w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(format_duration(Duration::from_secs(28800)), "8h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
