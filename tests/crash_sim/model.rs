//! What the clients have been told, and the invariants the disk and the answers must keep.
//!
//! One [`ConvModel`] per conversation remembers every message that was ever *shown*: acked to
//! its sender (an `Ok` send, first time or retry) or seen durable on disk by a check. From then
//! on that `seq` must hold that message, forever, across every crash and restart.

use std::collections::{BTreeMap, HashMap};

use switchboard::domain::conversation::Side;
use switchboard::domain::user::ExternalId;
use switchboard::domain::Id;

use super::driver::Sent;
use super::sim_store::Durable;

#[derive(Debug, Clone)]
pub struct Violation {
    /// A short name for the class of bug, for the summary.
    pub kind: &'static str,
    pub detail: String,
}

fn fail<T>(kind: &'static str, detail: String) -> Result<T, Violation> {
    Err(Violation { kind, detail })
}

pub struct ConvModel {
    pub id: Id,
    pub customer: ExternalId,
    pub provider: ExternalId,
    /// Messages acked to their sender, by seq.
    acked: BTreeMap<u64, Id>,
    /// Every (seq, id) ever shown, with how it was first shown.
    shown: BTreeMap<u64, (Id, String)>,
    id_seq: HashMap<Id, u64>,
    /// The first answer for each (sender, client_msg_id).
    by_client_id: HashMap<(ExternalId, String), (Id, u64)>,
    /// Every client_msg_id used, for retries (answered or not).
    pub client_ids: Vec<(ExternalId, String)>,
    /// The highest durable `last_seq` seen.
    last_seq: u64,
}

impl ConvModel {
    pub fn new(id: Id, customer: ExternalId, provider: ExternalId) -> Self {
        ConvModel {
            id,
            customer,
            provider,
            acked: BTreeMap::new(),
            shown: BTreeMap::new(),
            id_seq: HashMap::new(),
            by_client_id: HashMap::new(),
            client_ids: Vec::new(),
            last_seq: 0,
        }
    }

    pub fn user(&self, side: Side) -> &ExternalId {
        match side {
            Side::Customer => &self.customer,
            Side::Provider => &self.provider,
        }
    }

    /// Ids of acked messages, for mark-read targets.
    pub fn acked_ids(&self) -> Vec<Id> {
        self.acked.values().copied().collect()
    }

    pub fn acked_count(&self) -> usize {
        self.acked.len()
    }

    /// Records that `seq` was shown holding `id`; it must never have shown anything else, and
    /// `id` must never have been shown at another seq.
    fn show(&mut self, seq: u64, id: Id, how: &str) -> Result<(), Violation> {
        let c = self.id;
        if let Some((old, old_how)) = self.shown.get(&seq) {
            if *old != id {
                return fail(
                    "seq-reused",
                    format!("conversation {c}: seq {seq} was shown as message {old} ({old_how}) and now as message {id} ({how})"),
                );
            }
        } else {
            self.shown.insert(seq, (id, how.to_string()));
        }
        match self.id_seq.insert(id, seq) {
            Some(old) if old != seq => fail(
                "id-moved",
                format!("conversation {c}: message {id} was shown at seq {old} and now at seq {seq} ({how})"),
            ),
            _ => Ok(()),
        }
    }

    /// A send answered `Ok`.
    pub fn on_sent(
        &mut self,
        sender: &ExternalId,
        client_id: Option<&str>,
        sent: &Sent,
    ) -> Result<(), Violation> {
        let c = self.id;
        if sent.sender != *sender {
            return fail(
                "wrong-message",
                format!("conversation {c}: {sender} sent client id {client_id:?} and was answered with message {} from {}", sent.id, sent.sender),
            );
        }
        if let Some(cid) = client_id {
            if sent.client_msg_id.as_deref() != Some(cid) {
                return fail(
                    "wrong-message",
                    format!("conversation {c}: {sender} sent client id {cid} and was answered with message {} with client id {:?}", sent.id, sent.client_msg_id),
                );
            }
            let key = (sender.clone(), cid.to_string());
            match self.by_client_id.get(&key) {
                Some(&(id, seq)) if (id, seq) != (sent.id, sent.seq) => {
                    return fail(
                        "retry-got-another-copy",
                        format!("conversation {c}: {sender}'s client id {cid} was answered as message {id} at seq {seq}, and a retry as message {} at seq {} (duplicate flag {})", sent.id, sent.seq, sent.duplicate),
                    );
                }
                Some(_) => {}
                None => {
                    self.by_client_id.insert(key, (sent.id, sent.seq));
                }
            }
        }
        self.show(sent.seq, sent.id, &format!("acked to {sender}"))?;
        self.acked.insert(sent.seq, sent.id);
        Ok(())
    }

    /// Checks what is durable for this conversation.
    pub fn check_durable(&mut self, d: &Durable) -> Result<(), Violation> {
        let c = self.id;
        let Some(doc) = d.conversations.get(&c) else {
            return fail(
                "conversation-lost",
                format!("conversation {c} is not on disk"),
            );
        };
        let messages: Vec<_> = d
            .messages
            .range((c, 0)..=(c, u64::MAX))
            .map(|(_, m)| m)
            .collect();
        for (i, m) in messages.iter().enumerate() {
            if m.seq != i as u64 + 1 {
                let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
                return fail(
                    "seq-gap",
                    format!("conversation {c}: durable seqs are not 1..=n: {seqs:?}"),
                );
            }
        }
        let n = messages.len() as u64;
        if doc.state.last_seq != n {
            return fail(
                "last-seq-mismatch",
                format!(
                    "conversation {c}: the durable doc says last_seq {} but {n} messages are durable",
                    doc.state.last_seq
                ),
            );
        }
        if doc.state.last_seq < self.last_seq {
            return fail(
                "last-seq-backwards",
                format!(
                    "conversation {c}: durable last_seq was {} and is now {}",
                    self.last_seq, doc.state.last_seq
                ),
            );
        }
        self.last_seq = doc.state.last_seq;
        for m in &messages {
            self.show(m.seq, m.id, "durable")?;
        }
        for (&seq, &id) in &self.acked {
            match d.messages.get(&(c, seq)) {
                Some(m) if m.id == id => {}
                other => {
                    return fail(
                        "acked-lost",
                        format!("conversation {c}: message {id} was acked at seq {seq}; the disk holds {:?} there", other.map(|m| m.id)),
                    );
                }
            }
        }
        let mut client_ids: HashMap<(&ExternalId, &str), u64> = HashMap::new();
        for m in &messages {
            if let Some(cid) = &m.client_msg_id {
                if let Some(first) = client_ids.insert((&m.sender_id, cid), m.seq) {
                    return fail(
                        "stored-twice",
                        format!(
                            "conversation {c}: {}'s client id {cid} is stored at seq {first} and at seq {}",
                            m.sender_id, m.seq
                        ),
                    );
                }
            }
        }
        for side in [Side::Customer, Side::Provider] {
            let mine = doc.state.side(side);
            let other = doc.record.user(side.other());
            let expected = messages
                .iter()
                .filter(|m| &m.sender_id == other && m.seq > mine.read_seq)
                .count() as u64;
            if mine.unread != expected {
                return fail(
                    "unread-wrong",
                    format!(
                        "conversation {c}: {side:?} has read up to seq {} and the doc says {} unread; {expected} messages from the other side are after it",
                        mine.read_seq, mine.unread
                    ),
                );
            }
            if mine.read_seq > doc.state.last_seq {
                return fail(
                    "read-past-end",
                    format!(
                        "conversation {c}: {side:?} read up to seq {} of {}",
                        mine.read_seq, doc.state.last_seq
                    ),
                );
            }
            let index = d
                .unread
                .get(&(doc.record.user(side).clone(), c))
                .copied()
                .unwrap_or(0);
            if index != mine.unread {
                return fail(
                    "unread-index-wrong",
                    format!(
                        "conversation {c}: {side:?}'s unread index says {index}, the doc {}",
                        mine.unread
                    ),
                );
            }
        }
        Ok(())
    }
}
