//! Moderation over the real server: the default rules catch contact details, blocked words are
//! refused on both transports and nothing is stored, masks change what is stored, a classifier
//! that is down never loses a message, participants flag, operators approve and remove.

use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{Server, Ws};

async fn history(server: &Server, token: &str, conv: &str) -> Vec<Value> {
    let (status, page) = server
        .api(
            "GET",
            &format!("/api/v1/conversations/{conv}/messages"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn queue(server: &Server) -> Vec<Value> {
    let (status, page) = server
        .admin_call("GET", "/admin/v1/moderation/queue", None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn send(server: &Server, token: &str, conv: &str, text: &str) -> (u16, Value) {
    server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            token,
            Some(json!({"text": text})),
        )
        .await
}

/// The queue entry of a message, once it is there (it is written right after the message).
async fn queued(server: &Server, message_id: &str) -> Value {
    for _ in 0..50 {
        if let Some(e) = queue(server)
            .await
            .into_iter()
            .find(|e| e["message_id"] == message_id)
        {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {message_id} never reached the moderation queue");
}

#[tokio::test]
async fn contact_details_are_flagged_by_default_and_delivered_as_typed() {
    let server = Server::start().await;
    let (c, p, conv) = server.conversation("mod-default").await;
    let cases = [
        ("call me on +44 20 7946 0958 tonight", "phone_number"),
        ("write to jane.doe@example.org", "email_address"),
        ("see www.cheaper-elsewhere.com", "url"),
        ("whatsapp me, it's easier", "messenger_handle"),
        ("john at gmail dot com", "email_address"),
    ];
    for (text, rule) in cases {
        let (status, m) = send(&server, &c, &conv, text).await;
        assert_eq!(status, 201, "{text}: {m}");
        assert_eq!(m["text"], text, "flag keeps the text as typed");
        let entry = queued(&server, m["id"].as_str().unwrap()).await;
        let reasons: Vec<&str> = entry["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reason"].as_str().unwrap())
            .collect();
        assert!(reasons.contains(&rule), "{text}: {reasons:?}");
        assert_eq!(entry["reports"][0]["source"], "rule");
        assert_eq!(entry["message"]["text"], text);
    }
    // Prices, dates and times are not phone numbers.
    let (status, m) = send(&server, &p, &conv, "€150 on 2026-12-01 at 10:30, 3 rooms").await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        queue(&server)
            .await
            .iter()
            .all(|e| e["message_id"] != m["id"]),
        "a clean message is not queued"
    );
}

#[tokio::test]
async fn blocked_words_are_refused_everywhere_and_masks_change_what_is_stored() {
    let server = Server::start_with(&[
        (
            "SWITCHBOARD_MODERATION__BLOCKED_WORDS",
            "scamword,fraudster",
        ),
        ("SWITCHBOARD_MODERATION__EMAIL_ADDRESSES", "mask"),
    ])
    .await;
    let (c, p, conv) = server.conversation("mod-block").await;
    let before = history(&server, &c, &conv).await.len();

    let (status, body) = send(&server, &c, &conv, "you are a Fraudster!").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("message_rejected")),
        "{body}"
    );
    let mut ws = Ws::connect(&server, &p).await;
    ws.send(json!({"type": "chat_message", "conversation_id": conv, "text": "scamword here", "ref": "b1"})).await;
    let err = ws.next_of("error").await;
    assert_eq!(
        (err["code"].as_str(), err["ref"].as_str()),
        (Some("message_rejected"), Some("b1"))
    );
    // A new conversation's first message is reviewed too.
    server.service("svc-mod-block-2", "prov-mod-block").await;
    let (status, body) = server
        .api(
            "POST",
            "/api/v1/conversations",
            &c,
            Some(json!({"service_id": "svc-mod-block-2", "initial_message": "scamword"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("message_rejected")),
        "{body}"
    );
    assert_eq!(
        history(&server, &c, &conv).await.len(),
        before,
        "nothing refused was stored"
    );

    let (status, m) = send(&server, &c, &conv, "mail bob@example.net please").await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["text"], "mail *** please");
    assert_eq!(
        history(&server, &p, &conv).await[0]["text"],
        "mail *** please",
        "stored masked"
    );
    let entry = queued(&server, m["id"].as_str().unwrap()).await;
    assert_eq!(
        entry["reports"][0]["reason"], "email_address",
        "a mask is also put up for review"
    );
}

#[tokio::test]
async fn a_classifier_that_is_down_lets_messages_through_flagged() {
    // Nothing listens on the discard port of loopback: connections are refused at once.
    let server = Server::start_with(&[(
        "SWITCHBOARD_MODERATION__CLASSIFIER__URL",
        "http://127.0.0.1:9/moderate",
    )])
    .await;
    let (c, _p, conv) = server.conversation("mod-classifier").await;
    let (status, m) = send(&server, &c, &conv, "an ordinary sentence").await;
    assert_eq!(status, 201, "never lost: {m}");
    let entry = queued(&server, m["id"].as_str().unwrap()).await;
    assert_eq!(entry["reports"][0]["source"], "classifier");
    assert_eq!(entry["reports"][0]["reason"], "classifier_unavailable");
}

#[tokio::test]
async fn participants_flag_and_operators_approve_or_remove() {
    let server = Server::start().await;
    let (c, p, conv) = server.conversation("mod-flag").await;
    let stranger = server.token("mod-stranger", "customer").await;
    let (_, m1) = send(&server, &c, &conv, "first").await;
    let (_, m2) = send(&server, &c, &conv, "second").await;
    let (id1, id2) = (m1["id"].as_str().unwrap(), m2["id"].as_str().unwrap());

    let flag = |token: String, id: String, reason: Value| {
        let server = &server;
        async move {
            server
                .api(
                    "POST",
                    &format!("/api/v1/messages/{id}/flag"),
                    &token,
                    Some(reason),
                )
                .await
        }
    };
    let (status, body) = flag(stranger.clone(), id1.into(), json!({"reason": "spam"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("message_not_found"))
    );
    let (status, body) = flag(p.clone(), id1.into(), json!({"reason": ""})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_request"))
    );
    for _ in 0..2 {
        let (status, body) = flag(
            p.clone(),
            id1.into(),
            json!({"reason": "asks to pay outside"}),
        )
        .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (202, Some("queued")),
            "{body}"
        );
    }
    let (status, _) = flag(p.clone(), id2.into(), json!({"reason": "rude"})).await;
    assert_eq!(status, 202);

    let items = queue(&server).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["message_id"], id1, "oldest first");
    assert_eq!(
        items[0]["reports"].as_array().unwrap().len(),
        1,
        "the same report twice is one"
    );
    assert_eq!(items[0]["reports"][0]["by"], "prov-mod-flag");
    assert_eq!(items[0]["reports"][0]["source"], "user");
    // Paging.
    let (_, page) = server
        .admin_call("GET", "/admin/v1/moderation/queue?limit=1", None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = server
        .admin_call(
            "GET",
            &format!("/admin/v1/moderation/queue?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(page["items"][0]["message_id"], id2);
    assert!(page["next_cursor"].is_null());

    let mut cws = Ws::connect(&server, &c).await;
    let mut pws = Ws::connect(&server, &p).await;
    let (status, _) = server
        .admin_call(
            "POST",
            &format!("/admin/v1/messages/{id1}/moderation"),
            Some(json!({"action": "approve"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = server
        .admin_call(
            "POST",
            &format!("/admin/v1/messages/{id2}/moderation"),
            Some(json!({"action": "delete"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_request"))
    );
    let (status, _) = server
        .admin_call(
            "POST",
            &format!("/admin/v1/messages/{id2}/moderation"),
            Some(json!({"action": "remove"})),
        )
        .await;
    assert_eq!(status, 204);
    for ws in [&mut cws, &mut pws] {
        let ev = ws.next_of("message_deleted").await;
        assert_eq!(ev["message_id"], id2);
    }
    assert!(
        queue(&server).await.is_empty(),
        "decided entries leave the queue"
    );
    let items = history(&server, &p, &conv).await;
    let removed = items.iter().find(|m| m["id"] == id2).unwrap();
    assert_eq!(
        (removed["deleted"].as_bool(), removed["text"].as_str()),
        (Some(true), Some(""))
    );
    let approved = items.iter().find(|m| m["id"] == id1).unwrap();
    assert_eq!(approved["text"], "first");
    let (status, _) = server
        .admin_call(
            "POST",
            "/admin/v1/messages/424242/moderation",
            Some(json!({"action": "remove"})),
        )
        .await;
    assert_eq!(status, 404);
}
