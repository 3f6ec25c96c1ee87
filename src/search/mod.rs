//! Full-text search over chat messages, backed by tantivy.
//!
//! Why it is shaped like this:
//! * The chat message path must never wait on the index, so feeding is a bounded
//!   channel with `try_send` ([`Index::submit`]); when the queue is full the change is
//!   dropped and counted ([`Index::dropped`]) — `reindex` repairs any gap.
//! * A single dedicated std thread owns the `IndexWriter` (tantivy allows one writer
//!   per index), applies changes in batches and commits at most every
//!   `commit_interval`, reloading the reader after each commit so new messages are
//!   searchable within about a second.
//! * Searches run on the caller's thread against the latest committed snapshot and
//!   are always restricted to conversations the asking user is a member of.
//!
//! Layout: `schema.rs` (fields, analyzer), `writer.rs` (the writer thread),
//! `query.rs` (search, ranking, cursor), `snippet.rs` (HTML snippets).

pub mod feed;
mod query;
mod schema;
mod snippet;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tantivy::IndexReader;

use schema::Fields;
use writer::Msg;

pub use query::{MAX_LIMIT, MAX_OFFSET, MAX_QUERY_BYTES};

/// One message as the index sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: u64,
    pub sender_id: String,
    /// The conversation's participants (usually 2 user ids); searches filter on it.
    pub members: Vec<String>,
    pub text: String,
    pub created_at_ms: i64,
}

/// A change fed to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message's first write, fed once by the message path after it is durable: indexed
    /// without first deleting an older copy, because there is none. That delete is most of what
    /// a document costs the writer (it is looked up in every segment at the next commit).
    Add(Doc),
    /// Insert or replace (by `message_id`); re-submitting the same doc is idempotent.
    Upsert(Doc),
    DeleteMessage {
        message_id: String,
    },
    /// User erasure: removes every message the user sent.
    DeleteSender {
        sender_id: String,
    },
}

/// Tuning knobs; `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Minimum time between two commits (a commit only happens if there is work).
    pub commit_interval: Duration,
    /// Capacity of the change queue; `submit` returns false beyond it.
    pub queue_capacity: usize,
    /// Indexing memory budget of the writer (tantivy needs at least ~15 MB).
    pub writer_memory_bytes: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            commit_interval: Duration::from_millis(500),
            queue_capacity: 65_536,
            writer_memory_bytes: 50_000_000,
        }
    }
}

/// A search request. `user_id` is mandatory: only messages of conversations whose
/// members include this user can match.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub user_id: String,
    /// Free text, parsed leniently (tantivy query syntax; errors are ignored).
    pub text: String,
    pub conversation_id: Option<String>,
    /// `next_cursor` of the previous page, or `None` for the first page.
    pub cursor: Option<String>,
    /// Page size, capped at `MAX_LIMIT` (50); 0 means the default of 20.
    pub limit: usize,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: u64,
    /// HTML: matched words in `<mark>`…`</mark>`, everything else escaped.
    pub snippet: String,
    pub created_at_ms: i64,
}

/// One page of results, best match first, then newest, then `message_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Hit>,
    /// Opaque; an offset into the ordered result. `None` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("empty query")]
    EmptyQuery,
    #[error("query longer than {MAX_QUERY_BYTES} bytes")]
    QueryTooLong,
    #[error("invalid or expired cursor")]
    BadCursor,
    #[error("search index is closed")]
    Closed,
    #[error("timed out waiting for the search index")]
    Timeout,
    #[error("search index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot open index directory {path}: {message}")]
    OpenDirectory { path: PathBuf, message: String },
}

/// The message index. Share it behind an `Arc`; all methods take `&self` except
/// [`Index::close`]. Dropping it also commits pending work and stops the writer.
pub struct Index {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    inner: Arc<Shared>,
}

/// What the writer thread and searchers both need.
pub(crate) struct Shared {
    pub index: tantivy::Index,
    pub reader: IndexReader,
    pub fields: Fields,
}

impl Index {
    /// Opens (creating if missing) the index in `dir` and starts its writer thread.
    pub fn open(dir: &Path, config: IndexConfig) -> Result<Index, SearchError> {
        let (index, fields) = open_tantivy(dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()?;
        let inner = Arc::new(Shared {
            index,
            reader,
            fields,
        });
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let thread = writer::spawn(
            Arc::clone(&inner),
            config.writer_memory_bytes,
            rx,
            config.commit_interval,
        )?;
        Ok(Index {
            tx: Some(tx),
            thread: Some(thread),
            dropped: Arc::new(AtomicU64::new(0)),
            inner,
        })
    }

    /// Queues a change without ever blocking. Returns false (and counts it in
    /// [`Index::dropped`]) when the queue is full or the writer has stopped.
    pub fn submit(&self, change: Change) -> bool {
        let ok = match &self.tx {
            Some(tx) => match tx.try_send(Msg::Change(change)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Number of changes refused by [`Index::submit`] since open.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every change submitted before this call is committed and visible
    /// to [`Index::search`]. Sends a barrier through the same queue, so it may wait for
    /// queue space (never longer than `timeout`). Forces a commit, bypassing
    /// `commit_interval`: meant for tests and the `reindex` command, not hot paths.
    pub fn sync(&self, timeout: Duration) -> Result<(), SearchError> {
        let deadline = Instant::now() + timeout;
        let tx = self.tx.as_ref().ok_or(SearchError::Closed)?;
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let mut msg = Msg::Sync(reply_tx);
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Err(SearchError::Closed),
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return Err(SearchError::Timeout);
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match reply_rx.recv_timeout(left) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(SearchError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(SearchError::Closed),
        }
    }

    /// Runs a search for `q.user_id`; see [`Query`] and [`Page`].
    pub fn search(&self, q: &Query) -> Result<Page, SearchError> {
        query::search(&self.inner, q)
    }

    /// Commits pending work, stops the writer thread and waits for it.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the only sender disconnects the channel: the writer drains what is
        // queued, commits, and exits. Nothing here can block on a full queue.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("search writer thread panicked");
            }
        }
    }

    /// Rebuilds the index in `dir` from scratch: deletes every document, then adds
    /// `docs`, committing every 10,000 docs. The index must not
    /// be open elsewhere (tantivy's writer lock would make this fail with a lock
    /// error). Searchers opened during the rebuild see a partial index. Each
    /// `message_id` must appear at most once in `docs` (a duplicate would be indexed
    /// twice), which holds for "every live message from the store".
    /// Returns the number of documents indexed.
    pub fn rebuild(dir: &Path, docs: impl IntoIterator<Item = Doc>) -> Result<u64, SearchError> {
        let (index, fields) = open_tantivy(dir)?;
        writer::rebuild(
            &index,
            &fields,
            IndexConfig::default().writer_memory_bytes,
            docs,
        )
    }

    #[cfg(test)]
    pub(crate) fn sender(&self) -> Option<&SyncSender<Msg>> {
        self.tx.as_ref()
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Opens or creates the on-disk index and registers our analyzer on it.
fn open_tantivy(dir: &Path) -> Result<(tantivy::Index, Fields), SearchError> {
    std::fs::create_dir_all(dir)?;
    let directory =
        tantivy::directory::MmapDirectory::open(dir).map_err(|e| SearchError::OpenDirectory {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
    let (schema, fields) = schema::build_schema();
    let index = tantivy::Index::open_or_create(directory, schema)?;
    schema::register_tokenizer(&index);
    Ok((index, fields))
}
