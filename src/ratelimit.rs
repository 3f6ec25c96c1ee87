//! The per-user message budget, shared by HTTP and WebSocket: a token bucket per user.
//!
//! Buckets live in a sharded map (no global lock); a sweeper drops the ones that are full again,
//! so the map holds only users who sent recently.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::user::ExternalId;

pub struct RateLimiter {
    per_minute: u32,
    buckets: DashMap<ExternalId, Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute == 0` means no limit.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: DashMap::new(),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let rate = f64::from(self.per_minute) / 60.0;
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate)
            .min(f64::from(self.per_minute));
        b.at = now;
    }

    /// Takes one message from the user's budget, or says in how many seconds one will be there.
    pub fn check(&self, user: &ExternalId) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = self.buckets.entry(user.clone()).or_insert(Bucket {
            tokens: f64::from(self.per_minute),
            at: now,
        });
        self.refill(&mut b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let rate = f64::from(self.per_minute) / 60.0;
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Forgets users whose bucket has filled up again; run now and then.
    pub fn sweep(&self) {
        let now = Instant::now();
        let full = Duration::from_secs(60);
        self.buckets.retain(|_, b| now.duration_since(b.at) < full);
    }

    pub fn tracked_users(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_and_says_when_to_retry() {
        let l = RateLimiter::new(3);
        let u = ExternalId::parse("u").unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(&u), Ok(()));
        }
        let retry = l.check(&u).unwrap_err();
        assert!((1..=20).contains(&retry), "retry_after {retry}");
        let other = ExternalId::parse("v").unwrap();
        assert_eq!(l.check(&other), Ok(()), "budgets are per user");
    }

    #[test]
    fn zero_means_unlimited() {
        let l = RateLimiter::new(0);
        let u = ExternalId::parse("u").unwrap();
        for _ in 0..1000 {
            assert_eq!(l.check(&u), Ok(()));
        }
        assert_eq!(l.tracked_users(), 0);
    }
}
