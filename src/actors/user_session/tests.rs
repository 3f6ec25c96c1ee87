//! What a connected user's session actor costs while it waits.

use ractor::Actor;

use super::{SessionMsg, SessionState, UserSession};
use crate::domain::user::ExternalId;
use crate::domain::Id;

/// ractor boxes an actor's whole message loop once, for the actor's life, and that box holds the
/// largest `handle` future inline: every idle connected user pays for it (load-tests/RESULTS.md).
const HANDLE_BUDGET_BYTES: usize = 512;

#[tokio::test]
async fn the_session_handler_stays_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::engine::for_tests(dir.path());
    let user = ExternalId::parse("u1").unwrap();
    let (myself, _) = Actor::spawn(None, UserSession, (engine.clone(), user.clone()))
        .await
        .unwrap();
    let mut state = UserSession
        .pre_start(myself.clone(), (engine, user))
        .await
        .unwrap();
    let handling = UserSession.handle(
        myself.clone(),
        SessionMsg::Detach { socket: Id(1) },
        &mut state,
    );
    let size = std::mem::size_of_val(&handling);
    drop(handling);
    let state_size = std::mem::size_of::<SessionState>();
    eprintln!("session handle future: {size} bytes; state {state_size} bytes");
    assert!(
        size <= HANDLE_BUDGET_BYTES,
        "the session's handle future grew to {size} bytes (budget {HANDLE_BUDGET_BYTES})"
    );
    myself.stop(None);
}
