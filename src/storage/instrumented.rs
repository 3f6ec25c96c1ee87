//! A [`Store`] that times every call of the store it wraps and counts its errors, by operation.
//!
//! The engine wraps whichever backend it opened, once, so every caller (actors, HTTP handlers,
//! the dispatcher, sweepers) is measured without knowing it, and both backends are measured
//! alike. A lookup of an operation's series is an array index ([`StoreMetrics`]), no lock.
//! `submit` is timed until its write is durable (the callback), which is what a sender waits
//! for; its synchronous refusals (queue full, store poisoned) count as `submit` errors.
//! `health`, `settle` and `batch_sizes` are passed through untimed: a scrape asks for health,
//! and a settle marker is a fence, not work.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::items::{Item, ItemAddress, ItemKind};
use super::records::{Record, ScanPage, Table};
use super::{
    BadCursor, ConversationPage, ConversationWrite, OnDurable, SeqRange, Store, StoreHealth,
    StoreResult,
};
use crate::domain::conversation::{ConversationDoc, ConversationRecord};
use crate::domain::message::StoredMessage;
use crate::domain::user::{ExternalId, Service, UserProfile};
use crate::domain::Id;
use crate::metrics::{AtomicHistogram, StoreMetrics};

/// The operations, in the order of [`OP_NAMES`]; the names are the `op` label values.
#[derive(Clone, Copy)]
enum Op {
    PutService,
    GetService,
    DeleteService,
    PutUser,
    GetUser,
    DeleteUser,
    CreateConversation,
    FindConversation,
    GetConversation,
    ConversationRecord,
    ListConversations,
    Submit,
    GetMessage,
    FindMessage,
    ListMessages,
    FindByClientMsgId,
    ForgetDedupe,
    SweepDedupe,
    UnreadCounts,
    HideMessage,
    IsHidden,
    SetLastSeen,
    LastSeen,
    PutItem,
    GetItem,
    DeleteItem,
    WriteItems,
    ListItems,
    Scan,
    Import,
}

/// The `op` label values, indexed by [`Op`].
pub const OP_NAMES: &[&str] = &[
    "put_service",
    "get_service",
    "delete_service",
    "put_user",
    "get_user",
    "delete_user",
    "create_conversation",
    "find_conversation",
    "get_conversation",
    "conversation_record",
    "list_conversations",
    "submit",
    "get_message",
    "find_message",
    "list_messages",
    "find_by_client_msg_id",
    "forget_dedupe",
    "sweep_dedupe",
    "unread_counts",
    "hide_message",
    "is_hidden",
    "set_last_seen",
    "last_seen",
    "put_item",
    "get_item",
    "delete_item",
    "write_items",
    "list_items",
    "scan",
    "import",
];

pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    /// Behind an `Arc` so a submitted write's callback takes one reference count, not a copy of
    /// every operation's handles.
    metrics: Arc<StoreMetrics>,
}

impl InstrumentedStore {
    pub fn wrap(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Arc<dyn Store> {
        Arc::new(InstrumentedStore {
            inner,
            metrics: Arc::new(metrics),
        })
    }

    fn done<T>(&self, op: Op, started: Instant, r: StoreResult<T>) -> StoreResult<T> {
        self.metrics.observe(op as usize, started);
        if r.is_err() {
            self.metrics.error(op as usize);
        }
        r
    }
}

/// Times one awaited call of the inner store.
macro_rules! timed {
    ($self:ident, $op:expr, $call:expr) => {{
        let started = Instant::now();
        let r = $call.await;
        $self.done($op, started, r)
    }};
}

#[async_trait]
impl Store for InstrumentedStore {
    async fn put_service(&self, service: &Service) -> StoreResult<()> {
        timed!(self, Op::PutService, self.inner.put_service(service))
    }
    async fn get_service(&self, id: &ExternalId) -> StoreResult<Option<Service>> {
        timed!(self, Op::GetService, self.inner.get_service(id))
    }
    async fn delete_service(&self, id: &ExternalId) -> StoreResult<bool> {
        timed!(self, Op::DeleteService, self.inner.delete_service(id))
    }
    async fn put_user(&self, user: &UserProfile) -> StoreResult<()> {
        timed!(self, Op::PutUser, self.inner.put_user(user))
    }
    async fn get_user(&self, id: &ExternalId) -> StoreResult<Option<UserProfile>> {
        timed!(self, Op::GetUser, self.inner.get_user(id))
    }
    async fn delete_user(&self, id: &ExternalId) -> StoreResult<bool> {
        timed!(self, Op::DeleteUser, self.inner.delete_user(id))
    }
    async fn create_conversation(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
    ) -> StoreResult<(ConversationDoc, bool)> {
        timed!(
            self,
            Op::CreateConversation,
            self.inner.create_conversation(doc, first)
        )
    }
    async fn create_conversation_with(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        timed!(
            self,
            Op::CreateConversation,
            self.inner.create_conversation_with(doc, first, items)
        )
    }
    async fn find_conversation(
        &self,
        service: &ExternalId,
        provider: &ExternalId,
        customer: &ExternalId,
    ) -> StoreResult<Option<Id>> {
        timed!(
            self,
            Op::FindConversation,
            self.inner.find_conversation(service, provider, customer)
        )
    }
    async fn get_conversation(&self, id: Id) -> StoreResult<Option<ConversationDoc>> {
        timed!(self, Op::GetConversation, self.inner.get_conversation(id))
    }
    async fn conversation_record(&self, id: Id) -> StoreResult<Option<Arc<ConversationRecord>>> {
        timed!(
            self,
            Op::ConversationRecord,
            self.inner.conversation_record(id)
        )
    }
    async fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ConversationPage, BadCursor>> {
        timed!(
            self,
            Op::ListConversations,
            self.inner.list_conversations(user, archived, cursor, limit)
        )
    }

    fn submit(&self, write: &ConversationWrite, on_durable: OnDurable) -> StoreResult<()> {
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let timed: OnDurable = Box::new(move |result| {
            metrics.observe(Op::Submit as usize, started);
            if result.is_err() {
                metrics.error(Op::Submit as usize);
            }
            on_durable(result)
        });
        let r = self.inner.submit(write, timed);
        if r.is_err() {
            // Refused at once: the callback is never called, so it is counted here.
            self.metrics.error(Op::Submit as usize);
        }
        r
    }

    fn settle(&self, conversation: Id, done: OnDurable) {
        self.inner.settle(conversation, done)
    }

    async fn get_message(&self, conversation: Id, seq: u64) -> StoreResult<Option<StoredMessage>> {
        timed!(
            self,
            Op::GetMessage,
            self.inner.get_message(conversation, seq)
        )
    }
    async fn find_message(&self, id: Id) -> StoreResult<Option<StoredMessage>> {
        timed!(self, Op::FindMessage, self.inner.find_message(id))
    }
    async fn list_messages(
        &self,
        conversation: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>> {
        timed!(
            self,
            Op::ListMessages,
            self.inner
                .list_messages(conversation, range, limit, newest_first)
        )
    }
    async fn find_by_client_msg_id(
        &self,
        conversation: Id,
        sender: &ExternalId,
        client_msg_id: &str,
    ) -> StoreResult<Option<StoredMessage>> {
        timed!(
            self,
            Op::FindByClientMsgId,
            self.inner
                .find_by_client_msg_id(conversation, sender, client_msg_id)
        )
    }
    async fn forget_dedupe(&self, message: &StoredMessage) -> StoreResult<()> {
        timed!(self, Op::ForgetDedupe, self.inner.forget_dedupe(message))
    }
    async fn sweep_dedupe(&self, before_ms: i64) -> StoreResult<u64> {
        timed!(self, Op::SweepDedupe, self.inner.sweep_dedupe(before_ms))
    }
    async fn unread_counts(&self, user: &ExternalId) -> StoreResult<Vec<(Id, u64)>> {
        timed!(self, Op::UnreadCounts, self.inner.unread_counts(user))
    }
    async fn hide_message(&self, user: &ExternalId, message: Id) -> StoreResult<()> {
        timed!(
            self,
            Op::HideMessage,
            self.inner.hide_message(user, message)
        )
    }
    async fn is_hidden(&self, user: &ExternalId, message: Id) -> StoreResult<bool> {
        timed!(self, Op::IsHidden, self.inner.is_hidden(user, message))
    }
    async fn set_last_seen(&self, user: &ExternalId, at_ms: i64) -> StoreResult<()> {
        timed!(self, Op::SetLastSeen, self.inner.set_last_seen(user, at_ms))
    }
    async fn last_seen(&self, user: &ExternalId) -> StoreResult<Option<i64>> {
        timed!(self, Op::LastSeen, self.inner.last_seen(user))
    }
    async fn put_item(&self, item: &Item) -> StoreResult<()> {
        timed!(self, Op::PutItem, self.inner.put_item(item))
    }
    async fn get_item(
        &self,
        kind: ItemKind,
        partition: &str,
        key: &[u8],
    ) -> StoreResult<Option<Vec<u8>>> {
        timed!(self, Op::GetItem, self.inner.get_item(kind, partition, key))
    }
    async fn delete_item(&self, kind: ItemKind, partition: &str, key: &[u8]) -> StoreResult<()> {
        timed!(
            self,
            Op::DeleteItem,
            self.inner.delete_item(kind, partition, key)
        )
    }
    async fn write_items(&self, puts: &[Item], deletes: &[ItemAddress]) -> StoreResult<()> {
        timed!(self, Op::WriteItems, self.inner.write_items(puts, deletes))
    }
    async fn list_items(
        &self,
        kind: ItemKind,
        partition: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Item>> {
        timed!(
            self,
            Op::ListItems,
            self.inner.list_items(kind, partition, after, limit)
        )
    }

    async fn health(&self) -> StoreHealth {
        self.inner.health().await
    }

    fn batch_sizes(&self) -> Option<AtomicHistogram> {
        self.inner.batch_sizes()
    }

    async fn scan(
        &self,
        table: Table,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ScanPage, BadCursor>> {
        timed!(self, Op::Scan, self.inner.scan(table, cursor, limit))
    }
    async fn import(&self, records: &[Record]) -> StoreResult<()> {
        timed!(self, Op::Import, self.inner.import(records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};

    #[test]
    fn every_operation_has_a_name() {
        assert_eq!(OP_NAMES.len(), Op::Import as usize + 1);
        assert_eq!(OP_NAMES[Op::Submit as usize], "submit");
        assert_eq!(OP_NAMES[Op::ListItems as usize], "list_items");
    }

    #[tokio::test]
    async fn calls_are_timed_by_operation() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = EmbeddedStore::open(
            dir.path(),
            EmbeddedOptions {
                max_batch: 16,
                background_threads: 1,
                max_queue: 16,
            },
        )
        .unwrap();
        let metrics = crate::metrics::Metrics::new(inner.batch_sizes(), OP_NAMES);
        let store = InstrumentedStore::wrap(inner, metrics.store.clone());
        let user = ExternalId::parse("u1").unwrap();
        assert_eq!(store.last_seen(&user).await.unwrap(), None);
        store.set_last_seen(&user, 5).await.unwrap();
        let text = metrics
            .render(&crate::metrics::Live {
                online_users: 0,
                conversation_actors: 0,
                session_actors: 0,
                store_up: true,
                uptime_secs: 0,
                search_dropped: 0,
                analytics_dropped: 0,
            })
            .unwrap();
        assert!(
            text.contains("switchboard_store_operation_seconds_count{op=\"last_seen\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_store_operation_seconds_count{op=\"set_last_seen\"} 1\n")
        );
        assert!(
            text.contains("switchboard_store_batch_size_count 1\n"),
            "the write was one group commit: {text}"
        );
    }
}
