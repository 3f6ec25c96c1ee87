//! Tokens stay out of the log: a server asked to log everything at `trace` (tungstenite, which
//! would print whole frames, included) is sent tokens every way it takes them (bearer header,
//! `?access_token=` on both sockets, the auth cookie, the `auth` frame), valid and not, and its
//! whole log is then searched for them.

use serde_json::json;

use crate::harness::{now, signed, Server, Ws};

const SITE: &str = "http://127.0.0.1:3000";

/// The parts of a token that must never be logged: the whole token, and its signature (which
/// alone is enough to tell a logged token apart, and is what a truncated copy would keep).
fn secrets(token: &str) -> Vec<String> {
    let mut out = vec![token.to_string()];
    if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() >= 16) {
        out.push(sig.to_string());
    }
    out
}

#[tokio::test]
async fn no_token_reaches_the_log() {
    let mut server = Server::start_logged(&[
        ("RUST_LOG", "trace,tungstenite=trace"),
        ("SWITCHBOARD_HTTP__ALLOWED_ORIGINS", SITE),
        ("SWITCHBOARD_AUTH__COOKIE_NAME", "access_token"),
    ])
    .await;
    let (c, p, id) = server.conversation("logs").await;
    let expired = signed(json!({"sub": "logs-x", "exp": now() - 3600}));
    let refresh = signed(json!({"sub": "logs-r", "exp": now() + 600, "token_type": "refresh"}));
    let jar = format!("access_token={c}");

    // HTTP: bearer, cookie (read and write), and bad tokens both ways.
    server.api("GET", "/api/v1/conversations", &c, None).await;
    server
        .call_with_headers(
            "POST",
            &format!("/api/v1/conversations/{id}/messages"),
            &[("cookie", &jar), ("origin", SITE)],
            Some(json!({"text": "by cookie"})),
        )
        .await;
    server
        .call_with_headers(
            "GET",
            &format!("/api/v1/unread?access_token={p}"),
            &[("cookie", &format!("access_token={expired}"))],
            None,
        )
        .await;
    server.api("GET", "/api/v1/unread", &refresh, None).await;

    // Sockets: the token in the query on both paths, by cookie, refused ones, and the auth frame.
    let mut ws = Ws::connect(&server, &p).await;
    ws.send(json!({"type": "auth", "token": p})).await;
    assert_eq!(ws.next_of("ready").await["type"], "ready");
    ws.send(json!({"type": "auth", "token": refresh})).await;
    ws.next_of("error").await;
    let compat = server.ws_url(&format!("/ws/chat/{id}/?access_token={c}"));
    let mut hook = Ws::connect_url(&compat).await;
    hook.send(json!({"type": "chat_message", "message": "by query"}))
        .await;
    hook.next_of("chat_message").await;
    let mut by_cookie = Ws::open_with(&server.ws_url("/ws"), &[("cookie", &jar), ("origin", SITE)])
        .await
        .expect("cookie socket");
    by_cookie.next_of("ready").await;
    for refused in [
        server.ws_url(&format!("/ws?access_token={expired}")),
        server.ws_url(&format!("/ws/chat/{id}/?access_token={refresh}")),
    ] {
        assert!(Ws::open_with(&refused, &[]).await.is_err(), "{refused}");
    }
    assert!(Ws::open_with(
        &server.ws_url("/ws"),
        &[("cookie", &jar), ("origin", "http://evil.test")]
    )
    .await
    .is_err());
    drop((ws, hook, by_cookie));
    server.stop();

    let path = server.log.clone().expect("a logged server");
    let log = std::fs::read_to_string(&path).expect("the server wrote its log");
    // The log is the real thing: the upgrades were logged, with how they authenticated.
    for seen in [
        "websocket upgrade",
        "auth=\"query\"",
        "auth=\"cookie\"",
        "socket ready",
    ] {
        assert!(
            log.contains(seen),
            "the trace log should show `{seen}` (is logging captured?); {} bytes",
            log.len()
        );
    }
    for (name, token) in [
        ("customer", &c),
        ("provider", &p),
        ("expired", &expired),
        ("refresh", &refresh),
    ] {
        for secret in secrets(token) {
            if let Some(line) = log.lines().find(|l| l.contains(&secret)) {
                let shown: String = line.replace(&secret, "<TOKEN>").chars().take(600).collect();
                panic!("the {name} token (or its signature) is in the log: {shown}");
            }
        }
    }
}

/// At `info`, in the JSON format: every line is one JSON object, spans name the conversation and
/// the user, and no message's text is anywhere in the log.
#[tokio::test]
async fn the_info_log_is_json_with_ids_and_no_message_text() {
    let mut server = Server::start_logged(&[
        ("RUST_LOG", "info,fjall=warn,lsm_tree=warn"),
        ("SWITCHBOARD_LOG__FORMAT", "json"),
    ])
    .await;
    let (c, p, id) = server.conversation("logs-json").await;
    let secret_http = "the-door-code-is-4417";
    let secret_ws = "my-iban-NL91ABNA0417164300";
    server
        .api(
            "POST",
            &format!("/api/v1/conversations/{id}/messages"),
            &c,
            Some(json!({ "text": secret_http })),
        )
        .await;
    let mut ws = Ws::connect(&server, &p).await;
    ws.send(json!({"type": "chat_message", "conversation_id": id, "text": secret_ws, "ref": "x"}))
        .await;
    ws.next_of("ack").await;
    // An operator erases the customer: an info line about a user, with their id.
    let (status, _) = server
        .admin_call("DELETE", "/admin/v1/users/cust-logs-json", None)
        .await;
    assert_eq!(status, 200);
    drop(ws);
    server.stop();

    let path = server.log.clone().expect("a logged server");
    let log = std::fs::read_to_string(&path).expect("the server wrote its log");
    let mut lines = 0;
    let mut with_ids = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        lines += 1;
        if line.contains("\"conversation_id\"") || line.contains("\"user_id\"") {
            with_ids += 1;
        }
    }
    assert!(lines > 3, "the run was logged: {log}");
    assert!(with_ids > 0, "spans carry conversation_id / user_id: {log}");
    for secret in [secret_http, secret_ws, "hello"] {
        assert!(!log.contains(secret), "`{secret}` reached the info log");
    }
}
