//! The conversation actor driven through the real registry over a real embedded store, with a
//! thin wrapper that can refuse or stall writes the way a full queue or a stuck disk would.

use crate::storage::items::{Item, ItemAddress, ItemKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ractor::Actor;

use super::{ConversationMsg, SendOutcome, SendRequest};
use crate::actors::supervisor::Supervisor;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::domain::conversation::{ConversationDoc, ConversationRecord, ConversationState};
use crate::domain::message::StoredMessage;
use crate::domain::user::{ExternalId, Service, UserProfile};
use crate::domain::Id;
use crate::engine::{Engine, EngineRef};
use crate::error::ApiError;
use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use crate::storage::records::{Record, ScanPage, Table};
use crate::storage::{
    BadCursor, ConversationPage, ConversationWrite, OnDurable, SeqRange, Store, StoreError,
    StoreHealth, StoreResult,
};

#[derive(Default)]
enum Fault {
    #[default]
    None,
    /// The next submit is refused with this error (a full queue, a poisoned store).
    RefuseNext(StoreError),
    /// Submitted writes are held and never answered: a stuck disk.
    Stall(Vec<OnDurable>),
}

struct FaultyStore {
    inner: Arc<EmbeddedStore>,
    fault: Mutex<Fault>,
}

#[async_trait]
impl Store for FaultyStore {
    async fn put_service(&self, s: &Service) -> StoreResult<()> {
        self.inner.put_service(s).await
    }
    async fn get_service(&self, id: &ExternalId) -> StoreResult<Option<Service>> {
        self.inner.get_service(id).await
    }
    async fn delete_service(&self, id: &ExternalId) -> StoreResult<bool> {
        self.inner.delete_service(id).await
    }
    async fn put_user(&self, u: &UserProfile) -> StoreResult<()> {
        self.inner.put_user(u).await
    }
    async fn get_user(&self, id: &ExternalId) -> StoreResult<Option<UserProfile>> {
        self.inner.get_user(id).await
    }
    async fn delete_user(&self, id: &ExternalId) -> StoreResult<bool> {
        self.inner.delete_user(id).await
    }
    async fn create_conversation_with(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        self.inner.create_conversation_with(doc, first, items).await
    }
    async fn find_conversation(
        &self,
        s: &ExternalId,
        p: &ExternalId,
        c: &ExternalId,
    ) -> StoreResult<Option<Id>> {
        self.inner.find_conversation(s, p, c).await
    }
    async fn get_conversation(&self, id: Id) -> StoreResult<Option<ConversationDoc>> {
        self.inner.get_conversation(id).await
    }
    async fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ConversationPage, BadCursor>> {
        self.inner
            .list_conversations(user, archived, cursor, limit)
            .await
    }
    fn submit(&self, write: &ConversationWrite, on_durable: OnDurable) -> StoreResult<()> {
        let mut fault = self.fault.lock().unwrap();
        match std::mem::take(&mut *fault) {
            Fault::None => self.inner.submit(write, on_durable),
            Fault::RefuseNext(e) => Err(e),
            Fault::Stall(mut held) => {
                held.push(on_durable);
                *fault = Fault::Stall(held);
                Ok(())
            }
        }
    }
    fn settle(&self, conversation: Id, done: OnDurable) {
        self.inner.settle(conversation, done)
    }
    async fn get_message(&self, c: Id, seq: u64) -> StoreResult<Option<StoredMessage>> {
        self.inner.get_message(c, seq).await
    }
    async fn find_message(&self, id: Id) -> StoreResult<Option<StoredMessage>> {
        self.inner.find_message(id).await
    }
    async fn list_messages(
        &self,
        c: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>> {
        self.inner
            .list_messages(c, range, limit, newest_first)
            .await
    }
    async fn find_by_client_msg_id(
        &self,
        c: Id,
        sender: &ExternalId,
        id: &str,
    ) -> StoreResult<Option<StoredMessage>> {
        self.inner.find_by_client_msg_id(c, sender, id).await
    }
    async fn forget_dedupe(&self, m: &StoredMessage) -> StoreResult<()> {
        self.inner.forget_dedupe(m).await
    }
    async fn sweep_dedupe(&self, before_ms: i64) -> StoreResult<u64> {
        self.inner.sweep_dedupe(before_ms).await
    }
    async fn unread_counts(&self, user: &ExternalId) -> StoreResult<Vec<(Id, u64)>> {
        self.inner.unread_counts(user).await
    }
    async fn hide_message(&self, user: &ExternalId, m: Id) -> StoreResult<()> {
        self.inner.hide_message(user, m).await
    }
    async fn is_hidden(&self, user: &ExternalId, m: Id) -> StoreResult<bool> {
        self.inner.is_hidden(user, m).await
    }
    async fn set_last_seen(&self, user: &ExternalId, at: i64) -> StoreResult<()> {
        self.inner.set_last_seen(user, at).await
    }
    async fn last_seen(&self, user: &ExternalId) -> StoreResult<Option<i64>> {
        self.inner.last_seen(user).await
    }
    async fn health(&self) -> StoreHealth {
        self.inner.health().await
    }
    async fn put_item(&self, item: &Item) -> StoreResult<()> {
        self.inner.put_item(item).await
    }
    async fn get_item(&self, k: ItemKind, p: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_item(k, p, key).await
    }
    async fn delete_item(&self, k: ItemKind, p: &str, key: &[u8]) -> StoreResult<()> {
        self.inner.delete_item(k, p, key).await
    }
    async fn write_items(&self, puts: &[Item], deletes: &[ItemAddress]) -> StoreResult<()> {
        self.inner.write_items(puts, deletes).await
    }
    async fn list_items(
        &self,
        k: ItemKind,
        p: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Item>> {
        self.inner.list_items(k, p, after, limit).await
    }
    async fn scan(
        &self,
        table: Table,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ScanPage, BadCursor>> {
        self.inner.scan(table, cursor, limit).await
    }
    async fn import(&self, records: &[Record]) -> StoreResult<()> {
        self.inner.import(records).await
    }
}

struct Rig {
    engine: EngineRef,
    store: Arc<FaultyStore>,
    conversation: Id,
    _dir: tempfile::TempDir,
}

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap()
}

/// An engine over a fresh store holding one conversation between `cust` and `prov`.
async fn rig(configure: impl FnOnce(&mut Config)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.auth.jwt_secret = "unit-test-secret-unit-test-secret-0123".into();
    // These tests are about the actor; the index would otherwise open `data/search` in the cwd.
    config.search.enabled = false;
    configure(&mut config);
    let inner = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let store = Arc::new(FaultyStore {
        inner,
        fault: Mutex::new(Fault::None),
    });
    let auth = Authenticator::new(&config.auth).unwrap();
    let objects = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let engine = Engine::new(config, store.clone(), auth, Arc::new(objects)).unwrap();
    let (supervisor, _) = Actor::spawn(None, Supervisor, engine.clone())
        .await
        .unwrap();
    engine.registry.set_supervisor(supervisor.get_cell());
    let doc = ConversationDoc {
        record: ConversationRecord {
            id: Id(77),
            service_id: ext("svc"),
            service_title: "Svc".into(),
            provider_id: ext("prov"),
            provider_name: "Prov".into(),
            customer_id: ext("cust"),
            customer_name: "Cust".into(),
            created_at: 1,
        },
        state: ConversationState::default(),
    };
    store.create_conversation(doc, None).await.unwrap();
    Rig {
        engine,
        store,
        conversation: Id(77),
        _dir: dir,
    }
}

fn send(
    user: &str,
    text: &str,
    client: Option<&str>,
) -> impl FnOnce(super::Reply<SendOutcome>) -> ConversationMsg {
    let (user, text, client) = (ext(user), text.to_string(), client.map(str::to_string));
    move |reply| {
        ConversationMsg::Send(SendRequest {
            sender_name: user.to_string(),
            sender: user,
            text,
            attachments: Vec::new(),
            flags: Vec::new(),
            client_msg_id: client,
            origin: None,
            reply,
            received: std::time::Instant::now(),
        })
    }
}

async fn ask_send(
    r: &Rig,
    user: &str,
    text: &str,
    client: Option<&str>,
) -> Result<SendOutcome, ApiError> {
    r.engine.ask(r.conversation, send(user, text, client)).await
}

/// One thread, so both messages are in the mailbox before the actor takes the first.
#[tokio::test(flavor = "current_thread")]
async fn a_send_queued_behind_an_idle_stop_is_rerouted_not_dropped() {
    let r = rig(|c| c.realtime.conversation_idle_secs = 1).await;
    ask_send(&r, "cust", "one", None).await.unwrap();
    // A second message keeps the actor's own first check (at start + 1 s) from finding it idle;
    // that check reschedules itself for start + 2 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ask_send(&r, "cust", "one more", None).await.unwrap();
    // Now quiet for longer than the idle time, before that next check.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let actor = r
        .engine
        .registry
        .running_conversation(r.conversation)
        .expect("the actor is still running");
    let (tx, rx) = tokio::sync::oneshot::channel();
    actor.send_message(ConversationMsg::IdleCheck).unwrap();
    actor
        .send_message(send("cust", "two", Some("c2"))(super::Reply::Caller(tx)))
        .unwrap_or_else(|_| panic!("the actor takes messages until it has handled the idle check"));
    let outcome = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("answered")
        .expect("a send queued behind the idle stop is answered, not dropped")
        .expect("and it is stored");
    assert_eq!(outcome.message.seq, 3, "by the next incarnation, gapless");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_start_a_conversation_actor() {
    let r = rig(|_| {}).await;
    let err = ask_send(&r, "mallory", "hi", None).await.unwrap_err();
    assert_eq!(err.code, "conversation_not_found");
    assert_eq!(
        r.engine.registry.conversation_actors(),
        0,
        "no actor for a stranger"
    );
    ask_send(&r, "cust", "hi", None).await.unwrap();
    assert_eq!(r.engine.registry.conversation_actors(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_changes_nothing_and_says_overloaded() {
    // A budget of one message: the refused one must not spend it.
    let r = rig(|c| c.limits.messages_per_minute = 1).await;
    *r.store.fault.lock().unwrap() = Fault::RefuseNext(StoreError::Overloaded);
    let err = ask_send(&r, "cust", "shed", None).await.unwrap_err();
    assert_eq!((err.kind.status(), err.code), (503, "overloaded"));
    assert_eq!(err.retry_after, Some(1), "overloaded carries Retry-After");
    let next = ask_send(&r, "cust", "kept", None).await.unwrap();
    assert_eq!(
        next.message.seq, 1,
        "the refused message took no seq and no budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_times_the_request_out() {
    let r = rig(|c| c.realtime.request_timeout_secs = 1).await;
    *r.store.fault.lock().unwrap() = Fault::Stall(Vec::new());
    let began = std::time::Instant::now();
    let err = ask_send(&r, "cust", "stuck", None).await.unwrap_err();
    assert_eq!((err.kind.status(), err.code), (503, "store_unavailable"));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "answered by the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deduped_retry_is_answered_before_the_budget_is_spent() {
    let r = rig(|c| c.limits.messages_per_minute = 2).await;
    let first = ask_send(&r, "cust", "a", Some("a")).await.unwrap();
    ask_send(&r, "cust", "b", Some("b")).await.unwrap();
    for _ in 0..3 {
        let retry = ask_send(&r, "cust", "a", Some("a"))
            .await
            .expect("a retry is free");
        assert!(retry.duplicate);
        assert_eq!(retry.message.id, first.message.id);
    }
    let over = ask_send(&r, "cust", "c", Some("c")).await.unwrap_err();
    assert_eq!(over.code, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_client_msg_id_in_another_conversation_is_another_message() {
    let r = rig(|_| {}).await;
    let mut other = r
        .store
        .get_conversation(r.conversation)
        .await
        .unwrap()
        .unwrap();
    other.record.id = Id(78);
    other.record.service_id = ext("svc2");
    r.store.create_conversation(other, None).await.unwrap();
    let a = ask_send(&r, "cust", "x", Some("same")).await.unwrap();
    let b = r
        .engine
        .ask(Id(78), send("cust", "y", Some("same")))
        .await
        .unwrap();
    assert!(
        !b.duplicate,
        "a different conversation's message is not a retry"
    );
    assert_eq!(b.message.conversation_id, Id(78));
    assert_ne!(a.message.id, b.message.id);
}
