//! `sync` replays under live traffic, and presence to peers the session learned while running.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Server, Ws};

/// Messages written while the provider is offline (plus the conversation's first one, seq 1).
const BACKLOG: u64 = 2000;
/// Messages the customer sends while the provider replays the backlog.
const LIVE: u64 = 200;

/// Sends `n` messages from `ws`, `window` at a time, waiting for each window's acks.
async fn send_backlog(ws: &mut Ws, id: &str, n: u64, text: &str) {
    // Below the 32-event queue: the acks of one window must fit while the sender is still sending.
    let window = 16;
    let mut sent = 0;
    while sent < n {
        let batch = window.min(n - sent);
        for i in sent..sent + batch {
            ws.send(json!({"type": "chat_message", "conversation_id": id, "text": text, "client_msg_id": format!("b{i}")})).await;
        }
        for _ in 0..batch {
            ws.next_of("ack").await;
        }
        sent += batch;
    }
}

/// The next frame as JSON, or `Err` with the close frame if the server closed the socket.
async fn next_or_close(ws: &mut Ws) -> Result<Value, String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.stream.next())
            .await
            .map_err(|_| "no event within 20 s".to_string())?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                return Ok(serde_json::from_str(&t).expect("JSON event"));
            }
            Some(Ok(Message::Close(c))) => return Err(format!("socket closed: {c:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("socket failed: {e}")),
            None => return Err("socket ended".into()),
        }
    }
}

/// The queue is made small (32 events) so that the replay keeps it full: on the old code, where a
/// replay waited for every free slot, the first live message that found it full closed the
/// reader with 1013 although it was reading as fast as it could.
#[tokio::test]
async fn a_reader_syncing_a_backlog_under_live_traffic_gets_everything_and_stays_open() {
    let s = Server::start_with(&[("SWITCHBOARD_LIMITS__SOCKET_QUEUE", "32")]).await;
    let (c, p, id) = s.conversation("replay-live").await;
    let text = "r".repeat(1000);
    let mut customer = Ws::connect(&s, &c).await;
    send_backlog(&mut customer, &id, BACKLOG, &text).await;

    // The customer keeps talking at a steady pace, starting before the provider syncs.
    let live_id = id.clone();
    let live_text = text.clone();
    let live = tokio::spawn(async move {
        for i in 0..LIVE {
            customer.send(json!({"type": "chat_message", "conversation_id": live_id, "text": live_text, "client_msg_id": format!("l{i}")})).await;
            customer.next_of("ack").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        customer
    });

    let mut provider = Ws::connect(&s, &p).await;
    provider
        .send(json!({"type": "sync", "conversation_id": id, "after_seq": 0, "ref": "s"}))
        .await;
    let total = 1 + BACKLOG + LIVE;
    let mut seen = BTreeSet::new();
    let mut synced = None;
    while synced.is_none() || (seen.len() as u64) < total {
        let ev = match next_or_close(&mut provider).await {
            Ok(ev) => ev,
            Err(e) => panic!(
                "the provider read normally and must stay open; got {e} after {} of {total} messages",
                seen.len()
            ),
        };
        match ev["type"].as_str() {
            Some("chat_message") => {
                let seq = ev["message"]["seq"].as_u64().expect("seq");
                seen.insert(seq);
            }
            Some("synced") => {
                assert_eq!(ev["ref"], "s");
                synced = ev["last_seq"].as_u64();
            }
            Some("error") => panic!("sync failed: {ev}"),
            _ => {}
        }
    }
    let last = synced.expect("synced");
    assert!(
        (1 + BACKLOG..=total).contains(&last),
        "synced covers the backlog: {last}"
    );
    assert_eq!(
        seen,
        (1..=total).collect::<BTreeSet<_>>(),
        "every seq, replayed or live"
    );
    live.await.expect("live sender finished");
}

/// A peer whose conversation was created after the session started is still told when the user
/// goes offline: the session learns its peers from the events it relays.
#[tokio::test]
async fn a_peer_from_a_conversation_created_after_connect_gets_offline_presence() {
    let s = Server::start_with(&[("SWITCHBOARD_REALTIME__PRESENCE_GRACE_SECS", "1")]).await;
    s.service("svc-late", "prov-late").await;
    let p = s.token("prov-late", "provider").await;
    let c = s.token("cust-late", "customer").await;
    let provider = Ws::connect(&s, &p).await;
    let mut customer = Ws::connect(&s, &c).await;
    let (status, body) = s
        .api(
            "POST",
            "/api/v1/conversations",
            &c,
            Some(json!({"service_id": "svc-late", "initial_message": "hello"})),
        )
        .await;
    assert_eq!(status, 201, "create conversation: {body}");
    // Give the provider's session the first message before it goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(provider);
    let off = customer
        .sees_within("presence", Duration::from_secs(5))
        .await
        .expect("the provider's offline presence reaches the peer of a conversation created after it connected");
    assert_eq!(
        (off["user_id"].as_str(), off["online"].as_bool()),
        (Some("prov-late"), Some(false)),
        "the provider's offline presence reaches the new peer: {off}"
    );
}

/// The reserve a replay leaves is for a client that reads: one that asks for a large backlog and
/// then reads nothing is still closed with 1013, by the queue bound, while live messages arrive.
#[tokio::test]
async fn a_client_that_syncs_and_never_reads_is_still_closed_with_1013() {
    let s = Server::start_with(&[
        ("SWITCHBOARD_LIMITS__SOCKET_QUEUE", "32"),
        ("SWITCHBOARD_LIMITS__MAX_TEXT_CHARS", "20000"),
    ])
    .await;
    let (c, p, id) = s.conversation("replay-stuck").await;
    // More than the kernel's socket buffers hold, so the server's writes to the reader block.
    let text = "z".repeat(16_000);
    let mut customer = Ws::connect(&s, &c).await;
    send_backlog(&mut customer, &id, 400, &text).await;
    let mut provider = Ws::connect(&s, &p).await;
    provider
        .send(json!({"type": "sync", "conversation_id": id, "after_seq": 0, "ref": "s"}))
        .await;
    let mut closed = false;
    for i in 0..300 {
        customer.send(json!({"type": "chat_message", "conversation_id": id, "text": "live", "client_msg_id": format!("l{i}")})).await;
        customer.next_of("ack").await;
        if i % 10 == 9 && slow_closes(&s).await >= 1 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the reader that never reads was closed as slow");
    assert_eq!(provider.close_code().await, Some(1013));
}

async fn slow_closes(s: &Server) -> u64 {
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", s.admin))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_slow_socket_closes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
