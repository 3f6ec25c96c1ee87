//! Budgets: a token bucket per key (a user, an address). The engine holds one per thing it
//! limits: messages per user (`limits.messages_per_minute`, HTTP and WebSocket together, so a
//! user cannot get around it by switching transport or opening sockets), typing events per user,
//! conversations created per user, connection attempts and failed authentications per address.
//!
//! Hand-written rather than `governor`: a message the store then refuses, or a creation another
//! request won, is given back (`refund`), and a GCRA limiter cannot give back. Buckets live in a
//! sharded map (no global lock); a sweeper drops the ones that are full again, so the map holds
//! only keys that spent recently.

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::user::ExternalId;

/// At most `burst` spends at once, refilled at `capacity` per `window`.
pub struct RateLimiter<K: Hash + Eq + Clone = ExternalId> {
    capacity: u32,
    burst: u32,
    window: Duration,
    buckets: DashMap<K, Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A budget of `per_minute`. `per_minute == 0` means no limit.
    pub fn new(per_minute: u32) -> Self {
        Self::with_window(per_minute, Duration::from_secs(60))
    }

    /// A budget of `capacity` per `window`, all of which may be spent at once.
    /// `capacity == 0` means no limit.
    pub fn with_window(capacity: u32, window: Duration) -> Self {
        Self::with_burst(capacity, capacity, window)
    }

    /// Refilled at `capacity` per `window`, at most `burst` at once (0: `capacity`).
    pub fn with_burst(capacity: u32, burst: u32, window: Duration) -> Self {
        RateLimiter {
            capacity,
            burst: if burst == 0 { capacity } else { burst },
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
            .min(f64::from(self.burst));
        b.at = now;
    }

    fn wait(&self, tokens: f64) -> u64 {
        ((1.0 - tokens) / self.rate()).ceil().max(1.0) as u64
    }

    /// Takes one from the key's budget, or says in how many seconds one will be there.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        if self.capacity == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: f64::from(self.burst),
            at: now,
        });
        self.refill(&mut b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait(b.tokens))
        }
    }

    /// Whether the key's budget is spent (and for how many seconds more), without spending:
    /// for budgets charged only when something goes wrong (failed authentications), which must
    /// still stop the next attempt.
    pub fn blocked(&self, key: &K) -> Option<u64> {
        if self.capacity == 0 {
            return None;
        }
        let mut b = self.buckets.get_mut(key)?;
        self.refill(&mut b, Instant::now());
        (b.tokens < 1.0).then(|| self.wait(b.tokens))
    }

    /// Gives back one taken by [`Self::check`] for something that then did not happen (the store
    /// refused the write, another request created the conversation first).
    pub fn refund(&self, key: &K) {
        if self.capacity == 0 {
            return;
        }
        if let Some(mut b) = self.buckets.get_mut(key) {
            b.tokens = (b.tokens + 1.0).min(f64::from(self.burst));
        }
    }

    /// Forgets keys whose bucket has filled up again (untouched for a whole window); run now and
    /// then.
    pub fn sweep(&self) {
        let now = Instant::now();
        let full = self.window;
        self.buckets.retain(|_, b| now.duration_since(b.at) < full);
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_and_says_when_to_retry() {
        let l = RateLimiter::<ExternalId>::new(3);
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
        let l = RateLimiter::<ExternalId>::with_window(2, Duration::from_millis(200));
        let u = ExternalId::parse("u").unwrap();
        assert_eq!((l.check(&u), l.check(&u)), (Ok(()), Ok(())));
        assert_eq!(l.check(&u), Err(1), "third within the window is refused");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(l.check(&u), Ok(()), "refilled after the window");
        l.sweep();
        assert_eq!(l.tracked(), 1, "a bucket in use is kept");
        std::thread::sleep(Duration::from_millis(250));
        l.sweep();
        assert_eq!(l.tracked(), 0, "a full bucket is forgotten");
    }

    #[test]
    fn zero_means_unlimited() {
        let l = RateLimiter::<ExternalId>::new(0);
        let u = ExternalId::parse("u").unwrap();
        for _ in 0..1000 {
            assert_eq!(l.check(&u), Ok(()));
        }
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn a_burst_is_spent_at_once_and_refills_at_the_rate() {
        // 60 per minute (one a second), at most 3 at once.
        let l = RateLimiter::<u32>::with_burst(60, 3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(l.check(&1), Ok(()));
        }
        assert_eq!(
            l.check(&1),
            Err(1),
            "the burst is spent; one back in a second"
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(l.check(&1), Ok(()), "refilled at the rate");
        assert!(l.check(&1).is_err(), "but only one");
    }

    #[test]
    fn blocked_looks_without_spending() {
        let l = RateLimiter::<&str>::new(2);
        assert_eq!(l.blocked(&"ip"), None, "unknown keys are not blocked");
        assert_eq!(l.tracked(), 0, "and looking does not track them");
        l.check(&"ip").unwrap();
        assert_eq!(l.blocked(&"ip"), None);
        l.check(&"ip").unwrap();
        assert!(l.blocked(&"ip").is_some_and(|s| (1..=60).contains(&s)));
        assert!(
            l.blocked(&"ip").is_some(),
            "looking again does not change it"
        );
        assert_eq!(l.blocked(&"other"), None);
    }
}
