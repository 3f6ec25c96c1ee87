//! The running engine: what handlers and actors share. Built once by `app.rs`.
//!
//! Everything here is either immutable after startup (config, keys) or safe to touch from many
//! tasks without a global lock (atomics, sharded maps, the store's own queue). Conversation and
//! user state is not here: it lives inside the actors that own it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actors::registry::Registry;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::domain::ids::IdGenerator;
use crate::domain::user::ExternalId;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::storage::Store;

pub struct Engine {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub ids: IdGenerator,
    pub auth: Authenticator,
    pub limiter: RateLimiter,
    /// Typing events per user, HTTP and every socket of the user together
    /// (`limits.typing_per_10s`): per-socket budgets let a client multiply its flood by opening
    /// sockets, and HTTP had none at all.
    pub typing: RateLimiter,
    pub metrics: Metrics,
    pub registry: Registry,
    pub started: Instant,
}

pub type EngineRef = Arc<Engine>;

impl Engine {
    /// Takes one message from the user's budget, shared by HTTP and WebSocket.
    pub fn spend_message_budget(&self, user: &ExternalId) -> Result<(), ApiError> {
        self.limiter.check(user).map_err(|retry| {
            Metrics::inc(&self.metrics.rate_limited);
            ApiError::rate_limited(retry)
        })
    }
}

impl Engine {
    pub fn new(config: Config, store: Arc<dyn Store>, auth: Authenticator) -> EngineRef {
        Arc::new(Engine {
            ids: IdGenerator::new(config.node_id),
            limiter: RateLimiter::new(config.limits.messages_per_minute),
            typing: RateLimiter::with_window(config.limits.typing_per_10s, Duration::from_secs(10)),
            config,
            store,
            auth,
            metrics: Metrics::default(),
            registry: Registry::default(),
            started: Instant::now(),
        })
    }
}
