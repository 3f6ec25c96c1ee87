//! The memtable reaper: makes sure a flushed memtable is freed on a thread of its own, never
//! under the lock every write into its keyspace needs.
//!
//! Why: when a keyspace's memtable is rotated, fjall drops the versions that still pointed at the
//! memtables flushed before, while it holds that keyspace's version lock for writing; and every
//! insert into the keyspace takes the same lock for reading. Freeing an 8 MiB memtable (tens of
//! thousands of skiplist nodes) takes 10–25 ms, so each rotation stalled the committer's batch
//! for that long: the slowest acks at 10,000 msg/s lined up with rotations, one for one
//! (`load-tests/RESULTS.md`, issue 16, round five).
//!
//! So the committer keeps a reference to every keyspace's active memtable. Once a memtable is no
//! longer active, ours is held until it is the last one; then the memtable goes to the reaper
//! thread, which drops it. fjall's own drop under the lock only decrements a count.
//!
//! This reaches into fjall's tree (`Keyspace::tree`, the hidden `AbstractTree` trait): it is
//! public, but not documented API, so a fjall upgrade must keep the test below passing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use fjall::{AbstractTree, Keyspace};
use lsm_tree::Memtable;

/// Memtables waiting for the reaper thread, up to ~64 MiB of them. Rotations come a few per
/// second; if the thread ever falls this far behind, the committer frees the next one itself
/// rather than wait or hold more.
const QUEUE: usize = 8;

pub(super) struct Reaper {
    /// Each keyspace's active memtable when last looked at, in the order of the keyspaces.
    active: Vec<Arc<Memtable>>,
    /// Memtables no longer active that fjall (a flush, a reader's version) still refers to.
    retired: Vec<Arc<Memtable>>,
    tx: SyncSender<Arc<Memtable>>,
    /// Memtables freed by the reaper thread.
    #[cfg(test)]
    reaped: Arc<AtomicU64>,
}

impl Reaper {
    /// Starts the reaper thread and takes a reference to every keyspace's active memtable.
    ///
    /// The thread runs at the normal priority. At `nice` 10 (tried) a full CPU starved it for
    /// 100 ms per memtable, and a thread freeing memory can be preempted holding a jemalloc
    /// arena lock that others allocate through; the 15,000 msg/s tail was no better.
    pub fn start(spaces: &[Keyspace]) -> std::io::Result<Reaper> {
        let (tx, rx) = mpsc::sync_channel::<Arc<Memtable>>(QUEUE);
        let reaped = Arc::new(AtomicU64::new(0));
        let count = reaped.clone();
        std::thread::Builder::new()
            .name("store-reaper".into())
            .spawn(move || {
                for memtable in rx {
                    let began = std::time::Instant::now();
                    drop(memtable);
                    let freed = count.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::debug!(
                        freed,
                        took_us = began.elapsed().as_micros() as u64,
                        "freed a flushed memtable"
                    );
                }
            })?;
        Ok(Reaper {
            active: spaces.iter().map(|ks| ks.tree.active_memtable()).collect(),
            retired: Vec::new(),
            tx,
            #[cfg(test)]
            reaped,
        })
    }

    /// Notes rotated memtables and hands over those only we still hold. Called by the committer
    /// after each batch: a read lock and a pointer comparison per keyspace.
    pub fn observe(&mut self, spaces: &[Keyspace]) {
        for (held, ks) in self.active.iter_mut().zip(spaces) {
            let now = ks.tree.active_memtable();
            if !Arc::ptr_eq(held, &now) {
                self.retired.push(std::mem::replace(held, now));
            }
        }
        let mut i = 0;
        while i < self.retired.len() {
            // Only ours: nobody can take a new reference, since fjall no longer has one.
            if Arc::strong_count(&self.retired[i]) == 1 {
                let memtable = self.retired.swap_remove(i);
                match self.tx.try_send(memtable) {
                    Ok(()) => {}
                    // Freed right here: late, but nothing is held up but this thread.
                    Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => drop(m),
                }
            } else {
                i += 1;
            }
        }
    }

    /// Memtables the reaper thread has freed.
    #[cfg(test)]
    pub fn reaped(&self) -> u64 {
        self.reaped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use fjall::{Database, KeyspaceCreateOptions};

    use super::*;

    #[test]
    fn a_flushed_memtable_is_freed_by_the_reaper_not_by_fjall() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path()).open().unwrap();
        let ks = db.keyspace("k", KeyspaceCreateOptions::default).unwrap();
        let spaces = vec![ks.clone()];
        let mut reaper = Reaper::start(&spaces).unwrap();
        let first = Arc::downgrade(&reaper.active[0]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0u32;
        while reaper.reaped() == 0 {
            assert!(Instant::now() < deadline, "no memtable reached the reaper");
            // Each round fills the active memtable, rotates it and waits for its flush; a later
            // rotation lets fjall drop the versions that pointed at the flushed one.
            for _ in 0..100 {
                n += 1;
                ks.insert(n.to_be_bytes(), vec![0u8; 100]).unwrap();
            }
            ks.rotate_memtable_and_wait().unwrap();
            reaper.observe(&spaces);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            reaper.retired.len() < 3,
            "retired memtables are let go of once fjall has"
        );
        // The first memtable was freed, and not while fjall still needed it: reads still see it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while first.upgrade().is_some() {
            assert!(
                Instant::now() < deadline,
                "the first memtable was never freed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(ks.get(1u32.to_be_bytes()).unwrap().unwrap().len(), 100);
    }
}
