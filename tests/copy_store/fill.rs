//! A store with a bit of everything in it, written by the real server over its API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Server, Ws};

/// Fills a fresh server's store with a bit of everything, then stops the server: services, user
/// profiles, four conversations between two providers and three customers (one user in several,
/// so list order matters), messages with and without `client_msg_id` (one retried), a read
/// watermark, an archived conversation, a hidden message, a tombstone and a `last_seen`.
pub async fn filled_store() -> Server {
    let mut s = Server::start_with(&[("SWITCHBOARD_REALTIME__PRESENCE_GRACE_SECS", "0")]).await;
    for (svc, prov) in [
        ("svc-a", "prov-x"),
        ("svc-b", "prov-x"),
        ("svc-c", "prov-y"),
    ] {
        s.service(svc, prov).await;
    }
    for (user, role) in [
        ("prov-x", "provider"),
        ("cust-1", "customer"),
        ("cust-2", "customer"),
    ] {
        let body = json!({"name": format!("{user} name"), "email": format!("{user}@example.com"), "role": role});
        let (st, b) = s
            .admin_call("PUT", &format!("/admin/v1/users/{user}"), Some(body))
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let mut tokens = std::collections::HashMap::new();
    for (user, role) in [
        ("prov-x", "provider"),
        ("prov-y", "provider"),
        ("cust-1", "customer"),
        ("cust-2", "customer"),
        ("cust-3", "customer"),
    ] {
        tokens.insert(user, s.token(user, role).await);
    }
    let t = |u: &str| tokens[u].clone();
    let mut convs = Vec::new();
    for (i, (cust, svc)) in [
        ("cust-1", "svc-a"),
        ("cust-1", "svc-b"),
        ("cust-2", "svc-a"),
        ("cust-3", "svc-c"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"service_id": svc, "initial_message": format!("hello {i}"), "client_msg_id": format!("open-{i}")});
        let (st, b) = s
            .api("POST", "/api/v1/conversations", &t(cust), Some(body))
            .await;
        assert_eq!(st, 201, "{b}");
        let id = b["conversation"]["id"].as_str().unwrap().to_string();
        let prov = if svc == "svc-c" { "prov-y" } else { "prov-x" };
        let path = format!("/api/v1/conversations/{id}/messages");
        for n in 0..3 + i {
            let (from, cmid) = if n % 2 == 0 {
                (cust, Some(format!("c{i}-{n}")))
            } else {
                (prov, None)
            };
            let body = json!({"text": format!("m{i}.{n}"), "client_msg_id": cmid});
            let (st, m) = s.api("POST", &path, &t(from), Some(body.clone())).await;
            assert_eq!(st, 201, "{m}");
            if n == 2 {
                // A retry: answered with the original, stored once.
                let (st, again) = s.api("POST", &path, &t(from), Some(body)).await;
                assert_eq!((st, &again["id"]), (200, &m["id"]), "{again}");
            }
        }
        convs.push((id, cust, prov));
    }
    let (id0, _, _) = &convs[0];
    let read = json!({});
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/v1/conversations/{id0}/mark-read"),
            &t("prov-x"),
            Some(read),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .api(
            "PATCH",
            &format!("/api/v1/conversations/{}", convs[1].0),
            &t("cust-1"),
            Some(json!({"archived": true})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, page) = s
        .api(
            "GET",
            &format!("/api/v1/conversations/{}/messages", convs[2].0),
            &t("cust-2"),
            None,
        )
        .await;
    let items = page["items"].as_array().unwrap();
    let (hide, mine) = (
        items[1]["id"].as_str().unwrap(),
        items[0]["id"].as_str().unwrap(),
    );
    let (st, _) = s
        .api(
            "DELETE",
            &format!("/api/v1/messages/{hide}"),
            &t("cust-2"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, b) = s
        .api(
            "DELETE",
            &format!("/api/v1/messages/{mine}?for=everyone"),
            &t("cust-2"),
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    // A flagged message: an item (the moderation queue).
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/messages/{}/flag", items[2]["id"].as_str().unwrap()),
            &t("cust-2"),
            Some(json!({"reason": "copy me"})),
        )
        .await;
    assert_eq!(st, 202, "{b}");
    // prov-y goes online and off again: with no grace period its last_seen is recorded at once.
    let ws = Ws::connect(&s, &t("prov-y")).await;
    drop(ws);
    let mut seen = Value::Null;
    for _ in 0..100 {
        let (_, card) = s
            .api("GET", "/api/v1/services/svc-c/contact", &t("cust-3"), None)
            .await;
        seen = card["provider"]["last_seen_at"].clone();
        if !seen.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.is_string(), "prov-y's last_seen_at is recorded");
    s.stop();
    s
}
