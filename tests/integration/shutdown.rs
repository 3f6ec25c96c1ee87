//! Graceful shutdown under load: SIGTERM while 20 clients send. Every client sees 1001, the
//! process exits 0, and every message that was acknowledged is in history after a restart.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::harness::{Server, Ws};

/// What one client saw: the ids of its acknowledged messages and the close code.
struct Seen {
    acked: Vec<String>,
    close: Option<u16>,
}

/// Sends messages one after another (each waits for its ack) until the server closes.
async fn sender(mut ws: Ws, conversation: String, who: usize) -> Seen {
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        assert!(Instant::now() < deadline, "client {who}: never closed");
        let frame = json!({
            "type": "chat_message",
            "conversation_id": conversation,
            "text": format!("client {who} message {i}"),
            "client_msg_id": format!("sd-{who}-{i}"),
            "ref": format!("r{i}"),
        });
        // A send into a closing socket fails; the close frame is still there to read.
        let _ = ws.stream.send(Message::text(frame.to_string())).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON event");
                    if v["type"] == "ack" && v["ref"] == format!("r{i}") {
                        acked.push(v["message"]["id"].as_str().unwrap().to_string());
                        break;
                    }
                    if v["type"] == "error" && v["ref"] == format!("r{i}") {
                        break;
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Seen {
                        acked,
                        close: frame.map(|f| f.code.into()),
                    };
                }
                Ok(Some(Ok(_))) => {}
                Ok(None) | Ok(Some(Err(_))) => return Seen { acked, close: None },
                Err(_) => panic!("client {who}: nothing for 10 s"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn sigterm_under_load_loses_no_acknowledged_message_and_closes_with_1001() {
    let mut server = Server::start().await;
    let mut conversations = Vec::new();
    let mut clients = Vec::new();
    for n in 0..10 {
        let (customer, provider, id) = server.conversation(&format!("shutdown-{n}")).await;
        for token in [&customer, &provider] {
            clients.push((Ws::connect(&server, token).await, id.clone()));
        }
        conversations.push((id, customer));
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(who, (ws, id))| tokio::spawn(sender(ws, id, who)))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.terminate();
    let mut acked = HashSet::new();
    for (who, t) in tasks.into_iter().enumerate() {
        let seen = t.await.expect("client task");
        assert_eq!(
            seen.close,
            Some(1001),
            "client {who} is told the server is going away"
        );
        assert!(!seen.acked.is_empty(), "client {who} sent under load");
        acked.extend(seen.acked);
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = server.wait_exit();
        (server, code)
    })
    .await
    .expect("wait");
    let (mut server, code) = code;
    assert_eq!(code, Some(0), "a graceful stop exits 0");

    server.restart();
    let mut stored = HashSet::new();
    for (id, customer) in &conversations {
        let (status, page) = server
            .api(
                "GET",
                &format!("/api/v1/conversations/{id}/messages?limit=100"),
                customer,
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() < 100, "one page holds the conversation");
        stored.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_string()));
    }
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost: {lost:?}",
        lost.len()
    );
}
