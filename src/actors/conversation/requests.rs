//! The requests a conversation's actor answers: send, mark read, delivered, typing, archive,
//! delete for everyone. Each checks the caller, applies the conversation's rules
//! (`domain::rules`) to a copy of the state and submits it; the lifecycle around them (pipeline,
//! release, idle and failure) is in `mod.rs`.

use ractor::ActorRef;

use super::effects::{answer, answer_send, Effect};
use super::{slot, ConversationMsg, ConversationState, ReadState, Removal, SendRequest};
use crate::actors::outbox::{Outgoing, Reply};
use crate::attachments::message_type_of;
use crate::domain::clock::now_ms;
use crate::domain::conversation::{Conversation, Side};
use crate::domain::events::ServerEvent;
use crate::domain::message::{validate_text, StoredMessage};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::error::ApiError;
use crate::notify::Notifier;
use crate::storage::{ConversationWrite, SeqRange, DEDUPE_WINDOW_MS};

/// Messages read per page when counting unread messages after a partial mark-read.
const COUNT_PAGE: usize = 1024;

impl ConversationState {
    pub(super) async fn send(&mut self, myself: &ActorRef<ConversationMsg>, req: SendRequest) {
        let side = match self.side_of(&req.sender) {
            Ok(s) => s,
            Err(e) => return self.refuse(req.reply, e),
        };
        let has_attachments = !req.attachments.is_empty();
        if let Err(e) = validate_text(&req.text, self.deps.limits.max_text_chars, has_attachments) {
            return self.refuse(req.reply, e.into());
        }
        // A retry is answered before the budget is spent: it costs the sender nothing.
        if let Some(cid) = &req.client_msg_id {
            if let Some(original) = self.in_flight.get(&(req.sender.clone(), cid.clone())) {
                let effect = Effect::Duplicate {
                    message: original.clone(),
                    reply: req.reply,
                };
                return self.queue(myself, effect);
            }
            match self
                .deps
                .store
                .find_by_client_msg_id(self.id(), &req.sender, cid)
                .await
            {
                Ok(Some(original)) if now_ms() - original.created_at < DEDUPE_WINDOW_MS => {
                    let view = original.view(self.doc.status_of(&original));
                    return answer_send(req.reply, view, true);
                }
                Ok(_) => {}
                Err(e) => return self.refuse(req.reply, e.into()),
            }
        }
        if let Err(e) = self.deps.spend_message_budget(&req.sender) {
            return self.refuse(req.reply, e);
        }

        let message = StoredMessage {
            id: self.deps.ids.next_id(),
            conversation_id: self.id(),
            seq: self.doc.next_seq(),
            sender_id: req.sender,
            sender_name: req.sender_name,
            message_type: message_type_of(&req.attachments),
            text: req.text,
            attachments: req.attachments,
            created_at: now_ms(),
            client_msg_id: req.client_msg_id,
            deleted: false,
        };
        let mut next = self.doc.clone();
        let appended = next.append(side, &message);
        let flag_rules: Vec<String> = req.flags.iter().map(|r| r.reason.clone()).collect();
        let notices =
            self.deps
                .notifier
                .on_message(&next, &message, appended.recipient_unread, &flag_rules);
        let write = ConversationWrite {
            doc: next,
            message: Some(message.clone()),
            unread_of: Some(side.other()),
            moved_from: Some(appended.moved_from),
            items: Notifier::items(&notices),
        };
        let dedupe_key = message
            .client_msg_id
            .clone()
            .map(|c| (message.sender_id.clone(), c));
        let effect = Effect::Message {
            announce: appended.announce,
            message: message.clone(),
            sender: side,
            origin: req.origin,
            reply: req.reply,
            received: req.received,
            recipient_unread: appended.recipient_unread,
            flags: req.flags,
            notices,
            replied_after_ms: appended.replied_after_ms,
        };
        let sender = message.sender_id.clone();
        if self.submit(myself, write, effect).is_err() {
            // Nothing was stored: the message costs the sender nothing.
            self.deps.refund_message_budget(&sender);
        } else {
            if let Some(key) = dedupe_key {
                self.in_flight.insert(key, message);
            }
            // Sending ends the sender's typing indicator; the message itself tells the other side.
            self.typing[slot(side)] = (false, self.typing[slot(side)].1 + 1);
        }
    }

    /// Finds a message of this conversation that has been delivered (its write is durable).
    async fn released_message(&self, id: Id) -> Result<StoredMessage, ApiError> {
        match self.deps.store.find_message(id).await? {
            Some(m) if m.conversation_id == self.id() && m.seq <= self.released_seq => Ok(m),
            _ => Err(ApiError::not_found(
                "message_not_found",
                "up_to is not a delivered message of this conversation",
            )),
        }
    }

    /// Messages from `from` after `after_seq`: durable ones counted in the store, the ones still
    /// being written counted in the pipeline.
    async fn count_from(&self, from: Side, after_seq: u64) -> Result<u64, ApiError> {
        if after_seq >= self.doc.state.last_seq {
            return Ok(0);
        }
        let who = self.doc.record.user(from);
        let mut count = 0u64;
        // Page through the durable part, so a long unread backlog is counted in bounded memory.
        let mut cursor = after_seq;
        while cursor < self.released_seq {
            let range = SeqRange {
                after: Some(cursor),
                before: Some(self.released_seq + 1),
            };
            let page = self
                .deps
                .store
                .list_messages(self.id(), range, COUNT_PAGE, false)
                .await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            count += page.iter().filter(|m| &m.sender_id == who).count() as u64;
            cursor = last;
        }
        count += self
            .pipeline
            .waiting()
            .filter(|e| matches!(e, Effect::Message { sender, message, .. } if *sender == from && message.seq > after_seq))
            .count() as u64;
        Ok(count)
    }

    pub(super) async fn mark_read(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        user: ExternalId,
        up_to: Option<Id>,
        reply: Reply<ReadState>,
    ) {
        let side = match self.side_of(&user) {
            Ok(s) => s,
            Err(e) => return reply.fail(e),
        };
        let target = match up_to {
            None => self.released_message_id.map(|id| (id, self.released_seq)),
            Some(id) => match self.released_message(id).await {
                Ok(m) => Some((m.id, m.seq)),
                Err(e) => return reply.fail(e),
            },
        };
        let mine = self.doc.state.side(side);
        let Some((target_id, target_seq)) = target.filter(|(_, seq)| *seq > mine.read_seq) else {
            // Nothing new is read; answer with the current state all the same.
            let state = ReadState {
                unread_count: mine.unread,
                last_read_message_id: mine.read_message_id,
            };
            let effect = Effect::Read {
                side,
                reply,
                state,
                receipt: None,
            };
            return self.queue(myself, effect);
        };
        let unread = match self.count_from(side.other(), target_seq).await {
            Ok(n) => n,
            Err(e) => return reply.fail(e),
        };
        let mut next = self.doc.clone();
        let Some(moved) = next.mark_read(side, target_id, target_seq, unread) else {
            return answer(
                reply,
                ReadState {
                    unread_count: mine.unread,
                    last_read_message_id: mine.read_message_id,
                },
            );
        };
        let write = ConversationWrite {
            doc: next,
            message: None,
            unread_of: Some(side),
            moved_from: None,
            items: Vec::new(),
        };
        let effect = Effect::Read {
            side,
            reply,
            state: ReadState {
                unread_count: moved.unread,
                last_read_message_id: Some(moved.up_to),
            },
            receipt: Some((moved.up_to, moved.up_to_seq)),
        };
        let _ = self.submit(myself, write, effect);
    }

    pub(super) async fn delivered(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        user: ExternalId,
        up_to: Id,
        reply: Reply<()>,
    ) {
        let side = match self.side_of(&user) {
            Ok(s) => s,
            Err(e) => return reply.fail(e),
        };
        let m = match self.released_message(up_to).await {
            Ok(m) => m,
            Err(e) => return reply.fail(e),
        };
        let mut next = self.doc.clone();
        if !next.mark_delivered(side, m.seq) {
            return answer(reply, ());
        }
        let write = ConversationWrite {
            doc: next,
            message: None,
            unread_of: None,
            moved_from: None,
            items: Vec::new(),
        };
        let effect = Effect::Delivered {
            side,
            up_to: (m.id, m.seq),
            sent_at: (m.sender_id != user).then_some(m.created_at),
        };
        match self.submit(myself, write, effect) {
            Ok(()) => answer(reply, ()),
            Err(e) => reply.fail(e),
        }
    }

    pub(super) fn typing(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        user: ExternalId,
        is_typing: bool,
        reply: Reply<()>,
    ) {
        let side = match self.side_of(&user) {
            Ok(s) => s,
            Err(e) => return reply.fail(e),
        };
        answer(reply, ());
        let t = &mut self.typing[slot(side)];
        let changed = t.0 != is_typing;
        t.0 = is_typing;
        t.1 += 1;
        let generation = t.1;
        if is_typing {
            myself.send_after(self.deps.limits.typing_ttl, move || {
                ConversationMsg::TypingExpired { side, generation }
            });
        }
        // A refresh of "still typing" is relayed too: it is what keeps the other side's
        // indicator alive past its own expiry.
        if changed || is_typing {
            self.relay_typing(side, is_typing);
        }
    }

    pub(super) fn relay_typing(&self, side: Side, is_typing: bool) {
        let ev = Outgoing::new(ServerEvent::TypingStatus {
            conversation_id: self.id(),
            user_id: self.doc.record.user(side).clone(),
            is_typing,
        });
        self.deps
            .registry
            .to_user(self.doc.record.user(side.other()), ev, None);
    }

    pub(super) fn set_archived(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        user: ExternalId,
        archived: bool,
        reply: Reply<Conversation>,
    ) {
        let side = match self.side_of(&user) {
            Ok(s) => s,
            Err(e) => return reply.fail(e),
        };
        let mut next = self.doc.clone();
        next.set_archived(side, archived);
        let write = ConversationWrite {
            doc: next,
            message: None,
            unread_of: None,
            moved_from: None,
            items: Vec::new(),
        };
        let _ = self.submit(myself, write, Effect::Archived { side, reply });
    }

    pub(super) async fn delete_for_everyone(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        user: ExternalId,
        message: Id,
        reply: Reply<()>,
    ) {
        if let Err(e) = self.side_of(&user) {
            return reply.fail(e);
        }
        let m = match self.released_message(message).await {
            Ok(m) => m,
            Err(_) => return reply.fail(ApiError::message_not_found()),
        };
        if m.sender_id != user {
            return reply.fail(ApiError::forbidden(
                "not_sender",
                "only the sender can delete a message for everyone",
            ));
        }
        if m.deleted {
            return answer(reply, ());
        }
        if now_ms() - m.created_at > self.deps.limits.delete_window_ms {
            return reply.fail(ApiError::new(
                crate::error::ErrorKind::Conflict,
                "delete_window_passed",
                "messages can be deleted for everyone only within the configured window",
            ));
        }
        self.tombstone(myself, m, "sender", reply);
    }

    /// A removal by someone other than the sender: the same tombstone as "delete for everyone",
    /// without the sender and window checks (the admin API or the sweeper has checked its
    /// caller). Removing a tombstone again changes nothing.
    pub(super) async fn remove(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        message: Id,
        why: Removal,
        reply: Reply<()>,
    ) {
        match self.released_message(message).await {
            Ok(m) if m.deleted => answer(reply, ()),
            Ok(mut m) => {
                if why == Removal::Erasure {
                    m.sender_name.clear();
                    m.client_msg_id = None;
                }
                self.tombstone(myself, m, why.name(), reply)
            }
            Err(_) => reply.fail(ApiError::message_not_found()),
        }
    }

    /// Writes `m`'s tombstone; both sides get `message_deleted` once it is durable.
    fn tombstone(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        mut m: StoredMessage,
        by: &str,
        reply: Reply<()>,
    ) {
        let message = m.id;
        let mut next = self.doc.clone();
        next.tombstone(&mut m);
        let notices = self.deps.notifier.on_deleted(self.id(), message, by);
        let write = ConversationWrite {
            doc: next,
            message: Some(m),
            unread_of: None,
            moved_from: None,
            items: Notifier::items(&notices),
        };
        let effect = Effect::Deleted {
            message,
            reply,
            notices,
        };
        let _ = self.submit(myself, write, effect);
    }
}
