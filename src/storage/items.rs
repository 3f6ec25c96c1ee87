//! Items: the small records that features keep beside the conversations (attachment metadata,
//! pending uploads, the moderation queue, ...).
//!
//! An item is a value under (kind, partition, key). Within one partition items are ordered by key,
//! bytewise, and can be listed in that order; across partitions there is no order. A feature picks
//! its partitions so that each stays small (an attachment's links are one partition per attachment,
//! pending uploads one per day): in ScyllaDB a partition is one replica set's row range.
//!
//! Why one generic facility instead of a table per feature: each feature would otherwise add
//! methods to `Store`, a keyspace to the embedded store and a table, statements and a scan to the
//! ScyllaDB store, and teach `copy-store` a new record. Items need none of that; a feature owns the
//! encoding of its values (MessagePack of its own types) and the meaning of its keys. Writes are
//! durable when they return, like every other write of a store; they are not part of a
//! conversation's ordered write chain.

/// What an item is; the first part of its address. Names are stored (embedded keys, a ScyllaDB
/// column), so a kind is never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// An upload's metadata. Partition and key: the attachment id. (Keys are never empty: an
    /// empty clustering key is not something to rely on in ScyllaDB.)
    Attachment,
    /// A conversation an attachment was sent in. Partition: the attachment id; key: the
    /// conversation id.
    AttachmentLink,
    /// An upload not sent yet, to be removed after a day. Partition: the day of the upload;
    /// key: the attachment id.
    PendingUpload,
    /// A message waiting for a moderator. Partition: empty (one queue); key: the message id.
    Flag,
    /// A notification on its way out (the outbox, `notify/`). Partition: empty; key: the
    /// notification id, big-endian, so the outbox lists in creation order.
    Notification,
    /// A notification given up after its last attempt. Same addressing as `Notification`.
    DeadLetter,
    /// The e-mail address a user's token last claimed. Partition: empty; key: the user id.
    EmailClaim,
    /// A browser's Web Push subscription. Partition: the user id; key: the subscription id.
    PushSubscription,
    /// The generated VAPID private key. Partition: empty; key: `vapid`.
    VapidKey,
    /// A provider's quick-reply template. Partition: the provider id; key: the template id.
    Template,
    /// An upload accepted while the virus scanner was down (`fail_open`), for review.
    /// Partition: empty (one list); key: the attachment id.
    UnscannedUpload,
    /// An admin action (`http/audit.rs`). Partition: its 30-day period; key: the entry id.
    Audit,
    /// One day of one dimension's analytics (`analytics/`). Partition: the dimension (`all`,
    /// `p:<provider>`, `s:<service>`); key: the day, so a period is one ordered read.
    AnalyticsDay,
    /// A conversation's reported outcome (booked or not). Partition: the conversation id; key:
    /// `outcome`.
    Outcome,
    /// A user who was erased (`privacy/erase.rs`), so erasing again answers the same. Partition:
    /// empty; key: the user id; value: when, big-endian ms.
    Erased,
    /// How far the retention sweeper has looked into a conversation (`privacy/retention.rs`).
    /// Partition: the conversation id; key: `seq`; value: the last seq it passed, big-endian.
    RetentionMark,
}

impl ItemKind {
    pub const ALL: [ItemKind; 16] = [
        ItemKind::Attachment,
        ItemKind::AttachmentLink,
        ItemKind::PendingUpload,
        ItemKind::Flag,
        ItemKind::Notification,
        ItemKind::DeadLetter,
        ItemKind::EmailClaim,
        ItemKind::PushSubscription,
        ItemKind::VapidKey,
        ItemKind::Template,
        ItemKind::UnscannedUpload,
        ItemKind::Audit,
        ItemKind::AnalyticsDay,
        ItemKind::Outcome,
        ItemKind::Erased,
        ItemKind::RetentionMark,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ItemKind::Attachment => "attachment",
            ItemKind::AttachmentLink => "attachment_link",
            ItemKind::PendingUpload => "pending_upload",
            ItemKind::Flag => "flag",
            ItemKind::Notification => "notification",
            ItemKind::DeadLetter => "dead_letter",
            ItemKind::EmailClaim => "email_claim",
            ItemKind::PushSubscription => "push_subscription",
            ItemKind::VapidKey => "vapid_key",
            ItemKind::Template => "template",
            ItemKind::UnscannedUpload => "unscanned_upload",
            ItemKind::Audit => "audit",
            ItemKind::AnalyticsDay => "analytics_day",
            ItemKind::Outcome => "outcome",
            ItemKind::Erased => "erased",
            ItemKind::RetentionMark => "retention_mark",
        }
    }

    pub fn from_name(name: &str) -> Option<ItemKind> {
        ItemKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One item, as `scan` and `import` move it between stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: ItemKind,
    pub partition: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Where an item is, for a write that removes it.
pub type ItemAddress = (ItemKind, String, Vec<u8>);

/// The longest partition name a store accepts: partitions are ids and days, never user text.
pub const MAX_PARTITION: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for k in ItemKind::ALL {
            assert_eq!(ItemKind::from_name(k.name()), Some(k));
        }
        assert_eq!(ItemKind::from_name("nope"), None);
    }
}
