//! Notifications to the outside: e-mail to recipients who stayed offline, signed webhooks to the
//! marketplace backend. Both go through one durable outbox.
//!
//! The rule that makes them exact: a notification is written *in the same atomic write* as the
//! change that causes it (a message's conversation write, a conversation's creation), as an
//! outbox item ([`ItemKind::Notification`]). So a crash leaves both or neither; there is no
//! moment where a message is stored and its notification is not. Once the write is durable the
//! writer hands the [`Pending`] to the [`dispatch`] task, which delivers it, retries with backoff,
//! and deletes the item when it is done (or moves it to the dead letters). After a restart the
//! dispatcher reads the outbox and carries on. Delivery is at least once: a crash between a
//! receiver's 2xx and the delete sends it again, with the same id, so receivers de-duplicate.
//!
//! Nothing here runs on the message path but building the records: the actor adds items to a
//! write it was making anyway and, once it is durable, `try_send`s them to the dispatcher.

pub mod claims;
pub mod config;
pub mod dispatch;
pub mod email;
pub mod push;
pub mod vapid;
pub mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use config::{EmailConfig, PushConfig, WebhooksConfig};

use crate::domain::clock::{format_ms, now_ms};
use crate::domain::conversation::{ConversationDoc, Side};
use crate::domain::ids::IdGenerator;
use crate::domain::message::{Status, StoredMessage};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::codec::{decode, encode};
use crate::storage::items::{Item, ItemKind};
use crate::storage::StoreResult;

/// Newly durable notifications waiting for the dispatcher. A full queue loses nothing: the items
/// are on disk, and the dispatcher reads the outbox again when told it missed some.
const HANDOFF_QUEUE: usize = 4096;

/// A notification on its way out: the outbox item's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Stable across retries and restarts: the webhook's `id` and `X-Switchboard-Delivery`.
    pub id: Id,
    pub created_at: i64,
    /// Not before this (ms): the e-mail delay, then each retry's backoff.
    pub due_at: i64,
    /// Failed tries so far.
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub work: Work,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Work {
    /// An event for `webhooks.url`. `body` is the exact JSON that is signed and sent, fixed when
    /// the event happened, so every retry sends the same bytes.
    Webhook { event: String, body: String },
    /// "You have unread messages" to `recipient`, if at `due_at` they still have unread messages
    /// in `conversation` and no connected device.
    Email {
        conversation: Id,
        recipient: ExternalId,
    },
    /// A push for message `seq`, if at `due_at` it is still the newest, unread, and its
    /// recipient offline: then one [`Work::PushTo`] per subscription replaces it.
    Push {
        conversation: Id,
        recipient: ExternalId,
        seq: u64,
        sender_name: String,
        preview: Option<String>,
    },
    /// One encrypted push to one subscription of `recipient`. `payload` is the JSON the service
    /// worker gets; `topic` collapses a conversation's pushes on the device.
    PushTo {
        recipient: ExternalId,
        subscription: Id,
        payload: String,
        topic: String,
    },
}

impl Pending {
    pub fn channel(&self) -> &'static str {
        match self.work {
            Work::Webhook { .. } => "webhook",
            Work::Email { .. } => "email",
            Work::Push { .. } | Work::PushTo { .. } => "push",
        }
    }

    /// Its place in the outbox: one partition, keys in id (creation) order.
    pub fn item(&self, kind: ItemKind) -> Item {
        Item {
            kind,
            partition: String::new(),
            key: key(self.id),
            value: encode(self),
        }
    }

    pub fn from_item(item: &Item) -> StoreResult<Pending> {
        decode(&item.value)
    }
}

/// The outbox and dead-letter key of a notification.
pub fn key(id: Id) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}

/// What the rest of the engine calls: builds the notifications a change causes, and hands them to
/// the dispatcher once that change is durable. Immutable but for the hand-off queue.
pub struct Notifier {
    pub email: EmailConfig,
    pub webhooks: WebhooksConfig,
    pub push: PushConfig,
    /// The VAPID key, once `app.rs` has loaded it (push is off until then).
    pub vapid: OnceLock<Arc<vapid::Vapid>>,
    ids: Arc<IdGenerator>,
    handoff: mpsc::Sender<Pending>,
    /// Set when a hand-off found the queue full (or the dispatcher gone): the dispatcher reads
    /// the outbox again instead.
    missed: AtomicBool,
}

impl Notifier {
    /// The notifier and the receiving end its dispatcher reads (`dispatch::run`).
    pub fn new(
        email: EmailConfig,
        webhooks: WebhooksConfig,
        push: PushConfig,
        ids: Arc<IdGenerator>,
    ) -> (Notifier, mpsc::Receiver<Pending>) {
        let (handoff, rx) = mpsc::channel(HANDOFF_QUEUE);
        let n = Notifier {
            email,
            webhooks,
            push,
            vapid: OnceLock::new(),
            ids,
            handoff,
            missed: AtomicBool::new(false),
        };
        (n, rx)
    }

    pub fn enabled(&self) -> bool {
        self.email.enabled() || self.webhooks.enabled() || self.push.enabled()
    }

    /// What a new message causes: `message.created`, `message.flagged` when it was flagged on
    /// the way in, and an e-mail check when it is the first unread message of its recipient (the
    /// one mail per conversation covers everything that arrives before it goes out).
    pub fn on_message(
        &self,
        doc: &ConversationDoc,
        message: &StoredMessage,
        recipient_unread: u64,
        flag_rules: &[String],
    ) -> Vec<Pending> {
        let mut out = Vec::new();
        if !self.enabled() {
            return out;
        }
        let id = doc.record.id;
        self.event(&mut out, "message.created", || {
            serde_json::json!({
                "conversation_id": id,
                "service_id": doc.record.service_id,
                "message": message.view(Status::Sent),
            })
        });
        if !flag_rules.is_empty() {
            self.flagged(&mut out, message, "rule", flag_rules);
        }
        let Some(sender) = doc.record.side_of(&message.sender_id) else {
            return out;
        };
        let recipient = doc.record.user(sender.other());
        if self.push.enabled() {
            let delay = i64::try_from(self.push.delay_secs).unwrap_or(i64::MAX / 1000);
            let preview = self
                .push
                .preview
                .then(|| email::preview(message))
                .filter(|p| !p.is_empty());
            out.push(Pending {
                id: self.ids.next_id(),
                created_at: now_ms(),
                due_at: now_ms().saturating_add(delay.saturating_mul(1000)),
                attempts: 0,
                last_error: None,
                work: Work::Push {
                    conversation: id,
                    recipient: recipient.clone(),
                    seq: message.seq,
                    sender_name: message.sender_name.clone(),
                    preview,
                },
            });
        }
        if recipient_unread == 1 && self.email.enabled() {
            let delay = i64::try_from(self.email.delay_secs).unwrap_or(i64::MAX / 1000);
            out.push(Pending {
                id: self.ids.next_id(),
                created_at: now_ms(),
                due_at: now_ms().saturating_add(delay.saturating_mul(1000)),
                attempts: 0,
                last_error: None,
                work: Work::Email {
                    conversation: id,
                    recipient: recipient.clone(),
                },
            });
        }
        out
    }

    /// `conversation.created`, then what its first message causes.
    pub fn on_created(
        &self,
        doc: &ConversationDoc,
        first: Option<&StoredMessage>,
        flag_rules: &[String],
    ) -> Vec<Pending> {
        let mut out = Vec::new();
        let r = &doc.record;
        self.event(&mut out, "conversation.created", || {
            serde_json::json!({
                "conversation_id": r.id,
                "service_id": r.service_id,
                "service_title": r.service_title,
                "customer_id": r.customer_id,
                "provider_id": r.provider_id,
                "created_at": format_ms(r.created_at),
            })
        });
        if let Some(m) = first {
            let unread = doc.state.side(Side::Provider).unread;
            out.extend(self.on_message(doc, m, unread, flag_rules));
        }
        out
    }

    /// `message.deleted` (for everyone), `by` the `sender` or a `moderator`.
    pub fn on_deleted(&self, conversation: Id, message: Id, by: &str) -> Vec<Pending> {
        let mut out = Vec::new();
        self.event(&mut out, "message.deleted", || {
            serde_json::json!({
                "conversation_id": conversation,
                "message_id": message,
                "deleted_by": by,
            })
        });
        out
    }

    /// `message.flagged`, by a participant or a rule after the fact.
    pub fn on_flagged(
        &self,
        message: &StoredMessage,
        source: &str,
        rules: &[String],
    ) -> Vec<Pending> {
        let mut out = Vec::new();
        self.flagged(&mut out, message, source, rules);
        out
    }

    fn flagged(
        &self,
        out: &mut Vec<Pending>,
        message: &StoredMessage,
        source: &str,
        rules: &[String],
    ) {
        self.event(out, "message.flagged", || {
            serde_json::json!({
                "conversation_id": message.conversation_id,
                "message_id": message.id,
                "source": source,
                "reasons": rules,
            })
        });
    }

    /// An event, when webhooks are on; `data` is only built then (it runs on the message path).
    fn event(&self, out: &mut Vec<Pending>, event: &str, data: impl FnOnce() -> serde_json::Value) {
        if !self.webhooks.enabled() {
            return;
        }
        let data = data();
        let (id, at) = (self.ids.next_id(), now_ms());
        let body = serde_json::json!({
            "id": id,
            "type": event,
            "created_at": format_ms(at),
            "data": data,
        });
        out.push(Pending {
            id,
            created_at: at,
            due_at: at,
            attempts: 0,
            last_error: None,
            work: Work::Webhook {
                event: event.into(),
                body: body.to_string(),
            },
        });
    }

    /// The outbox items of `pending`, for the write that causes them.
    pub fn items(pending: &[Pending]) -> Vec<Item> {
        pending
            .iter()
            .map(|p| p.item(ItemKind::Notification))
            .collect()
    }

    /// The pushes that replace a due [`Work::Push`]: one per subscription, due now.
    pub fn push_to(
        &self,
        recipient: &ExternalId,
        subscriptions: &[Id],
        payload: &str,
        topic: &str,
    ) -> Vec<Pending> {
        subscriptions
            .iter()
            .map(|s| Pending {
                id: self.ids.next_id(),
                created_at: now_ms(),
                due_at: now_ms(),
                attempts: 0,
                last_error: None,
                work: Work::PushTo {
                    recipient: recipient.clone(),
                    subscription: *s,
                    payload: payload.to_string(),
                    topic: topic.to_string(),
                },
            })
            .collect()
    }

    /// Hands notifications whose write is now durable to the dispatcher, without waiting.
    pub fn committed(&self, pending: Vec<Pending>) {
        for p in pending {
            if self.handoff.try_send(p).is_err() {
                self.missed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Whether a hand-off was lost since the last call (then the outbox must be read again).
    pub fn take_missed(&self) -> bool {
        self.missed.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
