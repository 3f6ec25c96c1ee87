//! Realtime semantics over real sockets: catch-up, unread, typing, presence, receipts,
//! deletes, MessagePack, the compatibility socket, and slow clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Server, Ws};

#[tokio::test]
async fn reconnect_and_sync_yields_exactly_the_missed_messages_in_order() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("sync").await;
    let mut provider = Ws::connect(&s, &p).await;
    let first = provider
        .sees_within("chat_message", Duration::from_millis(300))
        .await;
    assert!(
        first.is_none(),
        "seq 1 was sent before the provider connected"
    );
    drop(provider);
    let mut customer = Ws::connect(&s, &c).await;
    for i in 0..100 {
        customer.send(json!({"type": "chat_message", "conversation_id": id, "text": format!("offline {i}"), "client_msg_id": format!("o{i}")})).await;
    }
    for _ in 0..100 {
        customer.next_of("ack").await;
    }
    let mut provider = Ws::connect(&s, &p).await;
    provider
        .send(json!({"type": "sync", "conversation_id": id, "after_seq": 1, "ref": "s"}))
        .await;
    let mut seqs = Vec::new();
    loop {
        let ev = provider.next().await;
        match ev["type"].as_str() {
            Some("chat_message") => seqs.push(ev["message"]["seq"].as_u64().unwrap()),
            Some("synced") => {
                assert_eq!(ev["last_seq"], 101);
                assert_eq!(ev["ref"], "s");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        seqs,
        (2..=101).collect::<Vec<_>>(),
        "exactly the 100 missed messages, in order, once each"
    );
}

#[tokio::test]
async fn sync_and_frames_for_foreign_or_bad_targets_are_errors() {
    let s = Server::start().await;
    let (c, _p, id) = s.conversation("badsync").await;
    let (_c2, _p2, other) = s.conversation("otherconv").await;
    let mut ws = Ws::connect(&s, &c).await;
    ws.send(json!({"type": "sync", "conversation_id": id, "after_seq": -1, "ref": "neg"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "invalid_sync");
    ws.send(json!({"type": "sync", "conversation_id": id, "after_seq": 1_000_000, "ref": "huge"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "invalid_sync");
    for frame in [
        json!({"type": "sync", "conversation_id": other, "after_seq": 0, "ref": "f1"}),
        json!({"type": "typing_status", "conversation_id": other, "is_typing": true}),
        json!({"type": "mark_read", "conversation_id": other, "ref": "f3"}),
        json!({"type": "chat_message", "conversation_id": other, "text": "hi", "ref": "f4"}),
    ] {
        ws.send(frame.clone()).await;
        let e = ws.next_of("error").await;
        assert_eq!(e["code"], "conversation_not_found", "{frame}");
    }
    // An up_to from another conversation is not a message of this one.
    let (_, page) = s
        .api(
            "GET",
            &format!("/api/v1/conversations/{id}/messages"),
            &c,
            None,
        )
        .await;
    let mine = page["items"][0]["id"].clone();
    ws.send(json!({"type": "mark_read", "conversation_id": id, "up_to": "123456789", "ref": "m"}))
        .await;
    let e = ws.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("message_not_found"), Some("m"))
    );
    ws.send(json!({"type": "delivered", "conversation_id": id, "up_to": mine, "ref": "d"}))
        .await;
    ws.send(json!({"type": "ping", "ref": "still-open"})).await;
    assert_eq!(ws.next_of("pong").await["ref"], "still-open");
    let (_, page) = s
        .api(
            "GET",
            &format!("/api/v1/conversations/{id}/messages"),
            &c,
            None,
        )
        .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "nothing was written"
    );
}

#[tokio::test]
async fn each_new_message_is_followed_by_the_recipients_new_unread_count() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("msgunread").await;
    let mut provider = Ws::connect(&s, &p).await;
    let mut customer = Ws::connect(&s, &c).await;
    for i in 0..5 {
        customer.send(json!({"type": "chat_message", "conversation_id": id, "text": format!("n{i}"), "client_msg_id": format!("mu{i}")})).await;
    }
    // The conversation was opened with one message, so message seq n leaves n unread.
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let ev = provider.next().await;
        match ev["type"].as_str() {
            Some("chat_message") => seen.push(("chat_message", ev["message"]["seq"].as_u64())),
            Some("unread") => {
                assert_eq!(ev["conversation_id"], id.as_str());
                seen.push(("unread", ev["unread_count"].as_u64()));
                assert_eq!(ev["total_unread"], ev["unread_count"], "one conversation");
            }
            _ => {}
        }
    }
    let expected: Vec<_> = (2..=6)
        .flat_map(|n| [("chat_message", Some(n)), ("unread", Some(n))])
        .collect();
    assert_eq!(
        seen, expected,
        "every chat_message comes with the recipient's new unread count right after it"
    );
    // The sender's own socket gets acks, never its own message or an unread count.
    let mut acks = 0;
    while acks < 5 {
        let ev = customer.next().await;
        match ev["type"].as_str() {
            Some("ack") => acks += 1,
            Some(t @ ("chat_message" | "unread")) => panic!("sender got {t}: {ev}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn unread_counts_stay_exact_across_devices_reads_and_restart() {
    let mut s = Server::start().await;
    let (c, p, id) = s.conversation("unread").await;
    let mut desk = Ws::connect(&s, &p).await;
    let mut phone = Ws::connect(&s, &p).await;
    let path = format!("/api/v1/conversations/{id}/messages");
    let mut ids = Vec::new();
    for i in 0..4 {
        let (_, m) = s
            .api("POST", &path, &c, Some(json!({"text": format!("u{i}")})))
            .await;
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    for ws in [&mut desk, &mut phone] {
        let mut last = Value::Null;
        while last["unread_count"] != 5 {
            last = ws.next_of("unread").await;
        }
        assert_eq!(last["total_unread"], 5);
    }
    // Reading on one device updates every device with the absolute count.
    desk.send(json!({"type": "mark_read", "conversation_id": id, "up_to": ids[1]}))
        .await;
    for ws in [&mut desk, &mut phone] {
        let ev = ws.next_of("unread").await;
        assert_eq!(
            (ev["unread_count"].as_u64(), ev["total_unread"].as_u64()),
            (Some(2), Some(2))
        );
    }
    // Reading backwards changes nothing.
    let (_, r) = s
        .api(
            "POST",
            &format!("/api/v1/conversations/{id}/mark-read"),
            &p,
            Some(json!({"up_to": ids[0]})),
        )
        .await;
    assert_eq!(r["unread_count"], 2);
    s.restart();
    let (_, u) = s.api("GET", "/api/v1/unread", &p, None).await;
    assert_eq!(u["total"], 2, "{u}");
    assert_eq!(u["conversations"][0]["unread_count"], 2);
    let (_, m) = s
        .api("POST", &path, &c, Some(json!({"text": "after restart"})))
        .await;
    assert_eq!(m["seq"], 6);
    let (_, conv) = s
        .api("GET", &format!("/api/v1/conversations/{id}"), &p, None)
        .await;
    assert_eq!(conv["unread_count"], 3);
    let (_, r) = s
        .api(
            "POST",
            &format!("/api/v1/conversations/{id}/mark-read"),
            &p,
            None,
        )
        .await;
    assert_eq!(r["unread_count"], 0);
    let (_, u) = s.api("GET", "/api/v1/unread", &p, None).await;
    assert_eq!(u["total"], 0);
    let (_, cu) = s.api("GET", "/api/v1/unread", &c, None).await;
    assert_eq!(
        cu["total"], 0,
        "the customer's own messages are never unread for them"
    );
}

#[tokio::test]
async fn typing_is_relayed_to_the_other_side_and_expires_by_itself() {
    let s = Server::start_with(&[("SWITCHBOARD_REALTIME__TYPING_TTL_SECS", "1")]).await;
    let (c, p, id) = s.conversation("typing").await;
    let mut customer = Ws::connect(&s, &c).await;
    let mut provider = Ws::connect(&s, &p).await;
    customer
        .send(json!({"type": "typing_status", "conversation_id": id, "is_typing": true}))
        .await;
    let on = provider.next_of("typing_status").await;
    assert_eq!(
        (on["user_id"].as_str(), on["is_typing"].as_bool()),
        (Some("cust-typing"), Some(true))
    );
    let off = provider.next_of("typing_status").await;
    assert_eq!(off["is_typing"], false, "expired without a refresh");
    assert!(
        customer
            .sees_within("typing_status", Duration::from_millis(300))
            .await
            .is_none(),
        "typing is not echoed to the typist"
    );
    // Over HTTP too.
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/v1/conversations/{id}/typing"),
            &p,
            Some(json!({"is_typing": true})),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        customer.next_of("typing_status").await["user_id"],
        "prov-typing"
    );
}

#[tokio::test]
async fn presence_waits_out_the_grace_period() {
    let s = Server::start_with(&[("SWITCHBOARD_REALTIME__PRESENCE_GRACE_SECS", "1")]).await;
    let (c, p, _id) = s.conversation("presence").await;
    let mut customer = Ws::connect(&s, &c).await;
    let provider = Ws::connect(&s, &p).await;
    let on = customer.next_of("presence").await;
    assert_eq!(
        (on["user_id"].as_str(), on["online"].as_bool()),
        (Some("prov-presence"), Some(true))
    );
    // A reload inside the grace period: no presence change at all.
    drop(provider);
    let provider = Ws::connect(&s, &p).await;
    assert!(
        customer
            .sees_within("presence", Duration::from_millis(1500))
            .await
            .is_none(),
        "no flap on reload"
    );
    drop(provider);
    let off = customer.next_of("presence").await;
    assert_eq!(off["online"], false);
    assert!(off["last_seen_at"].as_str().unwrap().ends_with('Z'));
    let (_, card) = s
        .api("GET", "/api/v1/services/svc-presence/contact", &c, None)
        .await;
    assert_eq!(card["provider"]["online"], false);
    assert_eq!(card["provider"]["last_seen_at"], off["last_seen_at"]);
    drop(customer);
    let mut s = s;
    s.restart();
    let (_, card) = s
        .api("GET", "/api/v1/services/svc-presence/contact", &c, None)
        .await;
    assert_eq!(
        card["provider"]["last_seen_at"], off["last_seen_at"],
        "last_seen_at survives a restart"
    );
}

#[tokio::test]
async fn a_socket_without_a_token_must_authenticate_in_time() {
    let s = Server::start_with(&[("SWITCHBOARD_REALTIME__AUTH_TIMEOUT_SECS", "1")]).await;
    let (stream, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    let mut ws = Ws {
        stream,
        ready: Value::Null,
    };
    let e = ws.next().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("auth_timeout"))
    );
    assert_eq!(ws.close_code().await, Some(1008));
}

#[tokio::test]
async fn receipts_only_move_forward_and_reach_every_device_of_the_sender() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("receipts").await;
    let mut phone = Ws::connect(&s, &c).await;
    let mut laptop = Ws::connect(&s, &c).await;
    let mut provider = Ws::connect(&s, &p).await;
    let path = format!("/api/v1/conversations/{id}/messages");
    let mut ids = vec![];
    for i in 0..2 {
        let (_, m) = s
            .api("POST", &path, &c, Some(json!({"text": format!("r{i}")})))
            .await;
        ids.push(m["id"].clone());
    }
    // Delivered out of order: the later watermark first, then an older one that must not go back.
    provider
        .send(json!({"type": "delivered", "conversation_id": id, "up_to": ids[1]}))
        .await;
    provider
        .send(json!({"type": "delivered", "conversation_id": id, "up_to": ids[0]}))
        .await;
    for ws in [&mut phone, &mut laptop] {
        let r = ws.next_of("receipt").await;
        assert_eq!(
            (r["status"].as_str(), r["up_to_seq"].as_u64()),
            (Some("delivered"), Some(3))
        );
        assert_eq!(r["user_id"], "prov-receipts");
    }
    provider
        .send(json!({"type": "mark_read", "conversation_id": id, "up_to": ids[0]}))
        .await;
    let r = phone.next_of("receipt").await;
    assert_eq!(
        (r["status"].as_str(), r["up_to_seq"].as_u64()),
        (Some("read"), Some(2)),
        "no second delivered receipt for the older watermark"
    );
    let (_, page) = s.api("GET", &path, &c, None).await;
    let statuses: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["delivered", "read", "read"]);
}

#[tokio::test]
async fn delete_for_me_and_for_everyone() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("delete").await;
    let mut customer = Ws::connect(&s, &c).await;
    let mut provider = Ws::connect(&s, &p).await;
    let path = format!("/api/v1/conversations/{id}/messages");
    let (_, m) = s
        .api("POST", &path, &c, Some(json!({"text": "oops"})))
        .await;
    let mid = m["id"].as_str().unwrap().to_string();
    let (st, e) = s
        .api(
            "DELETE",
            &format!("/api/v1/messages/{mid}?for=everyone"),
            &p,
            None,
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("not_sender")));
    let stranger = s.token("nosy", "customer").await;
    let (st, e) = s
        .api(
            "DELETE",
            &format!("/api/v1/messages/{mid}"),
            &stranger,
            None,
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (404, Some("message_not_found"))
    );

    let (st, _) = s
        .api("DELETE", &format!("/api/v1/messages/{mid}"), &p, None)
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        provider.next_of("message_deleted").await["message_id"],
        mid.as_str()
    );
    let (_, pp) = s.api("GET", &path, &p, None).await;
    assert!(
        pp["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] != mid.as_str()),
        "hidden for the provider"
    );
    let (_, cp) = s.api("GET", &path, &c, None).await;
    assert_eq!(
        cp["items"][0]["text"], "oops",
        "still there for the customer"
    );

    let (st, _) = s
        .api(
            "DELETE",
            &format!("/api/v1/messages/{mid}?for=everyone"),
            &c,
            None,
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        customer.next_of("message_deleted").await["message_id"],
        mid.as_str()
    );
    let (_, cp) = s.api("GET", &path, &c, None).await;
    let tomb = &cp["items"][0];
    assert_eq!(
        (
            tomb["text"].as_str(),
            tomb["message_type"].as_str(),
            tomb["deleted"].as_bool()
        ),
        (Some(""), Some("system"), Some(true))
    );
    assert_eq!(tomb["seq"], 2, "a tombstone keeps its seq");
}

#[tokio::test]
async fn json_and_messagepack_sockets_see_the_same_events() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("msgpack").await;
    let mut json_side = Ws::connect(&s, &p).await;
    let mut mp = Ws::connect_url(&s.ws_url(&format!("/ws?access_token={p}&format=msgpack"))).await;
    assert_eq!(mp.ready["type"], "ready");
    let mut customer = Ws::connect(&s, &c).await;
    customer.send(json!({"type": "chat_message", "conversation_id": id, "text": "both formats", "ref": "b"})).await;
    let a = json_side.next_of("chat_message").await;
    let b = mp.next_of("chat_message").await;
    assert_eq!(a, b, "the same event, field for field");
    // Binary frames in: a MessagePack chat_message gets a MessagePack ack.
    let frame = rmp_serde::to_vec_named(&json!({"type": "chat_message", "conversation_id": id, "text": "from msgpack", "ref": "m1"})).unwrap();
    mp.stream.send(Message::binary(frame)).await.unwrap();
    let ack = mp.next_of("ack").await;
    assert_eq!(
        (ack["ref"].as_str(), ack["message"]["text"].as_str()),
        (Some("m1"), Some("from msgpack"))
    );
    mp.stream
        .send(Message::binary(vec![0xc1u8, 0x00]))
        .await
        .unwrap();
    assert_eq!(mp.next_of("error").await["code"], "malformed_frame");
    let raw = tokio::time::timeout(Duration::from_secs(5), mp.stream.next()).await;
    assert!(
        raw.is_err() || matches!(raw, Ok(Some(Ok(_)))),
        "socket stays open after a bad frame"
    );
}

#[tokio::test]
async fn compatibility_socket_round_trips_with_ws() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("compat").await;
    let url = s.ws_url(&format!("/ws/chat/{id}/?access_token={c}"));
    let (mut old, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut provider = Ws::connect(&s, &p).await;
    async fn read_compat(
        old: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        kind: &str,
    ) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), old.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
        }
    }
    old.send(Message::text(
        json!({"type": "chat_message", "message": "from the old hook"}).to_string(),
    ))
    .await
    .unwrap();
    let got = provider.next_of("chat_message").await;
    assert_eq!(got["message"]["text"], "from the old hook");
    let echo = read_compat(&mut old, "chat_message").await;
    assert_eq!(
        echo["message"]["text"], "from the old hook",
        "the old hook sees its own message come back"
    );
    provider
        .send(json!({"type": "chat_message", "conversation_id": id, "text": "answer"}))
        .await;
    let m = read_compat(&mut old, "chat_message").await;
    let keys: Vec<&String> = m["message"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "exactly the old shape: {m}");
    for k in [
        "id",
        "text",
        "sender_id",
        "sender_name",
        "created_at",
        "message_type",
    ] {
        assert!(m["message"].get(k).is_some(), "{k} missing: {m}");
    }
    assert_eq!(m["message"]["text"], "answer");
    old.send(Message::text(
        json!({"type": "typing_status", "is_typing": true}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(provider.next_of("typing_status").await["is_typing"], true);
    let stranger = s.token("peeker", "customer").await;
    let err = tokio_tungstenite::connect_async(
        s.ws_url(&format!("/ws/chat/{id}/?access_token={stranger}")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, tokio_tungstenite::tungstenite::Error::Http(ref r) if r.status().as_u16() == 404),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_by_the_queue_bound() {
    let s = Server::start_with(&[
        ("SWITCHBOARD_LIMITS__SOCKET_QUEUE", "4"),
        ("SWITCHBOARD_LIMITS__MAX_TEXT_CHARS", "30000"),
    ])
    .await;
    let (c, p, id) = s.conversation("slow").await;
    let slow = Ws::connect(&s, &p).await; // never read again
    let mut customer = Ws::connect(&s, &c).await;
    let text = "z".repeat(30_000);
    // Enough to fill the kernel's socket buffers many times over, then the 4-event queue. The
    // sender waits for each ack, so its own queue never holds more than one event.
    let mut closed = false;
    for round in 0..40 {
        for i in 0..50 {
            customer.send(json!({"type": "chat_message", "conversation_id": id, "text": text, "ref": format!("{round}-{i}")})).await;
            customer.next_of("ack").await;
        }
        let metrics = reqwest::Client::new()
            .get(format!("http://{}/metrics", s.admin))
            .bearer_auth(crate::harness::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("switchboard_slow_socket_closes_total 1") {
            closed = true;
            break;
        }
    }
    assert!(closed, "the provider's socket was closed for being slow");
    // The fast socket was not disturbed.
    customer.send(json!({"type": "ping", "ref": "alive"})).await;
    assert_eq!(customer.next_of("pong").await["ref"], "alive");
    drop(slow);
}
