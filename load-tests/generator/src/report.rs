//! Latency histograms and the figures a scenario prints.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies in microseconds, 1 µs to 60 s, 3 significant digits.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // Constant bounds that hdrhistogram accepts; this cannot fail.
        Latency(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    pub fn record_us(&mut self, us: u64) {
        let _ = self.0.record(us.clamp(1, 60_000_000));
    }

    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// p50/p95/p99/max in milliseconds.
    pub fn summary(&self) -> Value {
        if self.0.is_empty() {
            return json!(null);
        }
        json!({
            "p50_ms": round(self.ms(0.50)),
            "p95_ms": round(self.ms(0.95)),
            "p99_ms": round(self.ms(0.99)),
            "p999_ms": round(self.ms(0.999)),
            "max_ms": round(self.0.max() as f64 / 1000.0),
            "count": self.0.len(),
        })
    }

    pub fn line(&self, name: &str) -> String {
        if self.0.is_empty() {
            return format!("{name}: no samples");
        }
        format!(
            "{name}: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} samples)",
            self.ms(0.5),
            self.ms(0.95),
            self.ms(0.99),
            self.ms(0.999),
            self.0.max() as f64 / 1000.0,
            self.0.len()
        )
    }
}

pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recorded_samples() {
        let mut l = Latency::default();
        for us in 1..=1000 {
            l.record_us(us * 1000);
        }
        let s = l.summary();
        assert_eq!(s["count"], 1000);
        let p50 = s["p50_ms"].as_f64().unwrap();
        let p99 = s["p99_ms"].as_f64().unwrap();
        assert!((499.0..=501.0).contains(&p50), "p50 {p50}");
        assert!((989.0..=991.0).contains(&p99), "p99 {p99}");
        let mut m = Latency::default();
        m.merge(&l);
        assert_eq!(m.summary()["count"], 1000);
        assert!(Latency::default().summary().is_null());
    }
}
