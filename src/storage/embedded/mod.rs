//! The embedded store: fjall (an LSM tree in this process) in one directory. The default store,
//! so a newcomer runs Switchboard with no database server.
//!
//! Writes go through one committer thread (`committer.rs`): group commit, one fsync per batch,
//! and a new durable snapshot published after each sync. Reads go through that snapshot, so they
//! see only what is synced. Scans run on tokio's blocking pool, because a scan that misses the
//! memtable and block cache reads files and must not hold up an async worker; point reads of one
//! key run where they are asked (`EmbeddedStore::point` says why). What a write puts on disk,
//! indexes included, is in `indexes.rs`; what a read sees, in `view.rs`; how flushed memtables
//! are freed, in `reaper.rs`.

mod committer;
mod indexes;
mod items;
mod reaper;
mod records;
mod view;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{Database, KeyspaceCreateOptions, Readable};
use tokio::sync::Mutex;

use self::committer::{Committer, Op, Shared};
use self::view::View;
use super::items::{Item, ItemAddress, ItemKind};
use super::keys;
use super::records::{Record, ScanPage, Table};
use super::{
    durable_channel, BadCursor, ConversationPage, ConversationWrite, OnDurable, SeqRange, Store,
    StoreError, StoreHealth, StoreResult,
};
use crate::domain::conversation::ConversationDoc;
use crate::domain::message::StoredMessage;
use crate::domain::user::{ExternalId, Service, UserProfile};
use crate::domain::Id;
use crate::metrics::{AtomicHistogram, BATCH_SIZE_BOUNDS};

/// The keyspaces, by what they hold; the order of `KEYSPACES`.
#[derive(Debug, Clone, Copy)]
enum Ks {
    Services,
    Users,
    Conversations,
    ConversationKeys,
    Messages,
    MessageIds,
    Dedupe,
    /// (created_at, dedupe key) -> message key: dedupe entries in the order they expire.
    DedupeExpiry,
    /// (user, activity, conversation), newest first: the users' conversation lists.
    Activity,
    Unread,
    Hidden,
    LastSeen,
    /// Facts about the store itself (which one-time builds are done).
    Meta,
    /// (kind, partition, key) -> value: `storage::items`.
    Items,
}

const KEYSPACES: [&str; 14] = [
    "services",
    "users",
    "conversations",
    "conversation_keys",
    "messages",
    "message_ids",
    "dedupe",
    "dedupe_expiry",
    "activity",
    "unread",
    "hidden",
    "last_seen",
    "meta",
    "items",
];

/// Largest memtable of one keyspace before it is flushed to disk.
const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;

/// Conversation creation takes one of these locks, chosen by the conversation's key, so two
/// customers racing to open the same conversation get one conversation, while creations of
/// different conversations rarely wait on each other.
const CREATE_SHARDS: usize = 64;

/// Expired dedupe entries deleted per batch by a sweep: small enough that a sweep's batch never
/// holds up the message path's batches for long.
const SWEEP_BATCH: usize = 1024;

/// How the embedded store is sized (`store.*` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    /// Most writes folded into one fsync.
    pub max_batch: usize,
    /// fjall's flush and compaction threads.
    pub background_threads: usize,
    /// Most writes queued and not yet answered; more are refused with `Overloaded`.
    pub max_queue: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            max_batch: 4096,
            background_threads: 1,
            max_queue: 16_384,
        }
    }
}

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    committer: Committer,
    create_locks: Vec<Mutex<()>>,
    /// Writes per group commit, observed by the committer thread.
    batch_sizes: AtomicHistogram,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

use super::codec::{decode, encode};

impl EmbeddedStore {
    /// Opens (or creates) the store in `path` and starts its committer thread.
    pub fn open(path: &Path, options: EmbeddedOptions) -> StoreResult<Arc<Self>> {
        std::fs::create_dir_all(path).map_err(io)?;
        // Memory: fjall's default 64 MiB memtable per keyspace let the busy keyspaces hold
        // hundreds of MiB (350 MiB RSS in the pairs benchmark, 135 MiB with 8 MiB memtables).
        // Background threads: fjall's default (one per core, up to 4) lets a flush and a
        // compaction take both cores of a small machine at once, and the committer's p99 with it.
        let db = Database::builder(path)
            .worker_threads(options.background_threads.max(1))
            .manual_journal_persist(true)
            .open()
            .map_err(io)?;
        let mut spaces = Vec::with_capacity(KEYSPACES.len());
        for name in KEYSPACES {
            let options = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
            spaces.push(db.keyspace(name, options).map_err(io)?);
        }
        // Builds what earlier versions lacked, then syncs: a journal that an earlier process
        // wrote but did not sync (it crashed between commit and sync) may still sit unsynced in
        // the page cache, and must be durable before it is published to readers.
        indexes::upgrade(&db, &spaces)?;
        let shared = Arc::new(Shared::new(db, spaces, options.max_queue));
        let batch_sizes = AtomicHistogram::new(BATCH_SIZE_BOUNDS);
        let committer = Committer::start(shared.clone(), options.max_batch, batch_sizes.clone())?;
        Ok(Arc::new(EmbeddedStore {
            shared,
            committer,
            batch_sizes,
            create_locks: (0..CREATE_SHARDS).map(|_| Mutex::new(())).collect(),
        }))
    }

    fn view(&self) -> View {
        View {
            snap: self.shared.snapshot(),
            shared: self.shared.clone(),
        }
    }

    /// Runs a point read (one key: a memtable seek or one block, usually cached) right here,
    /// against the latest durable snapshot. Measured at 10,000 msg/s on two cores: sending every
    /// point read through the blocking pool (a thread wake-up each, two per message for the
    /// dedupe lookup) took the pairs benchmark from p99 0.8 s to 12.9 s and lost throughput, so
    /// only scans, which can touch many blocks, go there (see `read`).
    fn point<T>(&self, f: impl FnOnce(&View) -> StoreResult<T>) -> StoreResult<T> {
        f(&self.view())
    }

    /// Runs a scan on the blocking pool, against the latest durable snapshot.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&View) -> StoreResult<T> + Send + 'static,
    {
        let view = self.view();
        tokio::task::spawn_blocking(move || f(&view))
            .await
            .map_err(|e| {
                if e.is_cancelled() {
                    StoreError::Closed
                } else {
                    StoreError::Io(format!("a store read failed: {e}"))
                }
            })?
    }

    /// Queues operations for the committer and waits until they are synced.
    async fn enqueue(&self, ops: Vec<Op>) -> StoreResult<()> {
        let (done, rx) = durable_channel();
        self.committer.submit(ops, done)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put_service(&self, s: &Service) -> StoreResult<()> {
        self.enqueue(vec![Op::Put(
            Ks::Services,
            keys::external(&s.id),
            encode(s),
        )])
        .await
    }

    async fn get_service(&self, id: &ExternalId) -> StoreResult<Option<Service>> {
        let key = keys::external(id);
        self.point(|v| v.get(Ks::Services, &key))
    }

    async fn delete_service(&self, id: &ExternalId) -> StoreResult<bool> {
        let key = keys::external(id);
        let k = key.clone();
        let existed = self
            .read(move |v| Ok(v.raw(Ks::Services, &k)?.is_some()))
            .await?;
        self.enqueue(vec![Op::Delete(Ks::Services, key)]).await?;
        Ok(existed)
    }

    async fn put_user(&self, u: &UserProfile) -> StoreResult<()> {
        self.enqueue(vec![Op::Put(Ks::Users, keys::external(&u.id), encode(u))])
            .await
    }

    async fn get_user(&self, id: &ExternalId) -> StoreResult<Option<UserProfile>> {
        let key = keys::external(id);
        self.point(|v| v.get(Ks::Users, &key))
    }

    async fn delete_user(&self, id: &ExternalId) -> StoreResult<bool> {
        let key = keys::external(id);
        let probe = key.clone();
        let existed = self.point(move |v| Ok(v.raw(Ks::Users, &probe)?.is_some()))?;
        self.enqueue(vec![Op::Delete(Ks::Users, key)]).await?;
        Ok(existed)
    }

    async fn create_conversation_with(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        with: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        if let Some(refused) = self.committer.refusal() {
            return Err(refused);
        }
        let r = &doc.record;
        let ckey = keys::conversation_key(&r.service_id, &r.provider_id, &r.customer_id);
        let shard = ckey
            .iter()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize))
            % CREATE_SHARDS;
        // Held until the creation is durable, and so published: the next creation of the same
        // key under this lock reads it.
        let _guard = self.create_locks[shard].lock().await;
        let existing = self
            .read(move |v| match v.conversation_id(&ckey)? {
                Some(id) => v.get::<ConversationDoc>(Ks::Conversations, &keys::id(id)),
                None => Ok(None),
            })
            .await?;
        if let Some(existing) = existing {
            return Ok((existing, false));
        }
        let mut ops = indexes::create_ops(&doc, first.as_ref());
        ops.extend(with.iter().map(items::put));
        self.enqueue(ops).await?;
        Ok((doc, true))
    }

    async fn find_conversation(
        &self,
        service: &ExternalId,
        provider: &ExternalId,
        customer: &ExternalId,
    ) -> StoreResult<Option<Id>> {
        let ckey = keys::conversation_key(service, provider, customer);
        self.point(|v| v.conversation_id(&ckey))
    }

    async fn get_conversation(&self, id: Id) -> StoreResult<Option<ConversationDoc>> {
        self.point(|v| v.get(Ks::Conversations, &keys::id(id)))
    }

    async fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ConversationPage, BadCursor>> {
        // The cursor is the (activity, conversation) of the last item of the previous page.
        let after = match super::parse_cursor(cursor) {
            Ok(after) => after,
            Err(bad) => return Ok(Err(bad)),
        };
        let user = user.clone();
        self.read(move |v| v.list_conversations(&user, archived, after, limit))
            .await
            .map(Ok)
    }

    fn submit(&self, write: &ConversationWrite, on_durable: OnDurable) -> StoreResult<()> {
        // Refused before encoding: a shed write should cost as little as possible.
        if let Some(refused) = self.committer.refusal() {
            return Err(refused);
        }
        self.committer
            .submit(indexes::conversation_ops(write), on_durable)
    }

    fn settle(&self, _conversation: Id, done: OnDurable) {
        self.committer.settle(done);
    }

    async fn get_message(&self, conversation: Id, seq: u64) -> StoreResult<Option<StoredMessage>> {
        self.point(|v| v.get(Ks::Messages, &keys::message(conversation, seq)))
    }

    async fn find_message(&self, id: Id) -> StoreResult<Option<StoredMessage>> {
        self.point(|v| v.message_at(Ks::MessageIds, &keys::id(id)))
    }

    async fn list_messages(
        &self,
        conversation: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>> {
        self.read(move |v| v.list_messages(conversation, range, limit, newest_first))
            .await
    }

    async fn find_by_client_msg_id(
        &self,
        conversation: Id,
        sender: &ExternalId,
        client_msg_id: &str,
    ) -> StoreResult<Option<StoredMessage>> {
        let key = keys::dedupe(conversation, sender, client_msg_id);
        self.point(|v| v.message_at(Ks::Dedupe, &key))
    }

    async fn forget_dedupe(&self, m: &StoredMessage) -> StoreResult<()> {
        let Some(c) = &m.client_msg_id else {
            return Ok(());
        };
        let dkey = keys::dedupe(m.conversation_id, &m.sender_id, c);
        let mkey = keys::message(m.conversation_id, m.seq);
        let probe = dkey.clone();
        let current = self.point(move |v| v.raw(Ks::Dedupe, &probe))?;
        let mut ops = vec![Op::Delete(
            Ks::DedupeExpiry,
            keys::dedupe_expiry(m.created_at, &dkey),
        )];
        // A newer message that reused the id after the window keeps its entry.
        if current.is_some_and(|v| v.as_ref() == mkey.as_slice()) {
            ops.push(Op::Delete(Ks::Dedupe, dkey));
        }
        self.enqueue(ops).await
    }

    async fn sweep_dedupe(&self, before_ms: i64) -> StoreResult<u64> {
        let mut swept = 0u64;
        loop {
            let (ops, n) = self.read(move |v| v.expired_dedupe(before_ms)).await?;
            if n == 0 {
                break;
            }
            // Durable, and so published, before the next read: it starts past these.
            self.enqueue(ops).await?;
            swept += n as u64;
            if n < SWEEP_BATCH {
                break;
            }
        }
        Ok(swept)
    }

    async fn unread_counts(&self, user: &ExternalId) -> StoreResult<Vec<(Id, u64)>> {
        let prefix = keys::external(user);
        self.read(move |v| {
            let mut out = Vec::new();
            for g in v.snap.prefix(v.ks(Ks::Unread), &prefix) {
                let (k, val) = g.into_inner().map_err(io)?;
                let count = val
                    .as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("unread count".into()))?;
                if let Some(cid) = keys::trailing_id(&k) {
                    out.push((cid, count));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn hide_message(&self, user: &ExternalId, message: Id) -> StoreResult<()> {
        self.enqueue(vec![Op::Put(
            Ks::Hidden,
            keys::user_and_id(user, message),
            Vec::new(),
        )])
        .await
    }

    async fn is_hidden(&self, user: &ExternalId, message: Id) -> StoreResult<bool> {
        let key = keys::user_and_id(user, message);
        self.point(|v| Ok(v.raw(Ks::Hidden, &key)?.is_some()))
    }

    async fn set_last_seen(&self, user: &ExternalId, at_ms: i64) -> StoreResult<()> {
        self.enqueue(vec![Op::Put(
            Ks::LastSeen,
            keys::external(user),
            at_ms.to_be_bytes().to_vec(),
        )])
        .await
    }

    async fn last_seen(&self, user: &ExternalId) -> StoreResult<Option<i64>> {
        let key = keys::external(user);
        self.point(|v| match v.raw(Ks::LastSeen, &key)? {
            Some(b) => b
                .as_ref()
                .try_into()
                .map(|b| Some(i64::from_be_bytes(b)))
                .map_err(|_| StoreError::Corrupt("last seen".into())),
            None => Ok(None),
        })
    }

    async fn put_item(&self, item: &Item) -> StoreResult<()> {
        self.enqueue(vec![items::put(item)]).await
    }

    async fn get_item(
        &self,
        kind: ItemKind,
        partition: &str,
        key: &[u8],
    ) -> StoreResult<Option<Vec<u8>>> {
        self.point(|v| v.item(kind, partition, key))
    }

    async fn delete_item(&self, kind: ItemKind, partition: &str, key: &[u8]) -> StoreResult<()> {
        self.enqueue(vec![items::delete(kind, partition, key)])
            .await
    }

    async fn write_items(&self, puts: &[Item], deletes: &[ItemAddress]) -> StoreResult<()> {
        let mut ops: Vec<Op> = puts.iter().map(items::put).collect();
        ops.extend(deletes.iter().map(|(k, p, key)| items::delete(*k, p, key)));
        self.enqueue(ops).await
    }

    async fn list_items(
        &self,
        kind: ItemKind,
        partition: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Item>> {
        let (partition, after) = (partition.to_owned(), after.map(<[u8]>::to_vec));
        self.read(move |v| v.list_items(kind, &partition, after.as_deref(), limit))
            .await
    }

    /// `Down` once a write has failed (the store refuses every write since) or the committer is
    /// gone; reads may still answer from the last durable snapshot, but the store cannot serve.
    fn batch_sizes(&self) -> Option<AtomicHistogram> {
        Some(self.batch_sizes.clone())
    }

    async fn health(&self) -> StoreHealth {
        if self.shared.writable() {
            StoreHealth::Ok
        } else {
            StoreHealth::Down
        }
    }

    async fn scan(
        &self,
        table: Table,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ScanPage, BadCursor>> {
        let after = match records::parse_cursor(cursor) {
            Ok(after) => after,
            Err(bad) => return Ok(Err(bad)),
        };
        self.read(move |v| v.scan(table, after, limit.max(1)))
            .await
            .map(Ok)
    }

    async fn import(&self, records: &[Record]) -> StoreResult<()> {
        self.enqueue(records::import_ops(records)).await
    }
}

#[cfg(test)]
mod tests;
