//! A client socket: connect, wait for `ready`, and read only the fields the figures need.

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The parts of a server event the generator looks at, borrowed from the frame (no copies).
#[derive(Deserialize)]
pub struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    #[serde(default, borrow)]
    pub message: Option<EventMessage<'a>>,
    #[serde(default)]
    pub last_seq: Option<u64>,
}

#[derive(Deserialize)]
pub struct EventMessage<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub text: &'a str,
}

pub fn parse(msg: &Message) -> Option<Event<'_>> {
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
        _ => None,
    }
}

/// Bytes a client socket reads at once. tungstenite's default (128 KiB) is zero-filled before
/// every read: with thousands of sockets that memset was a quarter of the generator's CPU, taken
/// from the server it measures. Chat events are small; larger frames still arrive whole.
const READ_BUFFER: usize = 4096;

/// Connects and waits for `ready` (10 s at most).
pub async fn connect(url: &str) -> Result<Ws, String> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut ws, _) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(url, Some(config), false),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect: {e}"))?;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "no ready within 10 s".to_string())?
            .ok_or("closed before ready")?
            .map_err(|e| format!("read: {e}"))?;
        if let Some(ev) = parse(&msg) {
            if ev.kind == "ready" {
                return Ok(ws);
            }
        }
    }
}
