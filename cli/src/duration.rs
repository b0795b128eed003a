//! Durations on the command line (`10m`, `90s`, `1h30m`) and in the views (`4m12s`, as
//! kubectl prints ages).

use std::time::Duration;

use jiff::SignedDuration;

/// Parses `--timeout` values: a number with a unit, or several (`1h30m`); a bare number is
/// seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let parsed: SignedDuration = text
        .parse()
        .map_err(|_| format!("'{text}' is not a duration; use e.g. 90s, 10m or 1h30m"))?;
    Duration::try_from(parsed).map_err(|_| format!("'{text}' is negative"))
}

/// A duration the way kubectl prints ages: `45s`, `3m12s`, `25m`, `5h3m`, `30h`, `3d4h`, `20d`.
pub fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (m, h, day) = (60, 3600, 86_400);
    if secs < 2 * m {
        format!("{secs}s")
    } else if secs < 10 * m {
        format!("{}m{}s", secs / m, secs % m)
    } else if secs < 3 * h {
        format!("{}m", secs / m)
    } else if secs < 8 * h {
        format!("{}h{}m", secs / h, (secs % h) / m)
    } else if secs < 48 * h {
        format!("{}h", secs / h)
    } else if secs < 8 * day {
        format!("{}d{}h", secs / day, (secs % day) / h)
    } else {
        format!("{}d", secs / day)
    }
}

/// `std` duration for messages (`2m`, `90s`).
pub fn human_std(d: Duration) -> String {
    human(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_durations() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse("soon").is_err());
    }

    #[test]
    fn ages_as_kubectl_prints_them() {
        let s = SignedDuration::from_secs;
        assert_eq!(human(s(45)), "45s");
        assert_eq!(human(s(192)), "3m12s");
        assert_eq!(human(s(1500)), "25m");
        assert_eq!(human(s(5 * 3600 + 180)), "5h3m");
        assert_eq!(human(s(30 * 3600)), "30h");
        assert_eq!(human(s(3 * 86_400 + 4 * 3600)), "3d4h");
        assert_eq!(human(s(20 * 86_400)), "20d");
        assert_eq!(human(s(-5)), "0s");
    }
}
