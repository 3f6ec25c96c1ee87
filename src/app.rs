//! Wiring and lifecycle: builds the engine from a configuration, binds both listeners, runs the
//! background chores, and shuts down in order.
//!
//! Shutdown: stop accepting, tell every socket to close (1001), let in-flight HTTP requests
//! finish for up to a grace period, then stop the actors. Every acknowledged message is already on
//! disk, so nothing is lost however the process ends; an orderly stop just closes sockets politely.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::actors::supervisor::{Supervisor, SupervisorMsg};
use crate::auth::Authenticator;
use crate::config::{Config, ConfigError};
use crate::engine::{Engine, EngineRef};
use crate::http::listener;
use crate::http::tls::Certificates;
use crate::storage::{Store, DEDUPE_WINDOW_MS};

/// How long shutdown waits for in-flight HTTP requests.
const GRACE: Duration = Duration::from_secs(10);

/// How often expired `client_msg_id` entries are swept. A constant, not a setting: the window is
/// a day, so a minute between sweeps only keeps each sweep small and nobody needs to tune it.
const DEDUPE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How often uploads that no message carried are looked for (they go after
/// `attachments.unsent_ttl_secs`; a few minutes late is fine).
const UPLOAD_SWEEP_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] crate::storage::open::OpenError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot start the actor system: {0}")]
    Actors(String),
}

/// A started server.
pub struct Server {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The listeners' certificates (none without TLS), reloaded by [`Server::reload_tls`].
    certificates: Vec<Arc<Certificates>>,
    pub engine: EngineRef,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    chores: Vec<JoinHandle<()>>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: JoinHandle<()>,
}

/// Pending connections the kernel may hold for us (a reconnect storm arrives all at once).
const BACKLOG: u32 = 4096;

/// Binds a listener whose accepted sockets have Nagle's algorithm off (Linux copies TCP_NODELAY
/// from the listener): chat frames are small and must go out at once, not wait for an ACK.
async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let fail = |e: std::io::Error| StartError::Bind {
        addr,
        reason: e.to_string(),
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.set_nodelay(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(BACKLOG).map_err(fail)
}

pub async fn start(config: Config) -> Result<Server, StartError> {
    config.validate()?;
    let auth = Authenticator::new(&config.auth).map_err(ConfigError)?;
    // Bind first: a port in use is reported before the store is touched.
    let http = bind(config.http.addr).await?;
    let admin = bind(config.admin.addr).await?;
    let bound = |l: &TcpListener, fallback| l.local_addr().unwrap_or(fallback);
    let (http_addr, admin_addr) = (
        bound(&http, config.http.addr),
        bound(&admin, config.admin.addr),
    );

    // Certificates next: a bad one is a configuration error, reported before the store opens.
    let tls = Tls::load(&config)?;
    let store = crate::storage::open::open(&config).await?;
    if config.auth.dev_tokens {
        tracing::warn!("DEV TOKENS ARE ON: POST /api/v1/dev/tokens lets anyone act as any user. Never enable auth.dev_tokens in production.");
    }
    let objects = crate::attachments::objects::open(&config).map_err(ConfigError)?;
    let vapid = if config.push.enabled() {
        Some(crate::notify::vapid::Vapid::load(&config.push, &*store).await?)
    } else {
        None
    };
    let engine = Engine::new(config, store, auth, objects)?;
    if let Some(v) = vapid {
        let _ = engine.notifier.vapid.set(std::sync::Arc::new(v));
    }
    let (supervisor, supervisor_done) = Actor::spawn(None, Supervisor, engine.clone())
        .await
        .map_err(|e| StartError::Actors(e.to_string()))?;
    engine.registry.set_supervisor(supervisor.get_cell());

    let (shutdown, signal) = watch::channel(false);
    let public_routes = crate::http::public(engine.clone(), signal.clone());
    let admin_routes = crate::http::admin(engine.clone());
    let listeners = vec![
        tokio::spawn(listener::serve(
            http,
            public_routes,
            tls.http.as_ref().map(|(_, a)| a.clone()),
            signal.clone(),
        )),
        tokio::spawn(listener::serve(
            admin,
            admin_routes,
            tls.admin.as_ref().map(|(_, a)| a.clone()),
            signal.clone(),
        )),
    ];
    let chores = vec![
        {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    engine.metrics.sample();
                }
            })
        },
        {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    engine.limiter.sweep();
                    engine.creations.sweep();
                    engine.connects.sweep();
                    engine.auth_failures.sweep();
                    engine.typing.sweep();
                }
            })
        },
        {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(DEDUPE_SWEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    sweep_expired_dedupe(&*engine.store, crate::domain::clock::now_ms()).await;
                }
            })
        },
        {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(UPLOAD_SWEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    match engine
                        .attachments
                        .sweep(crate::domain::clock::now_ms())
                        .await
                    {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "unsent uploads removed"),
                        Err(e) => tracing::warn!(error = %e, "unsent upload sweep failed"),
                    }
                }
            })
        },
    ];
    let mut chores = chores;
    chores.extend(start_dispatcher(&engine, signal.clone()));
    chores.extend(start_retention(&engine));
    let certificates = tls.certificates();
    if !certificates.is_empty() && engine.config.http.tls_reload_check_secs > 0 {
        let every = Duration::from_secs(engine.config.http.tls_reload_check_secs);
        let certificates = certificates.clone();
        chores.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                for c in &certificates {
                    // File reads: small, but not on an async worker.
                    let c = c.clone();
                    let _ = tokio::task::spawn_blocking(move || c.reload_logged()).await;
                }
            }
        }));
    }
    tracing::info!(%http_addr, %admin_addr, https = tls.http.is_some(), admin_https = tls.admin.is_some(), "switchboard started");
    Ok(Server {
        http_addr,
        admin_addr,
        certificates,
        engine,
        shutdown,
        listeners,
        chores,
        supervisor,
        supervisor_done,
    })
}

/// Starts the notification dispatcher when e-mail or webhooks are configured, and says in the log
/// what is on.
fn start_dispatcher(
    engine: &EngineRef,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let n = &engine.notifier;
    if n.email.enabled() {
        tracing::info!(
            delay_secs = n.email.delay_secs,
            "e-mail notifications are on (Brevo)"
        );
    } else {
        tracing::info!("e-mail notifications are off: email.brevo_api_key is not set");
    }
    if n.webhooks.enabled() {
        tracing::info!(url = %n.webhooks.url, "webhooks are on");
    }
    if n.push.enabled() {
        tracing::info!(delay_secs = n.push.delay_secs, "web push is on");
    }
    if !n.enabled() {
        return None;
    }
    let handoff = engine.handoff.lock().ok()?.take()?;
    let deps = crate::notify::dispatch::Deps {
        store: engine.store.clone(),
        registry: engine.registry.clone(),
        notifier: engine.notifier.clone(),
        metrics: engine.metrics.clone(),
        client: crate::notify::dispatch::client(),
    };
    Some(tokio::spawn(crate::notify::dispatch::run(
        deps, handoff, stop,
    )))
}

/// Forgets the `client_msg_id`s of messages older than the dedupe window at `now_ms`.
/// The retention sweeper (`privacy/retention.rs`), unless retention is off. The first sweep runs
/// one period after startup, not during it.
fn start_retention(engine: &EngineRef) -> Option<tokio::task::JoinHandle<()>> {
    let privacy = &engine.config.privacy;
    if privacy.retention_days == 0 || privacy.retention_sweep_secs == 0 {
        return None;
    }
    let every = Duration::from_secs(privacy.retention_sweep_secs);
    let engine = engine.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = crate::privacy::retention::sweep(&engine).await {
                tracing::warn!(error = %e, "retention sweep failed; the next one starts where it stopped");
            }
        }
    }))
}

async fn sweep_expired_dedupe(store: &dyn Store, now_ms: i64) {
    match store.sweep_dedupe(now_ms - DEDUPE_WINDOW_MS).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(swept = n, "expired dedupe entries swept"),
        // An overloaded or failing store is reported where it matters (writes, health); the
        // next tick tries again.
        Err(e) => tracing::warn!(error = %e, "dedupe sweep failed"),
    }
}

/// The listeners' TLS, when configured: each listener's certificates and acceptor.
struct Tls {
    http: Option<(Arc<Certificates>, TlsAcceptor)>,
    admin: Option<(Arc<Certificates>, TlsAcceptor)>,
}

impl Tls {
    fn load(config: &Config) -> Result<Tls, StartError> {
        let one = |listener: &'static str, cert: &std::path::Path, key: &std::path::Path| {
            if cert.as_os_str().is_empty() {
                return Ok(None);
            }
            let certs =
                Certificates::load(listener, cert, key).map_err(|e| ConfigError(e.to_string()))?;
            let acceptor = certs.acceptor().map_err(|e| ConfigError(e.to_string()))?;
            Ok::<_, StartError>(Some((certs, acceptor)))
        };
        Ok(Tls {
            http: one("http", &config.http.tls_cert, &config.http.tls_key)?,
            admin: one("admin", &config.admin.tls_cert, &config.admin.tls_key)?,
        })
    }

    fn certificates(&self) -> Vec<Arc<Certificates>> {
        [&self.http, &self.admin]
            .into_iter()
            .flatten()
            .map(|(c, _)| c.clone())
            .collect()
    }
}

impl Server {
    /// Reads the certificate files again (SIGHUP): new connections get what changed, open ones
    /// keep theirs.
    pub async fn reload_tls(&self) {
        for c in &self.certificates {
            let c = c.clone();
            let _ = tokio::task::spawn_blocking(move || c.reload_logged()).await;
        }
    }

    /// Stops in order: listeners and sockets, then actors. See the module doc.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        let _ = self.shutdown.send(true);
        for l in self.listeners {
            let _ = tokio::time::timeout(GRACE, l).await;
        }
        // Sockets saw the signal and are closing; give their tasks a moment to detach.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.engine.metrics.connections.total() > 0 && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for c in self.chores {
            c.abort();
        }
        self.supervisor
            .stop_children_and_wait(None, Some(ractor::concurrency::Duration::from_secs(5)))
            .await;
        self.supervisor.stop(None);
        let _ = self.supervisor_done.await;
        tracing::info!("stopped");
    }
}

/// Runs until Ctrl-C or SIGTERM, then shuts down.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let server = start(config).await?;
    println!(
        "switchboard listening http={} admin={}",
        server.http_addr, server.admin_addr
    );
    wait_for_signal(&server).await;
    // A second signal while draining means "now": every acknowledged message is already durable,
    // so exiting at once loses nothing a client was told is stored.
    tokio::select! {
        _ = server.shutdown() => {}
        _ = second_signal() => {
            tracing::warn!("second signal while shutting down: exiting now");
            std::process::exit(1);
        }
    }
    Ok(())
}

/// The next Ctrl-C or SIGTERM.
async fn second_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(_) = recv(&mut term) => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The next delivery of a signal that could be registered; never, for one that could not.
#[cfg(unix)]
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits for Ctrl-C or SIGTERM; SIGHUP meanwhile reloads the TLS certificates.
async fn wait_for_signal(server: &Server) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered one by one: without SIGHUP the server still stops gracefully on SIGTERM.
        let mut term = signal(SignalKind::terminate()).ok();
        let mut hup = signal(SignalKind::hangup()).ok();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                Some(_) = recv(&mut term) => return,
                Some(_) = recv(&mut hup) => {
                    tracing::info!("SIGHUP: reloading TLS certificates");
                    server.reload_tls().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = server;
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversation::{ConversationDoc, ConversationRecord, ConversationState};
    use crate::domain::message::{MessageType, StoredMessage};
    use crate::domain::user::ExternalId;
    use crate::domain::Id;
    use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};

    #[tokio::test]
    async fn the_sweep_forgets_client_ids_past_the_window_only() {
        let ext = |s: &str| ExternalId::parse(s).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        let now = 10 * DEDUPE_WINDOW_MS;
        for (id, age) in [(1u64, DEDUPE_WINDOW_MS + 1), (2, DEDUPE_WINDOW_MS - 1_000)] {
            let message = StoredMessage {
                id: Id(id * 100),
                conversation_id: Id(id),
                seq: 1,
                sender_id: ext("c"),
                sender_name: "c".into(),
                message_type: MessageType::Text,
                text: "hi".into(),
                attachments: vec![],
                created_at: now - age,
                client_msg_id: Some("same".into()),
                deleted: false,
            };
            let doc = ConversationDoc {
                record: ConversationRecord {
                    id: Id(id),
                    service_id: ext(&format!("s{id}")),
                    service_title: "S".into(),
                    provider_id: ext("p"),
                    provider_name: "P".into(),
                    customer_id: ext("c"),
                    customer_name: "C".into(),
                    created_at: now - age,
                },
                state: ConversationState::default(),
            };
            store.create_conversation(doc, Some(message)).await.unwrap();
        }
        sweep_expired_dedupe(&*store, now).await;
        let sender = ext("c");
        let found = |id| store.find_by_client_msg_id(Id(id), &sender, "same");
        assert!(found(1).await.unwrap().is_none(), "older than the window");
        assert!(found(2).await.unwrap().is_some(), "inside the window");
    }
}
