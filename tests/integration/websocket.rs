//! The `/ws` socket: authentication, frames, errors that keep the socket open.

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Server, Ws};

#[tokio::test]
async fn invalid_token_at_upgrade_is_401_without_upgrade() {
    let s = Server::start().await;
    let err = tokio_tungstenite::connect_async(s.ws_url("/ws?access_token=garbage"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => {
            assert_eq!(res.status().as_u16(), 401);
            let body: serde_json::Value =
                serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "invalid_token");
        }
        other => panic!("expected HTTP 401, got {other:?}"),
    }
}

#[tokio::test]
async fn auth_frame_then_ready_and_bad_auth_frame_closes_1008() {
    let s = Server::start().await;
    let t = s.token("u-auth", "customer").await;
    let (mut stream, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    stream
        .send(Message::text(
            json!({"type": "auth", "token": t}).to_string(),
        ))
        .await
        .unwrap();
    let mut ws = Ws {
        stream,
        ready: json!(null),
    };
    let ready = ws.next().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["user_id"], "u-auth");

    let (mut stream, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    stream
        .send(Message::text(
            json!({"type": "auth", "token": "forged"}).to_string(),
        ))
        .await
        .unwrap();
    let mut ws = Ws {
        stream,
        ready: json!(null),
    };
    let e = ws.next().await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["code"], "invalid_token");
    assert_eq!(ws.close_code().await, Some(1008));
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_socket_stays_open() {
    let s = Server::start().await;
    let (c, _p, id) = s.conversation("frames").await;
    let mut ws = Ws::connect(&s, &c).await;
    ws.stream.send(Message::text("{not json")).await.unwrap();
    assert_eq!(ws.next_of("error").await["code"], "malformed_frame");
    ws.send(json!({"type": "teleport", "ref": "t1"})).await;
    let e = ws.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unknown_type"), Some("t1"))
    );
    ws.send(json!({"type": "chat_message", "conversation_id": id, "text": 42, "ref": "t2"}))
        .await;
    let e = ws.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("invalid_frame"), Some("t2"))
    );
    ws.send(json!({"type": "chat_message", "conversation_id": "12345", "text": "hi", "ref": "t3"}))
        .await;
    let e = ws.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("conversation_not_found"), Some("t3"))
    );
    ws.send(json!({"type": "chat_message", "conversation_id": id, "text": "", "ref": "t4"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "text_required");
    ws.send(json!({"type": "ping", "ref": "p"})).await;
    let pong = ws.next_of("pong").await;
    assert_eq!(pong["ref"], "p");
    ws.send(json!({"type": "ping"})).await;
    let pong = ws.next_of("pong").await;
    assert!(
        pong.get("ref").is_none(),
        "ref is absent when not sent: {pong}"
    );
    // Still open and working: a numeric conversation id is accepted too.
    let numeric: u64 = id.parse().unwrap();
    ws.send(json!({"type": "chat_message", "conversation_id": numeric, "text": "still here", "ref": "ok"})).await;
    let ack = ws.next_of("ack").await;
    assert_eq!(ack["message"]["conversation_id"], id.as_str());
}

#[tokio::test]
async fn sender_gets_ack_and_its_other_devices_get_the_message() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("devices").await;
    let mut phone = Ws::connect(&s, &c).await;
    let mut laptop = Ws::connect(&s, &c).await;
    let mut provider = Ws::connect(&s, &p).await;
    phone.send(json!({"type": "chat_message", "conversation_id": id, "text": "from phone", "ref": "a"})).await;
    let ack = phone.next_of("ack").await;
    let echo = laptop.next_of("chat_message").await;
    let got = provider.next_of("chat_message").await;
    assert_eq!(echo["message"]["id"], ack["message"]["id"]);
    assert_eq!(got["message"]["id"], ack["message"]["id"]);
    // The sending socket gets the ack, not a copy: the next thing it sees is the pong. The
    // provider's `presence` (it connected after the phone) travels on its own path and may come
    // at any point, so it is the one event passed over.
    phone.send(json!({"type": "ping", "ref": "after"})).await;
    let mut next = phone.next().await;
    while next["type"] == "presence" {
        next = phone.next().await;
    }
    assert_eq!(
        next["type"], "pong",
        "no chat_message copy on the sending socket: {next}"
    );
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let s = Server::start().await;
    let t = s.token("u-big", "customer").await;
    let mut ws = Ws::connect(&s, &t).await;
    let big = "x".repeat(70 * 1024);
    let _ = ws
        .stream
        .send(Message::text(
            json!({"type": "ping", "ref": big}).to_string(),
        ))
        .await;
    assert_eq!(ws.close_code().await, Some(1009));
}

/// A socket quiet for a whole interval is pinged; one that answers (tungstenite does on its next
/// read, as browsers do) stays open, and one that answers nothing is dropped at the next tick.
/// The ping and the token's expiry share one timer, so a timer not re-armed after a ping would
/// drop the answering client too.
#[tokio::test]
async fn a_quiet_socket_is_pinged_and_dropped_only_if_it_never_answers() {
    use futures_util::StreamExt;
    let s = Server::start_with(&[("SWITCHBOARD_REALTIME__PING_INTERVAL_SECS", "1")]).await;
    let mut answering = Ws::connect(&s, &s.token("ping-answers", "customer").await).await;
    let mut silent = Ws::connect(&s, &s.token("ping-silent", "customer").await).await;

    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(4500);
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, answering.stream.next()).await {
        match frame.expect("socket open").expect("frame") {
            Message::Ping(_) => pings += 1,
            Message::Close(c) => panic!("an answering client was dropped: {c:?}"),
            _ => {}
        }
    }
    assert!(pings >= 1, "a quiet client is pinged");
    answering
        .send(json!({"type": "ping", "ref": "still-here"}))
        .await;
    assert_eq!(answering.next_of("pong").await["ref"], "still-here");

    // The silent client read nothing for 4.5 s, so it answered no ping: the server closed it.
    // (Reading now would answer pings, so a socket still open would not close and this fails.)
    assert_eq!(silent.close_code().await, None, "dropped without a code");
}
