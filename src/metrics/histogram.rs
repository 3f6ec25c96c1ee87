//! A histogram that observes without a lock, exposed through `prometheus-client`'s encoder.
//!
//! `prometheus_client::metrics::histogram::Histogram` keeps its buckets behind a mutex, so every
//! `observe` would take a lock shared by every conversation actor and every socket: the message
//! path would serialise on the metrics. Here each bucket is its own atomic counter and the sum is
//! an `f64` updated by compare-and-swap, so observing is a handful of relaxed atomic operations.
//! The crate still writes the exposition ([`EncodeMetric`] via `encode_histogram`).
//!
//! There is no separate count: the count a scrape reports is the sum of the buckets it read, so
//! `_count` always equals `_bucket{le="+Inf"}` even while observations race the scrape. The sum
//! may lag a concurrent observation by one value, which Prometheus tolerates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// A fixed-bucket histogram; cheap to clone (clones share the same buckets).
#[derive(Clone, Debug)]
pub struct AtomicHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds, ascending, without `+Inf`.
    bounds: Box<[f64]>,
    /// One counter per bound, then one for `+Inf`; each counts its own bucket only (not
    /// cumulative), so an observation touches exactly one.
    buckets: Box<[AtomicU64]>,
    /// `f64` bits of the sum of observed values.
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// Bounds are sorted and de-duplicated; non-finite ones are dropped (`+Inf` is implied).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let mut b: Vec<f64> = bounds.into_iter().filter(|v| v.is_finite()).collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        let buckets = (0..=b.len()).map(|_| AtomicU64::new(0)).collect();
        AtomicHistogram(Arc::new(Inner {
            bounds: b.into_boxed_slice(),
            buckets,
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one value: it goes in the first bucket whose bound is at least `v`
    /// (Prometheus' `le`, "less than or equal").
    pub fn observe(&self, v: f64) {
        let i = self.0.bounds.partition_point(|b| *b < v);
        if let Some(bucket) = self.0.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let mut old = self.0.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match self
                .0
                .sum
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(seen) => old = seen,
            }
        }
    }

    /// Records a duration in seconds, the base unit Prometheus expects.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// What a scrape reports: (sum, count, per-bucket counts with their upper bounds, the last
    /// one `+Inf`). The count is the sum of the buckets read.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = f64::from_bits(self.0.sum.load(Ordering::Relaxed));
        (sum, count, buckets)
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One [`AtomicHistogram`] per value of one label, fixed when it is made: a lookup is an index,
/// not the read lock a `prometheus_client` `Family` takes, so it can sit on the message path.
/// Clones share the same histograms (one is registered, another kept for observing).
#[derive(Debug, Clone)]
pub struct LabeledHistograms {
    label: &'static str,
    series: Box<[(&'static str, AtomicHistogram)]>,
}

impl LabeledHistograms {
    pub fn new(label: &'static str, values: &[&'static str], bounds: &[f64]) -> Self {
        LabeledHistograms {
            label,
            series: values
                .iter()
                .map(|v| (*v, AtomicHistogram::new(bounds.iter().copied())))
                .collect(),
        }
    }

    /// The histogram of the `i`-th label value given to [`LabeledHistograms::new`].
    pub fn get(&self, i: usize) -> Option<&AtomicHistogram> {
        self.series.get(i).map(|(_, h)| h)
    }
}

impl EncodeMetric for LabeledHistograms {
    /// Series that have seen nothing are left out, so a label value that never happens (a store
    /// operation this backend is never asked for) adds no empty buckets to every scrape.
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (value, h) in self.series.iter() {
            let (sum, count, buckets) = h.snapshot();
            if count == 0 {
                continue;
            }
            let labels = [(self.label, *value)];
            encoder
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    #[test]
    fn values_land_in_the_first_bucket_at_or_above_them() {
        let h = AtomicHistogram::new([1.0, 0.1, 10.0, f64::INFINITY, 1.0]);
        for v in [0.05, 0.1, 0.5, 1.0, 5.0, 50.0] {
            h.observe(v);
        }
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 6);
        assert!((sum - 56.65).abs() < 1e-9, "{sum}");
        assert_eq!(
            buckets,
            vec![(0.1, 2), (1.0, 2), (10.0, 1), (f64::INFINITY, 1)],
            "bounds sorted, de-duplicated, +Inf added once"
        );
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = AtomicHistogram::new([0.5]);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        h.observe(1.0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (sum, count, _) = h.snapshot();
        assert_eq!(count, 40_000);
        assert_eq!(sum, 40_000.0);
    }

    #[test]
    fn encodes_as_an_openmetrics_histogram() {
        let h = AtomicHistogram::new([0.01, 0.1]);
        h.observe(0.005);
        h.observe(0.05);
        h.observe(3.0);
        let mut registry = Registry::default();
        registry.register("demo_seconds", "A demo.", h);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE demo_seconds histogram\n"), "{text}");
        assert!(text.contains("demo_seconds_count 3\n"), "{text}");
        assert!(text.contains("demo_seconds_sum 3.055\n"), "{text}");
        assert!(
            text.contains("demo_seconds_bucket{le=\"0.01\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("demo_seconds_bucket{le=\"0.1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("demo_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn labeled_series_encode_with_their_label_and_skip_empty_ones() {
        let hs = LabeledHistograms::new("op", &["read", "write"], &[1.0]);
        hs.get(1).unwrap().observe(0.5);
        assert!(hs.get(2).is_none());
        let mut registry = Registry::default();
        registry.register("demo_op_seconds", "A demo.", hs);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("demo_op_seconds_bucket{le=\"1.0\",op=\"write\"} 1\n")
                || text.contains("demo_op_seconds_bucket{op=\"write\",le=\"1.0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("demo_op_seconds_count{op=\"write\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("op=\"read\""), "{text}");
    }
}
