//! Conversations: one per (service, provider, customer), with exactly two participants.

use serde::{Deserialize, Serialize};

use super::clock::rfc3339;
use super::ids::Id;
use super::message::{Status, StoredMessage};
use super::user::ExternalId;

/// Which participant a user is in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Customer,
    Provider,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Customer => Side::Provider,
            Side::Provider => Side::Customer,
        }
    }
}

/// The parts of a conversation that never change after it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: Id,
    pub service_id: ExternalId,
    pub service_title: String,
    pub provider_id: ExternalId,
    pub provider_name: String,
    pub customer_id: ExternalId,
    pub customer_name: String,
    pub created_at: i64,
}

impl ConversationRecord {
    pub fn side_of(&self, user: &ExternalId) -> Option<Side> {
        if *user == self.customer_id {
            Some(Side::Customer)
        } else if *user == self.provider_id {
            Some(Side::Provider)
        } else {
            None
        }
    }

    pub fn user(&self, side: Side) -> &ExternalId {
        match side {
            Side::Customer => &self.customer_id,
            Side::Provider => &self.provider_id,
        }
    }
}

/// One participant's view of the conversation. Watermarks are sequence numbers: everything up to
/// `read_seq` from the other side is read; they only move forward.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParticipantState {
    /// Messages from the other side after `read_seq`. Kept absolute, never a delta.
    pub unread: u64,
    pub read_seq: u64,
    pub read_message_id: Option<Id>,
    pub delivered_seq: u64,
    pub archived: bool,
}

/// The parts of a conversation its actor changes as messages arrive. The actor owns it while it
/// runs and writes it with every change, so a restarted actor starts where the last one stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    pub last_seq: u64,
    pub last_message_id: Option<Id>,
    pub last_message_at: Option<i64>,
    pub preview: String,
    /// Time of the last activity, the sort key of both participants' conversation lists.
    pub activity_ms: i64,
    pub customer: ParticipantState,
    pub provider: ParticipantState,
    /// When the customer's oldest message the provider has not answered yet was sent: the start
    /// of the provider's response time (`analytics/`). Kept in the state, which is written with
    /// every message anyway, so the measure survives the actor stopping and the process restarting.
    #[serde(default)]
    pub awaiting_reply_since: Option<i64>,
}

impl ConversationState {
    pub fn side(&self, side: Side) -> &ParticipantState {
        match side {
            Side::Customer => &self.customer,
            Side::Provider => &self.provider,
        }
    }

    pub fn side_mut(&mut self, side: Side) -> &mut ParticipantState {
        match side {
            Side::Customer => &mut self.customer,
            Side::Provider => &mut self.provider,
        }
    }

    /// The status a message from `sender` with this `seq` has now.
    pub fn status_of(&self, sender: Side, seq: u64) -> Status {
        let recipient = self.side(sender.other());
        if recipient.read_seq >= seq {
            Status::Read
        } else if recipient.delivered_seq >= seq {
            Status::Delivered
        } else {
            Status::Sent
        }
    }
}

/// A conversation with its current state, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationDoc {
    pub record: ConversationRecord,
    pub state: ConversationState,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Named {
    pub id: ExternalId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ServiceRef {
    pub id: ExternalId,
    pub title: String,
}

/// `Conversation` as the API shows it to one participant.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: Id,
    pub service: ServiceRef,
    pub provider: Named,
    pub customer: Named,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_message_at: Option<i64>,
    #[schema(max_length = 100)]
    pub last_message_preview: String,
    pub last_seq: u64,
    pub unread_count: u64,
    pub archived: bool,
    pub last_read_message_id: Option<Id>,
}

impl ConversationDoc {
    /// The status a stored message of this conversation has now.
    pub fn status_of(&self, m: &StoredMessage) -> Status {
        match self.record.side_of(&m.sender_id) {
            Some(side) => self.state.status_of(side, m.seq),
            None => Status::Sent,
        }
    }

    pub fn view(&self, side: Side) -> Conversation {
        let r = &self.record;
        let mine = self.state.side(side);
        Conversation {
            id: r.id,
            service: ServiceRef {
                id: r.service_id.clone(),
                title: r.service_title.clone(),
            },
            provider: Named {
                id: r.provider_id.clone(),
                name: r.provider_name.clone(),
            },
            customer: Named {
                id: r.customer_id.clone(),
                name: r.customer_name.clone(),
            },
            created_at: r.created_at,
            last_message_at: self.state.last_message_at,
            last_message_preview: self.state.preview.clone(),
            last_seq: self.state.last_seq,
            unread_count: mine.unread,
            archived: mine.archived,
            last_read_message_id: mine.read_message_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_recipients_watermarks() {
        let mut s = ConversationState::default();
        s.provider.delivered_seq = 5;
        s.provider.read_seq = 3;
        assert_eq!(s.status_of(Side::Customer, 2), Status::Read);
        assert_eq!(s.status_of(Side::Customer, 4), Status::Delivered);
        assert_eq!(s.status_of(Side::Customer, 6), Status::Sent);
        assert_eq!(s.status_of(Side::Provider, 1), Status::Sent);
    }
}
