//! Write chains: the order of each conversation's writes, kept against a cluster.
//!
//! A conversation actor pipelines its writes: it submits message N+1 before N is answered, and
//! releases effects in seq order as answers come. Against ScyllaDB, writes sent concurrently can
//! land in any order, and if N failed while N+1 landed, seq N would be a hole that no actor can
//! repair. So each conversation has a chain: at most one batch of its writes in flight, and
//! everything submitted meanwhile is coalesced into the next batch (one logged batch, one round
//! trip, however many writes queued up). Different conversations' chains run concurrently.
//!
//! When a batch fails, every write queued behind it fails too, and the chain refuses new writes
//! until `settle` (the next incarnation of the actor fences itself with one): the store contract's
//! "a failed write fails every write behind it", per conversation. Writes carry their own
//! timestamps, so a batch that timed out but lands later cannot overwrite a newer one.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::rows::Bound;
use crate::domain::Id;
use crate::storage::{OnDurable, StoreError, StoreResult};

/// Most writes coalesced into one batch, and most bytes: well below ScyllaDB's batch size
/// warning (128 KiB), so a burst never turns into one huge batch.
const MAX_WRITES: usize = 32;
const MAX_BYTES: usize = 64 * 1024;

/// Sends one batch of statements to the cluster.
pub type Apply =
    Arc<dyn Fn(Vec<Bound>) -> Pin<Box<dyn Future<Output = StoreResult<()>> + Send>> + Send + Sync>;

enum Entry {
    Write(Vec<Bound>, OnDurable),
    Settle(OnDurable),
}

#[derive(Default)]
struct Chain {
    queue: VecDeque<Entry>,
    /// A runner task is draining this chain.
    running: bool,
    /// The error of the last failed batch, until a `settle`.
    failed: Option<StoreError>,
}

impl Chain {
    fn idle(&self) -> bool {
        self.queue.is_empty() && !self.running && self.failed.is_none()
    }
}

/// A chain as the map holds it. The map's shard lock already makes access exclusive; the mutex
/// is only there because callbacks are `Send` but not `Sync`, and is never contended
/// (`get_mut`, no locking).
type Slot = std::sync::Mutex<Chain>;

fn unlock(slot: &mut Slot) -> &mut Chain {
    slot.get_mut()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Chains {
    chains: DashMap<Id, Slot>,
    /// Writes submitted and not yet answered, across all chains.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    apply: Apply,
    runtime: tokio::runtime::Handle,
}

impl Chains {
    pub fn new(apply: Apply, max_in_flight: usize, runtime: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Chains {
            chains: DashMap::new(),
            in_flight: AtomicUsize::new(0),
            max_in_flight,
            apply,
            runtime,
        })
    }

    /// Queues a write behind the conversation's earlier ones. Refused at once (nothing queued,
    /// `done` not called) when too many writes are in flight or the chain has failed.
    pub fn submit(
        self: &Arc<Self>,
        conversation: Id,
        write: Vec<Bound>,
        done: OnDurable,
    ) -> StoreResult<()> {
        if self.in_flight.load(Ordering::Acquire) >= self.max_in_flight {
            return Err(StoreError::Overloaded);
        }
        let mut slot = self.chains.entry(conversation).or_default();
        let chain = unlock(&mut slot);
        if let Some(e) = &chain.failed {
            return Err(e.clone());
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        chain.queue.push_back(Entry::Write(write, done));
        self.wake(conversation, chain);
        Ok(())
    }

    /// Calls `done` once every write queued for the conversation before it is answered, and
    /// lets the chain take writes again if it had failed.
    pub fn settle(self: &Arc<Self>, conversation: Id, done: OnDurable) {
        let mut slot = self.chains.entry(conversation).or_default();
        let chain = unlock(&mut slot);
        // A failed chain holds no writes and has no batch in flight (the failure answered them
        // all), so writes submitted from now on may be tried at once.
        chain.failed = None;
        chain.queue.push_back(Entry::Settle(done));
        self.wake(conversation, chain);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    fn wake(self: &Arc<Self>, conversation: Id, chain: &mut Chain) {
        if !chain.running {
            chain.running = true;
            let chains = self.clone();
            self.runtime
                .spawn(async move { chains.run(conversation).await });
        }
    }

    /// Drains one chain: settles answered, writes coalesced into batches, until it is empty.
    async fn run(self: Arc<Self>, conversation: Id) {
        loop {
            let (batch, settles) = {
                let Some(mut slot) = self.chains.get_mut(&conversation) else {
                    return;
                };
                let chain = unlock(&mut slot);
                let mut settles = Vec::new();
                let mut batch: Vec<(Vec<Bound>, OnDurable)> = Vec::new();
                let mut bytes = 0;
                while let Some(entry) = chain.queue.front() {
                    match entry {
                        Entry::Settle(_) if batch.is_empty() => {
                            if let Some(Entry::Settle(done)) = chain.queue.pop_front() {
                                settles.push(done);
                            }
                            chain.failed = None;
                        }
                        Entry::Settle(_) => break,
                        Entry::Write(w, _) => {
                            let weight: usize = w.iter().map(Bound::weight).sum();
                            if !batch.is_empty()
                                && (batch.len() >= MAX_WRITES || bytes + weight > MAX_BYTES)
                            {
                                break;
                            }
                            bytes += weight;
                            if let Some(Entry::Write(w, done)) = chain.queue.pop_front() {
                                batch.push((w, done));
                            }
                        }
                    }
                }
                if batch.is_empty() && settles.is_empty() {
                    chain.running = false;
                    drop(slot);
                    self.chains
                        .remove_if_mut(&conversation, |_, c| unlock(c).idle());
                    return;
                }
                (batch, settles)
            };
            for done in settles {
                call_back(done, Ok(()));
            }
            if batch.is_empty() {
                continue;
            }
            let (writes, dones): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let n = dones.len();
            let result = (self.apply)(writes.into_iter().flatten().collect()).await;
            self.in_flight.fetch_sub(n, Ordering::AcqRel);
            // Behind a failure, the writes queued after the batch are taken (and the chain marked
            // failed) before anything is answered, then everything is answered in order.
            let behind = match &result {
                Err(e) => self.take_queued(conversation, e.clone()),
                Ok(()) => Vec::new(),
            };
            for done in dones {
                call_back(done, result.clone());
            }
            for done in behind {
                call_back(done, result.clone());
            }
        }
    }

    /// After a failed batch: marks the chain failed and takes every write queued behind it (up to
    /// the next settle), for the caller to fail.
    fn take_queued(&self, conversation: Id, error: StoreError) -> Vec<OnDurable> {
        let failed = {
            let Some(mut slot) = self.chains.get_mut(&conversation) else {
                return Vec::new();
            };
            let chain = unlock(&mut slot);
            chain.failed = Some(error.clone());
            let mut failed = Vec::new();
            while let Some(Entry::Write(..)) = chain.queue.front() {
                if let Some(Entry::Write(_, done)) = chain.queue.pop_front() {
                    failed.push(done);
                }
            }
            failed
        };
        self.in_flight.fetch_sub(failed.len(), Ordering::AcqRel);
        failed
    }
}

/// Runs a write's callback; one that panics must not take the runner (and every write queued
/// behind it) down with it.
fn call_back(done: OnDurable, result: StoreResult<()>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || done(result))).is_err() {
        tracing::error!("a store write callback panicked");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::storage::durable_channel;
    use crate::storage::scylla::cql::Q;
    use scylla::value::CqlValue;

    /// Records every batch; fails batches whose first statement's value is negative; each takes
    /// a little time, so later writes queue up behind it.
    fn recording() -> (Apply, Arc<Mutex<Vec<Vec<i64>>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let apply: Apply = Arc::new(move |stmts: Vec<Bound>| {
            let log = log.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let vals: Vec<i64> = stmts
                    .iter()
                    .map(|b| match b.values[0] {
                        CqlValue::BigInt(v) => v,
                        _ => 0,
                    })
                    .collect();
                let bad = vals.iter().any(|v| *v < 0);
                log.lock().unwrap().push(vals);
                if bad {
                    Err(StoreError::Io("forged failure".into()))
                } else {
                    Ok(())
                }
            })
        });
        (apply, seen)
    }

    fn write(v: i64) -> Vec<Bound> {
        vec![Bound {
            q: Q::PutHidden,
            values: vec![CqlValue::BigInt(v)],
        }]
    }

    #[tokio::test]
    async fn writes_of_one_conversation_are_applied_in_order_and_coalesced() {
        let (apply, seen) = recording();
        let chains = Chains::new(apply, 1000, tokio::runtime::Handle::current());
        let mut waits = Vec::new();
        for v in 1..=50 {
            let (done, rx) = durable_channel();
            chains.submit(Id(1), write(v), done).unwrap();
            waits.push(rx);
        }
        for rx in waits {
            rx.await.unwrap().unwrap();
        }
        let batches = seen.lock().unwrap().clone();
        let flat: Vec<i64> = batches.iter().flatten().copied().collect();
        assert_eq!(flat, (1..=50).collect::<Vec<_>>());
        assert!(
            batches.len() < 50,
            "queued writes share batches: {}",
            batches.len()
        );
        assert_eq!(chains.in_flight(), 0);
        assert!(chains.chains.is_empty(), "an idle chain is forgotten");
    }

    #[tokio::test]
    async fn a_failed_write_fails_the_writes_behind_it_until_a_settle() {
        let (apply, seen) = recording();
        let chains = Chains::new(apply, 1000, tokio::runtime::Handle::current());
        let (d1, r1) = durable_channel();
        chains.submit(Id(1), write(-1), d1).unwrap();
        // Queued behind the failing one while it is in flight (not coalesced with it).
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (d2, r2) = durable_channel();
        chains.submit(Id(1), write(2), d2).unwrap();
        assert!(r1.await.unwrap().is_err());
        assert!(r2.await.unwrap().is_err());
        // Refused at once until the fence.
        let (d3, _r3) = durable_channel();
        assert!(chains.submit(Id(1), write(3), d3).is_err());
        let (s, settled) = durable_channel();
        chains.settle(Id(1), s);
        settled.await.unwrap().unwrap();
        let (d4, r4) = durable_channel();
        chains.submit(Id(1), write(4), d4).unwrap();
        r4.await.unwrap().unwrap();
        let flat: Vec<i64> = seen.lock().unwrap().iter().flatten().copied().collect();
        assert_eq!(flat, vec![-1, 4], "2 and 3 never reached the cluster");
        assert_eq!(chains.in_flight(), 0);
    }

    #[tokio::test]
    async fn other_conversations_are_not_held_up_or_failed() {
        let (apply, _seen) = recording();
        let chains = Chains::new(apply, 1000, tokio::runtime::Handle::current());
        let (d1, r1) = durable_channel();
        chains.submit(Id(1), write(-1), d1).unwrap();
        let (d2, r2) = durable_channel();
        chains.submit(Id(2), write(2), d2).unwrap();
        assert!(r1.await.unwrap().is_err());
        r2.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn settle_waits_for_queued_writes_and_a_full_store_refuses() {
        let (apply, seen) = recording();
        let chains = Chains::new(apply, 3, tokio::runtime::Handle::current());
        for v in 1..=3 {
            let (d, _) = durable_channel();
            chains.submit(Id(1), write(v), d).unwrap();
        }
        let (d, _) = durable_channel();
        assert!(matches!(
            chains.submit(Id(9), write(9), d),
            Err(StoreError::Overloaded)
        ));
        let (s, settled) = durable_channel();
        chains.settle(Id(1), s);
        settled.await.unwrap().unwrap();
        assert_eq!(seen.lock().unwrap().iter().flatten().count(), 3);
    }
}
