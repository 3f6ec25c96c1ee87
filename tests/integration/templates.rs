//! Quick-reply templates over the real server: a provider's own, ordered, bounded, and invisible
//! to everyone else.

use serde_json::{json, Value};

use super::harness::Server;

fn texts(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn providers_keep_ordered_bounded_templates_of_their_own() {
    let server = Server::start().await;
    let me = server.token("prov-tpl", "provider").await;
    let other = server.token("prov-tpl-other", "provider").await;
    let customer = server.token("cust-tpl", "customer").await;

    let mut ids = Vec::new();
    for text in [
        "Hi! Yes, I am available.",
        "  Could you send a photo?  ",
        "Thanks!",
    ] {
        let (status, t) = server
            .api(
                "POST",
                "/api/v1/templates",
                &me,
                Some(json!({ "text": text })),
            )
            .await;
        assert_eq!(status, 201, "{t}");
        assert_eq!(t["text"], text.trim());
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    let (_, list) = server.api("GET", "/api/v1/templates", &me, None).await;
    assert_eq!(
        texts(&list),
        [
            "Hi! Yes, I am available.",
            "Could you send a photo?",
            "Thanks!"
        ]
    );
    let positions: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["position"].clone())
        .collect();
    assert_eq!(positions, [json!(0), json!(1), json!(2)]);

    // Move the last to the front and reword it; the others keep their order.
    let (status, moved) = server
        .api(
            "PATCH",
            &format!("/api/v1/templates/{}", ids[2]),
            &me,
            Some(json!({"position": 0, "text": "Thank you!"})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["position"].clone(), moved["text"].clone()),
        (json!(0), json!("Thank you!"))
    );
    let (_, list) = server.api("GET", "/api/v1/templates", &me, None).await;
    assert_eq!(
        texts(&list),
        [
            "Thank you!",
            "Hi! Yes, I am available.",
            "Could you send a photo?"
        ]
    );
    // A position past the end is the end.
    let (_, moved) = server
        .api(
            "PATCH",
            &format!("/api/v1/templates/{}", ids[2]),
            &me,
            Some(json!({"position": 99})),
        )
        .await;
    assert_eq!(moved["position"], 2);

    // Others see nothing and can touch nothing; customers may not have templates.
    let (_, theirs) = server.api("GET", "/api/v1/templates", &other, None).await;
    assert_eq!(theirs["items"], json!([]));
    for (method, body) in [
        ("PATCH", Some(json!({"text": "mine now"}))),
        ("DELETE", None),
    ] {
        let (status, e) = server
            .api(
                method,
                &format!("/api/v1/templates/{}", ids[0]),
                &other,
                body,
            )
            .await;
        assert_eq!(
            (status, &e["error"]["code"]),
            (404, &json!("template_not_found")),
            "{method}"
        );
    }
    let (status, e) = server
        .api("GET", "/api/v1/templates", &customer, None)
        .await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (403, &json!("forbidden_role"))
    );

    // Bad texts, unknown fields.
    for body in [json!({"text": "  "}), json!({"text": "x".repeat(501)})] {
        let (status, e) = server
            .api("POST", "/api/v1/templates", &me, Some(body))
            .await;
        assert_eq!((status, &e["error"]["code"]), (422, &json!("invalid_text")));
    }
    let (status, _) = server
        .api(
            "POST",
            "/api/v1/templates",
            &me,
            Some(json!({"text": "ok", "extra": 1})),
        )
        .await;
    assert_eq!(status, 422);

    // Delete closes the gap.
    let (status, _) = server
        .api(
            "DELETE",
            &format!("/api/v1/templates/{}", ids[0]),
            &me,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, list) = server.api("GET", "/api/v1/templates", &me, None).await;
    assert_eq!(texts(&list), ["Could you send a photo?", "Thank you!"]);
    let positions: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["position"].clone())
        .collect();
    assert_eq!(positions, [json!(0), json!(1)]);

    // At most 50, checked at the 51st.
    for i in 2..50 {
        let (status, _) = server
            .api(
                "POST",
                "/api/v1/templates",
                &me,
                Some(json!({"text": format!("t{i}")})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, e) = server
        .api(
            "POST",
            "/api/v1/templates",
            &me,
            Some(json!({"text": "one too many"})),
        )
        .await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (409, &json!("too_many_templates"))
    );

    // They survive a restart.
    let mut server = server;
    server.restart();
    let (_, list) = server.api("GET", "/api/v1/templates", &me, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn a_service_can_replace_the_configured_quick_messages() {
    let s = Server::start().await;
    let c = s.token("qm-customer", "customer").await;
    let card = |path: &'static str| {
        let (s, c) = (&s, &c);
        async move { s.api("GET", path, c, None).await }
    };
    let put =
        |body: serde_json::Value| s.admin_call("PUT", "/admin/v1/services/svc-qm", Some(body));

    let (st, _) = put(json!({"provider_id": "qm-prov", "title": "Tiling"})).await;
    assert_eq!(st, 200);
    let (_, default) = card("/api/v1/services/svc-qm/contact").await;
    assert_eq!(
        default["quick_messages"].as_array().unwrap().len(),
        4,
        "chat.quick_messages"
    );

    let (st, saved) = put(json!({"provider_id": "qm-prov", "title": "Tiling",
        "quick_messages": ["  Do you tile bathrooms?  ", "Can you come this week?"]}))
    .await;
    assert_eq!(st, 200, "{saved}");
    let (_, own) = card("/api/v1/services/svc-qm/contact").await;
    assert_eq!(
        own["quick_messages"],
        json!(["Do you tile bathrooms?", "Can you come this week?"])
    );
    let (_, shown) = s.admin_call("GET", "/admin/v1/services/svc-qm", None).await;
    assert_eq!(shown["quick_messages"], own["quick_messages"]);

    for bad in [
        json!(vec!["x"; 11]),
        json!([""]),
        json!(["x".repeat(501)]),
        json!(["line\u{7}bell"]),
    ] {
        let (st, body) =
            put(json!({"provider_id": "qm-prov", "title": "Tiling", "quick_messages": bad})).await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (422, Some("invalid_quick_messages"))
        );
    }
    // Put back without them: the configured ones again.
    put(json!({"provider_id": "qm-prov", "title": "Tiling"})).await;
    let (_, again) = card("/api/v1/services/svc-qm/contact").await;
    assert_eq!(again["quick_messages"], default["quick_messages"]);
}
