//! Latency samples and the figures a scenario prints.

use serde_json::{json, Value};

/// Latencies in microseconds (clamped to 60 s), kept as raw samples: a task records into its own
/// vector (a push), and the figures are exact nearest-rank percentiles of the merged samples.
///
/// Each task used to hold three HDR histograms (1 µs to 60 s, 3 digits: ~240 KiB of counts
/// each), and a record into one touched a cold page: 11% of the generator's CPU at 10,000 msg/s
/// (perf), more than any other function.
#[derive(Default)]
pub struct Latency(Vec<u32>);

/// The longest latency recorded, µs.
const CLAMP_US: u64 = 60_000_000;

impl Latency {
    pub fn record_us(&mut self, us: u64) {
        self.0.push(us.min(CLAMP_US) as u32);
    }

    pub fn merge(&mut self, other: &Latency) {
        self.0.extend_from_slice(&other.0);
    }

    fn sorted(&self) -> Vec<u32> {
        let mut v = self.0.clone();
        v.sort_unstable();
        v
    }

    /// The nearest-rank quantile `q` of `sorted`, in milliseconds.
    fn ms(sorted: &[u32], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        f64::from(sorted[rank - 1]) / 1000.0
    }

    /// p50/p95/p99/max in milliseconds.
    pub fn summary(&self) -> Value {
        if self.0.is_empty() {
            return json!(null);
        }
        let s = self.sorted();
        json!({
            "p50_ms": round(Self::ms(&s, 0.50)),
            "p95_ms": round(Self::ms(&s, 0.95)),
            "p99_ms": round(Self::ms(&s, 0.99)),
            "p999_ms": round(Self::ms(&s, 0.999)),
            "max_ms": round(Self::ms(&s, 1.0)),
            "count": s.len(),
        })
    }

    pub fn line(&self, name: &str) -> String {
        if self.0.is_empty() {
            return format!("{name}: no samples");
        }
        let s = self.sorted();
        format!(
            "{name}: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} samples)",
            Self::ms(&s, 0.5),
            Self::ms(&s, 0.95),
            Self::ms(&s, 0.99),
            Self::ms(&s, 0.999),
            Self::ms(&s, 1.0),
            s.len()
        )
    }
}

pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The worst latency in each 100 ms window of send times: where a run's tail sits in time, so a
/// slow window can be set beside the server's log (a memtable flush, a compaction) by its clock.
#[derive(Default)]
pub struct Stalls(Vec<u32>);

/// Width of one window, µs.
const WINDOW_US: u64 = 100_000;

impl Stalls {
    /// Records a latency for a message sent `sent_us` after the measurement started.
    pub fn record_us(&mut self, sent_us: u64, latency_us: u64) {
        let i = (sent_us / WINDOW_US) as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] = self.0[i].max(latency_us.min(CLAMP_US) as u32);
    }

    pub fn merge(&mut self, other: &Stalls) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The `n` slowest windows as (start, µs after the measurement started; worst latency, ms),
    /// slowest first.
    pub fn worst(&self, n: usize) -> Vec<(u64, f64)> {
        let mut w: Vec<(u64, f64)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, &us)| (i as u64 * WINDOW_US, f64::from(us) / 1000.0))
            .collect();
        w.sort_by(|a, b| b.1.total_cmp(&a.1));
        w.truncate(n);
        w
    }

    /// Windows whose worst latency is at least `ms`, of all windows.
    pub fn over(&self, ms: f64) -> (usize, usize) {
        let limit = (ms * 1000.0) as u32;
        (
            self.0.iter().filter(|&&us| us >= limit).count(),
            self.0.len(),
        )
    }
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
        assert_eq!(p50, 500.0, "nearest rank: the 500th of 1,000");
        assert_eq!(p99, 990.0);
        assert_eq!(s["max_ms"].as_f64().unwrap(), 1000.0);
        let mut m = Latency::default();
        m.merge(&l);
        assert_eq!(m.summary()["count"], 1000);
        assert!(Latency::default().summary().is_null());
    }

    #[test]
    fn stalls_keep_the_worst_latency_of_each_window() {
        let mut a = Stalls::default();
        a.record_us(50_000, 3_000);
        a.record_us(60_000, 9_000);
        a.record_us(250_000, 1_000);
        let mut b = Stalls::default();
        b.record_us(120_000, 70_000);
        a.merge(&b);
        assert_eq!(a.worst(2), vec![(100_000, 70.0), (0, 9.0)]);
        assert_eq!(a.over(5.0), (2, 3));
    }
}
