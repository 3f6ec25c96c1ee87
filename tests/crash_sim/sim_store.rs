//! `SimStore`: an in-memory `Store` that behaves like a disk the test controls.
//!
//! The disk ([`Disk`]) outlives engine incarnations; each incarnation talks to it through its own
//! [`SimStore`] handle. What it models:
//!
//! - `submit` puts the write in a volatile queue, in order, and returns. Nothing is durable and
//!   no reader sees it until the scheduler calls [`Disk::sync`], which makes a prefix of the queue
//!   durable and only then calls those writes' callbacks (in queue order). `settle` is a marker in
//!   the same queue, answered when the sync reaches it.
//! - [`Disk::crash`]: the process died. Every queued write is dropped without its callback being
//!   called; the old incarnation's handle answers `Closed` to everything from then on (a dead
//!   process reaches no disk), so nothing it does while the test stops it changes the disk.
//! - [`Disk::fail_next`]: the next queued write fails (callback `Err(Io)`). What follows depends
//!   on the [`FailMode`]:
//!   - `Poison` (fjall after an I/O error): every write still queued fails when its sync comes,
//!     and new submits are refused with `Poisoned`, until the next restart ([`Disk::crash`]).
//!   - `Batch` (a transient error that fails one group commit): that write and every write
//!     queued behind it fail at once; writes submitted afterwards succeed.
//!   - `Single`: only that one write fails; later queued writes still become durable. A store
//!     may not do this if a conversation's durable writes are to stay a prefix of what its actor
//!     submitted, but nothing in the `Store` contract forbids it today (see the report).
//! - Writes outside the conversation queue (`create_conversation`, `put_user`, `hide_message`, …)
//!   are durable when they return, as if each had its own fsync.
//!
//! The disk also audits what it is asked to make durable ([`Disk::take_events`]): a message that
//! replaces a different message at the same `seq`, and a conversation whose `last_seq` goes down.
//! Those can happen inside one sync, between two invariant checks, so only the disk sees them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use switchboard::domain::conversation::ConversationDoc;
use switchboard::domain::message::StoredMessage;
use switchboard::domain::user::{ExternalId, Service, UserProfile};
use switchboard::domain::Id;
use switchboard::storage::items::{Item, ItemAddress, ItemKind};
use switchboard::storage::records::{Record, ScanPage, Table};
use switchboard::storage::{
    participants, BadCursor, ConversationPage, ConversationWrite, OnDurable, SeqRange, Store,
    StoreError, StoreHealth, StoreResult,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// fjall: after one failed write, every write fails until the process restarts.
    Poison,
    /// The failed write and everything queued behind it fail; the disk then recovers.
    Batch,
    /// Only the failed write is lost; later writes succeed.
    Single,
}

/// What the disk holds once synced. Keys mirror the embedded store's keyspaces, including that
/// the dedupe and message-id indexes point at a message's (conversation, seq) slot: if a slot is
/// overwritten, they answer whatever is in it now, just as the embedded store would.
#[derive(Default, Clone)]
pub struct Durable {
    pub conversations: BTreeMap<Id, ConversationDoc>,
    conversation_keys: BTreeMap<(ExternalId, ExternalId, ExternalId), Id>,
    pub messages: BTreeMap<(Id, u64), StoredMessage>,
    message_ids: BTreeMap<Id, (Id, u64)>,
    dedupe: BTreeMap<(Id, ExternalId, String), (Id, u64)>,
    user_conversations: BTreeMap<(ExternalId, Id), i64>,
    pub unread: BTreeMap<(ExternalId, Id), u64>,
    hidden: BTreeSet<(ExternalId, Id)>,
    last_seen: BTreeMap<ExternalId, i64>,
    services: BTreeMap<ExternalId, Service>,
    users: BTreeMap<ExternalId, UserProfile>,
    items: BTreeMap<(&'static str, String, Vec<u8>), Vec<u8>>,
}

enum Entry {
    Write(Box<ConversationWrite>, OnDurable),
    Settle(OnDurable),
}

struct DiskState {
    /// Incremented by every crash; a handle from an older epoch belongs to a dead process.
    epoch: u64,
    durable: Durable,
    queue: VecDeque<Entry>,
    poisoned: Option<String>,
    mode: FailMode,
    events: Vec<String>,
    writes_failed: u64,
    writes_dropped: u64,
}

pub struct Disk {
    state: Mutex<DiskState>,
}

type Callbacks = Vec<(OnDurable, StoreResult<()>)>;

fn answer(callbacks: Callbacks) {
    for (done, result) in callbacks {
        done(result);
    }
}

impl Disk {
    pub fn new(mode: FailMode) -> Arc<Disk> {
        Arc::new(Disk {
            state: Mutex::new(DiskState {
                epoch: 0,
                durable: Durable::default(),
                queue: VecDeque::new(),
                poisoned: None,
                mode,
                events: Vec::new(),
                writes_failed: 0,
                writes_dropped: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock is a test failure already; keep reading the state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle for a new incarnation of the process.
    pub fn handle(self: &Arc<Self>) -> Arc<SimStore> {
        Arc::new(SimStore {
            epoch: self.lock().epoch,
            disk: self.clone(),
        })
    }

    /// Entries (writes and settle markers) waiting for a sync.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Makes the first `n` queued entries durable (or failed, on a poisoned disk), then calls
    /// their callbacks in order. Answers how many entries it took.
    pub fn sync(&self, n: usize) -> usize {
        let callbacks = {
            let mut s = self.lock();
            let n = n.min(s.queue.len());
            let mut callbacks = Vec::with_capacity(n);
            for _ in 0..n {
                let Some(entry) = s.queue.pop_front() else {
                    break;
                };
                match entry {
                    Entry::Settle(done) => callbacks.push((done, Ok(()))),
                    Entry::Write(w, done) => match s.poisoned.clone() {
                        Some(reason) => {
                            s.writes_failed += 1;
                            callbacks.push((done, Err(StoreError::Io(reason))));
                        }
                        None => {
                            s.apply(&w);
                            callbacks.push((done, Ok(())));
                        }
                    },
                }
            }
            callbacks
        };
        let n = callbacks.len();
        answer(callbacks);
        n
    }

    /// Fails the next queued write (settle markers before it are answered first, since every
    /// write before them is answered). Answers whether there was a write to fail.
    pub fn fail_next(&self) -> bool {
        let (callbacks, failed) = {
            let mut s = self.lock();
            let mut callbacks: Callbacks = Vec::new();
            let mut failed = false;
            while let Some(entry) = s.queue.pop_front() {
                match entry {
                    Entry::Settle(done) => callbacks.push((done, Ok(()))),
                    Entry::Write(_, done) => {
                        let reason = "simulated I/O error".to_string();
                        s.writes_failed += 1;
                        callbacks.push((done, Err(StoreError::Io(reason.clone()))));
                        failed = true;
                        match s.mode {
                            FailMode::Poison => s.poisoned = Some(reason),
                            FailMode::Batch => {
                                // Everything behind it fails too, settles answered in order.
                                while let Some(entry) = s.queue.pop_front() {
                                    match entry {
                                        Entry::Settle(done) => callbacks.push((done, Ok(()))),
                                        Entry::Write(_, done) => {
                                            s.writes_failed += 1;
                                            callbacks
                                                .push((done, Err(StoreError::Io(reason.clone()))));
                                        }
                                    }
                                }
                            }
                            FailMode::Single => {}
                        }
                        break;
                    }
                }
            }
            (callbacks, failed)
        };
        answer(callbacks);
        failed
    }

    /// The process died: every unsynced write is gone and nobody is told. The next handle
    /// starts on a healthy disk (a restart clears fjall's poisoned state).
    pub fn crash(&self) {
        let dropped = {
            let mut s = self.lock();
            s.epoch += 1;
            s.poisoned = None;
            let dropped: Vec<Entry> = s.queue.drain(..).collect();
            s.writes_dropped += dropped
                .iter()
                .filter(|e| matches!(e, Entry::Write(..)))
                .count() as u64;
            dropped
        };
        // Dropped outside the lock: a callback owns actor references.
        drop(dropped);
    }

    /// A copy of what is durable.
    pub fn durable(&self) -> Durable {
        self.lock().durable.clone()
    }

    /// What the disk saw go wrong since the last call (see the module doc).
    pub fn take_events(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().events)
    }

    pub fn counters(&self) -> (u64, u64) {
        let s = self.lock();
        (s.writes_failed, s.writes_dropped)
    }

    /// Creates a conversation directly on disk, for the schedule's setup.
    pub fn seed_conversation(&self, doc: ConversationDoc) {
        let mut s = self.lock();
        s.durable.create(&doc, None);
    }
}

impl DiskState {
    fn apply(&mut self, w: &ConversationWrite) {
        let cid = w.doc.record.id;
        if let Some(old) = self.durable.conversations.get(&cid) {
            if w.doc.state.last_seq < old.state.last_seq {
                self.events.push(format!(
                    "conversation {cid}: a write took last_seq back from {} to {}",
                    old.state.last_seq, w.doc.state.last_seq
                ));
            }
        }
        if let Some(m) = &w.message {
            if let Some(old) = self.durable.messages.get(&(cid, m.seq)) {
                if old.id != m.id {
                    self.events.push(format!(
                        "conversation {cid}: seq {} held message {} ({}, client id {:?}) and a write replaced it with message {} ({}, client id {:?})",
                        m.seq, old.id, old.sender_id, old.client_msg_id, m.id, m.sender_id, m.client_msg_id
                    ));
                }
            }
        }
        self.durable.apply(w);
    }
}

impl Durable {
    fn put_item(&mut self, item: &Item) {
        let address = (item.kind.name(), item.partition.clone(), item.key.clone());
        self.items.insert(address, item.value.clone());
    }

    fn apply(&mut self, w: &ConversationWrite) {
        let doc = &w.doc;
        let cid = doc.record.id;
        for item in &w.items {
            self.put_item(item);
        }
        self.conversations.insert(cid, doc.clone());
        if let Some(m) = &w.message {
            self.messages.insert((cid, m.seq), m.clone());
            self.message_ids.insert(m.id, (cid, m.seq));
            if let Some(c) = &m.client_msg_id {
                self.dedupe
                    .insert((cid, m.sender_id.clone(), c.clone()), (cid, m.seq));
            }
            for (_, user) in participants(doc) {
                self.user_conversations
                    .insert((user.clone(), cid), doc.state.activity_ms);
            }
        }
        if let Some(side) = w.unread_of {
            let key = (doc.record.user(side).clone(), cid);
            match doc.state.side(side).unread {
                0 => self.unread.remove(&key),
                n => self.unread.insert(key, n),
            };
        }
    }

    fn key(doc: &ConversationDoc) -> (ExternalId, ExternalId, ExternalId) {
        let r = &doc.record;
        (
            r.service_id.clone(),
            r.provider_id.clone(),
            r.customer_id.clone(),
        )
    }

    fn create(&mut self, doc: &ConversationDoc, first: Option<StoredMessage>) {
        let unread_of = first
            .as_ref()
            .map(|_| switchboard::domain::conversation::Side::Provider);
        self.apply(&ConversationWrite {
            doc: doc.clone(),
            message: first,
            unread_of,
            moved_from: None,
            items: Vec::new(),
        });
        for (_, user) in participants(doc) {
            self.user_conversations
                .insert((user.clone(), doc.record.id), doc.state.activity_ms);
        }
        self.conversation_keys.insert(Self::key(doc), doc.record.id);
    }
}

/// One incarnation's view of the disk.
pub struct SimStore {
    disk: Arc<Disk>,
    epoch: u64,
}

impl SimStore {
    /// The disk, if this handle's process is still alive.
    fn alive(&self) -> StoreResult<MutexGuard<'_, DiskState>> {
        let s = self.disk.lock();
        if s.epoch == self.epoch {
            Ok(s)
        } else {
            Err(StoreError::Closed)
        }
    }

    /// For writes that are durable when they return.
    fn writable(&self) -> StoreResult<MutexGuard<'_, DiskState>> {
        let s = self.alive()?;
        match &s.poisoned {
            Some(reason) => Err(StoreError::Poisoned(reason.clone())),
            None => Ok(s),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Durable) -> T) -> StoreResult<T> {
        Ok(f(&self.alive()?.durable))
    }
}

#[async_trait]
impl Store for SimStore {
    async fn put_service(&self, service: &Service) -> StoreResult<()> {
        let mut s = self.writable()?;
        s.durable
            .services
            .insert(service.id.clone(), service.clone());
        Ok(())
    }

    async fn get_service(&self, id: &ExternalId) -> StoreResult<Option<Service>> {
        self.read(|d| d.services.get(id).cloned())
    }

    async fn delete_service(&self, id: &ExternalId) -> StoreResult<bool> {
        Ok(self.writable()?.durable.services.remove(id).is_some())
    }

    async fn put_user(&self, user: &UserProfile) -> StoreResult<()> {
        let mut s = self.writable()?;
        s.durable.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn get_user(&self, id: &ExternalId) -> StoreResult<Option<UserProfile>> {
        self.read(|d| d.users.get(id).cloned())
    }

    async fn delete_user(&self, id: &ExternalId) -> StoreResult<bool> {
        Ok(self.writable()?.durable.users.remove(id).is_some())
    }

    async fn create_conversation_with(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        let mut s = self.writable()?;
        if let Some(id) = s.durable.conversation_keys.get(&Durable::key(&doc)) {
            if let Some(existing) = s.durable.conversations.get(id) {
                return Ok((existing.clone(), false));
            }
        }
        s.durable.create(&doc, first);
        for item in items {
            s.durable.put_item(item);
        }
        Ok((doc, true))
    }

    async fn find_conversation(
        &self,
        service: &ExternalId,
        provider: &ExternalId,
        customer: &ExternalId,
    ) -> StoreResult<Option<Id>> {
        let key = (service.clone(), provider.clone(), customer.clone());
        self.read(|d| d.conversation_keys.get(&key).copied())
    }

    async fn get_conversation(&self, id: Id) -> StoreResult<Option<ConversationDoc>> {
        self.read(|d| d.conversations.get(&id).cloned())
    }

    async fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ConversationPage, BadCursor>> {
        let after = match cursor {
            None => None,
            Some(c) => {
                let parsed = c.split_once('.').and_then(|(at, id)| {
                    Some((at.parse::<i64>().ok()?, Id(id.parse::<u64>().ok()?)))
                });
                match parsed {
                    Some(pos) => Some(pos),
                    None => return Ok(Err(BadCursor)),
                }
            }
        };
        self.read(|d| {
            let mut entries: Vec<(i64, Id)> = d
                .user_conversations
                .iter()
                .filter(|((u, _), _)| u == user)
                .map(|((_, cid), at)| (*at, *cid))
                .collect();
            entries.sort_unstable_by(|a, b| b.cmp(a));
            let mut items = Vec::new();
            let mut next_cursor = None;
            for (at, cid) in entries {
                if after.is_some_and(|pos| (at, cid) >= pos) {
                    continue;
                }
                if items.len() == limit {
                    next_cursor = items.last().map(|d: &ConversationDoc| {
                        format!("{}.{}", d.state.activity_ms, d.record.id)
                    });
                    break;
                }
                let Some(doc) = d.conversations.get(&cid) else {
                    continue;
                };
                let Some(side) = doc.record.side_of(user) else {
                    continue;
                };
                if archived.is_some_and(|want| doc.state.side(side).archived != want) {
                    continue;
                }
                items.push(doc.clone());
            }
            Ok(ConversationPage { items, next_cursor })
        })
    }

    fn submit(&self, write: &ConversationWrite, on_durable: OnDurable) -> StoreResult<()> {
        let mut s = self.alive()?;
        if let Some(reason) = &s.poisoned {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        s.queue
            .push_back(Entry::Write(Box::new(write.clone()), on_durable));
        Ok(())
    }

    fn settle(&self, _conversation: Id, done: OnDurable) {
        match self.alive() {
            Ok(mut s) if !s.queue.is_empty() => s.queue.push_back(Entry::Settle(done)),
            Ok(s) => {
                drop(s);
                done(Ok(()))
            }
            Err(e) => done(Err(e)),
        }
    }

    async fn get_message(&self, conversation: Id, seq: u64) -> StoreResult<Option<StoredMessage>> {
        self.read(|d| d.messages.get(&(conversation, seq)).cloned())
    }

    async fn find_message(&self, id: Id) -> StoreResult<Option<StoredMessage>> {
        self.read(|d| {
            d.message_ids
                .get(&id)
                .and_then(|k| d.messages.get(k))
                .cloned()
        })
    }

    async fn list_messages(
        &self,
        conversation: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>> {
        let lo = range.after.map_or(0, |a| a.saturating_add(1));
        let hi = range.before.unwrap_or(u64::MAX);
        if lo >= hi {
            return Ok(Vec::new());
        }
        self.read(|d| {
            let iter = d.messages.range((conversation, lo)..(conversation, hi));
            if newest_first {
                iter.rev().take(limit).map(|(_, m)| m.clone()).collect()
            } else {
                iter.take(limit).map(|(_, m)| m.clone()).collect()
            }
        })
    }

    async fn find_by_client_msg_id(
        &self,
        conversation: Id,
        sender: &ExternalId,
        client_msg_id: &str,
    ) -> StoreResult<Option<StoredMessage>> {
        let key = (conversation, sender.clone(), client_msg_id.to_string());
        self.read(|d| d.dedupe.get(&key).and_then(|k| d.messages.get(k)).cloned())
    }

    async fn forget_dedupe(&self, m: &StoredMessage) -> StoreResult<()> {
        let Some(c) = &m.client_msg_id else {
            return Ok(());
        };
        let mut s = self.writable()?;
        let key = (m.conversation_id, m.sender_id.clone(), c.clone());
        if s.durable.dedupe.get(&key) == Some(&(m.conversation_id, m.seq)) {
            s.durable.dedupe.remove(&key);
        }
        Ok(())
    }

    async fn sweep_dedupe(&self, before_ms: i64) -> StoreResult<u64> {
        let mut s = self.writable()?;
        let d = &mut s.durable;
        let expired: Vec<_> = d
            .dedupe
            .iter()
            .filter(|(_, k)| d.messages.get(k).is_some_and(|m| m.created_at < before_ms))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            d.dedupe.remove(key);
        }
        Ok(expired.len() as u64)
    }

    async fn unread_counts(&self, user: &ExternalId) -> StoreResult<Vec<(Id, u64)>> {
        self.read(|d| {
            d.unread
                .iter()
                .filter(|((u, _), _)| u == user)
                .map(|((_, cid), n)| (*cid, *n))
                .collect()
        })
    }

    async fn hide_message(&self, user: &ExternalId, message: Id) -> StoreResult<()> {
        let mut s = self.writable()?;
        s.durable.hidden.insert((user.clone(), message));
        Ok(())
    }

    async fn is_hidden(&self, user: &ExternalId, message: Id) -> StoreResult<bool> {
        self.read(|d| d.hidden.contains(&(user.clone(), message)))
    }

    async fn set_last_seen(&self, user: &ExternalId, at_ms: i64) -> StoreResult<()> {
        let mut s = self.writable()?;
        s.durable.last_seen.insert(user.clone(), at_ms);
        Ok(())
    }

    async fn last_seen(&self, user: &ExternalId) -> StoreResult<Option<i64>> {
        self.read(|d| d.last_seen.get(user).copied())
    }

    async fn put_item(&self, item: &Item) -> StoreResult<()> {
        self.writable()?.durable.put_item(item);
        Ok(())
    }

    async fn write_items(&self, puts: &[Item], deletes: &[ItemAddress]) -> StoreResult<()> {
        let mut s = self.writable()?;
        for item in puts {
            s.durable.put_item(item);
        }
        for (kind, partition, key) in deletes {
            s.durable
                .items
                .remove(&(kind.name(), partition.clone(), key.clone()));
        }
        Ok(())
    }

    async fn get_item(
        &self,
        kind: ItemKind,
        partition: &str,
        key: &[u8],
    ) -> StoreResult<Option<Vec<u8>>> {
        let address = (kind.name(), partition.to_string(), key.to_vec());
        self.read(|d| d.items.get(&address).cloned())
    }

    async fn delete_item(&self, kind: ItemKind, partition: &str, key: &[u8]) -> StoreResult<()> {
        let address = (kind.name(), partition.to_string(), key.to_vec());
        self.writable()?.durable.items.remove(&address);
        Ok(())
    }

    async fn list_items(
        &self,
        kind: ItemKind,
        partition: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Item>> {
        self.read(|d| {
            d.items
                .iter()
                .filter(|((k, p, key), _)| {
                    *k == kind.name() && p == partition && after.is_none_or(|a| key.as_slice() > a)
                })
                .take(limit)
                .map(|((_, p, key), v)| Item {
                    kind,
                    partition: p.clone(),
                    key: key.clone(),
                    value: v.clone(),
                })
                .collect()
        })
    }

    async fn health(&self) -> StoreHealth {
        match self.alive() {
            Ok(s) if s.poisoned.is_none() => StoreHealth::Ok,
            _ => StoreHealth::Down,
        }
    }

    /// The simulation never copies a store; `copy-store` is tested against real stores.
    async fn scan(
        &self,
        _table: Table,
        _cursor: Option<&str>,
        _limit: usize,
    ) -> StoreResult<Result<ScanPage, BadCursor>> {
        Err(StoreError::Io(
            "the simulated disk cannot be scanned".into(),
        ))
    }

    async fn import(&self, _records: &[Record]) -> StoreResult<()> {
        Err(StoreError::Io(
            "the simulated disk cannot be imported into".into(),
        ))
    }
}
