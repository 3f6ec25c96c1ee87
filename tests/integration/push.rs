//! Web Push over the real server, with the test playing both the browser (a real P-256 key pair
//! and auth secret, as `pushManager.subscribe` makes) and the push service (a local receiver that
//! decrypts each payload and verifies the VAPID JWT against the key the server publishes).

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{json, Value};
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::claims::{Audiences, NoCustomClaims};
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
use web_push_native::p256::SecretKey;
use web_push_native::Auth;

use super::harness::{Server, Ws};
use super::receiver::{Receiver, Request};

const SUBJECT: &str = "mailto:ops@market.example";

/// A browser's side of one subscription.
struct Browser {
    secret: SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        let secret = loop {
            let bytes: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
            if let Ok(s) = SecretKey::from_slice(&bytes) {
                break s;
            }
        };
        Browser {
            secret,
            auth: std::array::from_fn(|_| fastrand::u8(..)),
        }
    }

    /// `PushSubscription.toJSON()` for `endpoint`.
    fn subscription(&self, endpoint: &str) -> Value {
        let point = self.secret.public_key().to_encoded_point(false);
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": Base64UrlUnpadded::encode_string(point.as_bytes()),
                "auth": Base64UrlUnpadded::encode_string(&self.auth),
            }
        })
    }

    /// What the service worker's `push` event would read.
    fn read(&self, r: &Request) -> Value {
        let plain = web_push_native::decrypt(r.raw.clone(), &self.secret, &Auth::from(self.auth))
            .expect("the payload decrypts with the browser's keys");
        serde_json::from_slice(&plain).expect("the payload is JSON")
    }
}

async fn with_push() -> Server {
    Server::start_with(&[
        ("SWITCHBOARD_PUSH__SUBJECT", SUBJECT),
        ("SWITCHBOARD_PUSH__DELAY_SECS", "2"),
        ("SWITCHBOARD_PUSH__ALLOW_INSECURE_ENDPOINTS", "true"),
    ])
    .await
}

async fn published_key(server: &Server) -> String {
    let (status, body) = server
        .call(
            "GET",
            &server.url("/api/v1/push/vapid-public-key"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

/// The request is a Web Push the published key signed for this push service.
fn check_vapid(r: &Request, key: &str, origin: &str) {
    let auth = r.header("authorization");
    let (t, k) = auth
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .unwrap_or_else(|| panic!("a VAPID authorization: {auth}"));
    assert_eq!(k, key, "signed with the published key");
    let public = ES256PublicKey::from_bytes(&Base64UrlUnpadded::decode_vec(k).unwrap()).unwrap();
    let claims = public
        .verify_token::<NoCustomClaims>(t, None)
        .expect("the VAPID JWT verifies against the published key");
    assert_eq!(claims.subject.as_deref(), Some(SUBJECT));
    let aud = match claims.audiences {
        Some(Audiences::AsString(a)) => a,
        Some(Audiences::AsSet(set)) => set.into_iter().collect::<Vec<_>>().join(" "),
        None => String::new(),
    };
    assert_eq!(aud, origin, "aud is the push service's origin");
    let exp = claims.expires_at.unwrap().as_secs();
    let now = super::harness::now() as u64;
    assert!(
        exp > now && exp <= now + 12 * 3600 + 60,
        "exp within 12 h: {exp} vs {now}"
    );
    assert_eq!(r.header("content-encoding"), "aes128gcm");
    assert_eq!(r.header("urgency"), "high");
    assert_eq!(r.header("ttl"), "86400");
}

async fn subscribe(server: &Server, token: &str, sub: Value) -> (u16, Value) {
    server
        .api("POST", "/api/v1/push/subscriptions", token, Some(sub))
        .await
}

async fn send(server: &Server, token: &str, conv: &str, text: &str) {
    let (status, body) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            token,
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn subscriptions_are_per_user_deduplicated_by_endpoint_and_bounded() {
    let service = Receiver::start(201).await;
    let server = with_push().await;
    let me = server.token("push-sub-user", "provider").await;
    let other = server.token("push-sub-other", "provider").await;
    let browser = Browser::new();
    let (status, first) = subscribe(&server, &me, browser.subscription(&service.url("/a"))).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = subscribe(&server, &me, browser.subscription(&service.url("/a"))).await;
    assert_eq!(
        (status, &again["id"]),
        (200, &first["id"]),
        "the same endpoint is not a new one"
    );
    for bad in [
        json!({"endpoint": "ftp://x.example/", "keys": {"p256dh": "x", "auth": "y"}}),
        json!({"endpoint": service.url("/b"), "keys": {"p256dh": "AAAA", "auth": Base64UrlUnpadded::encode_string(&[0u8; 16])}}),
        json!({"endpoint": service.url("/b")}),
    ] {
        let (status, body) = subscribe(&server, &me, bad.clone()).await;
        assert!(status == 422, "{bad} -> {status} {body}");
    }
    for i in 1..10 {
        let (status, _) = subscribe(
            &server,
            &me,
            Browser::new().subscription(&service.url(&format!("/n{i}"))),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, body) = subscribe(
        &server,
        &me,
        Browser::new().subscription(&service.url("/n10")),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("too_many_subscriptions"))
    );
    let (_, mine) = server
        .api("GET", "/api/v1/push/subscriptions", &me, None)
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 10);
    let (_, theirs) = server
        .api("GET", "/api/v1/push/subscriptions", &other, None)
        .await;
    assert_eq!(theirs["items"], json!([]));
    let id = first["id"].as_str().unwrap();
    let path = format!("/api/v1/push/subscriptions/{id}");
    let (status, _) = server.api("DELETE", &path, &other, None).await;
    assert_eq!(status, 404, "not theirs");
    let (status, _) = server.api("DELETE", &path, &me, None).await;
    assert_eq!(status, 204);
    let (status, body) = server.api("DELETE", &path, &me, None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("subscription_not_found"))
    );
}

#[tokio::test]
async fn an_offline_recipient_gets_one_push_per_subscription_for_a_burst_and_an_online_one_none() {
    let service = Receiver::start(201).await;
    let server = with_push().await;
    let key = published_key(&server).await;
    // Subscribed before the customer writes: the first message is part of the burst.
    let p = server.token("prov-push-burst", "provider").await;
    let (phone, laptop) = (Browser::new(), Browser::new());
    for (b, path) in [(&phone, "/phone"), (&laptop, "/laptop")] {
        let (status, _) = subscribe(&server, &p, b.subscription(&service.url(path))).await;
        assert_eq!(status, 201);
    }
    let (c, _, conv) = server.conversation("push-burst").await;
    send(&server, &c, &conv, "second").await;
    send(&server, &c, &conv, "third <b>&</b> last").await;
    let seen = service
        .until(Duration::from_secs(10), |s| s.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let seen = if service.seen().len() > seen.len() {
        service.seen()
    } else {
        seen
    };
    assert_eq!(
        seen.len(),
        2,
        "one push per subscription for the burst: {seen:#?}"
    );
    let origin = format!("http://{}", service.addr);
    for r in &seen {
        check_vapid(r, &key, &origin);
        assert_eq!(r.header("topic"), format!("c{conv}"));
        let browser = if r.path == "/phone" { &phone } else { &laptop };
        let payload = browser.read(r);
        assert_eq!(
            payload,
            json!({
                "type": "chat_message",
                "conversation_id": conv,
                "sender_name": "cust-push-burst name",
                "preview": "third <b>&</b> last",
            })
        );
    }

    // Online: the provider's socket is open while the next message waits.
    let _ws = Ws::connect(&server, &p).await;
    send(&server, &c, &conv, "while you are here").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(service.seen().len(), 2, "no push to a connected recipient");
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_a_410_removes_the_subscription() {
    let busy = Receiver::start(201).await;
    busy.plan(&[429]);
    let gone = Receiver::start(410).await;
    let server = with_push().await;
    let p = server.token("prov-push-retry", "provider").await;
    let browser = Browser::new();
    subscribe(&server, &p, browser.subscription(&busy.url("/busy"))).await;
    subscribe(&server, &p, Browser::new().subscription(&gone.url("/gone"))).await;
    // The conversation's first message ("hello") is the push.
    server.conversation("push-retry").await;
    let seen = busy.until(Duration::from_secs(10), |s| s.len() >= 2).await;
    assert_eq!(
        seen.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 201],
        "{seen:#?}"
    );
    assert_eq!(browser.read(&seen[1])["preview"], "hello");
    gone.until(Duration::from_secs(5), |s| !s.is_empty()).await;
    let left = async {
        for _ in 0..50 {
            let (_, mine) = server
                .api("GET", "/api/v1/push/subscriptions", &p, None)
                .await;
            let items = mine["items"].as_array().unwrap().clone();
            if items.len() == 1 {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gone subscription is removed");
    }
    .await;
    assert!(left[0]["endpoint"].as_str().unwrap().ends_with("/busy"));
    assert_eq!(gone.seen().len(), 1, "a gone subscription is not retried");
}

#[tokio::test]
async fn pushes_pending_at_a_kill_go_out_after_the_restart_signed_with_the_same_key() {
    let service = Receiver::start(503).await;
    let mut server = with_push().await;
    let key = published_key(&server).await;
    let p = server.token("prov-push-kill", "provider").await;
    let browser = Browser::new();
    subscribe(&server, &p, browser.subscription(&service.url("/k"))).await;
    server.conversation("push-kill").await;
    service
        .until(Duration::from_secs(10), |s| !s.is_empty())
        .await;
    server.kill9();
    service.answer(201);
    server.restart();
    assert_eq!(
        published_key(&server).await,
        key,
        "the generated key was kept"
    );
    let seen = service
        .until(Duration::from_secs(15), |s| s.iter().any(|r| r.accepted()))
        .await;
    let ok: Vec<_> = seen.iter().filter(|r| r.accepted()).collect();
    assert_eq!(ok.len(), 1, "{seen:#?}");
    check_vapid(ok[0], &key, &format!("http://{}", service.addr));
    assert_eq!(browser.read(ok[0])["preview"], "hello");
}

#[tokio::test]
async fn a_providers_browser_shows_the_servers_push_through_the_documented_service_worker() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(chromium) = super::browser::chromium_or_skip(&root.join("tests/browser")) else {
        return;
    };
    // A real push, made and encrypted by the server, decrypted as the browser would.
    let service = Receiver::start(201).await;
    let server = with_push().await;
    let p = server.token("prov-push-sw", "provider").await;
    let browser = Browser::new();
    subscribe(&server, &p, browser.subscription(&service.url("/sw"))).await;
    server.conversation("push-sw").await;
    let seen = service
        .until(Duration::from_secs(10), |s| !s.is_empty())
        .await;
    let payload = browser.read(seen.first().expect("a push"));

    let site = super::browser::static_site(root.to_path_buf()).await;
    let run = tokio::process::Command::new("node")
        .arg("push.mjs")
        .current_dir(root.join("tests/browser"))
        .env("SB_SITE", &site)
        .env("SB_PUSH_PAYLOAD", payload.to_string())
        .env("CHROMIUM", &chromium)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser run ends within 2 minutes")
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all push checks passed"),
        "the service worker run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
