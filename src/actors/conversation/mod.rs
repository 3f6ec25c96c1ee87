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
mod requests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use self::effects::Effect;
use self::pipeline::{Pipeline, Ticket};
use super::outbox::Reply;
use super::registry::Registry;
use crate::domain::conversation::{Conversation, ConversationDoc, Side};
use crate::domain::ids::IdGenerator;
use crate::domain::message::{Attachment, Message, StoredMessage};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::moderation::queue::{ModerationQueue, Report};
use crate::ratelimit::RateLimiter;
use crate::storage::{durable_channel, ConversationWrite, Store, StoreError, StoreResult};

/// What every conversation actor uses, and nothing more: the store, ids, the message budget,
/// metrics, the registry (to reach sessions and to forget itself) and its limits.
pub struct ConversationDeps {
    pub store: Arc<dyn Store>,
    pub ids: Arc<IdGenerator>,
    pub limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    pub limits: ConversationLimits,
    /// Where flagged messages go once they are durable.
    pub queue: Arc<ModerationQueue>,
    /// The notifications (outbox items) a write causes, and their hand-off once it is durable.
    pub notifier: Arc<crate::notify::Notifier>,
    /// Response and delivery times, counted once a write is durable.
    pub analytics: crate::analytics::Analytics,
    /// The message index, fed once a write is durable.
    pub search: Option<Arc<crate::search::Index>>,
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
            self.metrics.rate_limited.inc();
            ApiError::rate_limited(retry)
        })
    }

    /// Gives back a message spent on something that was then not stored.
    pub fn refund_message_budget(&self, user: &ExternalId) {
        self.limiter.refund(user);
    }
}

pub struct ConversationActor;

/// A message to send, from HTTP or a socket.
pub struct SendRequest {
    pub sender: ExternalId,
    pub sender_name: String,
    pub text: String,
    /// Already checked to be the sender's uploads and linked to this conversation
    /// (`Attachments::link`).
    pub attachments: Vec<Attachment>,
    /// Moderation reports (the text is already the reviewed one): queued once it is durable.
    pub flags: Vec<Report>,
    pub client_msg_id: Option<String>,
    /// The socket that sent it: it gets the `ack` instead of a copy of the message.
    pub origin: Option<Id>,
    pub reply: Reply<SendOutcome>,
    /// When the gateway received it (socket task or HTTP handler): the ack latency
    /// (`switchboard_send_ack_seconds`) is measured from here to the ack's release.
    pub received: std::time::Instant,
}

#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub message: Message,
    /// The message was already stored under this `client_msg_id`; nothing new was written.
    pub duplicate: bool,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
    /// A message is removed by someone other than its sender (a moderator, an erasure, the
    /// retention sweeper): a tombstone for both sides, whoever sent it and whenever. Not a
    /// participant's request (`requester` is `None`): the admin API checks its caller.
    Remove {
        message: Id,
        why: Removal,
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
            ConversationMsg::Remove { .. }
            | ConversationMsg::WriteDone { .. }
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
            ConversationMsg::DeleteForEveryone { reply, .. }
            | ConversationMsg::Remove { reply, .. } => reply.fail(e),
            ConversationMsg::WriteDone { .. }
            | ConversationMsg::TypingExpired { .. }
            | ConversationMsg::IdleCheck => {}
        }
    }
}

/// Why a message is removed without its sender asking; named as `deleted_by` in the
/// `message.deleted` webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A moderator's decision.
    Moderator,
    /// The sender's account is being erased: the tombstone keeps neither their name nor the
    /// `client_msg_id` they chose.
    Erasure,
    /// Older than the retention period.
    Retention,
}

impl Removal {
    pub fn name(self) -> &'static str {
        match self {
            Removal::Moderator => "moderator",
            Removal::Erasure => "erasure",
            Removal::Retention => "retention",
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

/// Where a side's typing indicator is kept.
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
        deps.store.settle(id, done);
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
            state.retired(why, msg).await;
            return Ok(());
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
            ConversationMsg::Remove {
                message,
                why,
                reply,
            } => state.remove(&myself, message, why, reply).await,
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
            Retiring::Failed => {
                let err = ApiError::unavailable("the message could not be stored; retry");
                if matches!(msg, ConversationMsg::Send(_)) {
                    self.deps.metrics.refused(err.code);
                }
                msg.fail(err)
            }
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
            // The ticket is used up all the same, so a late answer can never match another write.
            self.pipeline.skip_ticket();
            let err = ApiError::from(e);
            fail_effect(&self.deps.metrics, effect, &err);
            return Err(err);
        }
        if matches!(effect, Effect::Message { .. }) {
            self.deps.metrics.messages_accepted.inc();
        }
        self.doc = write.doc;
        self.pipeline.push(effect, None);
        Ok(())
    }

    /// Answers a send with `err` before anything was written, counting it as refused by its code.
    fn refuse(&self, reply: Reply<SendOutcome>, err: ApiError) {
        self.deps.metrics.refused(err.code);
        reply.fail(err);
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
                self.deps.metrics.messages_stored.inc();
                self.released_seq = message.seq;
                self.released_message_id = Some(message.id);
                if let Some(c) = &message.client_msg_id {
                    self.in_flight
                        .remove(&(message.sender_id.clone(), c.clone()));
                }
            }
            effect.release(&self.doc, &self.deps);
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
        self.deps.metrics.store_errors.inc();
        self.deps.metrics.conversation_restarts.inc();
        tracing::error!(error = %cause, "store write failed; failing queued requests and restarting from the store");
        let err = ApiError::unavailable("the message could not be stored; retry");
        fail_effect(&self.deps.metrics, first, &err);
        for effect in self.pipeline.drain() {
            fail_effect(&self.deps.metrics, effect, &err);
        }
        self.in_flight.clear();
        self.retire(myself, Retiring::Failed);
    }
}

/// Answers an effect's request with `err`; a new message's is counted as a refused send.
fn fail_effect(metrics: &Metrics, effect: Effect, err: &ApiError) {
    if matches!(effect, Effect::Message { .. }) {
        metrics.refused(err.code);
    }
    effect.fail(err);
}
