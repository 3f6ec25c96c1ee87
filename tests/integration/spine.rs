//! The spine: a customer contacts a provider and the message reaches the provider's socket.

use serde_json::json;

use crate::harness::{Server, Ws};

#[tokio::test]
async fn customer_contacts_provider_and_provider_socket_receives_it() {
    let s = Server::start().await;
    s.service("plumbing", "prov-1").await;
    let customer = s.token("cust-1", "customer").await;
    let provider = s.token("prov-1", "provider").await;
    let mut pws = Ws::connect(&s, &provider).await;
    assert_eq!(pws.ready["user_id"], "prov-1");

    let (status, body) = s
        .api(
            "POST",
            "/api/v1/conversations",
            &customer,
            Some(json!({"service_id": "plumbing", "provider_id": "prov-1", "initial_message": "Is this available?"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let conv = &body["conversation"];
    assert_eq!(conv["provider"]["id"], "prov-1");
    assert_eq!(conv["customer"]["id"], "cust-1");
    assert_eq!(conv["last_message_preview"], "Is this available?");
    assert_eq!(body["message"]["seq"], 1);
    assert_eq!(body["message"]["status"], "sent");

    let ev = pws.next_of("chat_message").await;
    assert_eq!(ev["message"]["text"], "Is this available?");
    assert_eq!(ev["message"]["conversation_id"], conv["id"]);
    assert_eq!(ev["message"]["sender_id"], "cust-1");

    // The provider answers over the socket and gets an ack; the customer's socket the message.
    let id = conv["id"].as_str().unwrap().to_string();
    let mut cws = Ws::connect(&s, &customer).await;
    pws.send(
        json!({"type": "chat_message", "conversation_id": id, "text": "Yes it is", "ref": "r1"}),
    )
    .await;
    let ack = pws.next_of("ack").await;
    assert_eq!(ack["ref"], "r1");
    assert_eq!(ack["message"]["seq"], 2);
    let got = cws.next_of("chat_message").await;
    assert_eq!(got["message"]["text"], "Yes it is");
    assert_eq!(got["message"]["id"], ack["message"]["id"]);

    // The provider sees the conversation in their list with one unread (the customer's message).
    let (status, list) = s.api("GET", "/api/v1/conversations", &provider, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["items"][0]["unread_count"], 1);
    let (_, unread) = s.api("GET", "/api/v1/unread", &provider, None).await;
    assert_eq!(unread["total"], 1);
}

#[tokio::test]
async fn contacting_again_appends_to_the_same_conversation() {
    let s = Server::start().await;
    let (c, _p, id) = s.conversation("again").await;
    let (status, body) = s
        .api(
            "POST",
            "/api/v1/conversations",
            &c,
            Some(json!({"service_id": "svc-again", "initial_message": "me again"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation"]["id"], id.as_str());
    assert_eq!(body["message"]["seq"], 2);
}

#[tokio::test]
async fn fifty_concurrent_senders_get_gapless_seq() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("fifty").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let token = if i % 2 == 0 { c.clone() } else { p.clone() };
        let url = s.url(&format!("/api/v1/conversations/{id}/messages"));
        tasks.push(tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"text": format!("m{i}"), "client_msg_id": format!("k{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 201);
            let v: serde_json::Value = res.json().await.unwrap();
            v["seq"].as_u64().unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (2..=51).collect::<Vec<_>>(),
        "each sender got a distinct seq after the first message"
    );
    let (_, page) = s
        .api(
            "GET",
            &format!("/api/v1/conversations/{id}/messages?limit=100"),
            &c,
            None,
        )
        .await;
    let stored: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        stored,
        (1..=51).rev().collect::<Vec<_>>(),
        "history is gapless, newest first"
    );
}

#[tokio::test]
async fn duplicate_client_msg_id_returns_original() {
    let s = Server::start().await;
    let (c, _p, id) = s.conversation("dup").await;
    let path = format!("/api/v1/conversations/{id}/messages");
    let (s1, first) = s
        .api(
            "POST",
            &path,
            &c,
            Some(json!({"text": "once", "client_msg_id": "same"})),
        )
        .await;
    let (s2, again) = s
        .api(
            "POST",
            &path,
            &c,
            Some(json!({"text": "once", "client_msg_id": "same"})),
        )
        .await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["id"], again["id"]);
    // Over the socket too: an ack holding the original, nothing stored twice.
    let mut ws = Ws::connect(&s, &c).await;
    ws.send(json!({"type": "chat_message", "conversation_id": id, "text": "once", "client_msg_id": "same", "ref": "x"})).await;
    let ack = ws.next_of("ack").await;
    assert_eq!(ack["message"]["id"], first["id"]);
    let (_, page) = s.api("GET", &format!("{path}?limit=100"), &c, None).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        2,
        "first message plus one copy of `once`"
    );
}

#[tokio::test]
async fn history_pages_by_cursor_and_before_after() {
    let s = Server::start().await;
    let (c, _p, id) = s.conversation("pages").await;
    let path = format!("/api/v1/conversations/{id}/messages");
    for i in 0..9 {
        let (st, _) = s
            .api("POST", &path, &c, Some(json!({"text": format!("n{i}")})))
            .await;
        assert_eq!(st, 201);
    }
    let (_, p1) = s.api("GET", &format!("{path}?limit=4"), &c, None).await;
    let seqs = |v: &serde_json::Value| -> Vec<u64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&p1), vec![10, 9, 8, 7]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .api("GET", &format!("{path}?limit=4&cursor={cursor}"), &c, None)
        .await;
    assert_eq!(seqs(&p2), vec![6, 5, 4, 3]);
    let cursor = p2["next_cursor"].as_str().unwrap();
    let (_, p3) = s
        .api("GET", &format!("{path}?limit=4&cursor={cursor}"), &c, None)
        .await;
    assert_eq!(seqs(&p3), vec![2, 1]);
    assert!(p3["next_cursor"].is_null());
    let third = p1["items"][3]["id"].as_str().unwrap();
    let (_, after) = s
        .api("GET", &format!("{path}?after={third}"), &c, None)
        .await;
    assert_eq!(seqs(&after), vec![10, 9, 8]);
    let (_, before) = s
        .api("GET", &format!("{path}?before={third}&limit=2"), &c, None)
        .await;
    assert_eq!(seqs(&before), vec![6, 5]);
}

#[tokio::test]
async fn mark_read_archive_and_unread() {
    let s = Server::start().await;
    let (c, p, id) = s.conversation("read").await;
    let path = format!("/api/v1/conversations/{id}/messages");
    let (_, second) = s.api("POST", &path, &c, Some(json!({"text": "two"}))).await;
    s.api("POST", &path, &c, Some(json!({"text": "three"})))
        .await;
    let (_, conv) = s
        .api("GET", &format!("/api/v1/conversations/{id}"), &p, None)
        .await;
    assert_eq!(conv["unread_count"], 3);
    let (st, r) = s
        .api(
            "POST",
            &format!("/api/v1/conversations/{id}/mark-read"),
            &p,
            Some(json!({"up_to": second["id"]})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["unread_count"], 1);
    assert_eq!(r["last_read_message_id"], second["id"]);
    let (_, r) = s
        .api(
            "POST",
            &format!("/api/v1/conversations/{id}/mark-read"),
            &p,
            None,
        )
        .await;
    assert_eq!(r["unread_count"], 0);
    let (_, page) = s.api("GET", &path, &c, None).await;
    assert_eq!(
        page["items"][0]["status"], "read",
        "the customer sees the provider read it: {page}"
    );

    let (st, a) = s
        .api(
            "PATCH",
            &format!("/api/v1/conversations/{id}"),
            &p,
            Some(json!({"archived": true})),
        )
        .await;
    assert_eq!((st, &a["archived"]), (200, &json!(true)));
    let (_, inbox) = s.api("GET", "/api/v1/conversations", &p, None).await;
    assert_eq!(
        inbox["items"].as_array().unwrap().len(),
        0,
        "archived is out of the inbox"
    );
    let (_, archived) = s
        .api("GET", "/api/v1/conversations?archived=true", &p, None)
        .await;
    assert_eq!(archived["items"].as_array().unwrap().len(), 1);
    let (_, cust) = s.api("GET", "/api/v1/conversations", &c, None).await;
    assert_eq!(
        cust["items"].as_array().unwrap().len(),
        1,
        "archiving is per side"
    );
    // A new message from the customer un-archives it for the provider.
    s.api("POST", &path, &c, Some(json!({"text": "still there?"})))
        .await;
    let (_, inbox) = s.api("GET", "/api/v1/conversations", &p, None).await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn contact_card_and_admin_directory() {
    let s = Server::start().await;
    let (st, _) = s
        .admin_call(
            "PUT",
            "/admin/v1/services/svc-w",
            Some(
                json!({"provider_id": "p-w", "title": "Gardening", "whatsapp": "+1 555 123 4567"}),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .admin_call(
            "PUT",
            "/admin/v1/users/p-w",
            Some(json!({"name": "Wendy", "role": "provider"})),
        )
        .await;
    assert_eq!(st, 200);
    let c = s.token("c-w", "customer").await;
    let (st, card) = s
        .api("GET", "/api/v1/services/svc-w/contact", &c, None)
        .await;
    assert_eq!(st, 200, "{card}");
    assert_eq!(card["service"]["title"], "Gardening");
    assert_eq!(card["provider"]["name"], "Wendy");
    assert_eq!(card["provider"]["online"], false);
    assert!(card["whatsapp_url"]
        .as_str()
        .unwrap()
        .starts_with("https://wa.me/15551234567?text="));
    assert_eq!(card["quick_messages"].as_array().unwrap().len(), 4);
    let p = s.token("p-w", "provider").await;
    let _ws = Ws::connect(&s, &p).await;
    let (_, card) = s
        .api("GET", "/api/v1/services/svc-w/contact", &c, None)
        .await;
    assert_eq!(card["provider"]["online"], true);

    let (st, _) = s
        .admin_call("DELETE", "/admin/v1/services/svc-w", None)
        .await;
    assert_eq!(st, 204);
    let (st, e) = s
        .api("GET", "/api/v1/services/svc-w/contact", &c, None)
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (404, &json!("service_not_found"))
    );
    let (st, stats) = s.admin_call("GET", "/admin/v1/stats", None).await;
    assert_eq!(st, 200);
    assert_eq!(stats["store"], "ok");
    assert!(stats["connections"].as_i64().unwrap() >= 1);
    let (st, _) = s
        .call(
            "GET",
            &format!("http://{}/admin/v1/stats", s.admin),
            Some("wrong"),
            None,
        )
        .await;
    assert_eq!(st, 401);
}
