//! What an open socket's task costs while it waits: every idle connection holds one.

use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

use super::{pump, ConnectionGauge, Flavor};
use crate::domain::user::{ExternalId, Principal, Role};
use crate::domain::Id;
use crate::wire::WireFormat;

/// The pump's future is the socket task's state for as long as the socket is open, so its size
/// is paid by every idle connection (load-tests/RESULTS.md, memory per idle user).
/// Measured in a debug build (what `cargo test` runs): 2,288 bytes before the rare awaits (a
/// write, a ping, the closing handshake) were boxed, 1,824 after.
const PUMP_BUDGET_BYTES: usize = 1900;

#[tokio::test]
async fn an_open_sockets_task_stays_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::engine::for_tests(dir.path());
    let (server, _client) = tokio::io::duplex(1024);
    let ws = WebSocketStream::from_raw_socket(server, WsRole::Server, None).await;
    let principal = Principal {
        user_id: ExternalId::parse("u1").unwrap(),
        role: Role::Customer,
        name: "U".into(),
        email: None,
    };
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let gauge = ConnectionGauge::new(&engine, WireFormat::Json);
    let task = pump(
        ws,
        engine.clone(),
        Flavor::Standard(WireFormat::Json),
        principal,
        i64::MAX,
        Id(1),
        shutdown,
        gauge,
    );
    let size = std::mem::size_of_val(&task);
    eprintln!("pump future: {size} bytes");
    assert!(
        size <= PUMP_BUDGET_BYTES,
        "the socket task's state grew to {size} bytes (budget {PUMP_BUDGET_BYTES})"
    );
}
