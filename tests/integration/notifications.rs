//! Notifications over the real server, with a local receiver playing the marketplace backend
//! and Brevo: webhooks arrive signed and are accepted once each through failures, dead letters
//! can be retried, pending work survives kill -9, and the unread-messages mail goes out once per
//! burst, only to recipients who stayed offline and did not read.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::harness::{now, signed, Server, Ws, ADMIN_TOKEN};
use super::receiver::{Receiver, Request};

const HOOK_SECRET: &str = "whsec-test-0123456789abcdef0123456789";

async fn with_webhooks(receiver: &Receiver, max_attempts: &str) -> Server {
    let url = receiver.url("/hooks/switchboard");
    Server::start_with(&[
        ("SWITCHBOARD_WEBHOOKS__URL", url.as_str()),
        ("SWITCHBOARD_WEBHOOKS__SECRET", HOOK_SECRET),
        ("SWITCHBOARD_WEBHOOKS__MAX_ATTEMPTS", max_attempts),
    ])
    .await
}

/// What the documented receiver does (docs/API-NOTES.md): recompute the HMAC of "t.body" and
/// refuse a stale `t`.
fn verified(r: &Request) -> bool {
    let sig = r.header("x-switchboard-signature");
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now() - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

/// Accepted deliveries by event type.
fn accepted_types(seen: &[Request]) -> Vec<String> {
    seen.iter()
        .filter(|r| r.accepted())
        .map(|r| r.json()["type"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn webhooks_arrive_signed_and_a_failing_receiver_gets_each_event_once() {
    let receiver = Receiver::start(200).await;
    // The first two requests fail: whichever events they carried are retried.
    receiver.plan(&[500, 503]);
    let server = with_webhooks(&receiver, "6").await;
    let (c, _p, conv) = server.conversation("hook").await;
    let (status, sent) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            &c,
            Some(json!({"text": "second"})),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let mid = sent["id"].as_str().unwrap().to_string();
    let (status, _) = server
        .api(
            "POST",
            &format!("/api/v1/messages/{mid}/flag"),
            &c,
            Some(json!({"reason": "spam"})),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = server
        .api(
            "DELETE",
            &format!("/api/v1/messages/{mid}?for=everyone"),
            &c,
            None,
        )
        .await;
    assert_eq!(status, 204);

    let seen = receiver
        .until(Duration::from_secs(20), |s| accepted_types(s).len() >= 5)
        .await;
    let mut types = accepted_types(&seen);
    types.sort();
    assert_eq!(
        types,
        [
            "conversation.created",
            "message.created",
            "message.created",
            "message.deleted",
            "message.flagged"
        ],
        "every event accepted exactly once: {seen:#?}"
    );
    assert!(seen.len() >= 7, "the two failures were retried");
    let mut accepted_ids = HashSet::new();
    let mut bodies: HashMap<String, String> = HashMap::new();
    for r in &seen {
        assert_eq!(r.path, "/hooks/switchboard");
        assert!(
            verified(r),
            "signature verifies: {}",
            r.header("x-switchboard-signature")
        );
        let v = r.json();
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(r.header("x-switchboard-delivery"), id);
        assert_eq!(r.header("x-switchboard-event"), v["type"]);
        assert_eq!(r.header("content-type"), "application/json");
        assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
        // A retry sends the same bytes under the same id.
        if let Some(before) = bodies.insert(id.clone(), r.body.clone()) {
            assert_eq!(before, r.body);
        }
        if r.accepted() {
            assert!(accepted_ids.insert(id), "accepted twice: {}", r.body);
        }
    }
    let created: Vec<Value> = seen
        .iter()
        .filter(|r| r.accepted() && r.json()["type"] == "message.created")
        .map(|r| r.json())
        .collect();
    let texts: HashSet<_> = created
        .iter()
        .map(|v| v["data"]["message"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        HashSet::from(["hello".to_string(), "second".to_string()])
    );
    assert!(created
        .iter()
        .all(|v| v["data"]["conversation_id"] == conv.as_str()));
    let deleted = seen
        .iter()
        .map(|r| r.json())
        .find(|v| v["type"] == "message.deleted")
        .unwrap();
    assert_eq!(deleted["data"]["message_id"], mid.as_str());
    assert_eq!(deleted["data"]["deleted_by"], "sender");

    // A tampered body no longer verifies (the check above can fail).
    let mut forged = seen[0].clone();
    forged.body = forged.body.replace("conversation", "c0nversation");
    assert!(!verified(&forged));
    // The receivers' snippets in docs/API-NOTES.md say the same, run as documented.
    for (lang, r, expect) in [
        ("python", &seen[0], "True"),
        ("python", &forged, "False"),
        ("js", &seen[0], "true"),
        ("js", &forged, "false"),
    ] {
        assert_eq!(
            run_documented_snippet(lang, r),
            expect,
            "{lang} on {}",
            r.body
        );
    }

    assert!(metric(&server, "switchboard_notification_retries_total").await >= 2.0);
    assert_eq!(
        metric(&server, "switchboard_notifications_sent_total").await,
        5.0
    );
}

/// Runs the `lang` verification snippet of docs/API-NOTES.md on a received request.
fn run_documented_snippet(lang: &str, r: &Request) -> String {
    let notes =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API-NOTES.md")).unwrap();
    let start = notes
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("a {lang} snippet in API-NOTES.md"))
        + lang.len()
        + 4;
    let code = &notes[start..start + notes[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, &r.body).unwrap();
    let sig = r.header("x-switchboard-signature");
    let body = body.display();
    let (program, script) = match lang {
        "python" => (
            "python3",
            format!("{code}\nprint(verify({HOOK_SECRET:?}.encode(), {sig:?}, open({:?}, 'rb').read()))", body.to_string()),
        ),
        _ => (
            "node",
            format!("{code}\nconsole.log(verify({HOOK_SECRET:?}, {sig:?}, require('fs').readFileSync({:?})))", body.to_string()),
        ),
    };
    let flag = if lang == "python" { "-c" } else { "-e" };
    let out = std::process::Command::new(program)
        .arg(flag)
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One figure of the Prometheus page.
async fn metric(server: &Server, name: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("http://{}/metrics", server.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test]
async fn a_receiver_that_never_accepts_fills_the_dead_letters_which_can_be_retried() {
    let receiver = Receiver::start(500).await;
    let server = with_webhooks(&receiver, "2").await;
    let (_c, _p, conv) = server.conversation("dead").await;
    // Two events (conversation.created, message.created), two attempts each.
    let seen = receiver
        .until(Duration::from_secs(15), |s| s.len() >= 4)
        .await;
    assert_eq!(seen.len(), 4, "{seen:#?}");
    let dead = async {
        for _ in 0..100 {
            let (status, page) = server
                .admin_call("GET", "/admin/v1/webhooks/dead", None)
                .await;
            assert_eq!(status, 200, "{page}");
            if page["items"].as_array().unwrap().len() == 2 {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("two dead letters");
    }
    .await;
    let items = dead["items"].as_array().unwrap();
    for d in items {
        assert_eq!(d["channel"], "webhook");
        assert_eq!(d["attempts"], 2);
        assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
        assert_eq!(d["body"]["data"]["conversation_id"], conv.as_str());
    }
    // Paged, in id order.
    let (_, first) = server
        .admin_call("GET", "/admin/v1/webhooks/dead?limit=1", None)
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = server
        .admin_call(
            "GET",
            &format!("/admin/v1/webhooks/dead?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second["items"][0]["id"], items[1]["id"]);
    assert!(second["next_cursor"].is_null());

    receiver.answer(200);
    let id = items[0]["id"].as_str().unwrap();
    let (status, body) = server
        .admin_call("POST", &format!("/admin/v1/webhooks/dead/{id}/retry"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let seen = receiver
        .until(Duration::from_secs(10), |s| s.iter().any(|r| r.accepted()))
        .await;
    let ok: Vec<_> = seen.iter().filter(|r| r.accepted()).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(
        ok[0].header("x-switchboard-delivery"),
        id,
        "same id as before"
    );
    let (_, page) = server
        .admin_call("GET", "/admin/v1/webhooks/dead", None)
        .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "the other stays dead"
    );
    let (status, body) = server
        .admin_call("POST", &format!("/admin/v1/webhooks/dead/{id}/retry"), None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "notification_not_found");
    assert_eq!(
        metric(&server, "switchboard_notifications_dead_total").await,
        2.0
    );
    assert_eq!(metric(&server, "switchboard_outbox_depth").await, 0.0);
}

#[tokio::test]
async fn notifications_pending_at_a_kill_are_delivered_after_the_restart() {
    let receiver = Receiver::start(503).await;
    let mut server = with_webhooks(&receiver, "12").await;
    let (_c, _p, _conv) = server.conversation("kill").await;
    receiver
        .until(Duration::from_secs(10), |s| !s.is_empty())
        .await;
    server.kill9();
    let before = receiver.seen().len();
    receiver.answer(200);
    server.restart();
    let seen = receiver
        .until(Duration::from_secs(20), |s| accepted_types(s).len() >= 2)
        .await;
    let mut types = accepted_types(&seen);
    types.sort();
    assert_eq!(
        types,
        ["conversation.created", "message.created"],
        "{seen:#?}"
    );
    assert!(seen.len() > before);
    // And nothing more comes: delivered once, then removed from the outbox.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(accepted_types(&receiver.seen()).len(), 2);
}

async fn with_email(brevo: &Receiver) -> Server {
    let base = brevo.url("");
    Server::start_with(&[
        ("SWITCHBOARD_EMAIL__BREVO_API_KEY", "xkeysib-test"),
        ("SWITCHBOARD_EMAIL__BREVO_BASE_URL", base.as_str()),
        ("SWITCHBOARD_EMAIL__SENDER_EMAIL", "chat@market.example"),
        ("SWITCHBOARD_EMAIL__SENDER_NAME", "Market chat"),
        ("SWITCHBOARD_EMAIL__DELAY_SECS", "1"),
        (
            "SWITCHBOARD_EMAIL__CONVERSATION_URL",
            "https://market.example/inbox/{conversation_id}",
        ),
    ])
    .await
}

async fn profile(server: &Server, user: &str, extra: Value) {
    let mut body = json!({"name": format!("{user} name"), "role": "provider"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = server
        .admin_call("PUT", &format!("/admin/v1/users/{user}"), Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
}

fn mails_to<'a>(seen: &'a [Request], address: &str) -> Vec<&'a Request> {
    seen.iter()
        .filter(|r| r.json()["to"][0]["email"] == address)
        .collect()
}

#[tokio::test]
async fn an_offline_provider_gets_one_mail_for_a_burst() {
    let brevo = Receiver::start(201).await;
    let server = with_email(&brevo).await;
    let (status, body) = server
        .admin_call(
            "PUT",
            "/admin/v1/users/prov-mail",
            Some(json!({"name": "Pat", "role": "provider", "email": "not an address"})),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("invalid_email"))
    );
    profile(&server, "prov-mail", json!({"email": "pat@example.com"})).await;
    let (_, got) = server
        .admin_call("GET", "/admin/v1/users/prov-mail", None)
        .await;
    assert_eq!(got["notify_email"], true, "absent means yes: {got}");
    let (c, _p, conv) = server.conversation("mail").await;
    for text in ["<b>are you there?</b>", "third & last"] {
        let (status, _) = server
            .api(
                "POST",
                &format!("/api/v1/conversations/{conv}/messages"),
                &c,
                Some(json!({"text": text})),
            )
            .await;
        assert_eq!(status, 201);
    }
    brevo
        .until(Duration::from_secs(10), |s| {
            !mails_to(s, "pat@example.com").is_empty()
        })
        .await;
    // Give a second mail every chance to show up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = brevo.seen();
    let mails = mails_to(&seen, "pat@example.com");
    assert_eq!(mails.len(), 1, "one mail for the burst: {seen:#?}");
    let m = mails[0];
    assert_eq!(m.path, "/v3/smtp/email");
    assert_eq!(m.header("api-key"), "xkeysib-test");
    let v = m.json();
    assert_eq!(v["sender"]["email"], "chat@market.example");
    assert_eq!(v["sender"]["name"], "Market chat");
    assert_eq!(v["to"][0]["name"], "prov-mail name");
    assert_eq!(
        v["subject"],
        "3 new messages from cust-mail name about svc-mail title"
    );
    let html = v["htmlContent"].as_str().unwrap();
    assert!(html.contains("&lt;b&gt;are you there?&lt;/b&gt;"), "{html}");
    assert!(html.contains("third &amp; last"));
    assert!(!html.contains("<b>are"));
    assert!(html.contains(&format!("https://market.example/inbox/{conv}")));
    assert!(v["textContent"].as_str().unwrap().contains("third & last"));
}

#[tokio::test]
async fn no_mail_for_a_recipient_who_read_in_time_was_online_or_opted_out() {
    let brevo = Receiver::start(201).await;
    let server = with_email(&brevo).await;
    // Reads within the delay.
    profile(
        &server,
        "prov-reader",
        json!({"email": "reader@example.com"}),
    )
    .await;
    let (_c, p, conv) = server.conversation("reader").await;
    let (status, _) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/mark-read"),
            &p,
            None,
        )
        .await;
    assert_eq!(status, 200);
    // Connected the whole time.
    profile(
        &server,
        "prov-online",
        json!({"email": "online@example.com"}),
    )
    .await;
    server.service("svc-online", "prov-online").await;
    let online = server.token("prov-online", "provider").await;
    let _ws = Ws::connect(&server, &online).await;
    let cust = server.token("cust-online", "customer").await;
    let (status, _) = server
        .api(
            "POST",
            "/api/v1/conversations",
            &cust,
            Some(json!({"service_id": "svc-online", "initial_message": "hi"})),
        )
        .await;
    assert_eq!(status, 201);
    // Opted out.
    profile(
        &server,
        "prov-out",
        json!({"email": "out@example.com", "notify_email": false}),
    )
    .await;
    server.conversation("out").await;
    // Offline, no profile: the address its token claimed once.
    let claimed = signed(
        json!({"sub": "prov-claim", "role": "provider", "name": "Claimy", "email": "claim@example.com", "exp": now() + 3600}),
    );
    let (status, _) = server.api("GET", "/api/v1/unread", &claimed, None).await;
    assert_eq!(status, 200);
    server.conversation("claim").await;

    brevo
        .until(Duration::from_secs(10), |s| {
            !mails_to(s, "claim@example.com").is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let seen = brevo.seen();
    assert_eq!(mails_to(&seen, "claim@example.com").len(), 1, "{seen:#?}");
    for quiet in [
        "reader@example.com",
        "online@example.com",
        "out@example.com",
    ] {
        assert!(
            mails_to(&seen, quiet).is_empty(),
            "no mail to {quiet}: {seen:#?}"
        );
    }
}
