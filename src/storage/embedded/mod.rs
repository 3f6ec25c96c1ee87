//! The embedded store: fjall (an LSM tree in this process) in one directory. The default store,
//! so a newcomer runs Switchboard with no database server.
//!
//! Durability comes from group commit. Every write is handed to one committer thread, which takes
//! whatever has queued up, applies it as one atomic batch and syncs the journal once for the whole
//! batch. One write alone costs one fsync (~250 µs here); under load hundreds of writes share one,
//! so durability does not cap throughput (FACTS.md: 3,900/s with one writer, 128,000/s with 200).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use super::keys;
use super::{
    durable_channel, participants, BadCursor, ConversationPage, ConversationWrite, OnDurable,
    SeqRange, Store, StoreError, StoreHealth, StoreResult,
};
use crate::domain::conversation::ConversationDoc;
use crate::domain::message::StoredMessage;
use crate::domain::user::{ExternalId, Service, UserProfile};
use crate::domain::Id;

/// The keyspaces, by what they hold.
#[derive(Debug, Clone, Copy)]
enum Ks {
    Services,
    Users,
    Conversations,
    ConversationKeys,
    Messages,
    MessageIds,
    Dedupe,
    UserConversations,
    Unread,
    Hidden,
    LastSeen,
}

const KEYSPACES: [&str; 11] = [
    "services",
    "users",
    "conversations",
    "conversation_keys",
    "messages",
    "message_ids",
    "dedupe",
    "user_conversations",
    "unread",
    "hidden",
    "last_seen",
];

enum Op {
    Put(Ks, Vec<u8>, Vec<u8>),
    Delete(Ks, Vec<u8>),
}

/// A write waiting for the committer, with whoever waits for it.
///
/// Its callback is called exactly once: with the commit's outcome, or with `Closed` if the job
/// is dropped unfinished (the committer thread died, or the store is gone). Without that, a
/// conversation actor would wait forever for a write nobody will answer.
struct Job {
    ops: Vec<Op>,
    done: Option<OnDurable>,
}

impl Job {
    fn new(ops: Vec<Op>, done: OnDurable) -> Self {
        Job {
            ops,
            done: Some(done),
        }
    }

    fn finish(mut self, result: StoreResult<()>) {
        if let Some(done) = self.done.take() {
            call_back(done, result);
        }
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

/// Clears the committer's liveness flag however its thread ends, a panic included, so `health`
/// reports the store down.
struct ClearOnExit(Arc<AtomicBool>);

impl Drop for ClearOnExit {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Largest memtable of one keyspace before it is flushed to disk.
const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;

/// Conversation creation takes one of these locks, chosen by the conversation's key, so two
/// customers racing to open the same conversation get one conversation, while creations of
/// different conversations rarely wait on each other.
const CREATE_SHARDS: usize = 64;

pub struct EmbeddedStore {
    spaces: Vec<Keyspace>,
    queue: mpsc::Sender<Job>,
    /// Cleared when the committer thread ends; `health` reports the store down then.
    committer_alive: Arc<AtomicBool>,
    create_locks: Vec<Mutex<()>>,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain structs to MessagePack cannot fail (no maps with non-string
    // keys, no custom serializers that error); an empty value would surface as Corrupt on read.
    rmp_serde::to_vec_named(v).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `path` and starts its committer thread.
    pub fn open(
        path: &Path,
        max_batch: usize,
        background_threads: usize,
    ) -> StoreResult<Arc<Self>> {
        std::fs::create_dir_all(path).map_err(io)?;
        // Memory: fjall's default 64 MiB memtable per keyspace let the busy keyspaces hold
        // hundreds of MiB (350 MiB RSS in the pairs benchmark, 135 MiB with 8 MiB memtables).
        // Background threads: fjall's default (one per core, up to 4) lets a flush and a
        // compaction take both cores of a small machine at once, and the committer's p99 with it.
        let db = Database::builder(path)
            .worker_threads(background_threads.max(1))
            .manual_journal_persist(true)
            .open()
            .map_err(io)?;
        let mut spaces = Vec::with_capacity(KEYSPACES.len());
        for name in KEYSPACES {
            let options = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
            spaces.push(db.keyspace(name, options).map_err(io)?);
        }
        let (queue, rx) = mpsc::channel::<Job>();
        let alive = Arc::new(AtomicBool::new(true));
        {
            let db = db.clone();
            let spaces = spaces.clone();
            let alive = ClearOnExit(alive.clone());
            std::thread::Builder::new()
                .name("store-committer".into())
                .spawn(move || {
                    let _alive = alive;
                    commit_loop(&db, &spaces, rx, max_batch.max(1));
                })
                .map_err(io)?;
        }
        Ok(Arc::new(EmbeddedStore {
            spaces,
            queue,
            committer_alive: alive,
            create_locks: (0..CREATE_SHARDS).map(|_| Mutex::new(())).collect(),
        }))
    }

    fn ks(&self, ks: Ks) -> &Keyspace {
        &self.spaces[ks as usize]
    }

    fn get<T: DeserializeOwned>(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<T>> {
        match self.ks(ks).get(key).map_err(io)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Queues operations for the committer, which calls `done` once they are synced. A store
    /// whose committer is gone answers `Closed` at once (the refused job is dropped unfinished).
    fn enqueue_with(&self, ops: Vec<Op>, done: OnDurable) {
        let _ = self.queue.send(Job::new(ops, done));
    }

    /// Queues operations for the committer and waits until they are synced.
    async fn enqueue(&self, ops: Vec<Op>) -> StoreResult<()> {
        let (done, rx) = durable_channel();
        self.enqueue_with(ops, done);
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn conversation_ops(&self, w: &ConversationWrite) -> Vec<Op> {
        let doc = &w.doc;
        let cid = doc.record.id;
        let mut ops = Vec::with_capacity(7);
        ops.push(Op::Put(
            Ks::Conversations,
            keys::id(cid).to_vec(),
            encode(doc),
        ));
        if let Some(m) = &w.message {
            let mkey = keys::message(cid, m.seq).to_vec();
            ops.push(Op::Put(Ks::Messages, mkey.clone(), encode(m)));
            ops.push(Op::Put(
                Ks::MessageIds,
                keys::id(m.id).to_vec(),
                mkey.clone(),
            ));
            if let Some(c) = &m.client_msg_id {
                ops.push(Op::Put(
                    Ks::Dedupe,
                    keys::dedupe(cid, &m.sender_id, c),
                    mkey,
                ));
            }
            // A message moves the conversation up both participants' lists.
            for (_, user) in participants(doc) {
                ops.push(Op::Put(
                    Ks::UserConversations,
                    keys::user_and_id(user, cid),
                    doc.state.activity_ms.to_be_bytes().to_vec(),
                ));
            }
        }
        if let Some(side) = w.unread_of {
            let ukey = keys::user_and_id(doc.record.user(side), cid);
            match doc.state.side(side).unread {
                0 => ops.push(Op::Delete(Ks::Unread, ukey)),
                n => ops.push(Op::Put(Ks::Unread, ukey, n.to_be_bytes().to_vec())),
            }
        }
        ops
    }
}

fn commit_loop(db: &Database, spaces: &[Keyspace], rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let began = std::time::Instant::now();
        let mut batch = db.batch();
        for job in &jobs {
            for op in &job.ops {
                match op {
                    Op::Put(ks, k, v) => {
                        batch.insert(&spaces[*ks as usize], k.as_slice(), v.as_slice())
                    }
                    Op::Delete(ks, k) => batch.remove(&spaces[*ks as usize], k.as_slice()),
                }
            }
        }
        let result = batch
            .commit()
            .and_then(|()| db.persist(PersistMode::SyncAll))
            .map_err(io);
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = jobs.len(), "group commit failed");
        }
        let took = began.elapsed();
        if took > std::time::Duration::from_millis(100) {
            tracing::warn!(
                writes = jobs.len(),
                took_ms = took.as_millis() as u64,
                "slow group commit"
            );
        }
        for job in jobs.drain(..) {
            job.finish(result.clone());
        }
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
        self.get(Ks::Services, &keys::external(id))
    }

    async fn delete_service(&self, id: &ExternalId) -> StoreResult<bool> {
        let key = keys::external(id);
        let existed = self.ks(Ks::Services).contains_key(&key).map_err(io)?;
        self.enqueue(vec![Op::Delete(Ks::Services, key)]).await?;
        Ok(existed)
    }

    async fn put_user(&self, u: &UserProfile) -> StoreResult<()> {
        self.enqueue(vec![Op::Put(Ks::Users, keys::external(&u.id), encode(u))])
            .await
    }

    async fn get_user(&self, id: &ExternalId) -> StoreResult<Option<UserProfile>> {
        self.get(Ks::Users, &keys::external(id))
    }

    async fn create_conversation(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
    ) -> StoreResult<(ConversationDoc, bool)> {
        let r = &doc.record;
        let ckey = keys::conversation_key(&r.service_id, &r.provider_id, &r.customer_id);
        let shard = ckey
            .iter()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize))
            % CREATE_SHARDS;
        let _guard = self.create_locks[shard].lock().await;
        if let Some(v) = self.ks(Ks::ConversationKeys).get(&ckey).map_err(io)? {
            let id = keys::trailing_id(&v)
                .ok_or_else(|| StoreError::Corrupt("conversation key".into()))?;
            if let Some(existing) = self.get_conversation(id).await? {
                return Ok((existing, false));
            }
        }
        let unread_of = first
            .as_ref()
            .map(|_| crate::domain::conversation::Side::Provider);
        let mut ops = self.conversation_ops(&ConversationWrite {
            doc: doc.clone(),
            message: first,
            unread_of,
            moved_from: None,
        });
        for (_, user) in participants(&doc) {
            ops.push(Op::Put(
                Ks::UserConversations,
                keys::user_and_id(user, r.id),
                doc.state.activity_ms.to_be_bytes().to_vec(),
            ));
        }
        ops.push(Op::Put(Ks::ConversationKeys, ckey, keys::id(r.id).to_vec()));
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
        Ok(self
            .ks(Ks::ConversationKeys)
            .get(&ckey)
            .map_err(io)?
            .and_then(|v| keys::trailing_id(&v)))
    }

    async fn get_conversation(&self, id: Id) -> StoreResult<Option<ConversationDoc>> {
        self.get(Ks::Conversations, &keys::id(id))
    }

    async fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ConversationPage, BadCursor>> {
        // The cursor is the (activity, conversation) of the last item of the previous page.
        let after = match cursor {
            None => None,
            Some(c) => match parse_cursor(c) {
                Some(pos) => Some(pos),
                None => return Ok(Err(BadCursor)),
            },
        };
        // Every conversation of the user with its activity time, newest first. One small entry
        // per conversation, so even a busy provider's list is a short scan.
        let mut entries = Vec::new();
        for g in self.ks(Ks::UserConversations).prefix(keys::external(user)) {
            let (k, v) = g.into_inner().map_err(io)?;
            let (Some(cid), Ok(at)) = (keys::trailing_id(&k), <[u8; 8]>::try_from(v.as_ref()))
            else {
                return Err(StoreError::Corrupt("conversation index".into()));
            };
            entries.push((i64::from_be_bytes(at), cid));
        }
        entries.sort_unstable_by(|a, b| b.cmp(a));
        let mut items = Vec::new();
        let mut next_cursor = None;
        for (at, cid) in entries {
            if after.is_some_and(|pos| (at, cid) >= pos) {
                continue;
            }
            if items.len() == limit {
                next_cursor = items
                    .last()
                    .map(|d: &ConversationDoc| format!("{}.{}", d.state.activity_ms, d.record.id));
                break;
            }
            let Some(doc) = self.get::<ConversationDoc>(Ks::Conversations, &keys::id(cid))? else {
                continue;
            };
            let Some(side) = doc.record.side_of(user) else {
                continue;
            };
            if archived.is_some_and(|want| doc.state.side(side).archived != want) {
                continue;
            }
            items.push(doc);
        }
        Ok(Ok(ConversationPage { items, next_cursor }))
    }

    fn submit(&self, write: &ConversationWrite, on_durable: OnDurable) -> StoreResult<()> {
        let ops = self.conversation_ops(write);
        self.enqueue_with(ops, on_durable);
        Ok(())
    }

    fn settle(&self, done: OnDurable) {
        self.enqueue_with(Vec::new(), done);
    }

    async fn get_message(&self, conversation: Id, seq: u64) -> StoreResult<Option<StoredMessage>> {
        self.get(Ks::Messages, &keys::message(conversation, seq))
    }

    async fn find_message(&self, id: Id) -> StoreResult<Option<StoredMessage>> {
        match self.ks(Ks::MessageIds).get(keys::id(id)).map_err(io)? {
            Some(mkey) => self.get(Ks::Messages, &mkey),
            None => Ok(None),
        }
    }

    async fn list_messages(
        &self,
        conversation: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>> {
        let lo = keys::message(conversation, range.after.map_or(0, |a| a.saturating_add(1)));
        let hi = keys::message(conversation, range.before.unwrap_or(u64::MAX));
        let iter = self.ks(Ks::Messages).range(lo..hi);
        let mut out = Vec::with_capacity(limit.min(256));
        let mut push = |g: fjall::Guard| -> StoreResult<bool> {
            let v = g.value().map_err(io)?;
            out.push(decode::<StoredMessage>(&v)?);
            Ok(out.len() < limit)
        };
        if newest_first {
            for g in iter.rev() {
                if !push(g)? {
                    break;
                }
            }
        } else {
            for g in iter {
                if !push(g)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn find_by_client_msg_id(
        &self,
        conversation: Id,
        sender: &ExternalId,
        client_msg_id: &str,
    ) -> StoreResult<Option<StoredMessage>> {
        match self
            .ks(Ks::Dedupe)
            .get(keys::dedupe(conversation, sender, client_msg_id))
            .map_err(io)?
        {
            Some(mkey) => self.get(Ks::Messages, &mkey),
            None => Ok(None),
        }
    }

    async fn sweep_dedupe(&self, _before_ms: i64) -> StoreResult<u64> {
        Err(StoreError::Io("dedupe sweep is not built yet".into()))
    }

    async fn unread_counts(&self, user: &ExternalId) -> StoreResult<Vec<(Id, u64)>> {
        let mut out = Vec::new();
        for g in self.ks(Ks::Unread).prefix(keys::external(user)) {
            let (k, v) = g.into_inner().map_err(io)?;
            let count = v
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("unread count".into()))?;
            if let Some(cid) = keys::trailing_id(&k) {
                out.push((cid, count));
            }
        }
        Ok(out)
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
        self.ks(Ks::Hidden)
            .contains_key(keys::user_and_id(user, message))
            .map_err(io)
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
        match self
            .ks(Ks::LastSeen)
            .get(keys::external(user))
            .map_err(io)?
        {
            Some(v) => v
                .as_ref()
                .try_into()
                .map(|b| Some(i64::from_be_bytes(b)))
                .map_err(|_| StoreError::Corrupt("last seen".into())),
            None => Ok(None),
        }
    }

    async fn health(&self) -> StoreHealth {
        if !self.committer_alive.load(Ordering::Acquire) {
            return StoreHealth::Down;
        }
        match self.ks(Ks::Services).first_key_value() {
            Some(g) => match g.key() {
                Ok(_) => StoreHealth::Ok,
                Err(_) => StoreHealth::Degraded,
            },
            None => StoreHealth::Ok,
        }
    }
}

/// `"<activity_ms>.<conversation id>"`.
fn parse_cursor(c: &str) -> Option<(i64, Id)> {
    let (at, id) = c.split_once('.')?;
    Some((at.parse().ok()?, Id(id.parse().ok()?)))
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
        Job::new(Vec::new(), done).finish(Ok(()));
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 1, "exactly one answer, none again on drop");
        assert!(calls[0].is_ok());
    }

    #[test]
    fn jobs_nobody_will_commit_answer_closed() {
        // Refused by a committer that is gone (what `enqueue_with` relies on) …
        let (calls, done) = recorder();
        let (tx, rx) = mpsc::channel::<Job>();
        drop(rx);
        let _ = tx.send(Job::new(Vec::new(), done));
        // … or still queued when the committer thread ends (a panic drops its receiver).
        let (queued, done2) = recorder();
        let (tx2, rx2) = mpsc::channel::<Job>();
        tx2.send(Job::new(Vec::new(), done2)).unwrap();
        drop(rx2);
        for calls in [calls, queued] {
            let calls = calls.lock().unwrap();
            assert_eq!(calls.len(), 1, "answered exactly once");
            assert!(
                matches!(calls[0], Err(StoreError::Closed)),
                "{:?}",
                calls[0]
            );
        }
    }

    #[test]
    fn a_panicking_callback_does_not_unwind_into_the_committer() {
        let done: OnDurable = Box::new(|_| panic!("callback bug"));
        Job::new(Vec::new(), done).finish(Ok(()));
    }

    #[test]
    fn health_reports_down_once_the_committer_has_ended() {
        let alive = Arc::new(AtomicBool::new(true));
        let guard = ClearOnExit(alive.clone());
        let _ = std::thread::spawn(move || {
            let _guard = guard;
            panic!("committer failure");
        })
        .join();
        assert!(!alive.load(Ordering::Acquire));
    }
}
