//! What a write puts in which table: conversation writes, creations and imports turned into bound
//! statements. Pure functions of the write, its timestamp and the time, so the mapping is tested
//! without a cluster. The mirror of the embedded store's `indexes.rs`.

use scylla::value::CqlValue;

use super::cql::{bucket_of, starts_bucket, Q};
use crate::domain::conversation::{ConversationDoc, Side};
use crate::domain::message::StoredMessage;
use crate::domain::Id;
use crate::storage::codec::encode;
use crate::storage::items::Item;
use crate::storage::records::Record;
use crate::storage::{participants, ConversationWrite, DEDUPE_WINDOW_MS};

/// A statement with its values, ready for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub q: Q,
    pub values: Vec<CqlValue>,
}

impl Bound {
    fn new(q: Q, values: Vec<CqlValue>) -> Self {
        Bound { q, values }
    }

    /// Bytes of blobs and text it carries: what a coalesced batch is sized by.
    pub fn weight(&self) -> usize {
        self.values
            .iter()
            .map(|v| match v {
                CqlValue::Blob(b) => b.len(),
                CqlValue::Text(t) => t.len(),
                _ => 8,
            })
            .sum()
    }
}

pub fn big(v: u64) -> CqlValue {
    // Ids and seqs are below 2^63 (snowflakes, counters); the cast keeps every bit either way.
    CqlValue::BigInt(v as i64)
}

pub fn id(v: Id) -> CqlValue {
    big(v.0)
}

pub fn text(s: &str) -> CqlValue {
    CqlValue::Text(s.to_string())
}

/// One conversation write: its new state, its message and every index it moves.
pub fn conversation_write(w: &ConversationWrite, ts: i64, now_ms: i64) -> Vec<Bound> {
    let doc = &w.doc;
    let cid = doc.record.id;
    let mut out = Vec::with_capacity(10);
    out.push(put_conversation(doc, ts));
    if let Some(m) = &w.message {
        message_writes(&mut out, m, ts, now_ms);
    }
    if let Some(old) = w.moved_from {
        let new = doc.state.activity_ms;
        if old != new {
            for (_, user) in participants(doc) {
                out.push(Bound::new(
                    Q::DeleteActivity,
                    vec![
                        CqlValue::BigInt(ts),
                        text(user.as_str()),
                        CqlValue::BigInt(old),
                        id(cid),
                    ],
                ));
                out.push(activity(user.as_str(), new, cid, ts));
            }
        }
    }
    if let Some(side) = w.unread_of {
        out.push(watermarks(doc, side, ts));
    }
    out.extend(w.items.iter().map(put_item));
    out
}

/// A new conversation (its key is claimed first, on its own): its state, its first message, both
/// participants' list entries and watermarks.
pub fn create_writes(
    doc: &ConversationDoc,
    first: Option<&StoredMessage>,
    ts: i64,
    now_ms: i64,
) -> Vec<Bound> {
    let mut out = Vec::with_capacity(12);
    out.push(put_conversation(doc, ts));
    if let Some(m) = first {
        message_writes(&mut out, m, ts, now_ms);
    }
    for (side, user) in participants(doc) {
        out.push(activity(
            user.as_str(),
            doc.state.activity_ms,
            doc.record.id,
            ts,
        ));
        out.push(watermarks(doc, side, ts));
    }
    out
}

/// The conversation key row, written without a transaction: for imports, where the source store
/// already made the key unique.
pub fn put_key(doc: &ConversationDoc) -> Bound {
    let r = &doc.record;
    Bound::new(
        Q::PutKey,
        vec![
            text(r.service_id.as_str()),
            text(r.provider_id.as_str()),
            text(r.customer_id.as_str()),
            id(r.id),
            CqlValue::BigInt(r.created_at),
        ],
    )
}

/// Records with everything they imply, as the store's own writes would write them.
pub fn import_writes(records: &[Record], ts: i64, now_ms: i64) -> Vec<Bound> {
    let mut out = Vec::with_capacity(records.len() * 4);
    for r in records {
        match r {
            Record::Service(s) => out.push(Bound::new(
                Q::PutService,
                vec![text(s.id.as_str()), CqlValue::Blob(encode(s))],
            )),
            Record::User(u) => out.push(Bound::new(
                Q::PutUser,
                vec![text(u.id.as_str()), CqlValue::Blob(encode(u))],
            )),
            Record::Conversation(doc) => {
                out.push(put_key(doc));
                out.extend(create_writes(doc, None, ts, now_ms));
            }
            Record::Message(m) => {
                message_writes(&mut out, m, ts, now_ms);
                // Listing a bucket is idempotent; an import cannot know which message starts it.
                out.push(bucket(m, ts));
            }
            Record::Hidden { user, message } => out.push(Bound::new(
                Q::PutHidden,
                vec![text(user.as_str()), id(*message)],
            )),
            Record::LastSeen { user, at_ms } => out.push(Bound::new(
                Q::PutLastSeen,
                vec![text(user.as_str()), CqlValue::BigInt(*at_ms)],
            )),
            Record::Item(item) => out.push(put_item(item)),
        }
    }
    out
}

pub fn put_item(item: &Item) -> Bound {
    Bound::new(
        Q::PutItem,
        vec![
            text(item.kind.name()),
            text(&item.partition),
            CqlValue::Blob(item.key.clone()),
            CqlValue::Blob(item.value.clone()),
        ],
    )
}

fn put_conversation(doc: &ConversationDoc, ts: i64) -> Bound {
    Bound::new(
        Q::PutConversation,
        vec![
            id(doc.record.id),
            CqlValue::Blob(encode(doc)),
            CqlValue::BigInt(ts),
        ],
    )
}

fn activity(user: &str, at_ms: i64, cid: Id, ts: i64) -> Bound {
    Bound::new(
        Q::PutActivity,
        vec![
            text(user),
            CqlValue::BigInt(at_ms),
            id(cid),
            CqlValue::BigInt(ts),
        ],
    )
}

fn watermarks(doc: &ConversationDoc, side: Side, ts: i64) -> Bound {
    let p = doc.state.side(side);
    Bound::new(
        Q::PutWatermarks,
        vec![
            text(doc.record.user(side).as_str()),
            id(doc.record.id),
            big(p.unread),
            big(p.read_seq),
            big(p.delivered_seq),
            CqlValue::BigInt(ts),
        ],
    )
}

fn bucket(m: &StoredMessage, ts: i64) -> Bound {
    Bound::new(
        Q::PutBucket,
        vec![
            id(m.conversation_id),
            CqlValue::BigInt(bucket_of(m.seq)),
            CqlValue::BigInt(ts),
        ],
    )
}

fn message_writes(out: &mut Vec<Bound>, m: &StoredMessage, ts: i64, now_ms: i64) {
    let cid = id(m.conversation_id);
    out.push(Bound::new(
        Q::PutMessage,
        vec![
            cid.clone(),
            CqlValue::BigInt(bucket_of(m.seq)),
            big(m.seq),
            CqlValue::Blob(encode(m)),
            CqlValue::BigInt(ts),
        ],
    ));
    if starts_bucket(m.seq) {
        out.push(bucket(m, ts));
    }
    out.push(Bound::new(
        Q::PutMessageId,
        vec![id(m.id), cid.clone(), big(m.seq), CqlValue::BigInt(ts)],
    ));
    if let (Some(c), Some(ttl)) = (&m.client_msg_id, dedupe_ttl(m.created_at, now_ms)) {
        out.push(Bound::new(
            Q::PutDedupe,
            vec![
                cid,
                text(m.sender_id.as_str()),
                text(c),
                id(m.id),
                big(m.seq),
                CqlValue::Int(ttl),
                CqlValue::BigInt(ts),
            ],
        ));
    }
}

/// Seconds a dedupe entry has left: until `DEDUPE_WINDOW_MS` after its message was created
/// (rounded up, so it never expires early). `None` when the window is over: nothing to write.
pub fn dedupe_ttl(created_at: i64, now_ms: i64) -> Option<i32> {
    let left_ms = created_at.saturating_add(DEDUPE_WINDOW_MS) - now_ms;
    // Never more than the window (a message stamped in the future must not outlive it, and
    // ScyllaDB refuses TTLs over 20 years).
    let window_s = DEDUPE_WINDOW_MS / 1000 + 1;
    (left_ms > 0).then(|| ((left_ms + 999) / 1000).min(window_s) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversation::{ConversationRecord, ConversationState};
    use crate::domain::message::MessageType;
    use crate::domain::user::ExternalId;

    fn ext(s: &str) -> ExternalId {
        ExternalId::parse(s).unwrap()
    }

    fn doc() -> ConversationDoc {
        ConversationDoc {
            record: ConversationRecord {
                id: Id(7),
                service_id: ext("svc"),
                service_title: "S".into(),
                provider_id: ext("prov"),
                provider_name: "P".into(),
                customer_id: ext("cust"),
                customer_name: "C".into(),
                created_at: 10,
            },
            state: ConversationState {
                activity_ms: 50,
                ..ConversationState::default()
            },
        }
    }

    fn message(seq: u64, client: Option<&str>) -> StoredMessage {
        StoredMessage {
            id: Id(700 + seq),
            conversation_id: Id(7),
            seq,
            sender_id: ext("cust"),
            sender_name: "C".into(),
            message_type: MessageType::Text,
            text: "hi".into(),
            attachments: vec![],
            created_at: 1_000,
            client_msg_id: client.map(str::to_string),
            deleted: false,
        }
    }

    fn names(b: &[Bound]) -> Vec<Q> {
        b.iter().map(|b| b.q).collect()
    }

    #[test]
    fn a_new_message_moves_both_lists_and_the_recipients_watermarks() {
        let mut d = doc();
        d.state.provider.unread = 3;
        let w = ConversationWrite {
            doc: d,
            message: Some(message(5, Some("c-1"))),
            unread_of: Some(Side::Provider),
            moved_from: Some(40),
            items: Vec::new(),
        };
        let out = conversation_write(&w, 99, 2_000);
        assert_eq!(
            names(&out),
            vec![
                Q::PutConversation,
                Q::PutMessage,
                Q::PutMessageId,
                Q::PutDedupe,
                Q::DeleteActivity,
                Q::PutActivity,
                Q::DeleteActivity,
                Q::PutActivity,
                Q::PutWatermarks,
            ]
        );
        for b in &out {
            assert_eq!(b.values.len(), b.q.binds().len(), "{:?}", b.q);
            // Every statement of the write carries the write's timestamp.
            assert!(b.values.contains(&CqlValue::BigInt(99)), "{:?}", b.q);
        }
        assert_eq!(
            out[4].values,
            vec![
                CqlValue::BigInt(99),
                text("cust"),
                CqlValue::BigInt(40),
                big(7)
            ]
        );
        assert_eq!(
            out[8].values,
            vec![
                text("prov"),
                big(7),
                big(3),
                big(0),
                big(0),
                CqlValue::BigInt(99)
            ]
        );
    }

    #[test]
    fn an_unmoved_write_touches_only_the_conversation() {
        let w = ConversationWrite {
            doc: doc(),
            message: None,
            unread_of: None,
            moved_from: Some(50),
            items: Vec::new(),
        };
        assert_eq!(
            names(&conversation_write(&w, 1, 0)),
            vec![Q::PutConversation]
        );
    }

    #[test]
    fn the_first_message_of_a_bucket_lists_the_bucket() {
        let w = |seq| ConversationWrite {
            doc: doc(),
            message: Some(message(seq, None)),
            unread_of: None,
            moved_from: None,
            items: Vec::new(),
        };
        assert!(names(&conversation_write(&w(1024), 1, 0)).contains(&Q::PutBucket));
        assert!(!names(&conversation_write(&w(1025), 1, 0)).contains(&Q::PutBucket));
    }

    #[test]
    fn dedupe_entries_live_until_the_window_ends_and_expired_ones_are_not_written() {
        assert_eq!(dedupe_ttl(0, 0), Some((DEDUPE_WINDOW_MS / 1000) as i32));
        assert_eq!(dedupe_ttl(0, DEDUPE_WINDOW_MS - 1), Some(1));
        assert_eq!(dedupe_ttl(0, DEDUPE_WINDOW_MS), None);
        assert_eq!(
            dedupe_ttl(i64::MAX / 2, 0),
            Some((DEDUPE_WINDOW_MS / 1000 + 1) as i32)
        );
        let w = ConversationWrite {
            doc: doc(),
            message: Some(message(2, Some("c"))),
            unread_of: None,
            moved_from: None,
            items: Vec::new(),
        };
        assert!(
            !names(&conversation_write(&w, 1, 1_000 + DEDUPE_WINDOW_MS)).contains(&Q::PutDedupe)
        );
    }

    #[test]
    fn a_creation_lists_and_marks_both_participants() {
        let out = create_writes(&doc(), Some(&message(1, None)), 5, 0);
        let count = |q| out.iter().filter(|b| b.q == q).count();
        assert_eq!(count(Q::PutActivity), 2);
        assert_eq!(count(Q::PutWatermarks), 2);
        assert_eq!(count(Q::PutBucket), 1);
        assert_eq!(count(Q::PutMessage), 1);
    }
}
