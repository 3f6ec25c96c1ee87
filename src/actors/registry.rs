//! Finds the actor for a conversation or a user, starting it if it is not running.
//!
//! Two sharded maps (dashmap), no global lock. A missing actor is spawned while its map entry is
//! held, without awaiting, so two requests racing for the same conversation can never start two
//! actors. The new actor loads its state from the store before it takes its first message.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use ractor::{ActorCell, ActorId, ActorRef, MessagingErr};
use tokio::sync::oneshot;

use super::conversation::{ConversationActor, ConversationDeps, ConversationMsg};
use super::outbox::{Outgoing, Reply};
use super::user_session::{SessionMsg, UserSession};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::ApiError;

/// A cheap handle to the two maps; clones share them. Conversation actors hold one (to forget
/// themselves and to reach sessions); the engine holds one for HTTP and sockets.
#[derive(Clone, Default)]
pub struct Registry {
    maps: Arc<Maps>,
}

#[derive(Default)]
struct Maps {
    conversations: DashMap<Id, ActorRef<ConversationMsg>>,
    sessions: DashMap<ExternalId, ActorRef<SessionMsg>>,
    supervisor: OnceLock<ActorCell>,
}

fn spawn_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "actor could not be started");
    ApiError::unavailable("the server could not start a worker for this request; retry")
}

/// How often a request is re-sent when the actor it reached was stopping (idle drain, failure).
const REROUTES: usize = 3;

impl Registry {
    /// The actor registered under `key`, or a new one spawned and registered while the map entry
    /// is held. The spawn does not wait for `pre_start`; if that fails, the actor is forgotten.
    fn find_or_spawn<K, A>(
        &self,
        map: &DashMap<K, ActorRef<A::Msg>>,
        key: K,
        handler: A,
        args: A::Arguments,
    ) -> Result<ActorRef<A::Msg>, ApiError>
    where
        K: std::hash::Hash + Eq,
        A: ractor::Actor,
    {
        let supervisor = self.supervisor()?;
        Ok(match map.entry(key) {
            Entry::Occupied(o) => o.get().clone(),
            Entry::Vacant(v) => {
                let (actor, started) = ractor::ActorRuntime::<A>::spawn_linked_instant(
                    None, handler, args, supervisor,
                )
                .map_err(spawn_failed)?;
                v.insert(actor.clone());
                let registry = self.clone();
                let actor_id = actor.get_id();
                tokio::spawn(async move {
                    if !matches!(started.await, Ok(Ok(_))) {
                        registry.forget_actor(actor_id);
                    }
                });
                actor
            }
        })
    }

    pub fn set_supervisor(&self, cell: ActorCell) {
        let _ = self.maps.supervisor.set(cell);
    }

    fn supervisor(&self) -> Result<ActorCell, ApiError> {
        self.maps
            .supervisor
            .get()
            .cloned()
            .ok_or_else(|| ApiError::unavailable("the server is starting or stopping"))
    }

    pub fn conversation_actors(&self) -> usize {
        self.maps.conversations.len()
    }

    pub fn session_actors(&self) -> usize {
        self.maps.sessions.len()
    }

    /// The running actor of a conversation, started if needed — but only for one of its
    /// participants: anyone else gets `conversation_not_found` and starts nothing, so a stranger
    /// sending frames for ids they guess cannot fill the server with actors.
    async fn conversation(
        &self,
        deps: &Arc<ConversationDeps>,
        id: Id,
        requester: Option<&ExternalId>,
    ) -> Result<ActorRef<ConversationMsg>, ApiError> {
        if let Some(r) = self.maps.conversations.get(&id) {
            return Ok(r.clone());
        }
        let record = deps
            .store
            .conversation_record(id)
            .await?
            .ok_or_else(ApiError::conversation_not_found)?;
        if requester.is_some_and(|u| record.side_of(u).is_none()) {
            return Err(ApiError::conversation_not_found());
        }
        self.find_or_spawn(
            &self.maps.conversations,
            id,
            ConversationActor,
            (deps.clone(), id),
        )
    }

    /// Delivers a message to a conversation's actor, starting it if needed. An actor that stopped
    /// (or began draining) between lookup and send hands the message back; it is forgotten and
    /// the message goes to a fresh one. When it cannot be delivered, the request inside is
    /// answered with the error.
    pub async fn to_conversation(
        &self,
        deps: &Arc<ConversationDeps>,
        id: Id,
        msg: ConversationMsg,
    ) {
        let mut msg = msg;
        for _ in 0..REROUTES {
            let actor = match self.conversation(deps, id, msg.requester()).await {
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

    /// Sends a request to a conversation's actor and waits for its answer, at most `timeout`:
    /// a stalled store must not hang an HTTP request forever.
    pub async fn ask<T>(
        &self,
        deps: &Arc<ConversationDeps>,
        id: Id,
        timeout: Duration,
        make: impl FnOnce(Reply<T>) -> ConversationMsg,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let work = async {
            self.to_conversation(deps, id, make(Reply::Caller(tx)))
                .await;
            rx.await
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ApiError::unavailable(
                "the conversation stopped before answering; retry",
            )),
            Err(_) => Err(ApiError::unavailable(
                "the conversation did not answer in time; retry (client_msg_id makes a retry safe)",
            )),
        }
    }

    /// The conversation's actor if one is running (does not start one).
    pub fn running_conversation(&self, id: Id) -> Option<ActorRef<ConversationMsg>> {
        self.maps.conversations.get(&id).map(|r| r.clone())
    }

    pub fn forget_conversation(&self, id: Id, actor: ActorId) {
        self.maps
            .conversations
            .remove_if(&id, |_, r| r.get_id() == actor);
    }

    /// The user's session actor if the user is connected.
    pub fn session(&self, user: &ExternalId) -> Option<ActorRef<SessionMsg>> {
        self.maps.sessions.get(user).map(|r| r.clone())
    }

    pub fn is_online(&self, user: &ExternalId) -> bool {
        self.maps.sessions.contains_key(user)
    }

    pub fn online_users(&self) -> usize {
        self.maps.sessions.len()
    }

    /// The user's session actor, started if needed (a socket is connecting).
    pub fn session_or_start(
        &self,
        engine: &EngineRef,
        user: &ExternalId,
    ) -> Result<ActorRef<SessionMsg>, ApiError> {
        self.find_or_spawn(
            &self.maps.sessions,
            user.clone(),
            UserSession,
            (engine.clone(), user.clone()),
        )
    }

    pub fn forget_session(&self, user: &ExternalId, actor: ActorId) {
        self.maps
            .sessions
            .remove_if(user, |_, r| r.get_id() == actor);
    }

    /// Forgets a failed actor wherever it is registered. Rare (failures only), so a scan is fine.
    pub fn forget_actor(&self, actor: ActorId) {
        self.maps.conversations.retain(|_, r| r.get_id() != actor);
        self.maps.sessions.retain(|_, r| r.get_id() != actor);
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
        self.maps
            .sessions
            .iter()
            .map(|e| e.value().clone())
            .collect()
    }
}
