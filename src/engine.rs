//! The running engine: what handlers and actors share. Built once by `app.rs`.
//!
//! Everything here is either immutable after startup (config, keys) or safe to touch from many
//! tasks without a global lock (atomics, sharded maps, the store's own queue). Conversation and
//! user state is not here: it lives inside the actors that own it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actors::conversation::{ConversationDeps, ConversationLimits, ConversationMsg};
use crate::actors::outbox::Reply;
use crate::actors::registry::Registry;
use crate::analytics::Analytics;
use crate::attachments::Attachments;
use crate::auth::{AuthError, Authenticator};
use crate::config::{Config, ConfigError};
use crate::domain::ids::IdGenerator;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::moderation::queue::{ModerationQueue, Report, ReportSource};
use crate::moderation::{Moderator, ReasonSource, Verdict};
use crate::notify::claims::Claims;
use crate::notify::{Notifier, Pending};
use crate::ratelimit::RateLimiter;
use crate::storage::instrumented::InstrumentedStore;
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
    /// Conversations started per user (`limits.conversations_per_hour`).
    pub creations: RateLimiter,
    /// WebSocket connection attempts per client address.
    pub connects: RateLimiter<IpAddr>,
    /// Failed authentications per client address, HTTP and WebSocket together.
    pub auth_failures: RateLimiter<IpAddr>,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    /// The handles conversation actors are given: they never see the engine itself.
    pub conversations: Arc<ConversationDeps>,
    pub attachments: Attachments,
    /// Every message's text passes it before it is stored.
    pub moderator: Moderator,
    /// Messages waiting for a moderator (shared with the conversation actors).
    pub queue: Arc<ModerationQueue>,
    /// Builds the notifications a change causes (shared with the conversation actors).
    pub notifier: Arc<Notifier>,
    /// Where the dispatcher (`notify::dispatch::run`, started by `app.rs`) takes durable
    /// notifications from; taken once.
    pub handoff: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Pending>>>,
    /// E-mail addresses from tokens, kept for mails to users who are offline.
    pub claims: Claims,
    /// The KPIs, counted as events happen (shared with the conversation actors).
    pub analytics: Analytics,
    /// The message index (`search.enabled`), fed by the conversation actors.
    pub search: Option<Arc<crate::search::Index>>,
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

    /// Runs `verify` for a caller at `ip`, unless that address has failed too often
    /// (`limits.failed_auth_per_ip_per_minute`): then 429 whatever the token. A token that is bad
    /// (not merely missing or expired) counts against the address.
    pub fn authenticate_from<T>(
        &self,
        ip: Option<IpAddr>,
        verify: impl FnOnce(&Authenticator) -> Result<T, AuthError>,
    ) -> Result<T, ApiError> {
        if let Some(retry) = ip.and_then(|ip| self.auth_failures.blocked(&ip)) {
            return Err(ApiError::rate_limited_because(
                retry,
                "too many failed authentications from this address",
            ));
        }
        verify(&self.auth).map_err(|e| {
            if let (Some(ip), AuthError::Invalid(_) | AuthError::BadClaim(_)) = (ip, &e) {
                let _ = self.auth_failures.check(&ip);
            }
            e.into()
        })
    }

    /// Reviews the text of a message about to be sent: the text to store (masked where a rule
    /// masks) and the reports to queue once it is stored, or 422 `message_rejected`. A message
    /// without text (attachments only) has nothing to review.
    pub async fn moderate(&self, text: String) -> Result<(String, Vec<Report>), ApiError> {
        if text.trim().is_empty() {
            return Ok((text, Vec::new()));
        }
        let review = self.moderator.review(&text).await;
        let rules: Vec<&str> = review.reasons.iter().map(|r| r.rule.as_str()).collect();
        match review.verdict {
            Verdict::Allow => Ok((review.text, Vec::new())),
            Verdict::Reject => Err(ApiError::unprocessable(
                "message_rejected",
                format!("the message was not sent: {}", rules.join(", ")),
            )),
            Verdict::Flag => {
                let reports = review
                    .reasons
                    .iter()
                    .map(|r| {
                        let source = match r.source {
                            ReasonSource::Rule => ReportSource::Rule,
                            ReasonSource::Classifier => ReportSource::Classifier,
                        };
                        Report::now(source, r.rule.clone(), None)
                    })
                    .collect();
                Ok((review.text, reports))
            }
        }
    }

    /// Notes what a verified token says that later work needs (its e-mail address, for mails
    /// while the user is offline). Costs nothing unless e-mail is configured.
    pub fn saw(&self, principal: &crate::domain::user::Principal) {
        if self.notifier.email.enabled() {
            self.claims.saw(principal);
        }
    }

    /// Hands a request to a conversation's actor without waiting (its reply goes to a socket).
    pub async fn to_conversation(&self, id: Id, msg: ConversationMsg) {
        self.registry
            .to_conversation(&self.conversations, id, msg)
            .await
    }
}

impl Engine {
    /// `objects` is where attachment bytes go (`attachments::objects::open` for the configured one).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        auth: Authenticator,
        objects: Arc<dyn object_store::ObjectStore>,
    ) -> Result<EngineRef, ConfigError> {
        // Every store call from here on is timed by operation (`switchboard_store_operation_*`).
        let metrics = Arc::new(Metrics::new(
            store.batch_sizes(),
            crate::storage::instrumented::OP_NAMES,
        ));
        let store = InstrumentedStore::wrap(store, metrics.store.clone());
        let moderator = Moderator::new(&config.moderation).map_err(ConfigError)?;
        let queue = Arc::new(ModerationQueue::new(store.clone()));
        let ids = Arc::new(IdGenerator::new(config.node_id));
        let (notifier, handoff) = Notifier::new(
            config.email.clone(),
            config.webhooks.clone(),
            config.push.clone(),
            ids.clone(),
        );
        let notifier = Arc::new(notifier);
        let limits = &config.limits;
        let limiter = Arc::new(RateLimiter::with_burst(
            limits.messages_per_minute,
            limits.messages_burst,
            Duration::from_secs(60),
        ));
        let creations =
            RateLimiter::with_window(limits.conversations_per_hour, Duration::from_secs(3600));
        let connects = RateLimiter::new(limits.connections_per_ip_per_minute);
        let auth_failures = RateLimiter::new(limits.failed_auth_per_ip_per_minute);
        let registry = Registry::default();
        let analytics = Analytics::start(&config.analytics, store.clone());
        let search = crate::search::feed::open(&config).map_err(|e| {
            ConfigError(format!(
                "search index {}: {e}",
                config.search.dir(&config).display()
            ))
        })?;
        let conversations = Arc::new(ConversationDeps {
            store: store.clone(),
            ids: ids.clone(),
            limiter: limiter.clone(),
            metrics: metrics.clone(),
            registry: registry.clone(),
            queue: queue.clone(),
            notifier: notifier.clone(),
            analytics: analytics.clone(),
            search: search.clone(),
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
        let attachments = Attachments::new(
            store.clone(),
            objects,
            ids.clone(),
            config.attachments.clone(),
        )
        .map_err(ConfigError)?;
        Ok(Arc::new(Engine {
            claims: Claims::new(store.clone()),
            notifier,
            analytics,
            search,
            handoff: std::sync::Mutex::new(Some(handoff)),
            attachments,
            moderator,
            queue,
            creations,
            connects,
            auth_failures,
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
        }))
    }
}

/// An engine over a fresh embedded store in `dir`, search off, for unit tests that need a real
/// one (what a socket task or a session actor holds).
#[cfg(test)]
pub(crate) fn for_tests(dir: &std::path::Path) -> EngineRef {
    let mut config = Config::default();
    config.auth.jwt_secret = "unit-test-secret-unit-test-secret-0123".into();
    config.search.enabled = false;
    let store = crate::storage::embedded::EmbeddedStore::open(
        dir,
        crate::storage::embedded::EmbeddedOptions::default(),
    )
    .unwrap();
    let auth = Authenticator::new(&config.auth).unwrap();
    let objects = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    Engine::new(config, store, auth, Arc::new(objects)).unwrap()
}
