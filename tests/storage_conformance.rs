//! The storage conformance suite: what every `Store` must do. It runs against the embedded store
//! always. A ScyllaDB store does not exist in this build yet; when it lands, it joins `stores()`
//! whenever `SCYLLA_URI` is set, and passes these same tests.

use std::sync::Arc;

use switchboard::domain::conversation::{
    ConversationDoc, ConversationRecord, ConversationState, Side,
};
use switchboard::domain::message::{MessageType, StoredMessage};
use switchboard::domain::user::{ExternalId, Role, Service, UserProfile};
use switchboard::domain::Id;
use switchboard::storage::embedded::EmbeddedStore;
use switchboard::storage::{durable_channel, ConversationWrite, SeqRange, Store, StoreResult};

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap()
}

/// Every store under test, each in a fresh keyspace/directory.
fn stores() -> Vec<(String, Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path(), 256, 1).unwrap();
    if std::env::var("SCYLLA_URI").is_ok() {
        eprintln!("SCYLLA_URI is set, but this build has no ScyllaDB store yet: only the embedded store is tested");
    }
    vec![("embedded".into(), embedded as Arc<dyn Store>, dir)]
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
        created_at: 1_000 + seq as i64,
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
                moved_from: None,
            },
        ));
    }
    for w in waits {
        w.await.expect("the store calls back once").unwrap();
    }
}

#[tokio::test]
async fn directory_round_trips() {
    for (name, store, _dir) in stores() {
        let s = Service {
            id: ext("s1"),
            provider_id: ext("p1"),
            title: "T".into(),
            provider_name: None,
            whatsapp: Some("123456789".into()),
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
        };
        store.put_user(&u).await.unwrap();
        assert_eq!(store.get_user(&ext("u1")).await.unwrap(), Some(u), "{name}");
    }
}

#[tokio::test]
async fn concurrent_creation_makes_one_conversation() {
    for (name, store, _dir) in stores() {
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
    for (name, store, _dir) in stores() {
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
    for (name, store, _dir) in stores() {
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
    for (name, store, _dir) in stores() {
        store.hide_message(&ext("u"), Id(5)).await.unwrap();
        assert!(store.is_hidden(&ext("u"), Id(5)).await.unwrap(), "{name}");
        assert!(!store.is_hidden(&ext("v"), Id(5)).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store: Arc<dyn Store> = EmbeddedStore::open(dir.path(), 64, 1).unwrap();
        let (mut d, _) = store
            .create_conversation(doc(3, "zed", 1), None)
            .await
            .unwrap();
        append(&store, &mut d, 10).await;
    }
    // The committer thread exits once the store is dropped; give it a moment to release the lock.
    let mut reopened = None;
    for _ in 0..50 {
        match EmbeddedStore::open(dir.path(), 64, 1) {
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
    for (name, store, _dir) in stores() {
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
