//! The writer thread: the only owner of the tantivy `IndexWriter`.
//!
//! Changes arrive over a bounded channel, are applied in batches, and are committed
//! at most once per `commit_interval` (commits are the expensive part: each one
//! writes a segment and fsyncs). After each commit the shared reader is reloaded so
//! searches see the new data. When every sender is gone the thread drains the queue,
//! commits and exits, so `Index::close`/`Drop` never hang on it.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tantivy::{IndexWriter, TantivyDocument};

use super::schema::{self, Fields};
use super::{Change, Doc, SearchError, Shared};

/// How many docs `rebuild` indexes between two commits.
pub(crate) const REBUILD_COMMIT_EVERY: u64 = 10_000;

/// Upper bound on changes applied before re-checking the commit deadline.
const MAX_BATCH: usize = 4096;

/// What travels on the queue.
pub(crate) enum Msg {
    Change(Change),
    /// Barrier: commit (if needed), reload the reader, then reply.
    Sync(SyncSender<Result<(), SearchError>>),
    /// Test hook: acknowledge, then block until the second channel yields or closes.
    #[cfg(test)]
    Pause(SyncSender<()>, Receiver<()>),
}

/// How much less CPU the indexer gets than the message path when both want it: Linux `nice` 10
/// weighs a thread at about a tenth of a `nice` 0 one. Indexing is the part that may lag (a
/// message becomes searchable a little later; past the queue, changes are dropped, counted, and
/// restored by `reindex`); an acknowledgement or a delivery may not.
pub(crate) const WRITER_NICE: i32 = 10;

/// Starts the writer thread. The `IndexWriter` is made on that thread, after its priority is
/// lowered, so tantivy's indexing and merge threads (spawned by it, and again by each commit)
/// inherit the lower priority too.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    writer_memory_bytes: usize,
    rx: Receiver<Msg>,
    commit_interval: Duration,
) -> Result<JoinHandle<()>, SearchError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("search-writer".into())
        .spawn(move || {
            lower_priority(WRITER_NICE);
            let writer = match shared.index.writer_with_num_threads(1, writer_memory_bytes) {
                Ok(writer) => {
                    let _ = ready_tx.send(Ok(()));
                    writer
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(SearchError::from(e)));
                    return;
                }
            };
            let mut w = Writer {
                writer,
                shared,
                dirty: false,
                last_commit: Instant::now(),
                commit_interval,
            };
            w.run(rx);
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        // The thread ended without a word: it panicked making the writer.
        Err(_) => Err(SearchError::from(std::io::Error::other(
            "the search writer thread ended while starting",
        ))),
    }
}

/// Lowers the calling thread's scheduling priority (on Linux `nice` is per thread, and threads
/// it spawns inherit it). Best effort: without it indexing only competes harder.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take and return plain integers and touch no memory.
        let rc =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "search: could not lower the writer's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

struct Writer {
    writer: IndexWriter<TantivyDocument>,
    shared: Arc<Shared>,
    /// True when changes were applied since the last successful commit.
    dirty: bool,
    last_commit: Instant,
    commit_interval: Duration,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        loop {
            // Wait for work; if there is uncommitted work, wake up at its deadline.
            let first = if self.dirty {
                let deadline = self.last_commit + self.commit_interval;
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                }
            };
            let mut disconnected = false;
            if let Some(m) = first {
                self.handle(m);
                for _ in 1..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(m) => self.handle(m),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
            }
            if disconnected {
                break;
            }
            if self.dirty && self.last_commit.elapsed() >= self.commit_interval {
                // Errors are logged inside; the work stays dirty and is retried.
                let _ = self.commit();
            }
        }
        // Senders gone: whatever was queued has been applied above; persist it.
        if self.dirty {
            if let Err(e) = self.commit() {
                tracing::error!(error = %e, "search: final commit failed");
            }
        }
        tracing::debug!("search writer thread exiting");
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Change(c) => self.apply(c),
            Msg::Sync(reply) => {
                let r = if self.dirty {
                    self.commit()
                } else {
                    self.reload()
                };
                // The caller may have timed out and left; that is fine.
                let _ = reply.try_send(r);
            }
            #[cfg(test)]
            Msg::Pause(ack, resume) => {
                let _ = ack.send(());
                let _ = resume.recv();
            }
        }
    }

    fn apply(&mut self, c: Change) {
        let f = self.shared.fields;
        match c {
            Change::Upsert(doc) => {
                // Delete-then-add in the same batch: tantivy applies a delete only to
                // documents added before it (by opstamp), so the new copy survives.
                self.writer
                    .delete_term(schema::term(f.message_id, &doc.message_id));
                if let Err(e) = self.writer.add_document(schema::to_document(&f, &doc)) {
                    tracing::error!(error = %e, message_id = %doc.message_id, "search: add failed");
                }
            }
            Change::Add(doc) => {
                if let Err(e) = self.writer.add_document(schema::to_document(&f, &doc)) {
                    tracing::error!(error = %e, message_id = %doc.message_id, "search: add failed");
                }
            }
            Change::DeleteMessage { message_id } => {
                self.writer
                    .delete_term(schema::term(f.message_id, &message_id));
            }
            Change::DeleteSender { sender_id } => {
                self.writer
                    .delete_term(schema::term(f.sender_id, &sender_id));
            }
        }
        self.dirty = true;
    }

    fn commit(&mut self) -> Result<(), SearchError> {
        let started = Instant::now();
        // Even a failed attempt restarts the interval, so a broken disk is not hammered.
        self.last_commit = started;
        if let Err(e) = self.writer.commit() {
            tracing::error!(error = %e, "search: commit failed");
            return Err(e.into());
        }
        self.dirty = false;
        tracing::trace!(
            took_ms = started.elapsed().as_millis() as u64,
            "search: committed"
        );
        self.reload()
    }

    fn reload(&self) -> Result<(), SearchError> {
        self.shared.reader.reload().map_err(|e| {
            tracing::error!(error = %e, "search: reader reload failed");
            SearchError::from(e)
        })
    }
}

/// Offline full rebuild, see `Index::rebuild`.
pub(crate) fn rebuild(
    index: &tantivy::Index,
    f: &Fields,
    memory_bytes: usize,
    docs: impl IntoIterator<Item = Doc>,
) -> Result<u64, SearchError> {
    let mut writer: IndexWriter<TantivyDocument> = index.writer(memory_bytes)?;
    writer.delete_all_documents()?;
    let mut n: u64 = 0;
    for doc in docs {
        // No per-doc delete_term: the index was just emptied, and the store yields
        // each live message once. (A delete per doc cost ~40% of rebuild time.)
        writer.add_document(schema::to_document(f, &doc))?;
        n += 1;
        if n.is_multiple_of(REBUILD_COMMIT_EVERY) {
            writer.commit()?;
            tracing::info!(docs = n, "search: rebuild progress");
        }
    }
    writer.commit()?;
    // Let background merges finish so the rebuilt index is compact on disk.
    writer.wait_merging_threads()?;
    tracing::info!(docs = n, "search: rebuild done");
    Ok(n)
}
