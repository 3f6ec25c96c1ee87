//! The committer: the one thread that writes the embedded store, and what decides what readers see.
//!
//! Every write is a [`Job`] on one queue. The committer takes whatever has queued up (up to
//! `max_batch`), applies it as one atomic fjall batch, syncs the journal once for the whole batch,
//! and only then publishes a new cross-keyspace snapshot, which every read goes through. So no
//! reader ever sees a write that a power cut could still take back (a `seq` seen and then reused),
//! and one fsync still serves a whole batch (FACTS.md: 128,000 durable writes/s with 200 writers).
//!
//! The queue is bounded by a count of queued writes rather than by the channel itself, so a full
//! queue refuses a write at once (`Overloaded`) while `settle` markers, which hold no data and are
//! bounded by their callers (one per starting actor), never wait and never fail for lack of room.
//!
//! After any failed commit or sync the store is poisoned: fjall refuses every write after an I/O
//! error anyway, and a write that fails after its batch was applied in memory must never become
//! visible. Every later write is refused at once, health reports down, and reads go on answering
//! from the last durable snapshot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};

use arc_swap::ArcSwap;
use fjall::{Database, Keyspace, PersistMode, Snapshot};

use super::reaper::Reaper;
use super::Ks;
use crate::metrics::AtomicHistogram;
use crate::storage::{OnDurable, StoreError, StoreResult};

pub(super) enum Op {
    Put(Ks, Vec<u8>, Vec<u8>),
    Delete(Ks, Vec<u8>),
}

/// A write (or a `settle` marker, with no operations) waiting for the committer, with whoever
/// waits for it.
///
/// Its callback is called exactly once: with the commit's outcome, or with `Closed` if the job
/// is dropped unfinished (the committer thread died, or the store is gone). Without that, a
/// conversation actor would wait forever for a write nobody will answer.
struct Job {
    ops: Vec<Op>,
    /// Whether this job counts against the queue bound (a write; not a `settle` marker).
    write: bool,
    done: Option<OnDurable>,
}

impl Job {
    fn new(ops: Vec<Op>, write: bool, done: OnDurable) -> Self {
        Job {
            ops,
            write,
            done: Some(done),
        }
    }

    fn finish(mut self, result: StoreResult<()>) {
        if let Some(done) = self.done.take() {
            call_back(done, result);
        }
    }

    /// Takes the job back without answering it: `submit` refuses synchronously instead.
    fn forget(mut self) {
        self.done = None;
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            call_back(done, Err(StoreError::Closed));
        }
    }
}

/// Runs a write's callback on the committer thread; one that panics must not take the committer
/// (and every other writer's answer) down with it.
fn call_back(done: OnDurable, result: StoreResult<()>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || done(result))).is_err() {
        tracing::error!("a store write callback panicked");
    }
}

/// What the committer and the readers share: the database, the latest durable snapshot, and
/// whether writing is still possible.
pub(super) struct Shared {
    pub db: Database,
    pub spaces: Vec<Keyspace>,
    /// The view every read goes through: replaced only after a batch is synced.
    published: ArcSwap<Snapshot>,
    /// Set once, with the reason, when a commit or sync fails.
    poisoned: OnceLock<String>,
    /// Cleared when the committer thread ends, however it ends.
    alive: AtomicBool,
    /// Writes taken and not yet answered, against `max_queue`.
    queued: AtomicUsize,
    max_queue: usize,
    #[cfg(test)]
    pub seam: seam::Seam,
}

impl Shared {
    /// `db` must hold no write that is not yet synced: its current state is published as durable.
    pub fn new(db: Database, spaces: Vec<Keyspace>, max_queue: usize) -> Self {
        let published = ArcSwap::from_pointee(db.snapshot());
        Shared {
            db,
            spaces,
            published,
            poisoned: OnceLock::new(),
            alive: AtomicBool::new(true),
            queued: AtomicUsize::new(0),
            max_queue: max_queue.max(1),
            #[cfg(test)]
            seam: seam::Seam::default(),
        }
    }

    /// The latest durable snapshot. Cheap (no lock); hold it only for one read.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.load_full()
    }

    pub fn ks(&self, ks: Ks) -> &Keyspace {
        &self.spaces[ks as usize]
    }

    /// Whether the store can take writes: `false` once poisoned or once the committer is gone.
    pub fn writable(&self) -> bool {
        self.poisoned.get().is_none() && self.alive.load(Ordering::Acquire)
    }

    fn refusal(&self) -> Option<StoreError> {
        if let Some(reason) = self.poisoned.get() {
            return Some(StoreError::Poisoned(reason.clone()));
        }
        if !self.alive.load(Ordering::Acquire) {
            return Some(StoreError::Closed);
        }
        None
    }

    fn poison(&self, reason: &StoreError) {
        if self.poisoned.set(reason.to_string()).is_ok() {
            tracing::error!(error = %reason, "the store is poisoned: every write is refused from now on");
        }
    }
}

/// Clears the committer's liveness flag however its thread ends, a panic included, so `health`
/// reports the store down and writes are refused.
struct ClearOnExit(Arc<Shared>);

impl Drop for ClearOnExit {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
    }
}

/// The sending side of the committer's queue. Dropping it lets the committer finish what is
/// queued and end, which closes the database.
pub(super) struct Committer {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl Committer {
    /// `batch_sizes` gets the number of writes of every group commit (operators size
    /// `store.max_batch` and see the disk's fsync rate from it).
    pub fn start(
        shared: Arc<Shared>,
        max_batch: usize,
        batch_sizes: AtomicHistogram,
    ) -> StoreResult<Committer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let guard = ClearOnExit(shared.clone());
        let reaper = Reaper::start(&shared.spaces).map_err(|e| StoreError::Io(e.to_string()))?;
        std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || commit_loop(guard, rx, max_batch.max(1), batch_sizes, reaper))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Committer { tx, shared })
    }

    /// Why a write would be refused now, if it would: lets a caller skip encoding it.
    pub fn refusal(&self) -> Option<StoreError> {
        self.shared.refusal()
    }

    /// Queues a write; `done` is called once it is durable or has failed. A write the store
    /// cannot take (poisoned, closed, queue full) is refused with `Err` and `done` is dropped
    /// uncalled.
    pub fn submit(&self, ops: Vec<Op>, done: OnDurable) -> StoreResult<()> {
        if let Some(refused) = self.shared.refusal() {
            return Err(refused);
        }
        let queued = &self.shared.queued;
        if queued.fetch_add(1, Ordering::AcqRel) >= self.shared.max_queue {
            queued.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Overloaded);
        }
        if let Err(mpsc::SendError(job)) = self.tx.send(Job::new(ops, true, done)) {
            job.forget();
            queued.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Calls `done` once every job queued before it has been answered: a marker with no
    /// operations, which costs no fsync (a batch of markers alone is not committed).
    pub fn settle(&self, done: OnDurable) {
        // A refused marker is dropped, and its `Drop` answers `Closed`.
        let _ = self.tx.send(Job::new(Vec::new(), false, done));
    }
}

fn commit_loop(
    alive: ClearOnExit,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    batch_sizes: AtomicHistogram,
    mut reaper: Reaper,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch.min(4096));
    // Declared after `jobs`, so it drops first however the loop ends: a write answered `Closed`
    // by its dropped job finds the store already reporting down.
    let alive = alive;
    let shared: &Shared = &alive.0;
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let writes = jobs.iter().filter(|j| j.write).count();
        let result = match shared.refusal() {
            Some(refused) => Err(refused),
            None if writes == 0 => Ok(()),
            None => {
                batch_sizes.observe(writes as f64);
                commit(shared, &mut jobs, writes)
            }
        };
        for job in jobs.drain(..) {
            if job.write {
                job.finish(result.clone());
                shared.queued.fetch_sub(1, Ordering::AcqRel);
            } else {
                // A marker answers that everything before it has been answered, whatever the
                // outcome was.
                job.finish(Ok(()));
            }
        }
        // After the answers: a rotation this batch caused is noticed without delaying them.
        if writes > 0 {
            reaper.observe(&shared.spaces);
        }
    }
}

/// Applies the jobs' operations as one batch, syncs, and publishes the result to readers.
fn commit(shared: &Shared, jobs: &mut [Job], writes: usize) -> StoreResult<()> {
    let began = std::time::Instant::now();
    let mut batch = shared.db.batch();
    for job in jobs.iter_mut() {
        for op in job.ops.drain(..) {
            match op {
                Op::Put(ks, k, v) => batch.insert(shared.ks(ks), k, v),
                Op::Delete(ks, k) => batch.remove(shared.ks(ks), k),
            }
        }
    }
    let io = |e: fjall::Error| StoreError::Io(e.to_string());
    let built = began.elapsed();
    let mut applied = built;
    let result = batch.commit().map_err(io).and_then(|()| {
        applied = began.elapsed();
        #[cfg(test)]
        shared.seam.between_commit_and_persist()?;
        shared.db.persist(PersistMode::SyncAll).map_err(io)
    });
    match &result {
        // Published before any callback runs, so whoever learns a write is durable can read it.
        Ok(()) => shared.published.store(Arc::new(shared.db.snapshot())),
        Err(e) => {
            tracing::error!(error = %e, writes, "group commit failed");
            shared.poison(e);
        }
    }
    let took = began.elapsed();
    if took > std::time::Duration::from_millis(10) {
        // Where a slow batch spent its time, to set beside fjall's flushes (`fjall=debug`).
        tracing::debug!(
            writes,
            build_us = built.as_micros() as u64,
            apply_us = (applied - built).as_micros() as u64,
            sync_us = (took - applied).as_micros() as u64,
            "group commit over 10 ms"
        );
    }
    if took > std::time::Duration::from_millis(100) {
        tracing::warn!(
            writes,
            took_ms = took.as_millis() as u64,
            "slow group commit"
        );
    }
    result
}

/// Test-only hooks into the committer: pause it between commit and sync, or fail the sync.
#[cfg(test)]
pub(super) mod seam {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use crate::storage::{StoreError, StoreResult};

    type Hook = Box<dyn FnMut() + Send>;

    #[derive(Default)]
    pub struct Seam {
        /// Runs on the committer thread after a batch is applied and before it is synced.
        pub pause: Mutex<Option<Hook>>,
        /// Makes the next sync fail as an I/O error would.
        pub fail_persist: AtomicBool,
        /// Batches committed so far (each costs one sync).
        pub commits: AtomicUsize,
    }

    impl Seam {
        pub(super) fn between_commit_and_persist(&self) -> StoreResult<()> {
            self.commits.fetch_add(1, Ordering::AcqRel);
            if let Some(hook) = self.pause.lock().unwrap().as_mut() {
                hook();
            }
            if self.fail_persist.swap(false, Ordering::AcqRel) {
                return Err(StoreError::Io("injected: the disk went away".into()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// A callback that records what it was called with.
    fn recorder() -> (Arc<StdMutex<Vec<StoreResult<()>>>>, OnDurable) {
        let calls = Arc::new(StdMutex::new(Vec::new()));
        let c = calls.clone();
        (calls, Box::new(move |r| c.lock().unwrap().push(r)))
    }

    #[test]
    fn a_finished_job_answers_its_outcome_once() {
        let (calls, done) = recorder();
        Job::new(Vec::new(), true, done).finish(Ok(()));
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 1, "exactly one answer, none again on drop");
        assert!(calls[0].is_ok());
    }

    #[test]
    fn a_forgotten_job_never_answers() {
        let (calls, done) = recorder();
        Job::new(Vec::new(), true, done).forget();
        assert!(
            calls.lock().unwrap().is_empty(),
            "refused writes are not called back"
        );
    }

    #[test]
    fn jobs_still_queued_when_the_committer_ends_answer_closed() {
        let (queued, done) = recorder();
        let (tx, rx) = mpsc::channel::<Job>();
        tx.send(Job::new(Vec::new(), true, done)).unwrap();
        drop(rx);
        let calls = queued.lock().unwrap();
        assert_eq!(calls.len(), 1, "answered exactly once");
        assert!(
            matches!(calls[0], Err(StoreError::Closed)),
            "{:?}",
            calls[0]
        );
    }

    #[test]
    fn a_panicking_callback_does_not_unwind_into_the_committer() {
        let done: OnDurable = Box::new(|_| panic!("callback bug"));
        Job::new(Vec::new(), true, done).finish(Ok(()));
    }
}
