//! The rules of a conversation, as pure functions on [`ConversationDoc`]: what a new message,
//! a read or delivery watermark, an archive flag or a tombstone does to its state.
//!
//! Nothing here does I/O or knows about actors. The conversation actor applies these to a copy of
//! its state, hands the result to the store, and keeps it only once the store has taken the
//! write; the crash simulation and the unit tests below check the same rules without a runtime.

use super::conversation::{ConversationDoc, Side};
use super::ids::Id;
use super::message::{preview, MessageType, StoredMessage};

/// What appending a message did, for the effects that follow once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The recipient's unread count after this message.
    pub recipient_unread: u64,
    /// The conversation appeared for the recipient (first message) or came back from their archive.
    pub announce: bool,
    /// The activity time both participants' lists had the conversation under before.
    pub moved_from: i64,
    /// This is the provider's answer to a customer waiting since then: milliseconds waited.
    pub replied_after_ms: Option<i64>,
}

/// A read watermark that moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMoved {
    pub up_to: Id,
    pub up_to_seq: u64,
    pub unread: u64,
}

impl ConversationDoc {
    /// The next `seq`: gapless, one more than the last message's.
    pub fn next_seq(&self) -> u64 {
        self.state.last_seq + 1
    }

    /// Applies a new message from `sender`, which must carry [`Self::next_seq`]. The recipient's
    /// unread count grows by one and their archive flag clears (a new message brings an archived
    /// conversation back); the conversation moves to the top of both lists.
    pub fn append(&mut self, sender: Side, message: &StoredMessage) -> Appended {
        debug_assert_eq!(message.seq, self.next_seq(), "seq must be gapless");
        let state = &mut self.state;
        let moved_from = state.activity_ms;
        state.last_seq = message.seq;
        state.last_message_id = Some(message.id);
        state.last_message_at = Some(message.created_at);
        state.preview = preview(&message.text);
        // Activity never moves backwards, even if the clock does.
        state.activity_ms = message.created_at.max(moved_from);
        let to = state.side_mut(sender.other());
        to.unread += 1;
        let was_archived = std::mem::replace(&mut to.archived, false);
        let (recipient_unread, announce) = (to.unread, was_archived || message.seq == 1);
        // The customer's first unanswered message starts the clock; the provider's next message
        // stops it. Later customer messages while waiting do not restart it.
        let replied_after_ms = match sender {
            Side::Customer => {
                state.awaiting_reply_since.get_or_insert(message.created_at);
                None
            }
            Side::Provider => state
                .awaiting_reply_since
                .take()
                .map(|since| (message.created_at - since).max(0)),
        };
        Appended {
            recipient_unread,
            announce,
            moved_from,
            replied_after_ms,
        }
    }

    /// Moves `side`'s read watermark to `(up_to, up_to_seq)`, with `unread` the number of messages
    /// from the other side after it. Watermarks only move forward: an older or equal target
    /// changes nothing and answers `None`. Reading implies delivery.
    pub fn mark_read(
        &mut self,
        side: Side,
        up_to: Id,
        up_to_seq: u64,
        unread: u64,
    ) -> Option<ReadMoved> {
        let mine = self.state.side_mut(side);
        if up_to_seq <= mine.read_seq {
            return None;
        }
        mine.read_seq = up_to_seq;
        mine.read_message_id = Some(up_to);
        mine.delivered_seq = mine.delivered_seq.max(up_to_seq);
        mine.unread = unread;
        Some(ReadMoved {
            up_to,
            up_to_seq,
            unread,
        })
    }

    /// Moves `side`'s delivered watermark forward; `false` if it was already there or past it.
    pub fn mark_delivered(&mut self, side: Side, up_to_seq: u64) -> bool {
        let mine = self.state.side_mut(side);
        if up_to_seq <= mine.delivered_seq {
            return false;
        }
        mine.delivered_seq = up_to_seq;
        true
    }

    /// Sets `side`'s own archive flag (the other side's view does not change).
    pub fn set_archived(&mut self, side: Side, archived: bool) {
        self.state.side_mut(side).archived = archived;
    }

    /// Replaces `message` with its tombstone ("delete for everyone"): no text, no attachments,
    /// `system`, `deleted`. Its `seq` stays, so nobody sees a gap. Clears the preview if it was
    /// the last message.
    pub fn tombstone(&mut self, message: &mut StoredMessage) {
        message.text.clear();
        message.attachments.clear();
        message.message_type = MessageType::System;
        message.deleted = true;
        if self.state.last_message_id == Some(message.id) {
            self.state.preview.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversation::{ConversationRecord, ConversationState};
    use crate::domain::user::ExternalId;

    fn doc() -> ConversationDoc {
        ConversationDoc {
            record: ConversationRecord {
                id: Id(1),
                service_id: ExternalId::parse("s").unwrap(),
                service_title: "S".into(),
                provider_id: ExternalId::parse("p").unwrap(),
                provider_name: "P".into(),
                customer_id: ExternalId::parse("c").unwrap(),
                customer_name: "C".into(),
                created_at: 1_000,
            },
            state: ConversationState {
                activity_ms: 1_000,
                ..ConversationState::default()
            },
        }
    }

    fn msg(d: &ConversationDoc, from: Side, at: i64) -> StoredMessage {
        StoredMessage {
            id: Id(100 + d.next_seq()),
            conversation_id: d.record.id,
            seq: d.next_seq(),
            sender_id: d.record.user(from).clone(),
            sender_name: "x".into(),
            message_type: MessageType::Text,
            text: "hello".into(),
            attachments: Vec::new(),
            created_at: at,
            client_msg_id: None,
            deleted: false,
        }
    }

    #[test]
    fn a_message_counts_unread_for_the_recipient_only_and_announces_the_first() {
        let mut d = doc();
        let m = msg(&d, Side::Customer, 2_000);
        let a = d.append(Side::Customer, &m);
        assert_eq!(
            a,
            Appended {
                recipient_unread: 1,
                announce: true,
                moved_from: 1_000,
                replied_after_ms: None,
            }
        );
        assert_eq!(d.state.customer.unread, 0);
        let m2 = msg(&d, Side::Customer, 3_000);
        let a2 = d.append(Side::Customer, &m2);
        assert_eq!((a2.recipient_unread, a2.announce), (2, false));
        assert_eq!(d.state.last_seq, 2);
        assert_eq!(d.state.activity_ms, 3_000);
    }

    #[test]
    fn the_provider_s_reply_measures_from_the_first_unanswered_customer_message() {
        let mut d = doc();
        let send = |d: &mut ConversationDoc, from, at| {
            let m = msg(d, from, at);
            d.append(from, &m).replied_after_ms
        };
        assert_eq!(send(&mut d, Side::Customer, 10_000), None);
        assert_eq!(send(&mut d, Side::Customer, 15_000), None, "still waiting");
        assert_eq!(send(&mut d, Side::Provider, 70_000), Some(60_000));
        assert_eq!(d.state.awaiting_reply_since, None);
        assert_eq!(send(&mut d, Side::Provider, 80_000), None, "nobody waited");
        assert_eq!(send(&mut d, Side::Customer, 90_000), None);
        assert_eq!(
            send(&mut d, Side::Provider, 85_000),
            Some(0),
            "a clock step back"
        );
    }

    #[test]
    fn activity_never_moves_backwards_with_the_clock() {
        let mut d = doc();
        let m = msg(&d, Side::Customer, 5_000);
        d.append(Side::Customer, &m);
        let late = msg(&d, Side::Provider, 4_000);
        let a = d.append(Side::Provider, &late);
        assert_eq!(a.moved_from, 5_000);
        assert_eq!(d.state.activity_ms, 5_000);
    }

    #[test]
    fn a_new_message_brings_an_archived_conversation_back_for_its_recipient() {
        let mut d = doc();
        let m = msg(&d, Side::Customer, 2_000);
        d.append(Side::Customer, &m);
        d.set_archived(Side::Provider, true);
        d.set_archived(Side::Customer, true);
        let m2 = msg(&d, Side::Customer, 3_000);
        assert!(d.append(Side::Customer, &m2).announce);
        assert!(!d.state.provider.archived);
        assert!(d.state.customer.archived, "the sender's own flag stays");
    }

    #[test]
    fn read_watermarks_only_move_forward_and_imply_delivery() {
        let mut d = doc();
        for t in 0..3 {
            let m = msg(&d, Side::Customer, 2_000 + t);
            d.append(Side::Customer, &m);
        }
        let moved = d.mark_read(Side::Provider, Id(102), 2, 1).unwrap();
        assert_eq!(moved.unread, 1);
        assert_eq!(d.state.provider.delivered_seq, 2);
        assert_eq!(d.mark_read(Side::Provider, Id(101), 1, 2), None);
        assert_eq!(d.state.provider.read_seq, 2);
        assert_eq!(d.state.provider.unread, 1);
        assert!(!d.mark_delivered(Side::Provider, 2));
        assert!(d.mark_delivered(Side::Provider, 3));
    }

    #[test]
    fn a_tombstone_keeps_the_seq_and_clears_the_last_preview() {
        let mut d = doc();
        let mut m = msg(&d, Side::Customer, 2_000);
        d.append(Side::Customer, &m);
        d.tombstone(&mut m);
        assert!(m.deleted && m.text.is_empty() && m.message_type == MessageType::System);
        assert_eq!(m.seq, 1);
        assert!(d.state.preview.is_empty());
    }
}
