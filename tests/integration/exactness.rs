//! The core stays exact off the happy path: retries of a create, the same `client_msg_id` in two
//! conversations, and conversation actors that only participants can start.

use serde_json::json;

use crate::harness::{Server, Ws};

#[tokio::test]
async fn a_client_msg_id_used_in_another_conversation_starts_a_new_message() {
    let s = Server::start().await;
    s.service("svc-a", "prov-a").await;
    s.service("svc-b", "prov-b").await;
    let cust = s.token("cust-x", "customer").await;
    let body = |svc: &str| json!({"service_id": svc, "initial_message": "hello", "client_msg_id": "same-id"});
    let (st, a) = s
        .api("POST", "/api/v1/conversations", &cust, Some(body("svc-a")))
        .await;
    assert_eq!(st, 201, "{a}");
    let (st, b) = s
        .api("POST", "/api/v1/conversations", &cust, Some(body("svc-b")))
        .await;
    assert_eq!(st, 201, "{b}");
    let conv_b = b["conversation"]["id"].as_str().unwrap();
    assert_eq!(
        b["message"]["conversation_id"], conv_b,
        "the answer is the new conversation's own message, not the other one's: {b}"
    );
    assert_ne!(a["message"]["id"], b["message"]["id"]);
    let (st, hist) = s
        .api(
            "GET",
            &format!("/api/v1/conversations/{conv_b}/messages"),
            &cust,
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        hist["items"].as_array().unwrap().len(),
        1,
        "the message is stored: {hist}"
    );
}

#[tokio::test]
async fn a_retried_create_answers_what_the_first_answered() {
    let s = Server::start().await;
    s.service("svc-r", "prov-r").await;
    let cust = s.token("cust-r", "customer").await;
    let body =
        json!({"service_id": "svc-r", "initial_message": "first", "client_msg_id": "create-1"});
    let (st1, first) = s
        .api("POST", "/api/v1/conversations", &cust, Some(body.clone()))
        .await;
    let (st2, retry) = s
        .api("POST", "/api/v1/conversations", &cust, Some(body))
        .await;
    assert_eq!((st1, st2), (201, 201), "{first} {retry}");
    assert_eq!(first["message"]["id"], retry["message"]["id"]);
    assert_eq!(first["conversation"]["id"], retry["conversation"]["id"]);
    // A different message to the same conversation is an append: 200.
    let more =
        json!({"service_id": "svc-r", "initial_message": "second", "client_msg_id": "create-2"});
    let (st3, appended) = s
        .api("POST", "/api/v1/conversations", &cust, Some(more))
        .await;
    assert_eq!(st3, 200, "{appended}");
    assert_eq!(appended["message"]["seq"], 2);
    let (_, list) = s.api("GET", "/api/v1/conversations", &cust, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn the_first_message_survives_a_kill_with_its_conversation() {
    let mut s = Server::start().await;
    s.service("svc-k", "prov-k").await;
    let cust = s.token("cust-k", "customer").await;
    let prov = s.token("prov-k", "provider").await;
    let body =
        json!({"service_id": "svc-k", "initial_message": "are you there?", "client_msg_id": "k-1"});
    let (st, created) = s
        .api("POST", "/api/v1/conversations", &cust, Some(body))
        .await;
    assert_eq!(st, 201, "{created}");
    s.kill9();
    s.restart_after_kill();
    let (_, list) = s.api("GET", "/api/v1/conversations", &prov, None).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["last_message_preview"], "are you there?");
    assert_eq!(items[0]["unread_count"], 1);
    let (_, unread) = s.api("GET", "/api/v1/unread", &prov, None).await;
    assert_eq!(unread["total"], 1, "{unread}");
}

#[tokio::test]
async fn frames_for_a_conversation_one_is_not_in_start_no_actor() {
    let s = Server::start_with(&[("SWITCHBOARD_REALTIME__CONVERSATION_IDLE_SECS", "1")]).await;
    let (cust, _prov, conv) = s.conversation("stranger").await;
    // Let the conversation's actor (if creating it started one) go idle and stop.
    let mut warm = Ws::connect(&s, &cust).await;
    warm.send(json!({"type": "typing_status", "conversation_id": conv, "is_typing": true}))
        .await;
    drop(warm);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let stranger = s.token("mallory", "customer").await;
    let (_, before) = s.admin_call("GET", "/admin/v1/stats", None).await;
    assert_eq!(before["conversation_actors"], 0, "{before}");
    let mut ws = Ws::connect(&s, &stranger).await;
    for i in 0..20 {
        ws.send(json!({"type": "chat_message", "conversation_id": conv, "text": "hi", "ref": format!("r{i}")}))
            .await;
        let ev = ws.next_of("error").await;
        assert_eq!(ev["code"], "conversation_not_found", "{ev}");
    }
    let (_, after) = s.admin_call("GET", "/admin/v1/stats", None).await;
    assert_eq!(
        after["conversation_actors"], before["conversation_actors"],
        "a stranger's frames start no conversation actor: {before} -> {after}"
    );
}
