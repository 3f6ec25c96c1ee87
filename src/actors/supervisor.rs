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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ractor::{Actor, ActorProcessingErr, ActorRef};

    use super::Supervisor;

    /// A child that fails on its first message, as a panicking handler would.
    struct Failing;

    impl Actor for Failing {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<()>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<()>,
            _msg: (),
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            Err("the handler failed".into())
        }
    }

    /// Supervision events reach the supervisor on its message port (the vendored ractor patch,
    /// vendor/ractor/SWITCHBOARD-PATCH.md): a failed child is counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_child_is_reported_to_the_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::engine::for_tests(dir.path());
        let (supervisor, _) = Actor::spawn(None, Supervisor, engine.clone())
            .await
            .unwrap();
        let (child, child_done) = Actor::spawn_linked(None, Failing, (), supervisor.get_cell())
            .await
            .unwrap();
        child.send_message(()).unwrap();
        child_done.await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while engine.metrics.actor_failures.get() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the supervisor never heard of the failure"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(engine.metrics.actor_failures.get(), 1);
        supervisor.stop(None);
    }
}
