//! Cookie authentication (`auth.cookie_name`): the cookie authenticates HTTP and both sockets
//! exactly like a bearer token, and a cookie-authenticated socket or state-changing request must
//! come from an origin in `http.allowed_origins` (403 otherwise, `Origin` missing included);
//! bearer and query tokens are not affected.

use serde_json::{json, Value};

use crate::harness::{now, signed, Server, Ws};

const SITE: &str = "http://127.0.0.1:3000";
const EVIL: &str = "http://evil.test";

async fn server() -> Server {
    Server::start_with(&[
        ("SWITCHBOARD_HTTP__ALLOWED_ORIGINS", SITE),
        ("SWITCHBOARD_AUTH__COOKIE_NAME", "access_token"),
    ])
    .await
}

fn cookie(token: &str) -> String {
    format!("theme=dark; access_token={token}")
}

/// A call authenticated by the cookie only, from `origin` (none when `None`).
async fn by_cookie(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let cookie = cookie(token);
    let mut headers = vec![("cookie", cookie.as_str())];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    let (status, _, body) = server.call_with_headers(method, path, &headers, body).await;
    (status, body)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn history_len(server: &Server, token: &str, id: &str) -> usize {
    let (status, body) = server
        .api(
            "GET",
            &format!("/api/v1/conversations/{id}/messages"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_cookie_authenticates_http_like_a_bearer_token() {
    let server = server().await;
    let (c, _, _) = server.conversation("cookie-http").await;
    let (status, by_bearer) = server.api("GET", "/api/v1/conversations", &c, None).await;
    assert_eq!(status, 200);
    for origin in [Some(SITE), Some(EVIL), None] {
        let (status, body) =
            by_cookie(&server, "GET", "/api/v1/conversations", &c, origin, None).await;
        assert_eq!(
            (status, &body),
            (200, &by_bearer),
            "a read by cookie from {origin:?} is the caller's own data (CORS keeps other \
             origins from reading it)"
        );
    }

    // Off by default: the same cookie is not a credential.
    let off = Server::start_with(&[("SWITCHBOARD_HTTP__ALLOWED_ORIGINS", SITE)]).await;
    let c = off.token("cust-off", "customer").await;
    let (status, body) =
        by_cookie(&off, "GET", "/api/v1/conversations", &c, Some(SITE), None).await;
    assert_eq!((status, code(&body)), (401, "missing_token"), "{body}");
}

#[tokio::test]
async fn cookie_tokens_get_every_check_a_bearer_token_gets() {
    let server = server().await;
    let t = now();
    let cases = [
        (
            "expired",
            signed(json!({"sub": "u", "exp": t - 3600})),
            "token_expired",
        ),
        (
            "refresh token",
            signed(json!({"sub": "u", "exp": t + 600, "token_type": "refresh"})),
            "invalid_token",
        ),
        (
            "not valid yet",
            signed(json!({"sub": "u", "exp": t + 600, "nbf": t + 300})),
            "invalid_token",
        ),
        (
            "forged",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl".to_string(),
            "invalid_token",
        ),
    ];
    for (what, token, want) in &cases {
        let (status, body) =
            by_cookie(&server, "GET", "/api/v1/unread", token, Some(SITE), None).await;
        assert_eq!(
            (status, code(&body)),
            (401, *want),
            "{what} over HTTP: {body}"
        );
        let (bearer_status, bearer_body) = server.api("GET", "/api/v1/unread", token, None).await;
        assert_eq!(
            (bearer_status, code(&bearer_body)),
            (401, *want),
            "{what} as bearer"
        );
        let url = server.ws_url("/ws");
        let c = cookie(token);
        match Ws::open_with(&url, &[("cookie", &c), ("origin", SITE)]).await {
            Ok(_) => panic!("{what}: a bad cookie token must not open a socket"),
            Err((status, body)) => assert_eq!((status, code(&body)), (401, *want), "{what}"),
        }
    }
}

#[tokio::test]
async fn state_changing_cookie_requests_need_an_allowed_origin() {
    let server = server().await;
    let (c, _, id) = server.conversation("cookie-csrf").await;
    let send = format!("/api/v1/conversations/{id}/messages");
    let before = history_len(&server, &c, &id).await;

    for origin in [Some(EVIL), Some("null"), None] {
        let (status, body) = by_cookie(
            &server,
            "POST",
            &send,
            &c,
            origin,
            Some(json!({"text": "forged"})),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (403, "origin_not_allowed"),
            "a cookie POST from {origin:?}: {body}"
        );
        let (status, body) = by_cookie(
            &server,
            "PATCH",
            &format!("/api/v1/conversations/{id}"),
            &c,
            origin,
            Some(json!({"archived": true})),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (403, "origin_not_allowed"),
            "PATCH {origin:?}"
        );
        let (status, body) =
            by_cookie(&server, "DELETE", "/api/v1/messages/1", &c, origin, None).await;
        assert_eq!(
            (status, code(&body)),
            (403, "origin_not_allowed"),
            "DELETE {origin:?}"
        );
    }
    assert_eq!(
        history_len(&server, &c, &id).await,
        before,
        "a refused request stores nothing"
    );

    let (status, body) = by_cookie(
        &server,
        "POST",
        &send,
        &c,
        Some(SITE),
        Some(json!({"text": "from the site"})),
    )
    .await;
    assert_eq!(status, 201, "a cookie POST from the allowed origin: {body}");
    assert_eq!(body["text"], "from the site");

    // A bearer token from any origin is not a cookie, and is not checked.
    let auth = format!("Bearer {c}");
    let (status, _, body) = server
        .call_with_headers(
            "POST",
            &send,
            &[("authorization", &auth), ("origin", EVIL)],
            Some(json!({"text": "bearer from elsewhere"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(history_len(&server, &c, &id).await, before + 2);
}

#[tokio::test]
async fn cookie_sockets_need_an_allowed_origin_and_bearer_sockets_do_not() {
    let server = server().await;
    let (c, p, id) = server.conversation("cookie-ws").await;
    let jar = cookie(&c);

    for path in ["/ws".to_string(), format!("/ws/chat/{id}/")] {
        let url = server.ws_url(&path);
        for refused in [vec![("origin", EVIL)], vec![("origin", "null")], vec![]] {
            let mut headers = vec![("cookie", jar.as_str())];
            headers.extend(refused.iter().copied());
            match Ws::open_with(&url, &headers).await {
                Ok(_) => panic!("{path} by cookie with {refused:?}: upgraded, expected 403"),
                Err((status, body)) => assert_eq!(
                    (status, code(&body)),
                    (403, "origin_not_allowed"),
                    "{path} by cookie with {refused:?}"
                ),
            }
        }
        // The query token from any origin: the page's own script attached it.
        let with_query = server.ws_url(&format!("{path}?access_token={p}"));
        let mut ws = Ws::open_with(&with_query, &[("origin", EVIL), ("cookie", &jar)])
            .await
            .unwrap_or_else(|e| panic!("{path} with a query token from another origin: {e:?}"));
        assert_eq!(ws.next().await["type"], "ready");
    }

    // From the site, the cookie is the whole authentication: /ws is ready at once...
    let mut ws = Ws::open_with(&server.ws_url("/ws"), &[("cookie", &jar), ("origin", SITE)])
        .await
        .expect("cookie socket from the allowed origin");
    let ready = ws.next().await;
    assert_eq!(
        (ready["type"].as_str(), ready["user_id"].as_str()),
        (Some("ready"), Some("cust-cookie-ws")),
        "{ready}"
    );

    // ...and the old hook's socket sends and receives with no token of its own.
    let mut hook = Ws::open_with(
        &server.ws_url(&format!("/ws/chat/{id}/")),
        &[("cookie", &jar), ("origin", SITE)],
    )
    .await
    .expect("compat socket by cookie");
    assert_eq!(hook.next().await["type"], "ready");
    hook.send(json!({"type": "chat_message", "message": "sent by cookie"}))
        .await;
    let echo = hook.next_of("chat_message").await;
    assert_eq!(echo["message"]["text"], "sent by cookie", "{echo}");
    assert_eq!(echo["message"]["sender_id"], "cust-cookie-ws");
    let (status, body) = server
        .api(
            "GET",
            &format!("/api/v1/conversations/{id}/messages"),
            &p,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["text"], "sent by cookie", "stored: {body}");

    // A stranger's cookie gets what a stranger's bearer token gets.
    let stranger = server.token("stranger", "customer").await;
    let jar = cookie(&stranger);
    match Ws::open_with(
        &server.ws_url(&format!("/ws/chat/{id}/")),
        &[("cookie", &jar), ("origin", SITE)],
    )
    .await
    {
        Ok(_) => panic!("a stranger's cookie opened another's conversation"),
        Err((status, body)) => assert_eq!((status, code(&body)), (404, "conversation_not_found")),
    }
}
