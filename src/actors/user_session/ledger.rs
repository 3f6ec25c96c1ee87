//! What a session keeps count of, as plain data with unit tests: the user's unread count per
//! conversation with a running total, and the bounded set of peers told about presence.

use std::collections::HashMap;

use crate::domain::events::ServerEvent;
use crate::domain::user::ExternalId;
use crate::domain::Id;

/// The other participant an event names, if it names one: the sender of a message to this user,
/// the other side of a conversation, the peer who typed or read. Only participants are sent
/// these events, so whoever they name shares a conversation with `me`.
pub(super) fn peer_in<'a>(event: &'a ServerEvent, me: &ExternalId) -> Option<&'a ExternalId> {
    let peer = match event {
        ServerEvent::ChatMessage { message } => &message.sender_id,
        ServerEvent::Conversation { conversation } if &conversation.provider.id == me => {
            &conversation.customer.id
        }
        ServerEvent::Conversation { conversation } => &conversation.provider.id,
        ServerEvent::TypingStatus { user_id, .. } | ServerEvent::Receipt { user_id, .. } => user_id,
        _ => return None,
    };
    (peer != me).then_some(peer)
}

/// The user's unread count per conversation (only the non-zero ones) and their sum, kept up to
/// date by the difference on every change: a user in thousands of conversations must not cost a
/// sum over all of them for every new message.
#[derive(Debug, Default)]
pub(super) struct UnreadCounts {
    per_conversation: HashMap<Id, u64>,
    total: u64,
}

impl UnreadCounts {
    pub(super) fn new(counts: impl IntoIterator<Item = (Id, u64)>) -> Self {
        let mut unread = UnreadCounts::default();
        for (conversation, count) in counts {
            unread.set(conversation, count);
        }
        unread
    }

    /// Sets one conversation's count and answers the new total.
    pub(super) fn set(&mut self, conversation: Id, count: u64) -> u64 {
        let before = if count == 0 {
            self.per_conversation.remove(&conversation)
        } else {
            self.per_conversation.insert(conversation, count)
        };
        self.total = self
            .total
            .saturating_sub(before.unwrap_or(0))
            .saturating_add(count);
        self.total
    }
}

/// Who hears this user's presence: the users they share a conversation with. At most `cap`;
/// past that the one heard from longest ago is forgotten (it hears presence again once it
/// writes or a conversation with it reappears).
#[derive(Debug)]
pub(super) struct Peers {
    /// Peer -> when it was last heard from, on the session's own clock.
    last_heard: HashMap<ExternalId, u64>,
    clock: u64,
    cap: usize,
}

impl Peers {
    pub(super) fn new(cap: usize) -> Self {
        Peers {
            last_heard: HashMap::new(),
            // Learned peers count from `cap` up; seeded ones get `0..cap`, so they rank older.
            clock: cap as u64,
            cap,
        }
    }

    /// Adds the peers read from the store, most recent first. They are older news than any peer
    /// learned from an event since the session started, and never push one of those out.
    pub(super) fn seed(&mut self, most_recent_first: Vec<ExternalId>) {
        let cap = self.cap as u64;
        for (i, peer) in most_recent_first.into_iter().enumerate() {
            if self.last_heard.len() >= self.cap {
                break;
            }
            let stamp = cap.saturating_sub(1 + i as u64);
            self.last_heard.entry(peer).or_insert(stamp);
        }
    }

    /// Records that `peer` was just heard from, forgetting the stalest peer if the set is full.
    pub(super) fn note(&mut self, peer: &ExternalId) {
        self.clock += 1;
        if let Some(stamp) = self.last_heard.get_mut(peer) {
            *stamp = self.clock;
            return;
        }
        if self.cap == 0 {
            return;
        }
        if self.last_heard.len() >= self.cap {
            // A scan, but only when a new peer arrives at a full set.
            let stalest = self
                .last_heard
                .iter()
                .min_by_key(|(_, stamp)| **stamp)
                .map(|(p, _)| p.clone());
            if let Some(stalest) = stalest {
                self.last_heard.remove(&stalest);
            }
        }
        self.last_heard.insert(peer.clone(), self.clock);
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &ExternalId> {
        self.last_heard.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversation::{Conversation, Named, ServiceRef};
    use crate::domain::message::{Message, MessageType, Status};

    fn user(id: &str) -> ExternalId {
        ExternalId::parse(id).unwrap()
    }

    #[test]
    fn total_unread_follows_every_change() {
        let mut unread = UnreadCounts::new([(Id(1), 3), (Id(2), 0), (Id(3), 4)]);
        assert_eq!(unread.total, 7);
        assert_eq!(unread.set(Id(1), 5), 9, "raised");
        assert_eq!(unread.set(Id(3), 1), 6, "lowered");
        assert_eq!(unread.set(Id(4), 2), 8, "a new conversation");
        assert_eq!(unread.set(Id(1), 0), 3, "read");
        assert_eq!(unread.set(Id(1), 0), 3, "read twice");
        assert_eq!(unread.set(Id(9), 0), 3, "never unread");
        assert_eq!(
            unread.total,
            unread.per_conversation.values().sum::<u64>(),
            "the running total is the sum"
        );
        assert_eq!(unread.per_conversation.len(), 2, "zero counts are not kept");
    }

    #[test]
    fn peers_are_bounded_and_forget_the_stalest() {
        let mut peers = Peers::new(3);
        peers.seed(vec![user("a"), user("b"), user("c"), user("d")]);
        let mut known: Vec<_> = peers.iter().map(|p| p.to_string()).collect();
        known.sort();
        assert_eq!(known, ["a", "b", "c"], "seeded up to the cap");
        peers.note(&user("e"));
        assert!(
            !peers.last_heard.contains_key(&user("c")),
            "the least recent seeded peer goes first"
        );
        peers.note(&user("a"));
        peers.note(&user("f"));
        let mut known: Vec<_> = peers.iter().map(|p| p.to_string()).collect();
        known.sort();
        assert_eq!(known, ["a", "e", "f"], "b was heard from longest ago");
    }

    #[test]
    fn seeding_never_displaces_a_learned_peer() {
        let mut peers = Peers::new(2);
        peers.note(&user("new"));
        peers.seed(vec![user("old1"), user("old2"), user("new")]);
        assert_eq!(peers.last_heard.len(), 2);
        assert!(peers.last_heard.contains_key(&user("new")));
        peers.note(&user("newer"));
        assert!(
            !peers.last_heard.contains_key(&user("old1")),
            "a seeded peer ranks older than a learned one"
        );
    }

    fn message_from(sender: &str) -> ServerEvent {
        ServerEvent::ChatMessage {
            message: Message {
                id: Id(7),
                conversation_id: Id(1),
                seq: 1,
                sender_id: user(sender),
                sender_name: sender.into(),
                message_type: MessageType::Text,
                text: "hi".into(),
                attachments: Vec::new(),
                status: Status::Sent,
                created_at: 0,
                client_msg_id: None,
                deleted: false,
            },
        }
    }

    fn conversation(provider: &str, customer: &str) -> ServerEvent {
        let named = |id: &str| Named {
            id: user(id),
            name: id.into(),
        };
        ServerEvent::Conversation {
            conversation: Conversation {
                id: Id(1),
                service: ServiceRef {
                    id: user("svc"),
                    title: "svc".into(),
                },
                provider: named(provider),
                customer: named(customer),
                created_at: 0,
                last_message_at: None,
                last_message_preview: String::new(),
                last_seq: 1,
                unread_count: 0,
                archived: false,
                last_read_message_id: None,
            },
        }
    }

    #[test]
    fn the_peer_is_read_from_the_events_a_session_relays() {
        let me = user("me");
        let peer = |ev: &ServerEvent| peer_in(ev, &me).map(|p| p.to_string());
        assert_eq!(peer(&message_from("cust")).as_deref(), Some("cust"));
        assert_eq!(
            peer(&message_from("me")),
            None,
            "my own message names no peer"
        );
        assert_eq!(peer(&conversation("me", "cust")).as_deref(), Some("cust"));
        assert_eq!(peer(&conversation("prov", "me")).as_deref(), Some("prov"));
        let typing = ServerEvent::TypingStatus {
            conversation_id: Id(1),
            user_id: user("prov"),
            is_typing: true,
        };
        assert_eq!(peer(&typing).as_deref(), Some("prov"));
        assert_eq!(peer(&ServerEvent::Pong { reference: None }), None);
    }
}
