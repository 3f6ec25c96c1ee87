//! A store's contents, record by record: what `switchboard copy-store` reads from one store and
//! writes into another.
//!
//! Only what cannot be derived is a record. Indexes (conversation keys, activity lists, unread
//! counts, message ids, dedupe entries and their expiry) are rebuilt by the receiving store from
//! the records, exactly as its own writes would build them, so a copy between two different
//! backends never translates one backend's index layout into the other's.

use crate::domain::conversation::ConversationDoc;
use crate::domain::message::StoredMessage;
use crate::domain::user::{ExternalId, Service, UserProfile};
use crate::domain::Id;
use crate::storage::items::Item;

/// The kinds of records, in the order a copy moves them: conversations before their messages,
/// so a copy interrupted half-way never holds messages of a conversation it does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Services,
    Users,
    Conversations,
    Messages,
    Hidden,
    LastSeen,
    Items,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::Services,
        Table::Users,
        Table::Conversations,
        Table::Messages,
        Table::Hidden,
        Table::LastSeen,
        Table::Items,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Services => "services",
            Table::Users => "users",
            Table::Conversations => "conversations",
            Table::Messages => "messages",
            Table::Hidden => "hidden",
            Table::LastSeen => "last_seen",
            Table::Items => "items",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One record. A conversation carries its state, watermarks included; a message carries its
/// `client_msg_id`, from which the receiving store rebuilds the dedupe entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Service(Service),
    User(UserProfile),
    Conversation(ConversationDoc),
    Message(StoredMessage),
    /// A message one user hid from their history.
    Hidden {
        user: ExternalId,
        message: Id,
    },
    LastSeen {
        user: ExternalId,
        at_ms: i64,
    },
    Item(Item),
}

impl Record {
    pub fn table(&self) -> Table {
        match self {
            Record::Service(_) => Table::Services,
            Record::User(_) => Table::Users,
            Record::Conversation(_) => Table::Conversations,
            Record::Message(_) => Table::Messages,
            Record::Hidden { .. } => Table::Hidden,
            Record::LastSeen { .. } => Table::LastSeen,
            Record::Item(_) => Table::Items,
        }
    }
}

/// A page of a table scan. `next` is an opaque position to continue from (the same store's
/// `scan` understands it, across restarts), `None` at the end of the table.
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    pub records: Vec<Record>,
    pub next: Option<String>,
}
