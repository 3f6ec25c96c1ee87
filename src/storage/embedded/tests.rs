//! What only the embedded store can be asked: its committer's seams (a pause between commit and
//! sync, a failed sync), its queue bound, its on-disk format across versions, and its read cost.

use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::Mutex as StdMutex;

use super::*;
use crate::domain::conversation::{ConversationRecord, ConversationState, Side};
use crate::domain::message::MessageType;
use crate::domain::user::Role;

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap()
}

fn doc(id: u64, customer: &str, activity: i64) -> ConversationDoc {
    ConversationDoc {
        record: ConversationRecord {
            id: Id(id),
            service_id: ext("svc"),
            service_title: "Service".into(),
            provider_id: ext("prov"),
            provider_name: "Prov".into(),
            customer_id: ext(customer),
            customer_name: customer.into(),
            created_at: activity,
        },
        state: ConversationState {
            activity_ms: activity,
            ..ConversationState::default()
        },
    }
}

fn message(conv: u64, seq: u64, client: Option<&str>) -> StoredMessage {
    StoredMessage {
        id: Id(conv * 1000 + seq),
        conversation_id: Id(conv),
        seq,
        sender_id: ext("cust"),
        sender_name: "cust".into(),
        message_type: MessageType::Text,
        text: format!("m{seq}"),
        attachments: vec![],
        created_at: 1_000 + seq as i64,
        client_msg_id: client.map(str::to_string),
        deleted: false,
    }
}

/// The write of message `seq` into `d`, as a conversation actor would submit it.
fn next_write(d: &mut ConversationDoc) -> ConversationWrite {
    let seq = d.state.last_seq + 1;
    let m = message(d.record.id.0, seq, Some(&format!("c{seq}")));
    let moved_from = d.state.activity_ms;
    d.state.last_seq = seq;
    d.state.activity_ms = m.created_at;
    d.state.provider.unread += 1;
    ConversationWrite {
        doc: d.clone(),
        message: Some(m),
        unread_of: Some(Side::Provider),
        moved_from: Some(moved_from),
        items: Vec::new(),
    }
}

fn open(dir: &Path, max_queue: usize) -> Arc<EmbeddedStore> {
    EmbeddedStore::open(
        dir,
        EmbeddedOptions {
            max_queue,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap()
}

/// A callback that records what it was called with.
fn recorder() -> (Arc<StdMutex<Vec<StoreResult<()>>>>, OnDurable) {
    let calls = Arc::new(StdMutex::new(Vec::new()));
    let c = calls.clone();
    (calls, Box::new(move |r| c.lock().unwrap().push(r)))
}

/// Pauses the committer once, between commit and sync: answers a receiver that says it is there,
/// and a sender that lets it go on.
fn pause_once(store: &EmbeddedStore) -> (std_mpsc::Receiver<()>, std_mpsc::Sender<()>) {
    let (entered_tx, entered) = std_mpsc::channel();
    let (release, release_rx) = std_mpsc::channel::<()>();
    let mut armed = true;
    *store.shared.seam.pause.lock().unwrap() = Some(Box::new(move || {
        if std::mem::take(&mut armed) {
            let _ = entered_tx.send(());
            let _ = release_rx.recv();
        }
    }));
    (entered, release)
}

#[tokio::test]
async fn a_write_is_invisible_until_it_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16);
    store
        .create_conversation(doc(1, "cust", 10), None)
        .await
        .unwrap();
    let (entered, release) = pause_once(&store);
    let mut d = store.get_conversation(Id(1)).await.unwrap().unwrap();
    let (done, durable) = durable_channel();
    store.submit(&next_write(&mut d), done).unwrap();
    entered.recv().unwrap();
    // Applied to the memtables, not yet synced: a power cut now would lose it, so nobody may see it.
    assert_eq!(store.get_message(Id(1), 1).await.unwrap(), None);
    assert_eq!(
        store
            .get_conversation(Id(1))
            .await
            .unwrap()
            .unwrap()
            .state
            .last_seq,
        0,
        "the state is not ahead of the disk"
    );
    assert!(store
        .find_by_client_msg_id(Id(1), &ext("cust"), "c1")
        .await
        .unwrap()
        .is_none());
    release.send(()).unwrap();
    durable.await.unwrap().unwrap();
    assert_eq!(
        store.get_message(Id(1), 1).await.unwrap().map(|m| m.seq),
        Some(1),
        "visible once its callback says durable"
    );
}

#[tokio::test]
async fn a_failed_sync_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16);
    store
        .create_conversation(doc(1, "cust", 10), None)
        .await
        .unwrap();
    assert_eq!(store.health().await, StoreHealth::Ok);
    store
        .shared
        .seam
        .fail_persist
        .store(true, Ordering::Release);
    let mut d = store.get_conversation(Id(1)).await.unwrap().unwrap();
    let (done, failed) = durable_channel();
    store.submit(&next_write(&mut d), done).unwrap();
    assert!(
        matches!(failed.await.unwrap(), Err(StoreError::Io(_))),
        "the failed write answers its I/O error"
    );
    assert_eq!(store.health().await, StoreHealth::Down);
    assert_eq!(
        store.get_message(Id(1), 1).await.unwrap(),
        None,
        "a write that never synced is never shown"
    );

    // Every later write is refused at once, and its callback is never called.
    let (calls, done) = recorder();
    let refused = store.submit(&next_write(&mut d), done);
    assert!(
        matches!(refused, Err(StoreError::Poisoned(_))),
        "{refused:?}"
    );
    let user = UserProfile {
        id: ext("u"),
        name: "U".into(),
        email: None,
        role: Role::Customer,
        notify_email: true,
    };
    let put = store.put_user(&user).await;
    assert!(matches!(put, Err(StoreError::Poisoned(_))), "{put:?}");
    let created = store.create_conversation(doc(2, "other", 1), None).await;
    assert!(
        matches!(created, Err(StoreError::Poisoned(_))),
        "{created:?}"
    );
    // Reads go on from the last durable snapshot.
    assert!(store.get_conversation(Id(1)).await.unwrap().is_some());
    let (done, settled) = durable_channel();
    store.settle(Id(1), done);
    settled.await.unwrap().unwrap();
    assert!(
        calls.lock().unwrap().is_empty(),
        "a refused write is not called back"
    );
}

#[tokio::test]
async fn a_dead_committer_reports_down_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16);
    *store.shared.seam.pause.lock().unwrap() = Some(Box::new(|| panic!("committer bug")));
    let result = store.set_last_seen(&ext("u"), 5).await;
    assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");
    assert_eq!(store.health().await, StoreHealth::Down);
    let (calls, done) = recorder();
    let mut d = doc(1, "cust", 1);
    let refused = store.submit(&next_write(&mut d), done);
    assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
    assert!(calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_full_queue_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 3);
    let mut d = doc(1, "cust", 1);
    let (entered, release) = pause_once(&store);
    let mut waits = Vec::new();
    let (done, rx) = durable_channel();
    store.submit(&next_write(&mut d), done).unwrap();
    waits.push(rx);
    entered.recv().unwrap();
    // One write in the committer's hands, two queued behind it: the queue is full.
    for _ in 0..2 {
        let (done, rx) = durable_channel();
        store.submit(&next_write(&mut d), done).unwrap();
        waits.push(rx);
    }
    let (calls, done) = recorder();
    let refused = store.submit(&next_write(&mut d), done);
    assert!(
        matches!(refused, Err(StoreError::Overloaded)),
        "{refused:?}"
    );
    let put = store.set_last_seen(&ext("u"), 1).await;
    assert!(matches!(put, Err(StoreError::Overloaded)), "{put:?}");
    assert!(
        calls.lock().unwrap().is_empty(),
        "a refused write is not called back"
    );
    release.send(()).unwrap();
    for w in waits {
        w.await.unwrap().unwrap();
    }
    store.set_last_seen(&ext("u"), 2).await.unwrap();
    assert_eq!(
        store.health().await,
        StoreHealth::Ok,
        "shedding is not failing"
    );
}

#[tokio::test]
async fn settling_an_idle_store_costs_no_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16);
    store.set_last_seen(&ext("u"), 1).await.unwrap();
    let before = store.shared.seam.commits.load(Ordering::Acquire);
    for _ in 0..5 {
        let (done, rx) = durable_channel();
        store.settle(Id(1), done);
        rx.await.unwrap().unwrap();
    }
    assert_eq!(store.shared.seam.commits.load(Ordering::Acquire), before);
}

#[tokio::test]
async fn a_write_with_the_wrong_moved_from_neither_hides_nor_doubles_a_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16);
    let (mut d, _) = store
        .create_conversation(doc(1, "cust", 10), None)
        .await
        .unwrap();
    store
        .create_conversation(doc(2, "other", 20), None)
        .await
        .unwrap();
    let listed = || async {
        let page = store
            .list_conversations(&ext("prov"), None, None, 10)
            .await
            .unwrap()
            .unwrap();
        page.items.iter().map(|d| d.record.id.0).collect::<Vec<_>>()
    };
    for (activity, moved_from) in [(50, None), (60, Some(50))] {
        d.state.activity_ms = activity;
        let (done, rx) = durable_channel();
        let write = ConversationWrite {
            doc: d.clone(),
            message: None,
            unread_of: None,
            moved_from,
            items: Vec::new(),
        };
        store.submit(&write, done).unwrap();
        rx.await.unwrap().unwrap();
        assert_eq!(listed().await.len(), 2, "listed once each, none missing");
    }
    assert_eq!(
        listed().await,
        vec![1, 2],
        "at its activity once an entry is there"
    );
}

/// Opens the store in `dir`, waiting for an earlier handle's threads to let go of its lock.
async fn reopen(dir: &Path) -> Arc<EmbeddedStore> {
    for _ in 0..50 {
        if let Ok(s) = EmbeddedStore::open(dir, EmbeddedOptions::default()) {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the store does not reopen");
}

#[tokio::test]
async fn stores_of_earlier_versions_are_upgraded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The layout before the activity index: (user, conversation) -> activity.
        let db = Database::builder(dir.path()).open().unwrap();
        let convs = db
            .keyspace("conversations", KeyspaceCreateOptions::default)
            .unwrap();
        let old = db
            .keyspace("user_conversations", KeyspaceCreateOptions::default)
            .unwrap();
        // And dedupe entries keyed (sender, client id) alone, never expiring.
        let messages = db
            .keyspace("messages", KeyspaceCreateOptions::default)
            .unwrap();
        let dedupe = db
            .keyspace("dedupe", KeyspaceCreateOptions::default)
            .unwrap();
        for (id, activity) in [(1u64, 30i64), (2, 10), (3, 20)] {
            let d = doc(id, &format!("c{id}"), activity);
            convs.insert(keys::id(Id(id)), encode(&d)).unwrap();
            let m = message(id, 1, Some(&format!("old{id}")));
            let mkey = keys::message(Id(id), 1);
            messages.insert(mkey, encode(&m)).unwrap();
            let mut old_key = keys::external(&m.sender_id);
            old_key.extend_from_slice(format!("old{id}").as_bytes());
            dedupe.insert(old_key, mkey).unwrap();
            for user in [&d.record.provider_id, &d.record.customer_id] {
                old.insert(keys::user_and_id(user, Id(id)), activity.to_be_bytes())
                    .unwrap();
            }
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let store = reopen(dir.path()).await;
    let page = store
        .list_conversations(&ext("prov"), None, None, 10)
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<u64> = page.items.iter().map(|d| d.record.id.0).collect();
    assert_eq!(ids, vec![1, 3, 2], "newest first, from the old lists");
    let mine = store
        .list_conversations(&ext("c2"), None, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mine.items.len(), 1);

    // The old dedupe entries are found under their conversation, and expire.
    let found = store
        .find_by_client_msg_id(Id(2), &ext("cust"), "old2")
        .await
        .unwrap();
    assert_eq!(found.map(|m| m.id), Some(Id(2001)));
    assert!(store
        .find_by_client_msg_id(Id(1), &ext("cust"), "old2")
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.sweep_dedupe(i64::MAX).await.unwrap(), 3);
    assert!(store
        .find_by_client_msg_id(Id(2), &ext("cust"), "old2")
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .shared
            .db
            .snapshot()
            .is_empty(store.shared.ks(Ks::Dedupe))
            .unwrap(),
        "no entry left in the old layout"
    );
}

/// Prints what moving reads onto the blocking pool costs a dedupe lookup. Never asserts a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_lookup_cost_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16);
    store
        .create_conversation(doc(1, "cust", 1), None)
        .await
        .unwrap();
    let mut d = store.get_conversation(Id(1)).await.unwrap().unwrap();
    for _ in 0..100 {
        let (done, rx) = durable_channel();
        store.submit(&next_write(&mut d), done).unwrap();
        rx.await.unwrap().unwrap();
    }
    const N: u32 = 5_000;
    let cust = ext("cust");
    let began = std::time::Instant::now();
    for i in 0..N {
        let key = keys::dedupe(Id(1), &cust, &format!("c{}", i % 100 + 1));
        assert!(store.view().message_at(Ks::Dedupe, &key).unwrap().is_some());
    }
    let inline = began.elapsed() / N;
    let began = std::time::Instant::now();
    for i in 0..N {
        let found = store
            .find_by_client_msg_id(Id(1), &cust, &format!("c{}", i % 100 + 1))
            .await
            .unwrap();
        assert!(found.is_some());
    }
    let pooled = began.elapsed() / N;
    println!(
        "dedupe lookup, {N} hits, {} build: on the async worker {inline:?}, on the blocking pool {pooled:?}",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}
