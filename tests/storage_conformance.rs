//! The storage conformance suite: what every `Store` must do. It runs against the embedded store
//! always, and against ScyllaDB whenever `SCYLLA_URI` is set (contact points, e.g.
//! `SCYLLA_URI=127.0.0.1:9042`): each test then migrates a fresh keyspace of its own, so runs
//! never see each other's data. Without it, a notice says the ScyllaDB half was skipped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use switchboard::config::{Config, ScyllaConfig};
use switchboard::storage::scylla::migrate::migrate;
use switchboard::storage::scylla::ScyllaStore;

use switchboard::domain::conversation::{
    ConversationDoc, ConversationRecord, ConversationState, Side,
};
use switchboard::domain::message::{MessageType, StoredMessage};
use switchboard::domain::user::{ExternalId, Role, Service, UserProfile};
use switchboard::domain::Id;
use switchboard::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use switchboard::storage::{durable_channel, ConversationWrite, SeqRange, Store, StoreResult};

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap()
}

/// Every store under test, each in a fresh keyspace/directory.
async fn stores() -> Vec<(String, Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path(), options()).unwrap();
    let mut all = vec![("embedded".to_string(), embedded as Arc<dyn Store>, dir)];
    match std::env::var("SCYLLA_URI") {
        Ok(uri) => all.push((
            "scylla".into(),
            scylla(&uri).await,
            tempfile::tempdir().unwrap(),
        )),
        Err(_) => eprintln!("SCYLLA_URI is not set: the ScyllaDB store is not tested in this run"),
    }
    all
}

/// A ScyllaDB store in a keyspace nobody else uses, with the schema applied.
async fn scylla(uri: &str) -> Arc<dyn Store> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let config = ScyllaConfig {
        uri: uri.to_string(),
        keyspace: format!(
            "sbconf_{}_{}_{}",
            std::process::id(),
            switchboard::domain::clock::now_ms() % 1_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        replication_strategy: "SimpleStrategy".into(),
        replication_factor: 1,
        ..Config::default().scylla
    };
    migrate(&config).await.expect("migrate the test keyspace");
    ScyllaStore::connect(&config)
        .await
        .expect("connect to SCYLLA_URI")
}

/// A recent time the test messages are created at: within the dedupe window, so every store keeps
/// their dedupe entries (ScyllaDB writes them with a TTL counted from the message's creation).
fn t0() -> i64 {
    static T0: OnceLock<i64> = OnceLock::new();
    *T0.get_or_init(|| switchboard::domain::clock::now_ms() - 60_000)
}

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        max_batch: 256,
        ..EmbeddedOptions::default()
    }
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

fn message(conv: u64, seq: u64, sender: &str, client: Option<&str>) -> StoredMessage {
    StoredMessage {
        id: Id(conv * 1000 + seq),
        conversation_id: Id(conv),
        seq,
        sender_id: ext(sender),
        sender_name: sender.into(),
        message_type: MessageType::Text,
        text: format!("m{seq}"),
        attachments: vec![],
        created_at: t0() + seq as i64,
        client_msg_id: client.map(str::to_string),
        deleted: false,
    }
}

/// Submits a write and returns what its callback is called with, to be awaited later.
fn submit(
    store: &Arc<dyn Store>,
    write: ConversationWrite,
) -> tokio::sync::oneshot::Receiver<StoreResult<()>> {
    let (done, rx) = durable_channel();
    store
        .submit(&write, done)
        .expect("the store takes the write");
    rx
}

/// Appends messages 1..=n from the customer through `submit`, as a conversation actor would.
async fn append(store: &Arc<dyn Store>, d: &mut ConversationDoc, n: u64) {
    let mut waits = Vec::new();
    for _ in 0..n {
        let seq = d.state.last_seq + 1;
        let m = message(
            d.record.id.0,
            seq,
            d.record.customer_id.as_str(),
            Some(&format!("c{seq}")),
        );
        let moved_from = d.state.activity_ms;
        d.state.last_seq = seq;
        d.state.last_message_id = Some(m.id);
        d.state.activity_ms = m.created_at + d.record.id.0 as i64;
        d.state.provider.unread += 1;
        waits.push(submit(
            store,
            ConversationWrite {
                doc: d.clone(),
                message: Some(m),
                unread_of: Some(Side::Provider),
                moved_from: Some(moved_from),
                items: Vec::new(),
            },
        ));
    }
    for w in waits {
        w.await.expect("the store calls back once").unwrap();
    }
}

#[tokio::test]
async fn directory_round_trips() {
    for (name, store, _dir) in stores().await {
        let s = Service {
            id: ext("s1"),
            provider_id: ext("p1"),
            title: "T".into(),
            provider_name: None,
            whatsapp: Some("123456789".into()),
            quick_messages: Some(vec!["Is it available?".into()]),
        };
        store.put_service(&s).await.unwrap();
        assert_eq!(
            store.get_service(&ext("s1")).await.unwrap(),
            Some(s),
            "{name}"
        );
        assert!(store.delete_service(&ext("s1")).await.unwrap(), "{name}");
        assert!(!store.delete_service(&ext("s1")).await.unwrap(), "{name}");
        assert_eq!(store.get_service(&ext("s1")).await.unwrap(), None, "{name}");
        let u = UserProfile {
            id: ext("u1"),
            name: "U".into(),
            email: None,
            role: Role::Provider,
            notify_email: false,
        };
        store.put_user(&u).await.unwrap();
        assert_eq!(store.get_user(&ext("u1")).await.unwrap(), Some(u), "{name}");
        // Erasure deletes the profile; deleting it again finds nothing.
        assert!(store.delete_user(&ext("u1")).await.unwrap(), "{name}");
        assert!(!store.delete_user(&ext("u1")).await.unwrap(), "{name}");
        assert_eq!(store.get_user(&ext("u1")).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn concurrent_creation_makes_one_conversation() {
    for (name, store, _dir) in stores().await {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .create_conversation(doc(100 + i, "alice", 5), None)
                    .await
                    .unwrap()
            }));
        }
        let mut created = 0;
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            let (d, new) = t.await.unwrap();
            created += usize::from(new);
            ids.insert(d.record.id);
        }
        assert_eq!(
            (created, ids.len()),
            (1, 1),
            "{name}: one conversation per (service, provider, customer)"
        );
        let id = *ids.iter().next().unwrap();
        assert_eq!(
            store
                .find_conversation(&ext("svc"), &ext("prov"), &ext("alice"))
                .await
                .unwrap(),
            Some(id),
            "{name}"
        );
    }
}

#[tokio::test]
async fn submitted_messages_read_back_in_order_with_ranges() {
    for (name, store, _dir) in stores().await {
        let (mut d, _) = store
            .create_conversation(doc(7, "bob", 1), None)
            .await
            .unwrap();
        append(&store, &mut d, 25).await;
        let all = store
            .list_messages(Id(7), SeqRange::default(), 100, false)
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=25).collect::<Vec<_>>(),
            "{name}"
        );
        let newest = store
            .list_messages(Id(7), SeqRange::default(), 3, true)
            .await
            .unwrap();
        assert_eq!(
            newest.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![25, 24, 23],
            "{name}"
        );
        let mid = store
            .list_messages(
                Id(7),
                SeqRange {
                    after: Some(5),
                    before: Some(9),
                },
                100,
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            mid.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![6, 7, 8],
            "{name}"
        );
        assert_eq!(
            store.get_message(Id(7), 4).await.unwrap().map(|m| m.seq),
            Some(4),
            "{name}"
        );
        assert_eq!(
            store.find_message(Id(7004)).await.unwrap().map(|m| m.seq),
            Some(4),
            "{name}"
        );
        let dup = store
            .find_by_client_msg_id(d.record.id, &ext("bob"), "c9")
            .await
            .unwrap();
        assert_eq!(dup.map(|m| m.seq), Some(9), "{name}");
        assert!(
            store
                .find_by_client_msg_id(d.record.id, &ext("eve"), "c9")
                .await
                .unwrap()
                .is_none(),
            "{name}: keyed by sender"
        );
        let got = store.get_conversation(Id(7)).await.unwrap().unwrap();
        assert_eq!(got.state.last_seq, 25, "{name}");
        assert_eq!(
            store.unread_counts(&ext("prov")).await.unwrap(),
            vec![(Id(7), 25)],
            "{name}"
        );
        assert!(
            store.unread_counts(&ext("bob")).await.unwrap().is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn conversation_lists_are_by_activity_with_cursor_and_archive_filter() {
    for (name, store, _dir) in stores().await {
        for (i, customer) in ["c1", "c2", "c3", "c4", "c5"].iter().enumerate() {
            let (mut d, _) = store
                .create_conversation(doc(10 + i as u64, customer, 10), None)
                .await
                .unwrap();
            append(&store, &mut d, 1).await;
        }
        // Activity = 1001 + id, so the highest id is the most recent.
        let page = store
            .list_conversations(&ext("prov"), None, None, 2)
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<u64> = page.items.iter().map(|d| d.record.id.0).collect();
        assert_eq!(ids, vec![14, 13], "{name}");
        let cursor = page.next_cursor.clone().unwrap();
        let page = store
            .list_conversations(&ext("prov"), None, Some(&cursor), 10)
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<u64> = page.items.iter().map(|d| d.record.id.0).collect();
        assert_eq!(ids, vec![12, 11, 10], "{name}");
        assert!(page.next_cursor.is_none(), "{name}");
        assert!(
            store
                .list_conversations(&ext("prov"), None, Some("zz"), 10)
                .await
                .unwrap()
                .is_err(),
            "{name}: bad cursor"
        );

        let mut d = store.get_conversation(Id(12)).await.unwrap().unwrap();
        d.state.provider.archived = true;
        submit(
            &store,
            ConversationWrite {
                doc: d,
                message: None,
                unread_of: None,
                moved_from: None,
                items: Vec::new(),
            },
        )
        .await
        .expect("the store calls back once")
        .unwrap();
        let live = store
            .list_conversations(&ext("prov"), Some(false), None, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.items.len(), 4, "{name}");
        let archived = store
            .list_conversations(&ext("prov"), Some(true), None, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            archived
                .items
                .iter()
                .map(|d| d.record.id.0)
                .collect::<Vec<_>>(),
            vec![12],
            "{name}"
        );
        let mine = store
            .list_conversations(&ext("c3"), None, None, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            mine.items.len(),
            1,
            "{name}: a customer sees only their own"
        );
    }
}

#[tokio::test]
async fn hidden_messages_are_per_user() {
    for (name, store, _dir) in stores().await {
        store.hide_message(&ext("u"), Id(5)).await.unwrap();
        assert!(store.is_hidden(&ext("u"), Id(5)).await.unwrap(), "{name}");
        assert!(!store.is_hidden(&ext("v"), Id(5)).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store: Arc<dyn Store> = EmbeddedStore::open(dir.path(), options()).unwrap();
        let (mut d, _) = store
            .create_conversation(doc(3, "zed", 1), None)
            .await
            .unwrap();
        append(&store, &mut d, 10).await;
    }
    // The committer thread exits once the store is dropped; give it a moment to release the lock.
    let mut reopened = None;
    for _ in 0..50 {
        match EmbeddedStore::open(dir.path(), options()) {
            Ok(s) => {
                reopened = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let store = reopened.expect("store reopens");
    let msgs = store
        .list_messages(Id(3), SeqRange::default(), 100, false)
        .await
        .unwrap();
    assert_eq!(msgs.len(), 10);
    assert_eq!(
        store
            .get_conversation(Id(3))
            .await
            .unwrap()
            .unwrap()
            .state
            .last_seq,
        10
    );
}

#[tokio::test]
async fn last_seen_is_kept() {
    for (name, store, _dir) in stores().await {
        assert_eq!(store.last_seen(&ext("u")).await.unwrap(), None, "{name}");
        store.set_last_seen(&ext("u"), 1_234).await.unwrap();
        store.set_last_seen(&ext("u"), 5_678).await.unwrap();
        assert_eq!(
            store.last_seen(&ext("u")).await.unwrap(),
            Some(5_678),
            "{name}"
        );
    }
}

#[tokio::test]
async fn items_are_addressed_ordered_within_a_partition_and_deleted() {
    use switchboard::storage::items::{Item, ItemKind};
    let item = |kind, partition: &str, key: &[u8], value: &[u8]| Item {
        kind,
        partition: partition.into(),
        key: key.to_vec(),
        value: value.to_vec(),
    };
    for (name, store, _dir) in stores().await {
        // Written out of order, across two partitions and two kinds with the same partition name.
        for k in [5u8, 1, 3, 2, 4] {
            store
                .put_item(&item(ItemKind::Flag, "q", &[k], &[k * 10]))
                .await
                .unwrap();
        }
        store
            .put_item(&item(ItemKind::Flag, "q2", &[0], b"other partition"))
            .await
            .unwrap();
        store
            .put_item(&item(ItemKind::PendingUpload, "q", &[0], b"other kind"))
            .await
            .unwrap();
        // A prefix of another partition's name is not that partition.
        store
            .put_item(&item(ItemKind::Flag, "", &[9], b"empty partition"))
            .await
            .unwrap();
        let keys = |items: Vec<Item>| items.into_iter().map(|i| i.key[0]).collect::<Vec<_>>();
        let all = store
            .list_items(ItemKind::Flag, "q", None, 100)
            .await
            .unwrap();
        assert_eq!(keys(all.clone()), vec![1, 2, 3, 4, 5], "{name}");
        assert!(
            all.iter()
                .all(|i| i.value == vec![i.key[0] * 10] && i.partition == "q"),
            "{name}"
        );
        let page = store
            .list_items(ItemKind::Flag, "q", Some(&[2]), 2)
            .await
            .unwrap();
        assert_eq!(keys(page), vec![3, 4], "{name}: after a key, limited");
        assert_eq!(
            store.get_item(ItemKind::Flag, "q", &[3]).await.unwrap(),
            Some(vec![30]),
            "{name}"
        );
        assert_eq!(
            store.get_item(ItemKind::Flag, "q", &[7]).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store
                .get_item(ItemKind::PendingUpload, "q", &[0])
                .await
                .unwrap(),
            Some(b"other kind".to_vec()),
            "{name}"
        );
        store
            .put_item(&item(ItemKind::Flag, "q", &[3], b"replaced"))
            .await
            .unwrap();
        store.delete_item(ItemKind::Flag, "q", &[1]).await.unwrap();
        store.delete_item(ItemKind::Flag, "q", &[8]).await.unwrap();
        let after = store
            .list_items(ItemKind::Flag, "q", None, 100)
            .await
            .unwrap();
        assert_eq!(keys(after.clone()), vec![2, 3, 4, 5], "{name}");
        assert_eq!(after[1].value, b"replaced".to_vec(), "{name}");
        assert_eq!(
            keys(
                store
                    .list_items(ItemKind::Flag, "", None, 100)
                    .await
                    .unwrap()
            ),
            vec![9],
            "{name}"
        );
    }
}

/// Items ride with the writes that cause them (notifications in the outbox): with a conversation
/// write, with a creation (and not when the conversation already existed), and several puts and
/// deletes as one write.
#[tokio::test]
async fn items_are_written_with_the_write_that_causes_them() {
    use switchboard::storage::items::{Item, ItemKind};
    let note = |k: u8| Item {
        kind: ItemKind::Notification,
        partition: String::new(),
        key: vec![k],
        value: vec![k, k],
    };
    for (name, store, _dir) in stores().await {
        let mut d = doc(41, "ivy", 2_000);
        let (_, created) = store
            .create_conversation_with(d.clone(), None, &[note(1)])
            .await
            .unwrap();
        assert!(created, "{name}");
        let (_, created) = store
            .create_conversation_with(d.clone(), None, &[note(2)])
            .await
            .unwrap();
        assert!(!created, "{name}");
        let seq = 1;
        let m = message(41, seq, "ivy", None);
        let moved_from = d.state.activity_ms;
        d.state.last_seq = seq;
        d.state.activity_ms = m.created_at;
        let write = ConversationWrite {
            doc: d.clone(),
            message: Some(m),
            unread_of: None,
            moved_from: Some(moved_from),
            items: vec![note(3), note(4)],
        };
        submit(&store, write).await.unwrap().unwrap();
        let keys = |items: Vec<Item>| items.into_iter().map(|i| i.key[0]).collect::<Vec<_>>();
        let outbox = store
            .list_items(ItemKind::Notification, "", None, 10)
            .await
            .unwrap();
        assert_eq!(
            keys(outbox.clone()),
            vec![1, 3, 4],
            "{name}: none for the existing one"
        );
        assert_eq!(outbox[2].value, vec![4, 4], "{name}");
        let dead = Item {
            kind: ItemKind::DeadLetter,
            ..note(3)
        };
        store
            .write_items(
                &[dead],
                &[
                    (ItemKind::Notification, String::new(), vec![3]),
                    (ItemKind::Notification, String::new(), vec![9]),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            keys(
                store
                    .list_items(ItemKind::Notification, "", None, 10)
                    .await
                    .unwrap()
            ),
            vec![1, 4],
            "{name}"
        );
        assert_eq!(
            store
                .get_item(ItemKind::DeadLetter, "", &[3])
                .await
                .unwrap(),
            Some(vec![3, 3]),
            "{name}"
        );
    }
}

/// Moves `d` to `activity` (as a new message would) and writes it.
async fn touch(store: &Arc<dyn Store>, d: &mut ConversationDoc, activity: i64) {
    let moved_from = d.state.activity_ms;
    d.state.activity_ms = activity;
    submit(
        store,
        ConversationWrite {
            doc: d.clone(),
            message: None,
            unread_of: None,
            moved_from: Some(moved_from),
            items: Vec::new(),
        },
    )
    .await
    .expect("the store calls back once")
    .unwrap();
}

/// Reads every page of `user`'s list, `limit` at a time; the ids in order.
async fn all_pages(
    store: &Arc<dyn Store>,
    user: &str,
    archived: Option<bool>,
    limit: usize,
) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_conversations(&ext(user), archived, cursor.as_deref(), limit)
            .await
            .unwrap()
            .unwrap();
        assert!(page.items.len() <= limit);
        ids.extend(page.items.iter().map(|d| d.record.id.0));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
        assert!(ids.len() <= 1_000, "the cursor must move forward");
    }
}

#[tokio::test]
async fn long_lists_page_in_exact_activity_order() {
    for (name, store, _dir) in stores().await {
        let mut docs = Vec::new();
        for i in 0..250u64 {
            // Activity ties for every pair, so the id decides between them.
            let (d, _) = store
                .create_conversation(doc(1_000 + i, &format!("cust{i}"), (i / 2) as i64), None)
                .await
                .unwrap();
            docs.push(d);
        }
        let mut expected: Vec<(i64, u64)> = docs
            .iter()
            .map(|d| (d.state.activity_ms, d.record.id.0))
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        let ids = |e: &[(i64, u64)]| e.iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(
            all_pages(&store, "prov", None, 20).await,
            ids(&expected),
            "{name}"
        );

        // Activity moves a conversation to the top, and out of its old place.
        touch(&store, &mut docs[10], 10_000).await;
        let listed = all_pages(&store, "prov", None, 20).await;
        assert_eq!(listed.len(), 250, "{name}: listed once");
        assert_eq!(listed[0], 1_010, "{name}: the newest activity first");
        let first = store
            .list_conversations(&ext("prov"), None, None, 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.items[0].record.id, Id(1_010), "{name}");
        assert_eq!(
            first.next_cursor.as_deref(),
            Some(
                format!(
                    "{}.{}",
                    first.items[19].state.activity_ms, first.items[19].record.id
                )
                .as_str()
            ),
            "{name}: the cursor is \"<activity_ms>.<id>\""
        );
        let customer = all_pages(&store, "cust10", None, 20).await;
        assert_eq!(
            customer,
            vec![1_010],
            "{name}: the customer's entry moved too"
        );

        // The archived filter skips without breaking the order.
        for i in (0..250).step_by(3) {
            let mut d = docs[i].clone();
            d.state = store
                .get_conversation(d.record.id)
                .await
                .unwrap()
                .unwrap()
                .state;
            d.state.provider.archived = true;
            submit(
                &store,
                ConversationWrite {
                    doc: d,
                    message: None,
                    unread_of: None,
                    moved_from: None,
                    items: Vec::new(),
                },
            )
            .await
            .unwrap()
            .unwrap();
        }
        let live_expected: Vec<u64> = listed
            .iter()
            .copied()
            .filter(|id| (id - 1_000) % 3 != 0)
            .collect();
        assert_eq!(
            all_pages(&store, "prov", Some(false), 20).await,
            live_expected,
            "{name}"
        );
        let archived: Vec<u64> = listed
            .iter()
            .copied()
            .filter(|id| (id - 1_000) % 3 == 0)
            .collect();
        assert_eq!(
            all_pages(&store, "prov", Some(true), 20).await,
            archived,
            "{name}"
        );
    }
}

#[tokio::test]
async fn dedupe_is_per_conversation_and_expires() {
    for (name, store, _dir) in stores().await {
        let (mut a, _) = store
            .create_conversation(doc(21, "dora", 1), None)
            .await
            .unwrap();
        let (mut b, _) = store
            .create_conversation(
                ConversationDoc {
                    record: ConversationRecord {
                        service_id: ext("svc2"),
                        ..doc(22, "dora", 1).record
                    },
                    ..doc(22, "dora", 1)
                },
                None,
            )
            .await
            .unwrap();
        // The same client ids ("c1", "c2", ...) from the same sender, in two conversations.
        append(&store, &mut a, 2).await;
        append(&store, &mut b, 2).await;
        let in_a = store
            .find_by_client_msg_id(Id(21), &ext("dora"), "c1")
            .await
            .unwrap()
            .unwrap();
        let in_b = store
            .find_by_client_msg_id(Id(22), &ext("dora"), "c1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (in_a.conversation_id, in_b.conversation_id),
            (Id(21), Id(22)),
            "{name}: two different messages"
        );
        assert_ne!(in_a.id, in_b.id, "{name}");

        // ScyllaDB expires dedupe entries itself (a TTL that ends with the window), so there is
        // nothing for a sweep to do there; a store that sweeps must sweep exactly the expired.
        if name == "scylla" {
            assert_eq!(store.sweep_dedupe(t0() + 2).await.unwrap(), 0);
            continue;
        }
        // Message seq n is created at t0 + n: sweeping before t0 + 2 takes every c1, not c2.
        assert_eq!(store.sweep_dedupe(t0() + 2).await.unwrap(), 2, "{name}");
        for conv in [21, 22] {
            assert!(
                store
                    .find_by_client_msg_id(Id(conv), &ext("dora"), "c1")
                    .await
                    .unwrap()
                    .is_none(),
                "{name}: swept"
            );
            assert!(
                store
                    .find_by_client_msg_id(Id(conv), &ext("dora"), "c2")
                    .await
                    .unwrap()
                    .is_some(),
                "{name}: fresh entries stay"
            );
            assert!(
                store.get_message(Id(conv), 1).await.unwrap().is_some(),
                "{name}: sweeping forgets the id, not the message"
            );
        }
        assert_eq!(
            store.sweep_dedupe(t0() + 2).await.unwrap(),
            0,
            "{name}: nothing left to sweep"
        );
        assert_eq!(store.sweep_dedupe(i64::MAX).await.unwrap(), 2, "{name}");
    }
}

#[tokio::test]
async fn an_erased_message_s_dedupe_entry_is_forgotten() {
    for (name, store, _dir) in stores().await {
        let (mut a, _) = store
            .create_conversation(doc(23, "erin", 1), None)
            .await
            .unwrap();
        append(&store, &mut a, 2).await;
        let first = store
            .find_by_client_msg_id(Id(23), &ext("erin"), "c1")
            .await
            .unwrap()
            .expect("written with its dedupe entry");
        store.forget_dedupe(&first).await.unwrap();
        assert!(
            store
                .find_by_client_msg_id(Id(23), &ext("erin"), "c1")
                .await
                .unwrap()
                .is_none(),
            "{name}: forgotten"
        );
        assert!(
            store
                .find_by_client_msg_id(Id(23), &ext("erin"), "c2")
                .await
                .unwrap()
                .is_some(),
            "{name}: only that one"
        );
        assert!(
            store.get_message(Id(23), 1).await.unwrap().is_some(),
            "{name}: the message itself is the conversation actor's to change"
        );
        // Forgetting again, or a message without a client id, changes nothing.
        store.forget_dedupe(&first).await.unwrap();
        let mut plain = first.clone();
        plain.client_msg_id = None;
        store.forget_dedupe(&plain).await.unwrap();
    }
}

#[tokio::test]
async fn create_with_first_message_is_one_write() {
    for (name, store, _dir) in stores().await {
        let mut d = doc(31, "erin", 1_001);
        let first = message(31, 1, "erin", Some("hello-1"));
        d.state.last_seq = 1;
        d.state.last_message_id = Some(first.id);
        d.state.last_message_at = Some(first.created_at);
        d.state.provider.unread = 1;
        let (stored, created) = store
            .create_conversation(d.clone(), Some(first.clone()))
            .await
            .unwrap();
        assert!(created, "{name}");
        assert_eq!(stored, d, "{name}");
        assert_eq!(
            store.get_conversation(Id(31)).await.unwrap(),
            Some(d.clone()),
            "{name}"
        );
        assert_eq!(
            store.get_message(Id(31), 1).await.unwrap(),
            Some(first.clone()),
            "{name}"
        );
        assert_eq!(
            store.find_message(first.id).await.unwrap(),
            Some(first.clone()),
            "{name}"
        );
        assert_eq!(
            store
                .find_by_client_msg_id(Id(31), &ext("erin"), "hello-1")
                .await
                .unwrap(),
            Some(first.clone()),
            "{name}"
        );
        assert_eq!(
            store.unread_counts(&ext("prov")).await.unwrap(),
            vec![(Id(31), 1)],
            "{name}: the recipient's unread, from the doc"
        );
        assert!(
            store.unread_counts(&ext("erin")).await.unwrap().is_empty(),
            "{name}"
        );
        for user in ["prov", "erin"] {
            assert_eq!(
                all_pages(&store, user, None, 10).await,
                vec![31],
                "{name}: {user}"
            );
        }

        // The same (service, provider, customer) again: nothing of the second one is written.
        let mut again = doc(32, "erin", 5_000);
        let second = message(32, 1, "erin", Some("hello-2"));
        again.state.last_seq = 1;
        again.state.provider.unread = 1;
        let (existing, created) = store
            .create_conversation(again, Some(second.clone()))
            .await
            .unwrap();
        assert!(!created, "{name}");
        assert_eq!(existing, d, "{name}: the stored one is answered");
        assert_eq!(
            store.get_conversation(Id(32)).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(store.find_message(second.id).await.unwrap(), None, "{name}");
        assert_eq!(store.get_message(Id(32), 1).await.unwrap(), None, "{name}");
        assert!(
            store
                .find_by_client_msg_id(Id(32), &ext("erin"), "hello-2")
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert_eq!(
            store.unread_counts(&ext("prov")).await.unwrap(),
            vec![(Id(31), 1)],
            "{name}"
        );
        assert_eq!(
            all_pages(&store, "prov", None, 10).await,
            vec![31],
            "{name}"
        );

        // A first message from the provider leaves the customer with the unread one.
        let mut from_provider = doc(33, "gail", 2_000);
        let hello = message(33, 1, "prov", None);
        from_provider.state.last_seq = 1;
        from_provider.state.customer.unread = 1;
        store
            .create_conversation(from_provider, Some(hello))
            .await
            .unwrap();
        assert_eq!(
            store.unread_counts(&ext("gail")).await.unwrap(),
            vec![(Id(33), 1)],
            "{name}: whoever the doc says"
        );
        assert_eq!(
            store.unread_counts(&ext("prov")).await.unwrap(),
            vec![(Id(31), 1)],
            "{name}: not the sender"
        );
    }
}

#[tokio::test]
async fn settle_answers_after_every_earlier_write() {
    for (name, store, _dir) in stores().await {
        let (mut d, _) = store
            .create_conversation(doc(41, "finn", 1), None)
            .await
            .unwrap();
        let mut waits = Vec::new();
        for _ in 0..200 {
            let seq = d.state.last_seq + 1;
            let m = message(41, seq, "finn", None);
            d.state.last_seq = seq;
            waits.push(submit(
                &store,
                ConversationWrite {
                    doc: d.clone(),
                    message: Some(m),
                    unread_of: None,
                    moved_from: None,
                    items: Vec::new(),
                },
            ));
        }
        let (done, settled) = durable_channel();
        store.settle(Id(41), done);
        settled.await.unwrap().unwrap();
        // Nothing awaited the writes themselves: settle alone says they are all in.
        assert_eq!(
            store
                .list_messages(Id(41), SeqRange::default(), 500, false)
                .await
                .unwrap()
                .len(),
            200,
            "{name}"
        );
        assert_eq!(
            store
                .get_conversation(Id(41))
                .await
                .unwrap()
                .unwrap()
                .state
                .last_seq,
            200,
            "{name}"
        );
        for w in waits {
            w.await.unwrap().unwrap();
        }
    }
}
