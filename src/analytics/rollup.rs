//! One day of one dimension's figures (a provider, a service, or everything), and the exact
//! statistics over several of them.
//!
//! Durations are kept as exact histograms (value → count) rather than as sketches: medians and
//! percentiles the marketplace compares against its own numbers must be exact, and a histogram
//! of whole seconds (response times) or milliseconds (delivery times) has at most one entry per
//! distinct value, however many samples it counts. Values past a ceiling are counted at the
//! ceiling, which bounds the entries of the busiest day.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Response times are counted in whole seconds, at most a week.
pub const RESPONSE_CEILING_SECS: u64 = 7 * 86_400;
/// Delivery times are counted in milliseconds, at most ten minutes.
pub const DELIVERY_CEILING_MS: u64 = 600_000;

/// Counts per value.
pub type Histogram = BTreeMap<u64, u64>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// Reads of a service's contact endpoint.
    pub views: u64,
    /// Conversations created.
    pub conversations: u64,
    /// Provider response times, seconds.
    pub responses: Histogram,
    /// Conversations created this day with a reported outcome, and how many of them booked.
    pub outcomes: u64,
    pub booked: u64,
    /// Send to first `delivered` receipt, milliseconds.
    pub deliveries: Histogram,
}

impl Rollup {
    pub fn add_response(&mut self, ms: i64) {
        let secs = (ms.max(0) as u64 / 1000).min(RESPONSE_CEILING_SECS);
        *self.responses.entry(secs).or_default() += 1;
    }

    pub fn add_delivery(&mut self, ms: i64) {
        let ms = (ms.max(0) as u64).min(DELIVERY_CEILING_MS);
        *self.deliveries.entry(ms).or_default() += 1;
    }

    /// Adds another day (or dimension) into this one.
    pub fn merge(&mut self, other: &Rollup) {
        self.views += other.views;
        self.conversations += other.conversations;
        self.outcomes += other.outcomes;
        self.booked += other.booked;
        for (v, n) in &other.responses {
            *self.responses.entry(*v).or_default() += n;
        }
        for (v, n) in &other.deliveries {
            *self.deliveries.entry(*v).or_default() += n;
        }
    }
}

/// How many samples a histogram holds.
pub fn count(h: &Histogram) -> u64 {
    h.values().sum()
}

/// The value of rank `rank` (1-based) in the sorted samples.
fn at_rank(h: &Histogram, rank: u64) -> Option<u64> {
    let mut seen = 0;
    for (v, n) in h {
        seen += n;
        if seen >= rank {
            return Some(*v);
        }
    }
    None
}

/// The median: the middle sample, or the mean of the two middle ones for an even count.
pub fn median(h: &Histogram) -> Option<f64> {
    let n = count(h);
    if n == 0 {
        return None;
    }
    let low = at_rank(h, n.div_ceil(2))?;
    let high = at_rank(h, n / 2 + 1)?;
    Some(if n % 2 == 1 {
        low as f64
    } else {
        (low as f64 + high as f64) / 2.0
    })
}

/// The `p`-th percentile by nearest rank: the smallest sample with at least `p`% of the samples
/// at or below it.
pub fn percentile(h: &Histogram, p: u64) -> Option<u64> {
    let n = count(h);
    if n == 0 {
        return None;
    }
    at_rank(h, (n * p).div_ceil(100).max(1))
}

/// `part / whole`, or `None` when there is nothing to divide.
pub fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        for v in values {
            *h.entry(*v).or_default() += 1;
        }
        h
    }

    #[test]
    fn medians_are_exact_for_odd_and_even_counts() {
        assert_eq!(median(&hist(&[])), None);
        assert_eq!(median(&hist(&[7])), Some(7.0));
        assert_eq!(median(&hist(&[30, 10, 20])), Some(20.0));
        assert_eq!(median(&hist(&[10, 20, 30, 41])), Some(25.0));
        assert_eq!(median(&hist(&[5, 5, 5, 9])), Some(5.0));
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let h = hist(&(1..=10).collect::<Vec<_>>());
        assert_eq!(percentile(&h, 90), Some(9));
        assert_eq!(percentile(&h, 99), Some(10));
        assert_eq!(percentile(&h, 50), Some(5));
        assert_eq!(percentile(&hist(&[3]), 1), Some(3));
        assert_eq!(percentile(&hist(&[]), 50), None);
    }

    #[test]
    fn samples_past_the_ceiling_count_at_the_ceiling_and_negatives_at_zero() {
        let mut r = Rollup::default();
        r.add_response(-5);
        r.add_response(59_999);
        r.add_response(i64::MAX);
        r.add_delivery(1_000_000);
        assert_eq!(
            r.responses,
            hist(&[0, 59, RESPONSE_CEILING_SECS]),
            "seconds, truncated"
        );
        assert_eq!(r.deliveries, hist(&[DELIVERY_CEILING_MS]));
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = Rollup {
            views: 2,
            conversations: 1,
            ..Rollup::default()
        };
        a.add_response(1_000);
        let mut b = Rollup {
            views: 3,
            booked: 1,
            outcomes: 1,
            ..Rollup::default()
        };
        b.add_response(1_000);
        b.add_delivery(12);
        a.merge(&b);
        assert_eq!(
            (a.views, a.conversations, a.booked, a.outcomes),
            (5, 1, 1, 1)
        );
        assert_eq!(a.responses, hist(&[1, 1]));
        assert_eq!(count(&a.deliveries), 1);
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(1, 0), None);
    }
}
