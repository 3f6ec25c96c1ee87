//! Every call the simulation makes into the engine's API, and nothing else: when a signature
//! changes (the conversation actor is being rewritten), this is the one file to adapt.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use switchboard::actors::conversation::{ConversationMsg, SendRequest};
use switchboard::actors::supervisor::{Supervisor, SupervisorMsg};
use switchboard::auth::Authenticator;
use switchboard::config::Config;
use switchboard::domain::user::ExternalId;
use switchboard::domain::Id;
use switchboard::engine::{Engine, EngineRef};
use switchboard::storage::Store;
use tokio::task::JoinHandle;

/// One run of the process: an engine and its supervisor over a store handle.
pub struct Incarnation {
    pub engine: EngineRef,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: JoinHandle<()>,
}

/// What a successful send answered.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: Id,
    pub seq: u64,
    pub sender: ExternalId,
    pub client_msg_id: Option<String>,
    pub duplicate: bool,
}

pub fn config(idle_secs: u64) -> Config {
    let mut config = Config::default();
    config.realtime.conversation_idle_secs = idle_secs;
    // The simulated disk holds the messages; an index on the real one would be shared by every
    // schedule (and its single writer lock refused to the second).
    config.search.enabled = false;
    // Nor do the analytics' timed writes belong in the simulated schedules.
    config.analytics.enabled = false;
    config
}

/// Wires an engine the way `app::start` does, minus the listeners and chores.
pub async fn start(config: Config, store: Arc<dyn Store>) -> Incarnation {
    let auth = Authenticator::new(&config.auth).expect("default auth config");
    // The simulation uploads nothing; attachment bytes would go to the temporary directory.
    let objects = object_store::local::LocalFileSystem::new_with_prefix(std::env::temp_dir())
        .expect("temporary directory");
    let engine = Engine::new(config, store, auth, Arc::new(objects)).expect("default config");
    let (supervisor, supervisor_done) = Actor::spawn(None, Supervisor, engine.clone())
        .await
        .expect("supervisor starts");
    engine.registry.set_supervisor(supervisor.get_cell());
    Incarnation {
        engine,
        supervisor,
        supervisor_done,
    }
}

/// Stops every actor of an incarnation and waits for the supervisor to end.
pub async fn stop(inc: Incarnation) {
    inc.supervisor
        .stop_children_and_wait(None, Some(Duration::from_secs(5)))
        .await;
    inc.supervisor.stop(None);
    let _ = inc.supervisor_done.await;
}

pub async fn send(
    engine: &EngineRef,
    conversation: Id,
    sender: ExternalId,
    client_msg_id: Option<String>,
    text: String,
) -> Result<Sent, String> {
    let outcome = engine
        .ask(conversation, |reply| {
            ConversationMsg::Send(SendRequest {
                sender_name: sender.to_string(),
                sender,
                text,
                attachments: Vec::new(),
                flags: Vec::new(),
                client_msg_id,
                origin: None,
                reply,
                received: std::time::Instant::now(),
            })
        })
        .await
        .map_err(|e| e.to_string())?;
    let m = outcome.message;
    Ok(Sent {
        id: m.id,
        seq: m.seq,
        sender: m.sender_id,
        client_msg_id: m.client_msg_id,
        duplicate: outcome.duplicate,
    })
}

/// Answers the reader's unread count after the read.
pub async fn mark_read(
    engine: &EngineRef,
    conversation: Id,
    user: ExternalId,
    up_to: Option<Id>,
) -> Result<u64, String> {
    engine
        .ask(conversation, |reply| ConversationMsg::MarkRead {
            user,
            up_to,
            reply,
        })
        .await
        .map(|s| s.unread_count)
        .map_err(|e| e.to_string())
}

/// Conversation actors the registry knows as running.
pub fn running_actors(inc: &Incarnation) -> usize {
    inc.engine.registry.conversation_actors()
}

/// Stops one running child actor (an actor failure: a panic, say), picked by `pick`. The next
/// request starts a fresh actor from the store. Answers whether there was one to stop.
pub fn stop_one_actor(inc: &Incarnation, pick: usize) -> bool {
    let mut children = inc.supervisor.get_children();
    // ractor keeps children in a HashMap: sort by id (creation order) so a seed reproduces.
    children.sort_by_key(|c| c.get_id());
    if children.is_empty() {
        return false;
    }
    children[pick % children.len()].stop(Some("killed by the simulation".into()));
    true
}
