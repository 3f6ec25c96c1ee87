//! The admin audit log over real HTTP: every successful admin change is listed with who did it
//! (the static token or an admin user's JWT), what and when; reads and refused requests are not.

use serde_json::{json, Value};

use super::harness::Server;

/// Every entry of the log, following the cursor one entry at a time.
async fn log(s: &Server) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = "/admin/v1/audit?limit=1".to_string();
    for _ in 0..50 {
        let (status, page) = s.admin_call("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/admin/v1/audit?limit=1&cursor={c}"),
            None => return all,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn admin_changes_are_logged_with_who_what_and_when() {
    let s = Server::start().await;
    s.service("svc-audit", "prov-audit").await;
    let (status, _) = s
        .admin_call(
            "PUT",
            "/admin/v1/users/u-audit",
            Some(json!({"name": "U", "role": "customer"})),
        )
        .await;
    assert_eq!(status, 200);
    // Not logged: a read, and a refused change.
    s.admin_call("GET", "/admin/v1/services/svc-audit", None)
        .await;
    let (status, _) = s
        .admin_call(
            "PUT",
            "/admin/v1/services/svc-bad",
            Some(json!({"provider_id": "p", "title": ""})),
        )
        .await;
    assert_eq!(status, 422);
    // An admin user, by JWT.
    let ops = s.token("ops-1", "admin").await;
    let res = reqwest::Client::new()
        .delete(format!("http://{}/admin/v1/services/svc-audit", s.admin))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);

    let entries = log(&s).await;
    let seen: Vec<(&str, &str, &str, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("admin_token", "PUT", "/admin/v1/services/svc-audit", 200),
            ("admin_token", "PUT", "/admin/v1/users/u-audit", 200),
            ("user:ops-1", "DELETE", "/admin/v1/services/svc-audit", 204),
        ]
    );
    for e in &entries {
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    // It survives a restart: it is in the store.
    let mut s = s;
    s.restart();
    assert_eq!(log(&s).await.len(), 3);
}
