//! An acknowledged message is on disk: it survives an orderly restart and a `kill -9`.

use serde_json::json;

use crate::harness::{Server, Ws};

fn seqs(page: &serde_json::Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn restart_keeps_every_acknowledged_message_with_its_seq() {
    let mut s = Server::start().await;
    let (c, p, id) = s.conversation("restart").await;
    let path = format!("/api/v1/conversations/{id}/messages");
    for i in 0..10 {
        let (st, _) = s
            .api("POST", &path, &c, Some(json!({"text": format!("r{i}")})))
            .await;
        assert_eq!(st, 201);
    }
    s.restart();
    let (st, page) = s.api("GET", &format!("{path}?limit=100"), &p, None).await;
    assert_eq!(st, 200, "tokens stay valid across restarts: {page}");
    assert_eq!(seqs(&page), (1..=11).rev().collect::<Vec<_>>());
    // The conversation carries on where it stopped.
    let (_, m) = s
        .api("POST", &path, &c, Some(json!({"text": "after"})))
        .await;
    assert_eq!(m["seq"], 12);
    let (_, conv) = s
        .api("GET", &format!("/api/v1/conversations/{id}"), &p, None)
        .await;
    assert_eq!(conv["unread_count"], 12);
}

#[tokio::test]
async fn kill_9_after_ack_loses_nothing() {
    let mut s = Server::start().await;
    let (c, p, id) = s.conversation("kill").await;
    let mut ws = Ws::connect(&s, &c).await;
    // Pipeline many sends over the socket; every ack means "on disk".
    for i in 0..200 {
        ws.send(json!({"type": "chat_message", "conversation_id": id, "text": format!("k{i}"), "ref": i.to_string()})).await;
    }
    let mut acked = Vec::new();
    while acked.len() < 200 {
        let ack = ws.next_of("ack").await;
        acked.push(ack["message"]["seq"].as_u64().unwrap());
    }
    s.restart_after_kill();
    let (_, page) = s
        .api(
            "GET",
            &format!("/api/v1/conversations/{id}/messages?limit=100"),
            &p,
            None,
        )
        .await;
    let newest = seqs(&page)[0];
    assert_eq!(newest, 201, "all 200 acknowledged messages survive kill -9");
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (_, page) = s
            .api(
                "GET",
                &format!("/api/v1/conversations/{id}/messages?limit=100{q}"),
                &p,
                None,
            )
            .await;
        all.extend(seqs(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(all, (1..=201).rev().collect::<Vec<_>>());
    acked.sort_unstable();
    assert_eq!(acked, (2..=201).collect::<Vec<_>>());
}

#[tokio::test]
async fn bad_configuration_exits_64_before_binding() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .env("SWITCHBOARD_AUTH__JWT_SECRET", "")
        .env("SWITCHBOARD_STORE__PATH", "/nonexistent/never-created")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("jwt_secret"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .env("SWITCHBOARD_AUTH__JWT_SECRET", "x")
        .env("SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE", "lots")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
