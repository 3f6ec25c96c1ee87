//! Whether two stores hold the same records and answer every read the same way.

use std::collections::{BTreeSet, HashMap};

use switchboard::domain::user::ExternalId;
use switchboard::storage::records::{Record, Table};
use switchboard::storage::{ConversationPage, SeqRange, Store};

async fn scan_all(store: &dyn Store, table: Table) -> Vec<Record> {
    let (mut out, mut cursor) = (Vec::new(), None);
    loop {
        let page = store
            .scan(table, cursor.as_deref(), 7)
            .await
            .unwrap()
            .unwrap();
        out.extend(page.records);
        cursor = page.next;
        if cursor.is_none() {
            return out;
        }
    }
}

/// Records compared as multisets, so any two backends compare whatever order they scan in.
fn sorted(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| format!("{r:?}")).collect();
    v.sort();
    v
}

/// `target` holds exactly the records of `source` and answers every read the same way; and the
/// data has what the comparison is about (so an empty copy of an empty store cannot pass).
pub async fn assert_same(source: &dyn Store, target: &dyn Store) {
    let mut all = HashMap::new();
    for table in Table::ALL {
        let (s, t) = (scan_all(source, table).await, scan_all(target, table).await);
        assert!(!s.is_empty(), "the source has {} records", table.name());
        assert_eq!(sorted(&s), sorted(&t), "{} records", table.name());
        all.insert(table, s);
    }
    let mut users = BTreeSet::<ExternalId>::new();
    let (mut deduped, mut watermarks) = (0, 0);
    for r in &all[&Table::Conversations] {
        let Record::Conversation(doc) = r else {
            panic!("{r:?}")
        };
        let (id, rec) = (doc.record.id, &doc.record);
        users.extend([rec.customer_id.clone(), rec.provider_id.clone()]);
        assert_eq!(
            target.get_conversation(id).await.unwrap().as_ref(),
            Some(doc)
        );
        let key = (&rec.service_id, &rec.provider_id, &rec.customer_id);
        assert_eq!(
            target.find_conversation(key.0, key.1, key.2).await.unwrap(),
            Some(id)
        );
        let msgs = source
            .list_messages(id, SeqRange::default(), 1000, false)
            .await
            .unwrap();
        assert_eq!(
            target
                .list_messages(id, SeqRange::default(), 1000, false)
                .await
                .unwrap(),
            msgs
        );
        let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=msgs.len() as u64).collect::<Vec<_>>(),
            "gapless, no duplicates"
        );
        for m in &msgs {
            assert_eq!(target.find_message(m.id).await.unwrap().as_ref(), Some(m));
            if let Some(c) = &m.client_msg_id {
                let found = target
                    .find_by_client_msg_id(id, &m.sender_id, c)
                    .await
                    .unwrap();
                assert_eq!(found.as_ref(), Some(m), "dedupe entry of {c}");
                deduped += 1;
            }
        }
        watermarks += usize::from(doc.state.provider.read_seq > 0);
    }
    assert!(
        deduped > 0 && watermarks > 0,
        "client_msg_ids and a read watermark were copied"
    );
    let tombstones = all[&Table::Messages]
        .iter()
        .filter(|r| matches!(r, Record::Message(m) if m.deleted))
        .count();
    assert_eq!(
        tombstones, 1,
        "the message deleted for everyone is copied as a tombstone"
    );
    let (mut archived, mut unread) = (0, 0);
    for u in &users {
        let mut a = source.unread_counts(u).await.unwrap();
        let mut b = target.unread_counts(u).await.unwrap();
        a.sort();
        b.sort();
        assert_eq!(a, b, "unread counts of {u}");
        unread += a.len();
        for filter in [None, Some(true), Some(false)] {
            let ids = |p: ConversationPage| p.items.iter().map(|d| d.record.id).collect::<Vec<_>>();
            let a = ids(source
                .list_conversations(u, filter, None, 100)
                .await
                .unwrap()
                .unwrap());
            let b = ids(target
                .list_conversations(u, filter, None, 100)
                .await
                .unwrap()
                .unwrap());
            assert_eq!(a, b, "{u}'s conversations, archived {filter:?}, in order");
            archived += usize::from(filter == Some(true)) * a.len();
        }
        assert_eq!(
            target.last_seen(u).await.unwrap(),
            source.last_seen(u).await.unwrap()
        );
    }
    assert!(
        archived > 0 && unread > 0,
        "archived flags and unread counts were copied"
    );
    for r in all[&Table::Hidden]
        .iter()
        .chain(&all[&Table::Services])
        .chain(&all[&Table::Users])
    {
        match r {
            Record::Hidden { user, message } => {
                assert!(target.is_hidden(user, *message).await.unwrap())
            }
            Record::Service(s) => {
                assert_eq!(target.get_service(&s.id).await.unwrap().as_ref(), Some(s))
            }
            Record::User(u) => assert_eq!(target.get_user(&u.id).await.unwrap().as_ref(), Some(u)),
            other => panic!("{other:?}"),
        }
    }
}
