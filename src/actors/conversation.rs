//! `ConversationActor`: one per active conversation. It owns the conversation's state — the
//! participants, the next `seq`, the last message and preview, each side's unread count and
//! watermarks — and nothing else mutates it.
//!
//! The message path through it: a send is checked, given the next `seq`, applied to the state and
//! handed to the store's write queue; the actor goes straight on to its next message. When the
//! store says a write is durable, the actor releases that write's effects (the sender's ack, the
//! fan-out to both participants' sockets, the unread update) strictly in the order the writes were
//! made. So `seq` is gapless and ordered, acks come only after fsync, and one conversation is not
//! capped at one fsync per message.
//!
//! It never touches sockets or HTTP: it answers through [`Reply`] and pushes events through the
//! registry to the users' session actors.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::outbox::{Outgoing, Reply};
use super::user_session::SessionMsg;
use crate::domain::clock::now_ms;
use crate::domain::conversation::{Conversation, ConversationDoc, Side};
use crate::domain::events::ServerEvent;
use crate::domain::message::{preview, validate_text, Message, MessageType, Status, StoredMessage};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::ApiError;
use crate::storage::{ConversationWrite, SeqRange, StoreResult};

/// How long a `client_msg_id` identifies a message: a retry within this window gets the original.
const DEDUPE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Messages read per page when counting unread messages after a partial mark-read.
const COUNT_PAGE: usize = 1024;

pub struct ConversationActor;

/// A message to send, from HTTP or a socket.
pub struct SendRequest {
    pub sender: ExternalId,
    pub sender_name: String,
    pub text: String,
    pub client_msg_id: Option<String>,
    /// The socket that sent it: it gets the `ack` instead of a copy of the message.
    pub origin: Option<Id>,
    pub reply: Reply<SendOutcome>,
}

#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub message: Message,
    /// The message was already stored under this `client_msg_id`; nothing new was written.
    pub duplicate: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadState {
    pub unread_count: u64,
    pub last_read_message_id: Option<Id>,
}

pub enum ConversationMsg {
    Send(SendRequest),
    MarkRead {
        user: ExternalId,
        up_to: Option<Id>,
        reply: Reply<ReadState>,
    },
    Delivered {
        user: ExternalId,
        up_to: Id,
        reply: Reply<()>,
    },
    Typing {
        user: ExternalId,
        is_typing: bool,
        reply: Reply<()>,
    },
    SetArchived {
        user: ExternalId,
        archived: bool,
        reply: Reply<Conversation>,
    },
    /// "Delete for everyone": the sender replaces their message with a tombstone.
    DeleteForEveryone {
        user: ExternalId,
        message: Id,
        reply: Reply<()>,
    },
    /// The store finished write number `ticket`.
    WriteDone {
        ticket: u64,
        result: StoreResult<()>,
    },
    TypingExpired {
        side: Side,
        generation: u64,
    },
    IdleCheck,
}

impl ConversationMsg {
    /// Answers the request inside with an error: the message could not reach an actor.
    pub fn fail(self, e: ApiError) {
        match self {
            ConversationMsg::Send(req) => req.reply.fail(e),
            ConversationMsg::MarkRead { reply, .. } => reply.fail(e),
            ConversationMsg::Delivered { reply, .. } | ConversationMsg::Typing { reply, .. } => {
                reply.fail(e)
            }
            ConversationMsg::SetArchived { reply, .. } => reply.fail(e),
            ConversationMsg::DeleteForEveryone { reply, .. } => reply.fail(e),
            ConversationMsg::WriteDone { .. }
            | ConversationMsg::TypingExpired { .. }
            | ConversationMsg::IdleCheck => {}
        }
    }
}

/// What a write means once it is durable.
enum Effect {
    Message {
        message: StoredMessage,
        sender: Side,
        origin: Option<Id>,
        reply: Reply<SendOutcome>,
        recipient_unread: u64,
        /// The conversation appeared (first message) or came back from the recipient's archive.
        announce: bool,
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
    },
    Archived {
        side: Side,
        reply: Reply<Conversation>,
    },
    Deleted {
        message: Id,
        reply: Reply<()>,
    },
}

struct Pending {
    ticket: u64,
    result: Option<StoreResult<()>>,
    effect: Effect,
}

pub struct ConversationState {
    engine: EngineRef,
    doc: ConversationDoc,
    /// The last message whose write is durable and whose effects have gone out.
    released_seq: u64,
    released_message_id: Option<Id>,
    pending: VecDeque<Pending>,
    next_ticket: u64,
    /// `client_msg_id`s of messages still being written, for retries that arrive meanwhile.
    in_flight: HashMap<(ExternalId, String), StoredMessage>,
    typing: [(bool, u64); 2],
    last_used: Instant,
}

fn slot(side: Side) -> usize {
    match side {
        Side::Customer => 0,
        Side::Provider => 1,
    }
}

impl Actor for ConversationActor {
    type Msg = ConversationMsg;
    type State = ConversationState;
    type Arguments = (EngineRef, Id);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (engine, id): (EngineRef, Id),
    ) -> Result<Self::State, ActorProcessingErr> {
        let doc = engine
            .store
            .get_conversation(id)
            .await?
            .ok_or_else(|| format!("conversation {id} is not in the store"))?;
        let idle = Duration::from_secs(engine.config.realtime.conversation_idle_secs.max(1));
        myself.send_after(idle, || ConversationMsg::IdleCheck);
        Ok(ConversationState {
            released_seq: doc.state.last_seq,
            released_message_id: doc.state.last_message_id,
            engine,
            doc,
            pending: VecDeque::new(),
            next_ticket: 0,
            in_flight: HashMap::new(),
            typing: [(false, 0); 2],
            last_used: Instant::now(),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state
            .engine
            .registry
            .forget_conversation(state.doc.record.id, myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = tracing::debug_span!("conversation", conversation_id = %state.doc.record.id);
        let _enter = span.enter();
        if !matches!(
            msg,
            ConversationMsg::IdleCheck | ConversationMsg::WriteDone { .. }
        ) {
            state.last_used = Instant::now();
        }
        match msg {
            ConversationMsg::Send(req) => state.send(&myself, req).await,
            ConversationMsg::MarkRead { user, up_to, reply } => {
                state.mark_read(&myself, user, up_to, reply).await
            }
            ConversationMsg::Delivered { user, up_to, reply } => {
                state.delivered(&myself, user, up_to, reply).await
            }
            ConversationMsg::Typing {
                user,
                is_typing,
                reply,
            } => state.typing(&myself, user, is_typing, reply),
            ConversationMsg::SetArchived {
                user,
                archived,
                reply,
            } => state.set_archived(&myself, user, archived, reply),
            ConversationMsg::DeleteForEveryone {
                user,
                message,
                reply,
            } => {
                state
                    .delete_for_everyone(&myself, user, message, reply)
                    .await
            }
            ConversationMsg::WriteDone { ticket, result } => {
                state.write_done(&myself, ticket, result);
            }
            ConversationMsg::TypingExpired { side, generation } => {
                if state.typing[slot(side)] == (true, generation) {
                    state.typing[slot(side)].0 = false;
                    state.relay_typing(side, false);
                }
            }
            ConversationMsg::IdleCheck => {
                let idle =
                    Duration::from_secs(state.engine.config.realtime.conversation_idle_secs.max(1));
                let quiet = state.last_used.elapsed();
                if state.pending.is_empty() && quiet >= idle {
                    tracing::debug!("idle; stopping");
                    state
                        .engine
                        .registry
                        .forget_conversation(state.doc.record.id, myself.get_id());
                    myself.stop(Some("idle".into()));
                } else {
                    myself.send_after(
                        idle.saturating_sub(quiet).max(Duration::from_secs(1)),
                        || ConversationMsg::IdleCheck,
                    );
                }
            }
        }
        Ok(())
    }
}

impl ConversationState {
    fn id(&self) -> Id {
        self.doc.record.id
    }

    fn side_of(&self, user: &ExternalId) -> Result<Side, ApiError> {
        self.doc
            .record
            .side_of(user)
            .ok_or_else(ApiError::conversation_not_found)
    }

    /// Hands a write to the store and queues its effect behind every earlier one.
    fn submit(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        write: Option<ConversationWrite>,
        effect: Effect,
    ) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let result = match write {
            Some(write) => {
                let me = myself.clone();
                match self.engine.store.submit(
                    &write,
                    Box::new(move |result| {
                        let _ = me.send_message(ConversationMsg::WriteDone { ticket, result });
                    }),
                ) {
                    Ok(()) => None,
                    Err(e) => Some(Err(e)),
                }
            }
            None => Some(Ok(())),
        };
        self.pending.push_back(Pending {
            ticket,
            result,
            effect,
        });
        self.release(myself);
    }

    fn write(&self, message: Option<StoredMessage>, unread_of: Option<Side>) -> ConversationWrite {
        ConversationWrite {
            doc: self.doc.clone(),
            message,
            unread_of,
            moved_from: None,
        }
    }

    fn write_done(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        ticket: u64,
        result: StoreResult<()>,
    ) {
        let Some(front) = self.pending.front().map(|p| p.ticket) else {
            return;
        };
        let Some(p) = ticket
            .checked_sub(front)
            .and_then(|i| self.pending.get_mut(i as usize))
        else {
            return;
        };
        p.result = Some(result);
        self.release(myself);
    }

    /// Runs the effects of durable writes, oldest first, stopping at the first still in flight.
    fn release(&mut self, myself: &ActorRef<ConversationMsg>) {
        while self.pending.front().is_some_and(|p| p.result.is_some()) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            match p.result {
                Some(Ok(())) => self.apply(p.effect),
                _ => {
                    self.engine
                        .registry
                        .forget_conversation(self.id(), myself.get_id());
                    self.fail_everything(p.effect);
                    myself.stop(Some("store write failed".into()));
                    return;
                }
            }
        }
    }

    /// A write failed. The state in memory ran ahead of the store, so this actor is done: every
    /// waiting request is told to retry and a fresh actor will load what the store really holds.
    fn fail_everything(&mut self, first: Effect) {
        crate::metrics::Metrics::inc(&self.engine.metrics.store_errors);
        tracing::error!(
            "store write failed; failing queued requests and restarting from the store"
        );
        let err = ApiError::unavailable("the message could not be stored; retry");
        let effects = std::iter::once(first).chain(self.pending.drain(..).map(|p| p.effect));
        for effect in effects {
            match effect {
                Effect::Message { reply, .. } | Effect::Duplicate { reply, .. } => {
                    reply.fail(err.clone())
                }
                Effect::Read { reply, .. } => reply.fail(err.clone()),
                Effect::Archived { reply, .. } => reply.fail(err.clone()),
                Effect::Deleted { reply, .. } => reply.fail(err.clone()),
                Effect::Delivered { .. } => {}
            }
        }
        self.in_flight.clear();
    }

    fn apply(&mut self, effect: Effect) {
        let registry = &self.engine.registry;
        let id = self.id();
        match effect {
            Effect::Message {
                message,
                sender,
                origin,
                reply,
                recipient_unread,
                announce,
            } => {
                crate::metrics::Metrics::inc(&self.engine.metrics.messages_stored);
                self.released_seq = message.seq;
                self.released_message_id = Some(message.id);
                if let Some(c) = &message.client_msg_id {
                    self.in_flight
                        .remove(&(message.sender_id.clone(), c.clone()));
                }
                let view = message.view(Status::Sent);
                let sender_id = self.doc.record.user(sender).clone();
                let recipient = sender.other();
                let recipient_id = self.doc.record.user(recipient).clone();
                let event = Outgoing::new(ServerEvent::ChatMessage {
                    message: view.clone(),
                });
                match reply {
                    Reply::Caller(tx) => {
                        let _ = tx.send(Ok(SendOutcome {
                            message: view,
                            duplicate: false,
                        }));
                    }
                    Reply::Socket(s) => s.ack(view),
                }
                registry.new_message_to(&recipient_id, event.clone(), id, recipient_unread);
                registry.to_user(&sender_id, event, origin);
                if announce {
                    let ev = Outgoing::new(ServerEvent::Conversation {
                        conversation: self.doc.view(recipient),
                    });
                    registry.to_user(&recipient_id, ev, None);
                    if message.seq == 1 {
                        let ev = Outgoing::new(ServerEvent::Conversation {
                            conversation: self.doc.view(sender),
                        });
                        registry.to_user(&sender_id, ev, None);
                    }
                }
            }
            Effect::Duplicate { message, reply } => {
                let status = self.status_of(&message);
                let outcome = SendOutcome {
                    message: message.view(status),
                    duplicate: true,
                };
                match reply {
                    Reply::Caller(tx) => {
                        let _ = tx.send(Ok(outcome));
                    }
                    Reply::Socket(s) => s.ack(outcome.message),
                }
            }
            Effect::Read {
                side,
                reply,
                state,
                receipt,
            } => {
                let reader = self.doc.record.user(side).clone();
                if let Some(s) = registry.session(&reader) {
                    let _ = s.send_message(SessionMsg::Unread {
                        conversation: id,
                        count: state.unread_count,
                    });
                }
                if let Some((up_to, up_to_seq)) = receipt {
                    let ev = Outgoing::new(ServerEvent::Receipt {
                        conversation_id: id,
                        user_id: reader,
                        status: Status::Read,
                        up_to,
                        up_to_seq,
                    });
                    registry.to_user(self.doc.record.user(side.other()), ev, None);
                }
                match reply {
                    Reply::Caller(tx) => {
                        let _ = tx.send(Ok(state));
                    }
                    Reply::Socket(s) => s.done(),
                }
            }
            Effect::Delivered { side, up_to } => {
                let ev = Outgoing::new(ServerEvent::Receipt {
                    conversation_id: id,
                    user_id: self.doc.record.user(side).clone(),
                    status: Status::Delivered,
                    up_to: up_to.0,
                    up_to_seq: up_to.1,
                });
                registry.to_user(self.doc.record.user(side.other()), ev, None);
            }
            Effect::Deleted { message, reply } => {
                let ev = Outgoing::new(ServerEvent::MessageDeleted {
                    conversation_id: id,
                    message_id: message,
                });
                for side in [Side::Customer, Side::Provider] {
                    registry.to_user(self.doc.record.user(side), ev.clone(), None);
                }
                reply_done(reply);
            }
            Effect::Archived { side, reply } => {
                let view = self.doc.view(side);
                let ev = Outgoing::new(ServerEvent::Conversation {
                    conversation: view.clone(),
                });
                registry.to_user(self.doc.record.user(side), ev, None);
                match reply {
                    Reply::Caller(tx) => {
                        let _ = tx.send(Ok(view));
                    }
                    Reply::Socket(s) => s.done(),
                }
            }
        }
    }

    fn status_of(&self, m: &StoredMessage) -> Status {
        self.doc.status_of(m)
    }

    async fn send(&mut self, myself: &ActorRef<ConversationMsg>, req: SendRequest) {
        let side = match self.side_of(&req.sender) {
            Ok(s) => s,
            Err(e) => return req.reply.fail(e),
        };
        if let Err(e) = validate_text(&req.text, self.engine.config.limits.max_text_chars, false) {
            return req.reply.fail(e.into());
        }
        if let Some(cid) = &req.client_msg_id {
            if let Some(original) = self.in_flight.get(&(req.sender.clone(), cid.clone())) {
                let effect = Effect::Duplicate {
                    message: original.clone(),
                    reply: req.reply,
                };
                return self.submit(myself, None, effect);
            }
            match self
                .engine
                .store
                .find_by_client_msg_id(self.doc.record.id, &req.sender, cid)
                .await
            {
                Ok(Some(original)) if now_ms() - original.created_at < DEDUPE_WINDOW_MS => {
                    let status = self.status_of(&original);
                    let outcome = SendOutcome {
                        message: original.view(status),
                        duplicate: true,
                    };
                    return match req.reply {
                        Reply::Caller(tx) => {
                            let _ = tx.send(Ok(outcome));
                        }
                        Reply::Socket(s) => s.ack(outcome.message),
                    };
                }
                Ok(_) => {}
                Err(e) => return req.reply.fail(e.into()),
            }
        }

        let now = now_ms();
        let recipient = side.other();
        let state = &mut self.doc.state;
        let message = StoredMessage {
            id: self.engine.ids.next_id(),
            conversation_id: self.doc.record.id,
            seq: state.last_seq + 1,
            sender_id: req.sender.clone(),
            sender_name: req.sender_name,
            message_type: MessageType::Text,
            text: req.text,
            attachments: Vec::new(),
            created_at: now,
            client_msg_id: req.client_msg_id,
            deleted: false,
        };
        let previous_activity = state.activity_ms;
        state.last_seq = message.seq;
        state.last_message_id = Some(message.id);
        state.last_message_at = Some(now);
        state.preview = preview(&message.text);
        state.activity_ms = now.max(previous_activity);
        let to = state.side_mut(recipient);
        to.unread += 1;
        let was_archived = std::mem::replace(&mut to.archived, false);
        let recipient_unread = to.unread;
        // Sending ends the sender's typing indicator; the message itself tells the other side.
        self.typing[slot(side)] = (false, self.typing[slot(side)].1 + 1);
        if let Some(c) = &message.client_msg_id {
            self.in_flight
                .insert((message.sender_id.clone(), c.clone()), message.clone());
        }
        let write = self.write(Some(message.clone()), Some(recipient));
        let effect = Effect::Message {
            announce: was_archived || message.seq == 1,
            message,
            sender: side,
            origin: req.origin,
            reply: req.reply,
            recipient_unread,
        };
        self.submit(myself, Some(write), effect);
    }

    /// Finds a message of this conversation that has been delivered (its write is durable).
    async fn released_message(&self, id: Id) -> Result<StoredMessage, ApiError> {
        match self.engine.store.find_message(id).await? {
            Some(m) if m.conversation_id == self.id() && m.seq <= self.released_seq => Ok(m),
            _ => Err(ApiError::not_found(
                "message_not_found",
                "up_to is not a delivered message of this conversation",
            )),
        }
    }

    /// Messages from `from` after `after_seq`: durable ones counted in the store, the ones still
    /// being written counted in the queue.
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
                .engine
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
            .pending
            .iter()
            .filter(|p| matches!(&p.effect, Effect::Message { sender, message, .. } if *sender == from && message.seq > after_seq))
            .count() as u64;
        Ok(count)
    }

    async fn mark_read(
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
            return self.submit(myself, None, effect);
        };
        let unread = match self.count_from(side.other(), target_seq).await {
            Ok(n) => n,
            Err(e) => return reply.fail(e),
        };
        let mine = self.doc.state.side_mut(side);
        mine.read_seq = target_seq;
        mine.read_message_id = Some(target_id);
        mine.delivered_seq = mine.delivered_seq.max(target_seq);
        mine.unread = unread;
        let state = ReadState {
            unread_count: unread,
            last_read_message_id: Some(target_id),
        };
        let write = self.write(None, Some(side));
        let effect = Effect::Read {
            side,
            reply,
            state,
            receipt: Some((target_id, target_seq)),
        };
        self.submit(myself, Some(write), effect);
    }

    async fn delivered(
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
        let mine = self.doc.state.side_mut(side);
        if m.seq <= mine.delivered_seq {
            return reply_done(reply);
        }
        mine.delivered_seq = m.seq;
        let write = self.write(None, None);
        self.submit(
            myself,
            Some(write),
            Effect::Delivered {
                side,
                up_to: (m.id, m.seq),
            },
        );
        reply_done(reply);
    }

    fn typing(
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
        reply_done(reply);
        let t = &mut self.typing[slot(side)];
        let changed = t.0 != is_typing;
        t.0 = is_typing;
        t.1 += 1;
        let generation = t.1;
        if is_typing {
            let ttl = Duration::from_secs(self.engine.config.realtime.typing_ttl_secs.max(1));
            myself.send_after(ttl, move || ConversationMsg::TypingExpired {
                side,
                generation,
            });
        }
        // A refresh of "still typing" is relayed too: it is what keeps the other side's
        // indicator alive past its own expiry.
        if changed || is_typing {
            self.relay_typing(side, is_typing);
        }
    }

    fn relay_typing(&self, side: Side, is_typing: bool) {
        let ev = Outgoing::new(ServerEvent::TypingStatus {
            conversation_id: self.id(),
            user_id: self.doc.record.user(side).clone(),
            is_typing,
        });
        self.engine
            .registry
            .to_user(self.doc.record.user(side.other()), ev, None);
    }

    fn set_archived(
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
        self.doc.state.side_mut(side).archived = archived;
        let write = self.write(None, None);
        self.submit(myself, Some(write), Effect::Archived { side, reply });
    }
}

impl ConversationState {
    async fn delete_for_everyone(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        user: ExternalId,
        message: Id,
        reply: Reply<()>,
    ) {
        if let Err(e) = self.side_of(&user) {
            return reply.fail(e);
        }
        let mut m = match self.released_message(message).await {
            Ok(m) => m,
            Err(_) => return reply.fail(ApiError::message_not_found()),
        };
        if m.sender_id != user {
            return reply.fail(ApiError::forbidden(
                "not_sender",
                "only the sender can delete a message for everyone",
            ));
        }
        let window_ms = self.engine.config.chat.delete_for_everyone_secs as i64 * 1000;
        if m.deleted {
            return reply_done(reply);
        }
        if now_ms() - m.created_at > window_ms {
            return reply.fail(ApiError::new(
                crate::error::ErrorKind::Conflict,
                "delete_window_passed",
                "messages can be deleted for everyone only within the configured window",
            ));
        }
        m.text.clear();
        m.attachments.clear();
        m.message_type = MessageType::System;
        m.deleted = true;
        if self.doc.state.last_message_id == Some(m.id) {
            self.doc.state.preview.clear();
        }
        let write = self.write(Some(m), None);
        self.submit(myself, Some(write), Effect::Deleted { message, reply });
    }
}

fn reply_done(reply: Reply<()>) {
    match reply {
        Reply::Caller(tx) => {
            let _ = tx.send(Ok(()));
        }
        Reply::Socket(s) => s.done(),
    }
}
