//! The `Store` trait: everything Switchboard keeps on disk, behind one interface.
//!
//! Two backends implement it: the embedded on-disk store (the default, no server needed) and,
//! later, ScyllaDB. Both must pass the same conformance suite (`tests/storage_conformance.rs`):
//! that suite is the definition of a store.
//!
//! Conversation writes go through [`Store::submit`], which queues the write in order and calls
//! back once it is durable. A conversation actor submits and moves on to its next message; the
//! callback casts the result to the actor, which releases acknowledgements in `seq` order. That is
//! what lets one conversation go faster than one fsync per message.

pub mod codec;
pub mod embedded;
pub mod instrumented;
pub mod items;
pub mod keys;
pub mod open;
pub mod records;
pub mod scylla;

use async_trait::async_trait;
use serde::Serialize;

use std::sync::Arc;

use crate::domain::conversation::{ConversationDoc, ConversationRecord, Side};
use crate::domain::message::StoredMessage;
use crate::domain::user::{ExternalId, Service, UserProfile};
use crate::domain::Id;
use items::{Item, ItemAddress, ItemKind};
use records::{Record, ScanPage, Table};

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data could not be decoded: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    /// The write queue is full: the caller should shed the request (503 `overloaded`, with
    /// `Retry-After`) instead of growing memory. Nothing was written.
    #[error("the store's write queue is full")]
    Overloaded,
    /// A write failed earlier and the store refuses every write since (fjall poisons itself after
    /// an I/O error). Health reports `down`; every send answers `store_unavailable`.
    #[error("the store can no longer write: {0}")]
    Poisoned(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Called once with the outcome of a submitted write: durable (on disk, synced), or failed.
///
/// A callback rather than a future so the write's completion goes straight to whoever waits for
/// it, with no task per write in between. A store calls it exactly once, on any thread (the
/// embedded store's committer), possibly before `submit` returns (a closed store answers at
/// once): it must be quick, must not block and must not take a lock its caller holds. Casting a
/// message to an actor is the intended use.
pub type OnDurable = Box<dyn FnOnce(StoreResult<()>) + Send + 'static>;

/// A callback paired with the receiver it answers, for callers that would rather await a write
/// than be called back. The receiver errs only if the callback was dropped uncalled.
pub fn durable_channel() -> (OnDurable, tokio::sync::oneshot::Receiver<StoreResult<()>>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done: OnDurable = Box::new(move |result| {
        let _ = tx.send(result);
    });
    (done, rx)
}

/// One change to a conversation, written atomically: its new state, and the message that caused
/// it (new, or replaced by a tombstone). The store derives its indexes from these. Indexes are
/// rewritten only where the change can have moved them, since every index write costs on the
/// message path (a new message moves both participants' activity; unread moves for one side).
#[derive(Debug, Clone)]
pub struct ConversationWrite {
    pub doc: ConversationDoc,
    pub message: Option<StoredMessage>,
    /// Whose unread count this write may have changed.
    pub unread_of: Option<Side>,
    /// The activity time the conversation was listed under before this write, when the write
    /// moves it (a new message): the store drops that entry of both participants' activity-ordered
    /// lists and adds one at `doc.state.activity_ms`. `None` when the lists do not move.
    pub moved_from: Option<i64>,
    /// Items written in the same atomic write: what the change causes and must not exist without
    /// it, or be lost without it (notifications in the outbox).
    pub items: Vec<Item>,
}

/// How long a `client_msg_id` identifies a message: a retry within this window gets the original.
/// Dedupe entries older than this are swept (`Store::sweep_dedupe`).
pub const DEDUPE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Where a list of messages starts and ends, by `seq` (exclusive bounds).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqRange {
    pub after: Option<u64>,
    pub before: Option<u64>,
}

/// A page of a user's conversations, most recent activity first.
#[derive(Debug, Clone)]
pub struct ConversationPage {
    pub items: Vec<ConversationDoc>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreHealth {
    Ok,
    Degraded,
    Down,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the cursor is not one this server gave out")]
pub struct BadCursor;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn put_service(&self, service: &Service) -> StoreResult<()>;
    async fn get_service(&self, id: &ExternalId) -> StoreResult<Option<Service>>;
    /// Whether there was one to delete.
    async fn delete_service(&self, id: &ExternalId) -> StoreResult<bool>;

    async fn put_user(&self, user: &UserProfile) -> StoreResult<()>;
    async fn get_user(&self, id: &ExternalId) -> StoreResult<Option<UserProfile>>;
    /// Removes a user's profile (erasure); whether there was one. Durable when it returns.
    async fn delete_user(&self, id: &ExternalId) -> StoreResult<bool>;

    /// Creates `doc` together with its first message, in one atomic write, unless a conversation
    /// for the same (service, provider, customer) exists; answers the one that is stored and
    /// whether it was created now (when it exists, nothing is written and `first` is dropped: the
    /// caller sends it through the conversation's actor). Durable when it returns, and not visible
    /// to any reader before that. `doc.state` already reflects `first` (seq 1, unread 1, ...).
    async fn create_conversation(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
    ) -> StoreResult<(ConversationDoc, bool)> {
        self.create_conversation_with(doc, first, &[]).await
    }
    /// `create_conversation`, with `items` written in the same atomic write when the
    /// conversation is created now (and not at all when it existed).
    async fn create_conversation_with(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)>;
    async fn find_conversation(
        &self,
        service: &ExternalId,
        provider: &ExternalId,
        customer: &ExternalId,
    ) -> StoreResult<Option<Id>>;
    async fn get_conversation(&self, id: Id) -> StoreResult<Option<ConversationDoc>>;
    /// The conversation's record (participants, service), which never changes after creation:
    /// what membership checks need. A store may answer it from a cache.
    async fn conversation_record(&self, id: Id) -> StoreResult<Option<Arc<ConversationRecord>>> {
        Ok(self.get_conversation(id).await?.map(|d| Arc::new(d.record)))
    }
    /// The user's conversations by most recent activity; `archived` filters on the user's own flag.
    async fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ConversationPage, BadCursor>>;

    /// Queues a conversation write behind every earlier one and calls `on_durable` when it is
    /// durable or has failed. Writes are applied in submission order, and no reader sees a write
    /// before it is durable.
    ///
    /// A write that fails fails every write queued behind it too, until the store is opened
    /// again (fjall poisons itself; another backend must do the same): a conversation actor
    /// pipelines its writes, so if write N failed and N+1 still landed, seq N would be a gap that
    /// no actor can repair (the crash simulation's `single` fault mode shows it).
    ///
    /// A write the store cannot take now (`Overloaded`: the bounded queue is full; `Poisoned`;
    /// `Closed`) is refused synchronously with `Err`, and then `on_durable` is never called:
    /// the caller has not changed its state yet and simply answers the request with the error.
    /// The write is borrowed: a store encodes (or copies) what it needs before it returns, and the
    /// caller keeps the new state it describes.
    fn submit(&self, write: &ConversationWrite, on_durable: OnDurable) -> StoreResult<()>;

    /// Calls `done` once every write to `conversation` submitted before this call has been
    /// answered (durable or failed); a store may wait for other conversations' writes too (the
    /// embedded store's one queue does). A conversation actor starting up settles first and only
    /// then reads its state, so it can never start from a state that an earlier incarnation's
    /// queued write is about to change: that is the fence between incarnations
    /// (ARCHITECTURE.md). It also ends the failure of that conversation's writes in a store that
    /// fails writes per conversation (ScyllaDB): writes submitted after it are tried again.
    /// Costs no fsync of its own.
    fn settle(&self, conversation: Id, done: OnDurable);

    async fn get_message(&self, conversation: Id, seq: u64) -> StoreResult<Option<StoredMessage>>;
    async fn find_message(&self, id: Id) -> StoreResult<Option<StoredMessage>>;
    /// Messages in `range`, newest first when `newest_first`, at most `limit`.
    async fn list_messages(
        &self,
        conversation: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>>;
    /// The message a sender already sent with this `client_msg_id` in this conversation, if any
    /// (dedupe is keyed by conversation, sender and id: the same id in another conversation is a
    /// different message). Entries past `DEDUPE_WINDOW_MS` may or may not still be found; callers
    /// check `created_at`.
    async fn find_by_client_msg_id(
        &self,
        conversation: Id,
        sender: &ExternalId,
        client_msg_id: &str,
    ) -> StoreResult<Option<StoredMessage>>;
    /// Removes `message`'s dedupe entry (erasure: the `client_msg_id` a user chose goes with
    /// them), if it is still that message's. Durable when it returns.
    async fn forget_dedupe(&self, message: &StoredMessage) -> StoreResult<()>;
    /// Deletes dedupe entries of messages created before `before_ms`; answers how many. Run in
    /// the background; reads only the expired part of a time-ordered index, never the whole set.
    async fn sweep_dedupe(&self, before_ms: i64) -> StoreResult<u64>;
    /// Every conversation in which the user has unread messages, with the count.
    async fn unread_counts(&self, user: &ExternalId) -> StoreResult<Vec<(Id, u64)>>;

    /// Hides a message from one user's history ("delete for me"). Durable when it returns.
    async fn hide_message(&self, user: &ExternalId, message: Id) -> StoreResult<()>;
    async fn is_hidden(&self, user: &ExternalId, message: Id) -> StoreResult<bool>;

    /// When the user was last online (their last socket closed and the grace period passed).
    async fn set_last_seen(&self, user: &ExternalId, at_ms: i64) -> StoreResult<()>;
    async fn last_seen(&self, user: &ExternalId) -> StoreResult<Option<i64>>;

    /// Writes an item, replacing the one at the same address. Durable when it returns.
    async fn put_item(&self, item: &Item) -> StoreResult<()>;
    async fn get_item(
        &self,
        kind: ItemKind,
        partition: &str,
        key: &[u8],
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Removes an item if there is one. Durable when it returns.
    async fn delete_item(&self, kind: ItemKind, partition: &str, key: &[u8]) -> StoreResult<()>;
    /// Writes `puts` and removes `deletes` in one atomic write (all or none after a crash).
    /// Durable when it returns.
    async fn write_items(&self, puts: &[Item], deletes: &[ItemAddress]) -> StoreResult<()>;
    /// Up to `limit` items of one partition in key order, starting after the key `after`.
    async fn list_items(
        &self,
        kind: ItemKind,
        partition: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Item>>;

    async fn health(&self) -> StoreHealth;

    /// Writes per group commit, for a store that commits writes in groups (the embedded one):
    /// `/metrics` exposes it as `switchboard_store_batch_size`.
    fn batch_sizes(&self) -> Option<crate::metrics::AtomicHistogram> {
        None
    }

    /// Up to `limit` records of `table`, continuing after `cursor` (a `ScanPage::next` of this
    /// store), in an order that stays put while nothing writes. For copying a store; not on any
    /// request path.
    async fn scan(
        &self,
        table: Table,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ScanPage, BadCursor>>;

    /// Writes records with every index they imply, as the store's own writes would; durable when
    /// it returns. Idempotent: importing a record again changes nothing, so an interrupted copy
    /// simply starts again from its last saved position. Dedupe entries are rebuilt for messages
    /// with a `client_msg_id` (those past the window are swept or expire as usual).
    async fn import(&self, records: &[Record]) -> StoreResult<()>;
}

/// Which participant's index entries a user owns, for a conversation.
pub fn participants(doc: &ConversationDoc) -> [(Side, &ExternalId); 2] {
    [
        (Side::Customer, &doc.record.customer_id),
        (Side::Provider, &doc.record.provider_id),
    ]
}

/// A conversation list cursor, `"<activity_ms>.<conversation id>"`: the place in a user's
/// activity-ordered list of the previous page's last item. Both stores give out the same form.
/// No cursor is the first page.
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<(i64, Id)>, BadCursor> {
    let Some(c) = cursor else {
        return Ok(None);
    };
    let (at, id) = c.split_once('.').ok_or(BadCursor)?;
    match (at.parse(), id.parse()) {
        (Ok(at), Ok(id)) => Ok(Some((at, Id(id)))),
        _ => Err(BadCursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_cursors_parse_or_are_refused() {
        assert_eq!(parse_cursor(None).unwrap(), None);
        assert_eq!(parse_cursor(Some("-5.42")).unwrap(), Some((-5, Id(42))));
        for bad in ["", "5", "5.", ".5", "a.5", "5.-1", "5.1.2"] {
            assert!(parse_cursor(Some(bad)).is_err(), "{bad}");
        }
    }
}
