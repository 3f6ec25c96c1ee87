//! What a conversation's writes mean to the outside once they are durable: the answer to the
//! request (HTTP reply or socket ack) and the events fanned out to both participants' sessions.
//!
//! The actor queues one [`Effect`] per request in its pipeline and calls [`Effect::release`] when
//! the write is on disk, or [`Effect::fail`] when it is not. Nothing here changes the
//! conversation's state: it only reads the state the write produced.

use std::sync::Arc;

use super::{ConversationDeps, ReadState, SendOutcome};
use crate::actors::outbox::{Outgoing, Reply};
use crate::actors::registry::Registry;
use crate::actors::user_session::SessionMsg;
use crate::domain::conversation::{Conversation, ConversationDoc, Side};
use crate::domain::events::ServerEvent;
use crate::domain::message::{Status, StoredMessage};
use crate::domain::Id;
use crate::error::ApiError;
use crate::moderation::queue::{ModerationQueue, Report};
use crate::notify::Pending;

pub enum Effect {
    Message {
        message: StoredMessage,
        sender: Side,
        origin: Option<Id>,
        reply: Reply<SendOutcome>,
        /// When the gateway received the send; its ack latency is observed at release.
        received: std::time::Instant,
        recipient_unread: u64,
        /// The conversation appeared (first message) or came back from the recipient's archive.
        announce: bool,
        /// Moderation reports to queue once the message is durable.
        flags: Vec<Report>,
        /// Its notifications, written with it: handed to the dispatcher once durable.
        notices: Vec<Pending>,
        /// The provider's answer to a customer who had waited this long (analytics).
        replied_after_ms: Option<i64>,
    },
    /// A retry of a message still being written: answered right after the original.
    Duplicate {
        message: StoredMessage,
        reply: Reply<SendOutcome>,
    },
    Read {
        side: Side,
        reply: Reply<ReadState>,
        state: ReadState,
        receipt: Option<(Id, u64)>,
    },
    Delivered {
        side: Side,
        up_to: (Id, u64),
        /// When the message was sent, if the other side sent it (its delivery time is counted).
        sent_at: Option<i64>,
    },
    Archived {
        side: Side,
        reply: Reply<Conversation>,
    },
    Deleted {
        message: Id,
        reply: Reply<()>,
        notices: Vec<Pending>,
    },
}

impl Effect {
    /// Answers the request with `err`: its write did not become durable.
    pub fn fail(self, err: &ApiError) {
        match self {
            Effect::Message { reply, .. } | Effect::Duplicate { reply, .. } => {
                reply.fail(err.clone())
            }
            Effect::Read { reply, .. } => reply.fail(err.clone()),
            Effect::Archived { reply, .. } => reply.fail(err.clone()),
            Effect::Deleted { reply, .. } => reply.fail(err.clone()),
            Effect::Delivered { .. } => {}
        }
    }

    /// Answers the request and tells both participants, from `doc`, the state after the write.
    pub fn release(self, doc: &ConversationDoc, deps: &ConversationDeps) {
        let (registry, queue) = (&deps.registry, &deps.queue);
        let id = doc.record.id;
        match self {
            Effect::Message {
                message,
                sender,
                origin,
                reply,
                received,
                recipient_unread,
                announce,
                flags,
                notices,
                replied_after_ms,
            } => {
                deps.notifier.committed(notices);
                crate::search::feed::message_stored(&deps.search, &doc.record, &message);
                if let Some(waited) = replied_after_ms {
                    deps.analytics
                        .replied(&doc.record, waited, message.created_at);
                }
                if !flags.is_empty() {
                    queue_flags(queue, &message, flags);
                }
                let view = message.view(Status::Sent);
                let recipient = sender.other();
                let sender_id = doc.record.user(sender);
                let recipient_id = doc.record.user(recipient);
                let event = Outgoing::new(ServerEvent::ChatMessage {
                    message: view.clone(),
                });
                answer_send(reply, view, false);
                // The ack is on its way (in the socket's queue, or to the HTTP handler).
                deps.metrics.send_ack.observe_duration(received.elapsed());
                registry.new_message_to(recipient_id, event.clone(), id, recipient_unread);
                registry.to_user(sender_id, event, origin);
                if announce {
                    announce_to(doc, recipient, registry);
                    if message.seq == 1 {
                        announce_to(doc, sender, registry);
                    }
                }
            }
            Effect::Duplicate { message, reply } => {
                let view = message.view(doc.status_of(&message));
                answer_send(reply, view, true);
            }
            Effect::Read {
                side,
                reply,
                state,
                receipt,
            } => {
                let reader = doc.record.user(side);
                if let Some(s) = registry.session(reader) {
                    let _ = s.send_message(SessionMsg::Unread {
                        conversation: id,
                        count: state.unread_count,
                    });
                }
                if let Some((up_to, up_to_seq)) = receipt {
                    let ev = Outgoing::new(ServerEvent::Receipt {
                        conversation_id: id,
                        user_id: reader.clone(),
                        status: Status::Read,
                        up_to,
                        up_to_seq,
                    });
                    registry.to_user(doc.record.user(side.other()), ev, None);
                }
                answer(reply, state);
            }
            Effect::Delivered {
                side,
                up_to,
                sent_at,
            } => {
                if let Some(sent_at) = sent_at {
                    deps.analytics.delivered(&doc.record, sent_at);
                }
                let ev = Outgoing::new(ServerEvent::Receipt {
                    conversation_id: id,
                    user_id: doc.record.user(side).clone(),
                    status: Status::Delivered,
                    up_to: up_to.0,
                    up_to_seq: up_to.1,
                });
                registry.to_user(doc.record.user(side.other()), ev, None);
            }
            Effect::Deleted {
                message,
                reply,
                notices,
            } => {
                deps.notifier.committed(notices);
                crate::search::feed::message_gone(&deps.search, message);
                let ev = Outgoing::new(ServerEvent::MessageDeleted {
                    conversation_id: id,
                    message_id: message,
                });
                for side in [Side::Customer, Side::Provider] {
                    registry.to_user(doc.record.user(side), ev.clone(), None);
                }
                answer(reply, ());
            }
            Effect::Archived { side, reply } => {
                let view = announce_to(doc, side, registry);
                answer(reply, view);
            }
        }
    }
}

/// Sends `side` the conversation as they now see it; answers that view.
fn announce_to(doc: &ConversationDoc, side: Side, registry: &Registry) -> Conversation {
    let view = doc.view(side);
    let ev: Arc<Outgoing> = Outgoing::new(ServerEvent::Conversation {
        conversation: view.clone(),
    });
    registry.to_user(doc.record.user(side), ev, None);
    view
}

/// Answers a send: the HTTP caller gets the outcome, the sending socket its `ack`.
pub fn answer_send(
    reply: Reply<SendOutcome>,
    message: crate::domain::message::Message,
    duplicate: bool,
) {
    match reply {
        Reply::Caller(tx) => {
            let _ = tx.send(Ok(SendOutcome { message, duplicate }));
        }
        Reply::Socket(s) => s.ack(message),
    }
}

/// Answers a request whose socket form has no answer frame of its own (its events are the answer).
pub fn answer<T>(reply: Reply<T>, value: T) {
    match reply {
        Reply::Caller(tx) => {
            let _ = tx.send(Ok(value));
        }
        Reply::Socket(s) => s.done(),
    }
}

/// Puts a flagged message in the moderation queue, off the actor: the message is already durable
/// and delivered; a queue write that fails is logged (the message itself is never lost, only its
/// place in the queue).
fn queue_flags(queue: &Arc<ModerationQueue>, message: &StoredMessage, flags: Vec<Report>) {
    let (queue, id, conversation) = (queue.clone(), message.id, message.conversation_id);
    tokio::spawn(async move {
        if let Err(e) = queue.flag(id, conversation, flags).await {
            tracing::warn!(conversation_id = %conversation, message_id = %id, error = %e, "flagged message not queued for review");
        }
    });
}
