//! Rate limits against hostile clients: a flood from one user is cut at the configured rate over
//! both transports while other users are unaffected; conversation creation, connection attempts
//! and failed authentications have budgets of their own; nothing refused is written.

use serde_json::{json, Value};

use super::harness::{now, Server, Ws};

#[tokio::test]
async fn a_flood_from_one_user_is_cut_at_the_rate_and_others_are_unaffected() {
    let s = Server::start_with(&[
        ("SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE", "6"),
        ("SWITCHBOARD_LIMITS__MESSAGES_BURST", "4"),
    ])
    .await;
    let (flooder, _p, conv) = s.conversation("flood").await; // the first message spends one
    let (calm, _p2, other) = s.conversation("calm").await;
    let path = format!("/api/v1/conversations/{conv}/messages");

    // 40 at once over HTTP and 40 over a socket.
    let http = (0..40).map(|i| {
        s.api(
            "POST",
            &path,
            &flooder,
            Some(json!({"text": format!("h{i}")})),
        )
    });
    let mut ws = Ws::connect(&s, &flooder).await;
    for i in 0..40 {
        ws.send(json!({"type": "chat_message", "conversation_id": conv, "text": format!("w{i}"), "ref": format!("r{i}")})).await;
    }
    let answers = futures_util::future::join_all(http).await;
    let http_ok = answers.iter().filter(|(st, _)| *st == 201).count();
    assert!(answers
        .iter()
        .all(|(st, b)| *st == 201 || (*st == 429 && b["error"]["code"] == "rate_limited")));
    let mut ws_ok = 0;
    for _ in 0..40 {
        let v: Value = loop {
            let v = ws.next().await;
            if v["type"] == "ack" || v["type"] == "error" {
                break v;
            }
        };
        if v["type"] == "ack" {
            ws_ok += 1;
        } else {
            assert_eq!(v["code"], "rate_limited", "{v}");
            assert!(v["retry_after"].as_u64().is_some_and(|r| r >= 1));
        }
    }
    // The burst of 4 less the first message, plus at most one refill during the test (one every
    // 10 s): HTTP and the socket share the one budget.
    let stored = http_ok + ws_ok;
    assert!(
        (3..=4).contains(&stored),
        "{http_ok} over HTTP + {ws_ok} over the socket"
    );
    let (_, page) = s
        .api("GET", &format!("{path}?limit=100"), &flooder, None)
        .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        stored + 1,
        "nothing refused was written"
    );

    // Someone else sends at once, unaffected.
    for i in 0..3 {
        let (st, b) = s
            .api(
                "POST",
                &format!("/api/v1/conversations/{other}/messages"),
                &calm,
                Some(json!({"text": format!("c{i}")})),
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }
}

#[tokio::test]
async fn new_conversations_have_their_own_budget() {
    let s = Server::start_with(&[("SWITCHBOARD_LIMITS__CONVERSATIONS_PER_HOUR", "2")]).await;
    let c = s.token("opener", "customer").await;
    for i in 0..3 {
        s.service(&format!("svc-open-{i}"), &format!("prov-open-{i}"))
            .await;
    }
    let open = |i: usize| {
        let (s, c) = (&s, &c);
        async move {
            s.api(
                "POST",
                "/api/v1/conversations",
                c,
                Some(json!({"service_id": format!("svc-open-{i}"), "initial_message": "hi"})),
            )
            .await
        }
    };
    assert_eq!(open(0).await.0, 201);
    assert_eq!(open(1).await.0, 201);
    let (st, b) = open(2).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{b}"
    );
    // Writing to a conversation that exists is a message, not a new conversation.
    assert_eq!(open(0).await.0, 200);
    let (_, list) = s.api("GET", "/api/v1/conversations", &c, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn connection_attempts_and_failed_authentications_are_limited_per_address() {
    let s = Server::start_with(&[
        ("SWITCHBOARD_LIMITS__CONNECTIONS_PER_IP_PER_MINUTE", "3"),
        ("SWITCHBOARD_LIMITS__FAILED_AUTH_PER_IP_PER_MINUTE", "2"),
    ])
    .await;
    let good = s.token("limited-user", "customer").await;
    for _ in 0..3 {
        Ws::connect(&s, &good).await;
    }
    let url = s.ws_url(&format!("/ws?access_token={good}"));
    let (status, body) = Ws::open_with(&url, &[]).await.err().expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );

    // Two forged tokens over HTTP spend the address's budget; a missing one does not count.
    let forged = {
        let claims = json!({"sub": "limited-user", "role": "customer", "exp": now() + 600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-not-the-secret-0000"),
        )
        .unwrap()
    };
    let (st, _) = s.call("GET", &s.url("/api/v1/unread"), None, None).await;
    assert_eq!(st, 401);
    for _ in 0..2 {
        let (st, b) = s.api("GET", "/api/v1/unread", &forged, None).await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (401, Some("invalid_token"))
        );
    }
    // Now even the right token is refused from this address, so a guess cannot be confirmed.
    let (st, b) = s.api("GET", "/api/v1/unread", &good, None).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{b}"
    );
}
