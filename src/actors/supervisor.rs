//! The parent of every conversation and session actor.
//!
//! A child that fails (a panic, or an error it cannot recover from such as a failed write) is
//! stopped by ractor and reported here. Its state is whatever the store holds, and everything it
//! acknowledged is in the store, so restarting it means forgetting it: the next request for it
//! starts a fresh actor that loads its state from the store.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::engine::EngineRef;

pub struct Supervisor;

pub enum SupervisorMsg {}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = EngineRef;
    type Arguments = EngineRef;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        engine: EngineRef,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(engine)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        engine: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, err) = event {
            engine.metrics.actor_failures.inc();
            tracing::error!(actor = ?cell.get_name(), error = %err, "actor failed; it restarts from the store on next use");
            engine.registry.forget_actor(cell.get_id());
        }
        Ok(())
    }
}
