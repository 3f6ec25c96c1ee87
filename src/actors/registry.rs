//! Finds the actor for a conversation or a user, starting it if it is not running.
//!
//! Two sharded maps (dashmap), no global lock. A missing actor is spawned while its map entry is
//! held, without awaiting, so two requests racing for the same conversation can never start two
//! actors. The new actor loads its state from the store before it takes its first message.

use std::sync::OnceLock;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use ractor::{ActorCell, ActorId, ActorRef, MessagingErr};

use super::conversation::{ConversationActor, ConversationMsg};
use super::outbox::{Outgoing, Reply};
use super::user_session::{SessionMsg, UserSession};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::ApiError;
use std::sync::Arc;
use tokio::sync::oneshot;

#[derive(Default)]
pub struct Registry {
    conversations: DashMap<Id, ActorRef<ConversationMsg>>,
    sessions: DashMap<ExternalId, ActorRef<SessionMsg>>,
    supervisor: OnceLock<ActorCell>,
}

/// The actor registered under `key`, or a new one spawned and registered while the map entry is
/// held. The spawn does not wait for `pre_start`; if that fails, the actor is forgotten again.
fn find_or_spawn<K, A>(
    map: &DashMap<K, ActorRef<A::Msg>>,
    key: K,
    engine: &EngineRef,
    handler: A,
    args: A::Arguments,
    supervisor: ActorCell,
) -> Result<ActorRef<A::Msg>, ApiError>
where
    K: std::hash::Hash + Eq,
    A: ractor::Actor,
{
    Ok(match map.entry(key) {
        Entry::Occupied(o) => o.get().clone(),
        Entry::Vacant(v) => {
            let (actor, started) =
                ractor::ActorRuntime::<A>::spawn_linked_instant(None, handler, args, supervisor)
                    .map_err(spawn_failed)?;
            v.insert(actor.clone());
            let engine = engine.clone();
            let actor_id = actor.get_id();
            tokio::spawn(async move {
                if !matches!(started.await, Ok(Ok(_))) {
                    engine.registry.forget_actor(actor_id);
                }
            });
            actor
        }
    })
}

fn spawn_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "actor could not be started");
    ApiError::unavailable("the server could not start a worker for this request; retry")
}

impl Registry {
    pub fn set_supervisor(&self, cell: ActorCell) {
        let _ = self.supervisor.set(cell);
    }

    fn supervisor(&self) -> Result<ActorCell, ApiError> {
        self.supervisor
            .get()
            .cloned()
            .ok_or_else(|| ApiError::unavailable("the server is starting or stopping"))
    }

    pub fn conversation_actors(&self) -> usize {
        self.conversations.len()
    }

    pub fn session_actors(&self) -> usize {
        self.sessions.len()
    }

    /// The running actor of a conversation, started if needed. A conversation that does not
    /// exist is `conversation_not_found`.
    async fn conversation(
        &self,
        engine: &EngineRef,
        id: Id,
    ) -> Result<ActorRef<ConversationMsg>, ApiError> {
        if let Some(r) = self.conversations.get(&id) {
            return Ok(r.clone());
        }
        if engine.store.get_conversation(id).await?.is_none() {
            return Err(ApiError::conversation_not_found());
        }
        let supervisor = self.supervisor()?;
        let actor = find_or_spawn(
            &self.conversations,
            id,
            engine,
            ConversationActor,
            (engine.clone(), id),
            supervisor,
        )?;
        Ok(actor)
    }

    /// Delivers a message to a conversation's actor, starting it if needed. An actor that stopped
    /// between lookup and send is forgotten and the message goes to a fresh one. When it cannot be
    /// delivered, the request inside is answered with the error.
    pub async fn to_conversation(&self, engine: &EngineRef, id: Id, msg: ConversationMsg) {
        let mut msg = msg;
        for _ in 0..3 {
            let actor = match self.conversation(engine, id).await {
                Ok(a) => a,
                Err(e) => return msg.fail(e),
            };
            match actor.send_message(msg) {
                Ok(()) => return,
                Err(MessagingErr::SendErr(back)) => {
                    self.forget_conversation(id, actor.get_id());
                    msg = back;
                }
                Err(e) => {
                    tracing::error!(error = %e, "conversation actor unreachable");
                    return;
                }
            }
        }
        msg.fail(ApiError::unavailable(
            "the conversation is restarting; retry",
        ));
    }

    /// Sends a request to a conversation's actor and waits for its answer.
    pub async fn ask<T>(
        &self,
        engine: &EngineRef,
        id: Id,
        make: impl FnOnce(Reply<T>) -> ConversationMsg,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.to_conversation(engine, id, make(Reply::Caller(tx)))
            .await;
        rx.await.map_err(|_| {
            ApiError::unavailable("the conversation stopped before answering; retry")
        })?
    }

    pub fn forget_conversation(&self, id: Id, actor: ActorId) {
        self.conversations
            .remove_if(&id, |_, r| r.get_id() == actor);
    }

    /// The user's session actor if the user is connected.
    pub fn session(&self, user: &ExternalId) -> Option<ActorRef<SessionMsg>> {
        self.sessions.get(user).map(|r| r.clone())
    }

    pub fn is_online(&self, user: &ExternalId) -> bool {
        self.sessions.contains_key(user)
    }

    pub fn online_users(&self) -> usize {
        self.sessions.len()
    }

    /// The user's session actor, started if needed (a socket is connecting).
    pub fn session_or_start(
        &self,
        engine: &EngineRef,
        user: &ExternalId,
    ) -> Result<ActorRef<SessionMsg>, ApiError> {
        let supervisor = self.supervisor()?;
        find_or_spawn(
            &self.sessions,
            user.clone(),
            engine,
            UserSession,
            (engine.clone(), user.clone()),
            supervisor,
        )
    }

    pub fn forget_session(&self, user: &ExternalId, actor: ActorId) {
        self.sessions.remove_if(user, |_, r| r.get_id() == actor);
    }

    /// Forgets a failed actor wherever it is registered. Rare (failures only), so a scan is fine.
    pub fn forget_actor(&self, actor: ActorId) {
        self.conversations.retain(|_, r| r.get_id() != actor);
        self.sessions.retain(|_, r| r.get_id() != actor);
    }

    /// Sends an event to every socket of a user, except one (the socket that caused it).
    /// A user who is not connected simply gets nothing; they catch up with `sync` or HTTP.
    pub fn to_user(&self, user: &ExternalId, event: Arc<Outgoing>, except: Option<Id>) {
        if let Some(s) = self.session(user) {
            let _ = s.send_message(SessionMsg::Deliver { event, except });
        }
    }

    /// Sends a new message to every socket of its recipient together with their new unread
    /// count: one cast instead of two on the busiest path, and the two events leave together.
    pub fn new_message_to(
        &self,
        user: &ExternalId,
        event: Arc<Outgoing>,
        conversation: Id,
        unread: u64,
    ) {
        if let Some(s) = self.session(user) {
            let _ = s.send_message(SessionMsg::NewMessage {
                event,
                conversation,
                unread,
            });
        }
    }

    /// Every running session, for shutdown.
    pub fn all_sessions(&self) -> Vec<ActorRef<SessionMsg>> {
        self.sessions.iter().map(|e| e.value().clone()).collect()
    }
}
