//! Bad input gets the contract's status and error body, never a panic or a 500.

use serde_json::{json, Value};

use crate::harness::{Server, SECRET};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error body>")
}

fn token_with(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn tokens_missing_expired_forged_or_wrong_role() {
    let s = Server::start().await;
    s.service("svc-t", "p-t").await;
    let url = s.url("/api/v1/conversations");
    let (st, b) = s.call("GET", &url, None, None).await;
    assert_eq!((st, code(&b)), (401, "missing_token"));
    let expired = token_with(json!({"sub": "c", "exp": now() - 3600}));
    let (st, b) = s.call("GET", &url, Some(&expired), None).await;
    assert_eq!((st, code(&b)), (401, "token_expired"));
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "c", "exp": now() + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(b"not the secret"),
    )
    .unwrap();
    let (st, b) = s.call("GET", &url, Some(&forged), None).await;
    assert_eq!((st, code(&b)), (401, "invalid_token"));
    let (st, b) = s.call("GET", &url, Some("garbage"), None).await;
    assert_eq!((st, code(&b)), (401, "invalid_token"));

    let provider = s.token("p-t", "provider").await;
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/conversations",
            &provider,
            Some(json!({"service_id": "svc-t", "initial_message": "hi"})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (403, "forbidden_role"),
        "a provider cannot create a conversation"
    );
}

#[tokio::test]
async fn malformed_bodies_and_invalid_fields() {
    let s = Server::start().await;
    s.service("svc-b", "p-b").await;
    let c = s.token("c-b", "customer").await;
    let client = reqwest::Client::new();
    let res = client
        .post(s.url("/api/v1/conversations"))
        .bearer_auth(&c)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(code(&b), "malformed_json");

    let create = |body: Value| s.api("POST", "/api/v1/conversations", &c, Some(body));
    let (st, b) = create(json!({"service_id": "svc-b", "initial_message": 5})).await;
    assert_eq!((st, code(&b)), (422, "invalid_request"));
    let (st, b) = create(json!({"service_id": "svc-b"})).await;
    assert_eq!((st, code(&b)), (422, "invalid_request"));
    let (st, b) = create(json!({"service_id": "nope", "initial_message": "x"})).await;
    assert_eq!((st, code(&b)), (404, "service_not_found"));
    let (st, b) = create(
        json!({"service_id": "svc-b", "provider_id": "someone-else", "initial_message": "x"}),
    )
    .await;
    assert_eq!((st, code(&b)), (422, "provider_mismatch"));
    let (st, b) = create(json!({"service_id": "svc-b", "initial_message": "   "})).await;
    assert_eq!((st, code(&b)), (422, "text_required"));
    let (st, b) = create(json!({"service_id": "svc-b", "initial_message": "x".repeat(2001)})).await;
    assert_eq!((st, code(&b)), (422, "text_too_long"));
    let (st, b) = create(json!({"service_id": "svc-b", "initial_message": "bell\u{7}"})).await;
    assert_eq!((st, code(&b)), (422, "text_invalid"));
    let (st, b) =
        create(json!({"service_id": 12345678, "initial_message": "numbers are ids too"})).await;
    assert_eq!((st, code(&b)), (404, "service_not_found"));

    let res = client
        .post(s.url("/api/v1/conversations"))
        .bearer_auth(&c)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"service_id\":\"svc-b\",\"initial_message\":\"{}\"}}",
            "x".repeat(70_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    // Nothing of the above created a conversation.
    let (_, list) = s.api("GET", "/api/v1/conversations", &c, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Text is stored as typed, never interpreted.
    let (st, b) =
        create(json!({"service_id": "svc-b", "initial_message": "<script>alert(1)</script>"}))
            .await;
    assert_eq!(st, 201);
    assert_eq!(b["message"]["text"], "<script>alert(1)</script>");
}

#[tokio::test]
async fn strangers_get_404_on_every_conversation_route() {
    let s = Server::start().await;
    let (_c, _p, id) = s.conversation("private").await;
    let stranger = s.token("stranger", "customer").await;
    let other_provider = s.token("other-provider", "provider").await;
    for t in [&stranger, &other_provider] {
        for (method, path, body) in [
            ("GET", format!("/api/v1/conversations/{id}"), None),
            (
                "PATCH",
                format!("/api/v1/conversations/{id}"),
                Some(json!({"archived": true})),
            ),
            ("GET", format!("/api/v1/conversations/{id}/messages"), None),
            (
                "POST",
                format!("/api/v1/conversations/{id}/messages"),
                Some(json!({"text": "let me in"})),
            ),
            (
                "POST",
                format!("/api/v1/conversations/{id}/mark-read"),
                Some(json!({})),
            ),
            (
                "POST",
                format!("/api/v1/conversations/{id}/typing"),
                Some(json!({"is_typing": true})),
            ),
            (
                "GET",
                "/api/v1/conversations/999999/messages".to_string(),
                None,
            ),
            (
                "GET",
                "/api/v1/conversations/not-a-number".to_string(),
                None,
            ),
        ] {
            let (st, b) = s.api(method, &path, t, body).await;
            assert_eq!(
                (st, code(&b)),
                (404, "conversation_not_found"),
                "{method} {path}"
            );
        }
    }
    let (_, list) = s.api("GET", "/api/v1/conversations", &stranger, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn rate_limit_is_per_user_and_shared_by_http_and_websocket() {
    let s = Server::start_with(&[("SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE", "3")]).await;
    let (c, p, id) = s.conversation("limited").await; // the first message spends one
    let path = format!("/api/v1/conversations/{id}/messages");
    for _ in 0..2 {
        let (st, _) = s.api("POST", &path, &c, Some(json!({"text": "ok"}))).await;
        assert_eq!(st, 201);
    }
    let res = reqwest::Client::new()
        .post(s.url(&path))
        .bearer_auth(&c)
        .json(&json!({"text": "one too many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let b: Value = res.json().await.unwrap();
    assert_eq!(code(&b), "rate_limited");
    let mut ws = crate::harness::Ws::connect(&s, &c).await;
    ws.send(
        json!({"type": "chat_message", "conversation_id": id, "text": "socket too", "ref": "z"}),
    )
    .await;
    let e = ws.next_of("error").await;
    assert_eq!(e["code"], "rate_limited");
    assert_eq!(e["ref"], "z");
    assert!(e["retry_after"].as_u64().unwrap() >= 1);
    // The provider has a budget of their own.
    let (st, _) = s
        .api("POST", &path, &p, Some(json!({"text": "I can still talk"})))
        .await;
    assert_eq!(st, 201);
}
