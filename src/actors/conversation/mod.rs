//! `ConversationActor`: one per active conversation. It owns the conversation's state — the
//! participants, the next `seq`, the last message and preview, each side's unread count and
//! watermarks — and nothing else mutates it.
//!
//! A request is checked, the conversation's rules (`domain::rules`) are applied to a copy of the
//! state, and the result is handed to the store's write queue. Only if the store takes the write
//! does the copy become the actor's state, so a refused write (queue full, store down) changes
//! nothing. The actor goes straight on to its next message; when the store says a write is
//! durable, the [`pipeline`] releases its [`effects`] strictly in submission order. So `seq` is
//! gapless and ordered, acks come only after fsync, and one conversation is not capped at one
//! fsync per message.
//!
//! Two incarnations of one conversation never both write: a new actor first waits for every
//! write queued before it started (`Store::settle`) and only then reads its state. And an actor
//! that stops (idle, or after a failed write) drains: the requests still in its mailbox are
//! re-routed to the next incarnation or refused, never dropped.
//!
//! It never touches sockets or HTTP: it answers through [`Reply`] and pushes events through the
//! registry to the users' session actors. It holds [`ConversationDeps`], the narrow set of
//! handles it uses, not the whole engine.

mod effects;
mod pipeline;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use self::effects::{answer, answer_send, Effect};
use self::pipeline::{Pipeline, Ticket};
use super::outbox::Reply;
use super::registry::Registry;
use crate::domain::clock::now_ms;
use crate::domain::conversation::{Conversation, ConversationDoc, Side};
use crate::domain::events::ServerEvent;
use crate::domain::ids::IdGenerator;
use crate::domain::message::{validate_text, Message, MessageType, StoredMessage};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::storage::{
    durable_channel, ConversationWrite, SeqRange, Store, StoreError, StoreResult, DEDUPE_WINDOW_MS,
};

/// Messages read per page when counting unread messages after a partial mark-read.
const COUNT_PAGE: usize = 1024;

/// What every conversation actor uses, and nothing more: the store, ids, the message budget,
/// metrics, the registry (to reach sessions and to forget itself) and its limits.
pub struct ConversationDeps {
    pub store: Arc<dyn Store>,
    pub ids: Arc<IdGenerator>,
    pub limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    pub limits: ConversationLimits,
}

#[derive(Debug, Clone)]
pub struct ConversationLimits {
    pub max_text_chars: usize,
    /// An actor with nothing to do for this long stops.
    pub idle: Duration,
    pub typing_ttl: Duration,
    pub delete_window_ms: i64,
    /// The longest an HTTP request waits for a conversation's answer.
    pub request_timeout: Duration,
}

impl ConversationDeps {
    /// Takes one message from the user's budget, shared by HTTP and WebSocket.
    pub fn spend_message_budget(&self, user: &ExternalId) -> Result<(), ApiError> {
        self.limiter.check(user).map_err(|retry| {
            Metrics::inc(&self.metrics.rate_limited);
            ApiError::rate_limited(retry)
        })
    }
}

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
    /// The store finished the write with this ticket.
    WriteDone {
        ticket: Ticket,
        result: StoreResult<()>,
    },
    TypingExpired {
        side: Side,
        generation: u64,
    },
    IdleCheck,
}

impl ConversationMsg {
    /// Who is asking, for requests: only a participant may start a conversation's actor.
    pub fn requester(&self) -> Option<&ExternalId> {
        match self {
            ConversationMsg::Send(req) => Some(&req.sender),
            ConversationMsg::MarkRead { user, .. }
            | ConversationMsg::Delivered { user, .. }
            | ConversationMsg::Typing { user, .. }
            | ConversationMsg::SetArchived { user, .. }
            | ConversationMsg::DeleteForEveryone { user, .. } => Some(user),
            ConversationMsg::WriteDone { .. }
            | ConversationMsg::TypingExpired { .. }
            | ConversationMsg::IdleCheck => None,
        }
    }

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

/// Why an actor is on its way out; the requests still in its mailbox are handled accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retiring {
    /// Idle: what arrived meanwhile goes to the next incarnation.
    Idle,
    /// A write failed: the state in memory ran ahead of the store; refuse what is queued.
    Failed,
}

pub struct ConversationState {
    deps: Arc<ConversationDeps>,
    doc: ConversationDoc,
    /// The last message whose write is durable and whose effects have gone out.
    released_seq: u64,
    released_message_id: Option<Id>,
    pipeline: Pipeline<Effect>,
    /// `client_msg_id`s of messages still being written, for retries that arrive meanwhile.
    in_flight: HashMap<(ExternalId, String), StoredMessage>,
    typing: [(bool, u64); 2],
    last_used: Instant,
    retiring: Option<Retiring>,
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
    type Arguments = (Arc<ConversationDeps>, Id);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, id): (Arc<ConversationDeps>, Id),
    ) -> Result<Self::State, ActorProcessingErr> {
        // The fence: an earlier incarnation's writes may still be queued. Wait until every one
        // is answered, so the state read below is the last that can ever become durable.
        let (done, settled) = durable_channel();
        deps.store.settle(done);
        settled.await.map_err(|_| StoreError::Closed)??;
        let doc = deps
            .store
            .get_conversation(id)
            .await?
            .ok_or_else(|| format!("conversation {id} is not in the store"))?;
        myself.send_after(deps.limits.idle, || ConversationMsg::IdleCheck);
        Ok(ConversationState {
            released_seq: doc.state.last_seq,
            released_message_id: doc.state.last_message_id,
            deps,
            doc,
            pipeline: Pipeline::default(),
            in_flight: HashMap::new(),
            typing: [(false, 0); 2],
            last_used: Instant::now(),
            retiring: None,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state
            .deps
            .registry
            .forget_conversation(state.id(), myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = tracing::debug_span!("conversation", conversation_id = %state.id());
        let _enter = span.enter();
        if let Some(why) = state.retiring {
            return Ok(state.retired(why, msg).await);
        }
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
                state.pipeline.complete(ticket, result);
                state.release(&myself);
            }
            ConversationMsg::TypingExpired { side, generation } => {
                if state.typing[slot(side)] == (true, generation) {
                    state.typing[slot(side)].0 = false;
                    state.relay_typing(side, false);
                }
            }
            ConversationMsg::IdleCheck => state.idle_check(&myself),
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

    /// Stops after a quiet spell with nothing in flight. The actor leaves the registry first (new
    /// requests start the next incarnation), then drains: ractor refuses further sends, handing
    /// them back to the registry to re-route, and what is already queued is re-routed here.
    fn idle_check(&mut self, myself: &ActorRef<ConversationMsg>) {
        let quiet = self.last_used.elapsed();
        if self.pipeline.is_empty() && quiet >= self.deps.limits.idle {
            tracing::debug!("idle; stopping");
            self.retire(myself, Retiring::Idle);
        } else {
            let wait = self.deps.limits.idle.saturating_sub(quiet);
            myself.send_after(wait.max(Duration::from_secs(1)), || {
                ConversationMsg::IdleCheck
            });
        }
    }

    fn retire(&mut self, myself: &ActorRef<ConversationMsg>, why: Retiring) {
        self.retiring = Some(why);
        self.deps
            .registry
            .forget_conversation(self.id(), myself.get_id());
        if let Err(e) = myself.drain() {
            tracing::debug!(error = %e, "drain refused; the actor is already stopping");
        }
    }

    /// A message that reached a retiring actor: re-routed (idle) or refused (failed write).
    async fn retired(&mut self, why: Retiring, msg: ConversationMsg) {
        if msg.requester().is_none() {
            return;
        }
        match why {
            Retiring::Idle => {
                let (registry, deps, id) =
                    (self.deps.registry.clone(), self.deps.clone(), self.id());
                registry.to_conversation(&deps, id, msg).await;
            }
            Retiring::Failed => msg.fail(ApiError::unavailable(
                "the message could not be stored; retry",
            )),
        }
    }

    /// Hands a write to the store and queues its effect behind every earlier one. Only a write
    /// the store takes changes the actor's state; a refused one answers the request at once.
    fn submit(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        write: ConversationWrite,
        effect: Effect,
    ) -> Result<(), ApiError> {
        let ticket = self.pipeline.next_ticket();
        let me = myself.clone();
        let on_durable = Box::new(move |result| {
            let _ = me.send_message(ConversationMsg::WriteDone { ticket, result });
        });
        if let Err(e) = self.deps.store.submit(&write, on_durable) {
            let err = ApiError::from(e);
            effect.fail(&err);
            return Err(err);
        }
        self.doc = write.doc;
        self.pipeline.push(effect, None);
        Ok(())
    }

    /// Queues an effect that needs no write of its own; it leaves after everything before it.
    fn queue(&mut self, myself: &ActorRef<ConversationMsg>, effect: Effect) {
        self.pipeline.push(effect, Some(Ok(())));
        self.release(myself);
    }

    /// Runs the effects of durable writes, oldest first, stopping at the first still in flight.
    fn release(&mut self, myself: &ActorRef<ConversationMsg>) {
        while let Some((effect, result)) = self.pipeline.pop_ready() {
            if let Err(e) = result {
                return self.fail_everything(myself, effect, e);
            }
            if let Effect::Message { message, .. } = &effect {
                Metrics::inc(&self.deps.metrics.messages_stored);
                self.released_seq = message.seq;
                self.released_message_id = Some(message.id);
                if let Some(c) = &message.client_msg_id {
                    self.in_flight
                        .remove(&(message.sender_id.clone(), c.clone()));
                }
            }
            effect.release(&self.doc, &self.deps.registry);
        }
    }

    /// A write failed. The state in memory ran ahead of the store, so this actor is done: every
    /// waiting request is told to retry and the next incarnation loads what the store really holds.
    fn fail_everything(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        first: Effect,
        cause: StoreError,
    ) {
        Metrics::inc(&self.deps.metrics.store_errors);
        tracing::error!(error = %cause, "store write failed; failing queued requests and restarting from the store");
        let err = ApiError::unavailable("the message could not be stored; retry");
        first.fail(&err);
        for effect in self.pipeline.drain() {
            effect.fail(&err);
        }
        self.in_flight.clear();
        self.retire(myself, Retiring::Failed);
    }

    async fn send(&mut self, myself: &ActorRef<ConversationMsg>, req: SendRequest) {
        let side = match self.side_of(&req.sender) {
            Ok(s) => s,
            Err(e) => return req.reply.fail(e),
        };
        if let Err(e) = validate_text(&req.text, self.deps.limits.max_text_chars, false) {
            return req.reply.fail(e.into());
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
                Err(e) => return req.reply.fail(e.into()),
            }
        }
        if let Err(e) = self.deps.spend_message_budget(&req.sender) {
            return req.reply.fail(e);
        }

        let message = StoredMessage {
            id: self.deps.ids.next_id(),
            conversation_id: self.id(),
            seq: self.doc.next_seq(),
            sender_id: req.sender,
            sender_name: req.sender_name,
            message_type: MessageType::Text,
            text: req.text,
            attachments: Vec::new(),
            created_at: now_ms(),
            client_msg_id: req.client_msg_id,
            deleted: false,
        };
        let mut next = self.doc.clone();
        let appended = next.append(side, &message);
        let write = ConversationWrite {
            doc: next,
            message: Some(message.clone()),
            unread_of: Some(side.other()),
            moved_from: Some(appended.moved_from),
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
            recipient_unread: appended.recipient_unread,
        };
        if self.submit(myself, write, effect).is_ok() {
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
        let mut next = self.doc.clone();
        if !next.mark_delivered(side, m.seq) {
            return answer(reply, ());
        }
        let write = ConversationWrite {
            doc: next,
            message: None,
            unread_of: None,
            moved_from: None,
        };
        let effect = Effect::Delivered {
            side,
            up_to: (m.id, m.seq),
        };
        match self.submit(myself, write, effect) {
            Ok(()) => answer(reply, ()),
            Err(e) => reply.fail(e),
        }
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

    fn relay_typing(&self, side: Side, is_typing: bool) {
        let ev = crate::actors::outbox::Outgoing::new(ServerEvent::TypingStatus {
            conversation_id: self.id(),
            user_id: self.doc.record.user(side).clone(),
            is_typing,
        });
        self.deps
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
        let mut next = self.doc.clone();
        next.set_archived(side, archived);
        let write = ConversationWrite {
            doc: next,
            message: None,
            unread_of: None,
            moved_from: None,
        };
        let _ = self.submit(myself, write, Effect::Archived { side, reply });
    }

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
        let mut next = self.doc.clone();
        next.tombstone(&mut m);
        let write = ConversationWrite {
            doc: next,
            message: Some(m),
            unread_of: None,
            moved_from: None,
        };
        let _ = self.submit(myself, write, Effect::Deleted { message, reply });
    }
}
