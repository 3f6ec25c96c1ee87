//! The engine's side of the index: its configuration, what a stored message looks like to it,
//! and `switchboard reindex`, which rebuilds it from the store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Change, Doc, Index, IndexConfig, SearchError};
use crate::config::Config;
use crate::domain::conversation::ConversationRecord;
use crate::domain::message::StoredMessage;
use crate::domain::Id;
use crate::storage::records::{Record, Table};
use crate::storage::{Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Off: no index is kept and `GET /api/v1/search` answers 503 `search_unavailable`.
    pub enabled: bool,
    /// Where the index lives; empty means `search/` under `store.path`.
    pub dir: PathBuf,
    /// Longest a new message waits before it is searchable, milliseconds.
    pub commit_ms: u64,
    /// Changes waiting for the indexer; past this they are dropped, counted, and `reindex`
    /// brings them back.
    pub queue: usize,
    /// The indexer's memory budget, MiB (tantivy needs at least 15).
    pub writer_memory_mib: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            enabled: true,
            dir: PathBuf::new(),
            // Each commit writes a segment and fsyncs it, on the disk the journal syncs every
            // ack on: at 10,000 msg/s, commits every 500 ms raised the p99 send latency 2–3×,
            // every 2 s left it within noise of search off (load-tests/RESULTS.md).
            commit_ms: 2000,
            queue: 65_536,
            writer_memory_mib: 32,
        }
    }
}

impl SearchConfig {
    pub fn dir(&self, config: &Config) -> PathBuf {
        if self.dir.as_os_str().is_empty() {
            config.store.path.join("search")
        } else {
            self.dir.clone()
        }
    }

    fn index_config(&self) -> IndexConfig {
        IndexConfig {
            commit_interval: Duration::from_millis(self.commit_ms.max(10)),
            queue_capacity: self.queue.max(1),
            writer_memory_bytes: self.writer_memory_mib.max(15) << 20,
        }
    }
}

/// Opens the configured index, or `None` when search is off.
pub fn open(config: &Config) -> Result<Option<Arc<Index>>, SearchError> {
    if !config.search.enabled {
        return Ok(None);
    }
    let index = Index::open(&config.search.dir(config), config.search.index_config())?;
    Ok(Some(Arc::new(index)))
}

/// A message as the index holds it; `None` for what must never match (tombstones, empty text).
pub fn doc_of(record: &ConversationRecord, m: &StoredMessage) -> Option<Doc> {
    if m.deleted || m.text.trim().is_empty() {
        return None;
    }
    Some(Doc {
        message_id: m.id.to_string(),
        conversation_id: record.id.to_string(),
        seq: m.seq,
        sender_id: m.sender_id.to_string(),
        members: vec![
            record.customer_id.to_string(),
            record.provider_id.to_string(),
        ],
        text: m.text.clone(),
        created_at_ms: m.created_at,
    })
}

/// Feeds a durable message to the index (a no-op without one). Never waits.
pub fn message_stored(index: &Option<Arc<Index>>, record: &ConversationRecord, m: &StoredMessage) {
    if let (Some(index), Some(doc)) = (index, doc_of(record, m)) {
        index.submit(Change::Add(doc));
    }
}

/// Takes a deleted or removed message out of the index.
pub fn message_gone(index: &Option<Arc<Index>>, message: Id) {
    if let Some(index) = index {
        index.submit(Change::DeleteMessage {
            message_id: message.to_string(),
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("the store's scan cursor was refused")]
    Cursor,
    #[error("building the index: {0}")]
    Index(#[from] SearchError),
    #[error("the indexing thread stopped")]
    Stopped,
}

/// Records per scanned page.
const PAGE: usize = 1_000;

/// Rebuilds the index at `dir` from every live message of `store`; answers how many were
/// indexed. The server must be stopped (the index has one writer). The new index is built beside
/// the old one and replaces it only when complete, so a failed run leaves the old index as it
/// was. Holds every conversation's two participant ids in memory (tens of bytes each), never the
/// messages.
pub async fn reindex(store: &dyn Store, dir: PathBuf) -> Result<u64, ReindexError> {
    let mut building = dir.clone().into_os_string();
    building.push(".rebuilding");
    let building = PathBuf::from(building);
    let _ = std::fs::remove_dir_all(&building);
    let result = build(store, building.clone()).await;
    match result {
        Ok(n) => {
            let swap = || -> std::io::Result<()> {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                std::fs::rename(&building, &dir)
            };
            swap().map_err(|e| ReindexError::Index(SearchError::Io(e)))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&building);
            Err(e)
        }
    }
}

async fn build(store: &dyn Store, dir: PathBuf) -> Result<u64, ReindexError> {
    let mut records: HashMap<Id, ConversationRecord> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .scan(Table::Conversations, cursor.as_deref(), PAGE)
            .await?
            .map_err(|_| ReindexError::Cursor)?;
        for r in page.records {
            if let Record::Conversation(doc) = r {
                records.insert(doc.record.id, doc.record);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // The index is written on a blocking thread; messages reach it through a bounded queue.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Doc>(PAGE * 4);
    let builder = tokio::task::spawn_blocking(move || {
        Index::rebuild(&dir, std::iter::from_fn(move || rx.blocking_recv()))
    });
    let fed = feed_messages(store, &records, tx).await;
    // Whatever happened, the builder has stopped before its directory is used or removed.
    let built = builder.await.map_err(|_| ReindexError::Stopped)?;
    fed?;
    Ok(built?)
}

/// Sends every live message to the builder; stops early if it is gone.
async fn feed_messages(
    store: &dyn Store,
    records: &HashMap<Id, ConversationRecord>,
    tx: tokio::sync::mpsc::Sender<Doc>,
) -> Result<(), ReindexError> {
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .scan(Table::Messages, cursor.as_deref(), PAGE)
            .await?
            .map_err(|_| ReindexError::Cursor)?;
        for r in page.records {
            let Record::Message(m) = r else { continue };
            let Some(doc) = records
                .get(&m.conversation_id)
                .and_then(|rec| doc_of(rec, &m))
            else {
                continue;
            };
            if tx.send(doc).await.is_err() {
                // The builder stopped: its own error is the answer.
                return Ok(());
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}
