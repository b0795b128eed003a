//! Percentiles (nearest rank) over latency samples, and human formatting of numbers.

use std::time::Duration;

/// Sorted samples with nearest-rank percentiles.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Samples { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Nearest-rank percentile, `p` in 0..=100; zero when there are no samples.
    pub fn pct(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.pct(50.0)
    }

    pub fn p99(&self) -> Duration {
        self.pct(99.0)
    }

    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }

    /// `{"n", "p50_ms", "p99_ms", "max_ms"}` for the JSON file.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.len(),
            "p50_ms": ms(self.p50()),
            "p99_ms": ms(self.p99()),
            "max_ms": ms(self.max()),
        })
    }
}

/// Milliseconds as a float, rounded to microseconds.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `0.42 ms`, `12.3 ms`, `1.84 s`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 100.0 {
        format!("{ms:.2} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `p50 1.23 ms / p99 4.56 ms`.
pub fn fmt_p50_p99(s: &Samples) -> String {
    format!(
        "p50 {} / p99 {}",
        fmt_duration(s.p50()),
        fmt_duration(s.p99())
    )
}

/// Kibibytes as `123 MiB` / `1.23 GiB`.
pub fn fmt_kib(kib: u64) -> String {
    let mib = kib as f64 / 1024.0;
    if mib < 1024.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{:.2} GiB", mib / 1024.0)
    }
}

/// Thousands separators: `10,000`.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with a sensible number of digits.
pub fn fmt_rate(per_second: f64, unit: &str) -> String {
    if per_second >= 100.0 {
        format!("{} {unit}/s", fmt_count(per_second.round() as u64))
    } else {
        format!("{per_second:.1} {unit}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(s.p50(), Duration::from_millis(50));
        assert_eq!(s.p99(), Duration::from_millis(99));
        assert_eq!(s.max(), Duration::from_millis(100));
        let one = Samples::new(vec![Duration::from_millis(7)]);
        assert_eq!(one.p50(), one.p99());
        assert_eq!(Samples::default().p99(), Duration::ZERO);
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_count(10_000), "10,000");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_kib(2048), "2 MiB");
        assert_eq!(fmt_duration(Duration::from_micros(420)), "0.420 ms");
    }
}
