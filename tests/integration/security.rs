//! Socket and token security: the compat socket authenticates before it looks anything up,
//! refresh tokens and not-yet-valid tokens are refused, a weak HS256 secret stops startup, open
//! sockets close when their token expires unless refreshed, and typing is budgeted per user.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::harness::{now, signed, Server, Ws};

/// A token for `user` that expires `secs` from now.
fn expiring(user: &str, secs: i64) -> String {
    signed(json!({"sub": user, "name": user, "exp": now() + secs}))
}

/// Opens a socket without waiting for anything: `Ok` when upgraded, else the HTTP answer.
async fn open(url: &str) -> Result<Ws, (u16, Value)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((stream, _)) => Ok(Ws {
            stream,
            ready: Value::Null,
        }),
        Err(WsError::Http(res)) => {
            let body = res
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((res.status().as_u16(), body))
        }
        Err(e) => panic!("{url}: neither an upgrade nor an HTTP answer: {e}"),
    }
}

/// The HTTP refusal of an upgrade that must not happen.
async fn refused(url: &str) -> (u16, Value) {
    match open(url).await {
        Ok(_) => panic!("{url}: upgraded, expected an HTTP refusal"),
        Err(answer) => answer,
    }
}

/// Reads until the server closes the socket: (close code, reason). `None` for a socket that ends
/// without a close frame.
async fn closed(ws: &mut Ws, within: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.stream.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return Some((f.code.into(), f.reason.to_string()))
            }
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("socket not closed within {within:?}"),
        }
    }
}

/// The socket answers a ping: it is open and being served.
async fn alive(ws: &mut Ws, tag: &str) {
    ws.send(json!({"type": "ping", "ref": tag})).await;
    let pong = ws.next_of("pong").await;
    assert_eq!(pong["ref"], tag, "{pong}");
}

/// What an unauthenticated or stranger client learns from one compat path: the upgrade's HTTP
/// answer, or the first event and the close code after its auth frame.
async fn compat_answer(s: &Server, path: &str, auth_frame: Option<&str>) -> Value {
    match open(&s.ws_url(path)).await {
        Err((status, body)) => json!({"http": status, "body": body}),
        Ok(mut ws) => {
            if let Some(t) = auth_frame {
                ws.send(json!({"type": "auth", "token": t})).await;
            }
            let first = ws.next().await;
            let close = closed(&mut ws, Duration::from_secs(10)).await;
            json!({"event": first, "close": close.map(|(code, _)| code)})
        }
    }
}

#[tokio::test]
async fn compat_socket_cannot_tell_a_stranger_which_conversation_ids_exist() {
    let s = Server::start().await;
    let (customer, _p, real) = s.conversation("compat-sec").await;
    let stranger = s.token("stranger-compat", "customer").await;
    let made_up = "918273645546372819";
    assert_ne!(real, made_up);
    let real_path = format!("/ws/chat/{real}/");
    let fake_path = format!("/ws/chat/{made_up}/");

    // No token at all: both are upgraded, and both wait for the auth frame; a bad one is refused
    // alike. The old code answered 404 for the made-up id and upgraded the real one.
    let a = compat_answer(&s, &real_path, Some("garbage")).await;
    let b = compat_answer(&s, &fake_path, Some("garbage")).await;
    assert_eq!(a, b, "no token: a real and a made-up id must look alike");
    assert_eq!(a["event"]["code"], "invalid_token", "{a}");
    assert_eq!(a["close"], 1008, "{a}");

    // A valid stranger in the auth frame: the same not-found for both, then 1008.
    let a = compat_answer(&s, &real_path, Some(&stranger)).await;
    let b = compat_answer(&s, &fake_path, Some(&stranger)).await;
    assert_eq!(
        a, b,
        "stranger by frame: a real and a made-up id must look alike"
    );
    assert_eq!(a["event"]["code"], "conversation_not_found", "{a}");
    assert_eq!(a["close"], 1008, "{a}");

    // Tokens in the URL: an invalid one is 401 before any lookup, a stranger gets 404 for both.
    for (token, status, code) in [
        ("garbage", 401, "invalid_token"),
        (stranger.as_str(), 404, "conversation_not_found"),
    ] {
        let a = refused(&s.ws_url(&format!("{real_path}?access_token={token}"))).await;
        let b = refused(&s.ws_url(&format!("{fake_path}?access_token={token}"))).await;
        assert_eq!(
            a, b,
            "token in URL ({code}): real and made-up ids must look alike"
        );
        assert_eq!((a.0, a.1["error"]["code"].as_str()), (status, Some(code)));
    }

    // The participant still gets in by the auth frame, and is served.
    let mut ws = open(&s.ws_url(&real_path)).await.expect("upgrade");
    ws.send(json!({"type": "auth", "token": customer})).await;
    assert_eq!(ws.next().await["type"], "ready");
    ws.send(json!({"type": "chat_message", "message": "via compat"}))
        .await;
    let m = ws.next_of("chat_message").await;
    assert_eq!(m["message"]["text"], "via compat", "{m}");
}

#[tokio::test]
async fn refresh_tokens_are_refused_on_http_upgrade_and_auth_frame() {
    let s = Server::start().await;
    let exp = now() + 600;
    let refresh = signed(json!({"sub": "u-typed", "exp": exp, "token_type": "refresh"}));
    let access = signed(json!({"sub": "u-typed", "exp": exp, "token_type": "access"}));
    let untyped = signed(json!({"sub": "u-typed", "exp": exp}));
    let list = s.url("/api/v1/conversations");

    let (st, b) = s.call("GET", &list, Some(&refresh), None).await;
    assert_eq!(
        (st, &b["error"]["code"]),
        (401, &json!("invalid_token")),
        "{b}"
    );
    for ok in [&access, &untyped] {
        let (st, b) = s.call("GET", &list, Some(ok), None).await;
        assert_eq!(st, 200, "an access or untyped token is accepted: {b}");
    }

    let (st, b) = refused(&s.ws_url(&format!("/ws?access_token={refresh}"))).await;
    assert_eq!(
        (st, &b["error"]["code"]),
        (401, &json!("invalid_token")),
        "{b}"
    );

    let mut ws = open(&s.ws_url("/ws")).await.expect("upgrade");
    ws.send(json!({"type": "auth", "token": refresh})).await;
    let e = ws.next().await;
    assert_eq!(
        (&e["type"], &e["code"]),
        (&json!("error"), &json!("invalid_token")),
        "{e}"
    );
    assert_eq!(
        closed(&mut ws, Duration::from_secs(5)).await.map(|c| c.0),
        Some(1008)
    );

    Ws::connect(&s, &untyped).await;
    Ws::connect(&s, &access).await;
}

#[tokio::test]
async fn a_token_before_its_nbf_is_refused() {
    let s = Server::start().await;
    let early = signed(json!({"sub": "u-nbf", "exp": now() + 600, "nbf": now() + 300}));
    let (st, b) = s
        .call("GET", &s.url("/api/v1/unread"), Some(&early), None)
        .await;
    assert_eq!(
        (st, &b["error"]["code"]),
        (401, &json!("invalid_token")),
        "{b}"
    );
    let (st, _) = refused(&s.ws_url(&format!("/ws?access_token={early}"))).await;
    assert_eq!(st, 401);
    let valid_now = signed(json!({"sub": "u-nbf", "exp": now() + 600, "nbf": now() - 5}));
    let (st, b) = s
        .call("GET", &s.url("/api/v1/unread"), Some(&valid_now), None)
        .await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test]
async fn a_weak_hs256_secret_exits_64_before_binding() {
    // Hold a port: a server that bound before validating would fail on it with another message
    // and another exit code.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config", &format!("{root}/config/local.toml")])
        .env("SWITCHBOARD_AUTH__JWT_SECRET", "dev-secret-change-me")
        .env("SWITCHBOARD_HTTP__ADDR", &addr)
        .env("SWITCHBOARD_STORE__PATH", "/nonexistent/never-created")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(
        err.contains("jwt_secret") && err.contains("32"),
        "the line names the key and the minimum: {err}"
    );
}

#[tokio::test]
async fn sockets_close_with_1008_when_their_token_expires() {
    let s = Server::start().await;
    let (_c, _p, id) = s.conversation("expiry").await;
    // The conversation's provider, with a token that lives for one more second.
    let short = expiring("prov-expiry", 1);
    let mut main = Ws::connect(&s, &short).await;
    let mut compat =
        Ws::connect_url(&s.ws_url(&format!("/ws/chat/{id}/?access_token={short}"))).await;
    let started = Instant::now();
    let (a, b) = tokio::join!(
        closed(&mut main, Duration::from_secs(15)),
        closed(&mut compat, Duration::from_secs(15))
    );
    let expected = Some((1008, "token expired".to_string()));
    assert_eq!(a, expected, "/ws");
    assert_eq!(b, expected, "compat socket");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "closed only once the token expired, not at once ({:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_auth_frame_refreshes_the_token_and_keeps_the_session() {
    let s = Server::start().await;
    let first = expiring("u-refresh", 1);
    let mut ws = Ws::connect(&s, &first).await;
    let session = ws.ready["session_id"].clone();
    let started = Instant::now();
    // The fresh token's exp is 6 s away: later than the first one's, and still short.
    ws.send(json!({"type": "auth", "token": expiring("u-refresh", 6)}))
        .await;
    let ready = ws.next().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["user_id"], "u-refresh");
    assert_eq!(
        ready["session_id"], session,
        "a refresh keeps the session_id"
    );

    // Past the first token's deadline (exp + leeway = 6 s) the socket is still served...
    tokio::time::sleep(Duration::from_millis(8500).saturating_sub(started.elapsed())).await;
    alive(&mut ws, "after-first-exp").await;
    // ...and the fresh token's expiry closes it.
    assert_eq!(
        closed(&mut ws, Duration::from_secs(10)).await,
        Some((1008, "token expired".to_string()))
    );
}

#[tokio::test]
async fn a_refresh_for_another_user_or_a_bad_token_closes_1008() {
    let s = Server::start().await;
    let (c, _p, id) = s.conversation("refresh-other").await;
    let mut ws = Ws::connect(&s, &c).await;
    ws.send(json!({"type": "auth", "token": expiring("someone-else", 600)}))
        .await;
    let e = ws.next().await;
    assert_eq!(
        (&e["type"], &e["code"]),
        (&json!("error"), &json!("token_user_mismatch")),
        "{e}"
    );
    assert_eq!(
        closed(&mut ws, Duration::from_secs(5)).await.map(|c| c.0),
        Some(1008)
    );

    // The compat socket takes a refresh too: same user → ready with the same session, a bad
    // token → error and 1008.
    let mut compat = Ws::connect_url(&s.ws_url(&format!("/ws/chat/{id}/?access_token={c}"))).await;
    let session = compat.ready["session_id"].clone();
    compat
        .send(json!({"type": "auth", "token": expiring("cust-refresh-other", 600)}))
        .await;
    let ready = compat.next().await;
    assert_eq!(
        (&ready["type"], &ready["session_id"]),
        (&json!("ready"), &session),
        "{ready}"
    );
    compat
        .send(json!({"type": "auth", "token": "forged"}))
        .await;
    assert_eq!(compat.next().await["code"], "invalid_token");
    assert_eq!(
        closed(&mut compat, Duration::from_secs(5))
            .await
            .map(|c| c.0),
        Some(1008)
    );
}

/// Counts `typing_status` events until none has come for `quiet`.
async fn typing_events(ws: &mut Ws, quiet: Duration) -> usize {
    let mut n = 0;
    while ws.sees_within("typing_status", quiet).await.is_some() {
        n += 1;
    }
    n
}

/// One HTTP typing request: (status, Retry-After, error code).
async fn http_typing(
    client: &reqwest::Client,
    s: &Server,
    id: &str,
    token: &str,
) -> (u16, Option<u64>, Value) {
    let res = client
        .post(s.url(&format!("/api/v1/conversations/{id}/typing")))
        .bearer_auth(token)
        .json(&json!({"is_typing": true}))
        .send()
        .await
        .expect("typing request is answered");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, retry, body["error"]["code"].clone())
}

/// Budget 5 per 10 s refills one token every 2 s: what `elapsed` may have added.
fn refills(elapsed: Duration) -> usize {
    (elapsed.as_secs_f64() / 2.0).floor() as usize + 1
}

#[tokio::test]
async fn an_http_typing_flood_is_held_to_the_users_budget() {
    let s = Server::start_with(&[("SWITCHBOARD_LIMITS__TYPING_PER_10S", "5")]).await;
    let (c, p, id) = s.conversation("typing-http").await;
    let mut provider = Ws::connect(&s, &p).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..60 {
        match http_typing(&client, &s, &id, &c).await {
            (204, _, _) => ok += 1,
            (429, Some(retry), code) => {
                assert_eq!(code, "rate_limited");
                assert!((1..=10).contains(&retry), "Retry-After {retry}");
                limited += 1;
            }
            other => panic!("typing answered {other:?}"),
        }
    }
    let allowed = 5 + refills(started.elapsed());
    assert!(
        (5..=allowed).contains(&ok),
        "{ok} of 60 typing requests accepted; the budget allows 5 (+{} refilled)",
        allowed - 5
    );
    assert_eq!(ok + limited, 60);
    let seen = typing_events(&mut provider, Duration::from_millis(1500)).await;
    assert!(
        (1..=ok).contains(&seen),
        "the provider saw {seen} typing events for {ok} accepted requests"
    );
}

#[tokio::test]
async fn typing_budget_is_shared_by_a_users_sockets_and_http() {
    let s = Server::start_with(&[("SWITCHBOARD_LIMITS__TYPING_PER_10S", "5")]).await;
    let (c, p, id) = s.conversation("typing-shared").await;
    let mut provider = Ws::connect(&s, &p).await;
    let mut phone = Ws::connect(&s, &c).await;
    let mut laptop = Ws::connect(&s, &c).await;
    let started = Instant::now();
    // Two sockets of one user: together they get one budget, not one each.
    for i in 0..5 {
        let ws = if i % 2 == 0 { &mut phone } else { &mut laptop };
        ws.send(json!({"type": "typing_status", "conversation_id": id, "is_typing": true}))
            .await;
    }
    for _ in 0..5 {
        provider.next_of("typing_status").await;
    }
    for _ in 0..5 {
        laptop
            .send(json!({"type": "typing_status", "conversation_id": id, "is_typing": true}))
            .await;
    }
    alive(&mut laptop, "after-flood").await;
    // The sockets spent the budget: HTTP is refused, but for what the elapsed time refilled.
    let client = reqwest::Client::new();
    let mut ok = 0;
    for _ in 0..10 {
        if http_typing(&client, &s, &id, &c).await.0 == 204 {
            ok += 1;
        }
    }
    let refilled = refills(started.elapsed());
    assert!(
        ok <= refilled,
        "{ok} HTTP typing requests accepted after the sockets spent the budget (refill {refilled})"
    );
    let extra = typing_events(&mut provider, Duration::from_millis(1500)).await;
    assert!(
        extra <= refilled,
        "after the budget was spent the provider saw {extra} more typing events (refill {refilled})"
    );
}
