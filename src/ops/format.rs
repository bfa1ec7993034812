//! Formatting for the operator commands: the `--since` duration here; the rest is shared with the service's
//! reports and lives in [`crate::present::format`] (re-exported).

use jiff::SignedDuration;

pub use crate::present::format::*;

use super::OpsError;

/// The longest `--since` accepted (ten years): longer is a typo, and would overflow date arithmetic eventually.
pub const MAX_SINCE_DAYS: i64 = 3650;

/// `30m`, `24h`, `7d` (also `90s`); a positive whole number and one unit.
pub fn parse_duration(s: &str) -> Result<SignedDuration, OpsError> {
    let bad = || {
        OpsError::InvalidArgument(format!(
            "duración inválida '{s}': use un número y una unidad, por ejemplo 30m, 24h o 7d (s, m, h, d)"
        ))
    };
    let t = s.trim();
    let unit = t.chars().last().ok_or_else(bad)?;
    let number: i64 = t[..t.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let seconds_per = match unit.to_ascii_lowercase() {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    if number <= 0 {
        return Err(bad());
    }
    if number.saturating_mul(seconds_per) > MAX_SINCE_DAYS * 86_400 {
        return Err(OpsError::InvalidArgument(format!(
            "duración demasiado larga '{s}': como máximo {MAX_SINCE_DAYS}d"
        )));
    }
    Ok(SignedDuration::from_secs(number * seconds_per))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_unit() {
        assert_eq!(parse_duration("30m").unwrap(), SignedDuration::from_mins(30));
        assert_eq!(parse_duration("24h").unwrap(), SignedDuration::from_hours(24));
        assert_eq!(parse_duration(" 7d ").unwrap(), SignedDuration::from_hours(168));
        assert_eq!(parse_duration("90s").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(parse_duration("2H").unwrap(), SignedDuration::from_hours(2));
        for bad in ["", "h", "24", "0h", "-1h", "1.5h", "3w", "24 horas", "ñ", "99999999999999999999d"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains("duración inválida"), "{bad}: {e}");
        }
        assert!(parse_duration("3651d").unwrap_err().to_string().contains("demasiado larga"));
        assert!(parse_duration("3650d").is_ok());
    }
}
