//! Per-user budgets shared by HTTP and WebSocket: a token bucket per user. The engine holds two,
//! one for messages (`limits.messages_per_minute`) and one for typing events
//! (`limits.typing_per_10s`), so a user cannot get around either by switching transport or by
//! opening more sockets.
//!
//! Buckets live in a sharded map (no global lock); a sweeper drops the ones that are full again,
//! so the map holds only users who spent recently.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::user::ExternalId;

/// At most `capacity` spends at once, refilled at `capacity` per `window`.
pub struct RateLimiter {
    capacity: u32,
    window: Duration,
    buckets: DashMap<ExternalId, Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A budget of `per_minute` messages. `per_minute == 0` means no limit.
    pub fn new(per_minute: u32) -> Self {
        Self::with_window(per_minute, Duration::from_secs(60))
    }

    /// A budget of `capacity` per `window`. `capacity == 0` means no limit.
    pub fn with_window(capacity: u32, window: Duration) -> Self {
        RateLimiter {
            capacity,
            // A zero window would divide by zero in the refill rate.
            window: window.max(Duration::from_millis(1)),
            buckets: DashMap::new(),
        }
    }

    /// Tokens per second.
    fn rate(&self) -> f64 {
        f64::from(self.capacity) / self.window.as_secs_f64()
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate())
            .min(f64::from(self.capacity));
        b.at = now;
    }

    /// Takes one from the user's budget, or says in how many seconds one will be there.
    pub fn check(&self, user: &ExternalId) -> Result<(), u64> {
        if self.capacity == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = self.buckets.entry(user.clone()).or_insert(Bucket {
            tokens: f64::from(self.capacity),
            at: now,
        });
        self.refill(&mut b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate()).ceil().max(1.0) as u64)
        }
    }

    /// Gives back one taken by [`Self::check`] for something that then did not happen (the store
    /// refused the write, another request created the conversation first).
    pub fn refund(&self, user: &ExternalId) {
        if self.capacity == 0 {
            return;
        }
        if let Some(mut b) = self.buckets.get_mut(user) {
            b.tokens = (b.tokens + 1.0).min(f64::from(self.capacity));
        }
    }

    /// Forgets users whose bucket has filled up again (untouched for a whole window); run now and
    /// then.
    pub fn sweep(&self) {
        let now = Instant::now();
        let full = self.window;
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
        l.refund(&u);
        assert_eq!(l.check(&u), Ok(()), "a refund gives one back");
        assert!(l.check(&u).is_err());
    }

    #[test]
    fn a_short_window_refills_at_its_own_rate_and_sweeps() {
        let l = RateLimiter::with_window(2, Duration::from_millis(200));
        let u = ExternalId::parse("u").unwrap();
        assert_eq!((l.check(&u), l.check(&u)), (Ok(()), Ok(())));
        assert_eq!(l.check(&u), Err(1), "third within the window is refused");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(l.check(&u), Ok(()), "refilled after the window");
        l.sweep();
        assert_eq!(l.tracked_users(), 1, "a bucket in use is kept");
        std::thread::sleep(Duration::from_millis(250));
        l.sweep();
        assert_eq!(l.tracked_users(), 0, "a full bucket is forgotten");
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
