//! The running engine: what handlers and actors share. Built once by `app.rs`.
//!
//! Everything here is either immutable after startup (config, keys) or safe to touch from many
//! tasks without a global lock (atomics, sharded maps, the store's own queue). Conversation and
//! user state is not here: it lives inside the actors that own it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actors::conversation::{ConversationDeps, ConversationLimits, ConversationMsg};
use crate::actors::outbox::Reply;
use crate::actors::registry::Registry;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::domain::ids::IdGenerator;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::storage::Store;

pub struct Engine {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub ids: Arc<IdGenerator>,
    pub auth: Authenticator,
    pub limiter: Arc<RateLimiter>,
    /// Typing events per user, HTTP and every socket of the user together
    /// (`limits.typing_per_10s`): per-socket budgets let a client multiply its flood by opening
    /// sockets, and HTTP had none at all.
    pub typing: RateLimiter,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    /// The handles conversation actors are given: they never see the engine itself.
    pub conversations: Arc<ConversationDeps>,
    pub started: Instant,
}

pub type EngineRef = Arc<Engine>;

impl Engine {
    /// Takes one message from the user's budget, shared by HTTP and WebSocket.
    pub fn spend_message_budget(&self, user: &ExternalId) -> Result<(), ApiError> {
        self.conversations.spend_message_budget(user)
    }

    /// Sends a request to a conversation's actor (started if needed, for participants only)
    /// and waits for its answer, at most `realtime.request_timeout_secs`.
    pub async fn ask<T>(
        &self,
        id: Id,
        make: impl FnOnce(Reply<T>) -> ConversationMsg,
    ) -> Result<T, ApiError> {
        let timeout = self.conversations.limits.request_timeout;
        self.registry
            .ask(&self.conversations, id, timeout, make)
            .await
    }

    /// Hands a request to a conversation's actor without waiting (its reply goes to a socket).
    pub async fn to_conversation(&self, id: Id, msg: ConversationMsg) {
        self.registry
            .to_conversation(&self.conversations, id, msg)
            .await
    }
}

impl Engine {
    pub fn new(config: Config, store: Arc<dyn Store>, auth: Authenticator) -> EngineRef {
        let ids = Arc::new(IdGenerator::new(config.node_id));
        let limiter = Arc::new(RateLimiter::new(config.limits.messages_per_minute));
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::default();
        let conversations = Arc::new(ConversationDeps {
            store: store.clone(),
            ids: ids.clone(),
            limiter: limiter.clone(),
            metrics: metrics.clone(),
            registry: registry.clone(),
            limits: ConversationLimits {
                max_text_chars: config.limits.max_text_chars,
                idle: Duration::from_secs(config.realtime.conversation_idle_secs.max(1)),
                typing_ttl: Duration::from_secs(config.realtime.typing_ttl_secs.max(1)),
                delete_window_ms: i64::try_from(config.chat.delete_for_everyone_secs)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000),
                request_timeout: Duration::from_secs(config.realtime.request_timeout_secs.max(1)),
            },
        });
        Arc::new(Engine {
            ids,
            limiter,
            typing: RateLimiter::with_window(config.limits.typing_per_10s, Duration::from_secs(10)),
            config,
            store,
            auth,
            metrics,
            registry,
            conversations,
            started: Instant::now(),
        })
    }
}
