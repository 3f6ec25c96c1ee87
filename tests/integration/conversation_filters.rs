//! The conversation list's filters over real HTTP: `unread`, `service_id`, `q` (the other
//! participant's name or the service title), alone and together, paged with the same cursor, and
//! never showing anyone else's conversations.

use serde_json::{json, Value};

use super::harness::Server;

/// Conversation ids of `GET /api/v1/conversations?{query}` for `token`, following every cursor,
/// one item per page (the tightest paging there is).
async fn all_pages(s: &Server, token: &str, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut path = format!("/api/v1/conversations?limit=1&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = s.api("GET", &path, token, None).await;
        assert_eq!(status, 200, "{path}: {page}");
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match &page["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            _ => return ids,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn filters_keep_only_the_callers_matching_conversations() {
    let s = Server::start().await;
    s.service("svc-plumbing", "prov-f").await;
    s.service("svc-garden", "prov-f").await;
    // Another provider's service with a title that would match: never shown to prov-f.
    s.service("svc-rival", "prov-other").await;
    let provider = s.token("prov-f", "provider").await;
    let mut conv = std::collections::HashMap::new();
    for (customer, service) in [
        ("alice", "svc-plumbing"),
        ("bob", "svc-plumbing"),
        ("carol", "svc-garden"),
        ("dave", "svc-rival"),
    ] {
        let t = s.token(customer, "customer").await;
        let (status, body) = s
            .api(
                "POST",
                "/api/v1/conversations",
                &t,
                Some(json!({"service_id": service, "initial_message": "hello"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        conv.insert(
            customer,
            body["conversation"]["id"].as_str().unwrap().to_string(),
        );
    }
    // prov-f reads bob's conversation.
    let (status, _) = s
        .api(
            "POST",
            &format!("/api/v1/conversations/{}/mark-read", conv["bob"]),
            &provider,
            None,
        )
        .await;
    assert_eq!(status, 200);

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let ids = |names: &[&str]| sorted(names.iter().map(|n| conv[n].clone()).collect());
    let got = |v: Vec<String>| sorted(v);

    assert_eq!(
        got(all_pages(&s, &provider, "").await),
        ids(&["alice", "bob", "carol"])
    );
    assert_eq!(
        got(all_pages(&s, &provider, "unread=true").await),
        ids(&["alice", "carol"])
    );
    assert_eq!(
        got(all_pages(&s, &provider, "service_id=svc-plumbing").await),
        ids(&["alice", "bob"])
    );
    assert_eq!(
        got(all_pages(&s, &provider, "unread=true&service_id=svc-plumbing").await),
        ids(&["alice"])
    );
    // The customer's name (any case), or the service's title.
    assert_eq!(
        got(all_pages(&s, &provider, "q=CAROL").await),
        ids(&["carol"])
    );
    assert_eq!(
        got(all_pages(&s, &provider, "q=title").await),
        ids(&["alice", "bob", "carol"])
    );
    assert_eq!(
        got(all_pages(&s, &provider, "q=garden%20title").await),
        ids(&["carol"])
    );
    assert!(
        all_pages(&s, &provider, "q=dave").await.is_empty(),
        "not prov-f's"
    );
    assert!(all_pages(&s, &provider, "service_id=svc-rival")
        .await
        .is_empty());

    // A customer searches by the provider's name.
    let alice = s.token("alice", "customer").await;
    assert_eq!(
        got(all_pages(&s, &alice, "q=prov-f%20name").await),
        ids(&["alice"])
    );
    assert!(
        all_pages(&s, &alice, "q=alice").await.is_empty(),
        "own name is not searched"
    );

    // A full page without filters still carries the store's cursor.
    let (_, page) = s
        .api("GET", "/api/v1/conversations?limit=2", &provider, None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string(), "{page}");

    let (status, body) = s
        .api("GET", "/api/v1/conversations?unread=yes", &provider, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
}
