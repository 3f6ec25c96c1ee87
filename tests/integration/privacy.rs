//! Privacy law over real HTTP: a user's export, their erasure (tombstones for the other side,
//! uploads, profile, search and dedupe entries gone, idempotent), and the retention sweeper on a
//! settable clock.

use std::time::Duration;

use serde_json::{json, Value};

use super::attachments::{download, sent_gif};
use super::harness::{Server, Ws, WAIT};
use super::search::until_hits;

async fn say(server: &Server, token: &str, conversation: &str, body: Value) -> Value {
    let (status, m) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conversation}/messages"),
            token,
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    m
}

/// The export's body as text (it is streamed; it must still be one JSON document).
async fn export(server: &Server, user: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(format!(
            "http://{}/admin/v1/users/{user}/export",
            server.admin
        ))
        .bearer_auth(super::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("export answered");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

async fn history(server: &Server, token: &str, conversation: &str) -> Vec<Value> {
    let (status, page) = server
        .api(
            "GET",
            &format!("/api/v1/conversations/{conversation}/messages?limit=100"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn erasure_leaves_tombstones_and_an_export_with_nothing_of_the_user() {
    let server = Server::start().await;
    let (customer, provider, conversation) = server.conversation("erase").await;
    let (status, body) = server
        .admin_call(
            "PUT",
            "/admin/v1/users/cust-erase",
            Some(json!({"name": "Erin Erasable", "email": "erin@example.com", "role": "customer"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = say(
        &server,
        &customer,
        &conversation,
        json!({"text": "my flat is at Zanzibarstraat 7", "client_msg_id": "c-1"}),
    )
    .await;
    let gif = sent_gif(&server, &customer, &conversation).await;
    say(
        &server,
        &provider,
        &conversation,
        json!({"text": "noted, see you at the flat"}),
    )
    .await;
    until_hits(&server, &provider, "q=zanzibarstraat", 1).await;

    // Before: the export has the profile and the user's own messages, not the provider's.
    let (status, before) = export(&server, "cust-erase").await;
    assert_eq!(status, 200, "{before}");
    let doc: Value = serde_json::from_str(&before).expect("the export is one JSON document");
    assert_eq!(doc["profile"]["email"], "erin@example.com");
    let messages = doc["conversations"][0]["messages"].as_array().unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello", "my flat is at Zanzibarstraat 7", ""]);
    assert_eq!(messages[2]["attachments"][0]["id"], gif.as_str());
    assert_eq!(doc["conversations"][0]["other_party_id"], "prov-erase");
    assert!(!before.contains("see you at the flat"));

    let mut watcher = Ws::connect(&server, &provider).await;
    let (status, erased) = server
        .admin_call("DELETE", "/admin/v1/users/cust-erase", None)
        .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["messages_erased"], 3, "{erased}");
    assert_eq!(erased["attachments_deleted"], 1, "{erased}");
    assert_eq!(erased["conversations"], 1, "{erased}");

    // The provider's open socket hears of each tombstone.
    let mut deleted = Vec::new();
    while deleted.len() < 3 {
        let ev = tokio::time::timeout(WAIT, watcher.next_of("message_deleted"))
            .await
            .expect("message_deleted reaches the other side");
        deleted.push(ev["message_id"].as_str().unwrap().to_string());
    }
    assert!(deleted.contains(&first["id"].as_str().unwrap().to_string()));

    // The provider's history keeps the seqs, with nothing of the customer in them.
    let items = history(&server, &provider, &conversation).await;
    assert_eq!(items.len(), 4);
    for m in &items {
        if m["sender_id"] == "cust-erase" {
            assert_eq!(m["deleted"], true, "{m}");
            assert_eq!(m["text"], "", "{m}");
            assert_eq!(m["sender_name"], "", "{m}");
            assert_eq!(m["attachments"], json!([]), "{m}");
        } else {
            assert_eq!(m["text"], "noted, see you at the flat");
        }
    }
    let (status, _, _) = download(&server, &provider, &gif).await;
    assert_eq!(status, 404, "the upload's bytes are gone");
    until_hits(&server, &provider, "q=zanzibarstraat", 0).await;
    let (status, _) = server
        .admin_call("GET", "/admin/v1/users/cust-erase", None)
        .await;
    assert_eq!(status, 404, "the profile is gone");

    // After: the export names the conversation and nothing the user wrote or was.
    let (status, after) = export(&server, "cust-erase").await;
    assert_eq!(status, 200, "{after}");
    let doc: Value = serde_json::from_str(&after).expect("one JSON document");
    assert_eq!(doc["profile"], Value::Null);
    assert_eq!(doc["conversations"][0]["messages"], json!([]));
    for gone in [
        "Zanzibarstraat",
        "erin@example.com",
        "Erin",
        "cust-erase name",
        &gif,
    ] {
        assert!(!after.contains(gone), "{gone} still in {after}");
    }

    // The dedupe entry went too: the same client_msg_id now makes a new message.
    let again = say(
        &server,
        &customer,
        &conversation,
        json!({"text": "back again", "client_msg_id": "c-1"}),
    )
    .await;
    assert_ne!(again["id"], first["id"]);

    // Idempotent: only the new message is left to erase; then nothing.
    let (status, second) = server
        .admin_call("DELETE", "/admin/v1/users/cust-erase", None)
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["messages_erased"], 1, "{second}");
    let (status, third) = server
        .admin_call("DELETE", "/admin/v1/users/cust-erase", None)
        .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["messages_erased"], 0, "{third}");

    // Someone the server never knew.
    let (status, body) = server
        .admin_call("DELETE", "/admin/v1/users/nobody-ever", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("user_not_found"))
    );
    let (status, _) = export(&server, "nobody-ever").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_export_of_many_messages_streams_as_one_document() {
    let server = Server::start().await;
    let (customer, _provider, conversation) = server.conversation("export-many").await;
    for i in 0..450 {
        say(
            &server,
            &customer,
            &conversation,
            json!({"text": format!("message number {i}")}),
        )
        .await;
    }
    let (status, body) = export(&server, "cust-export-many").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("one JSON document across pages");
    let messages = doc["conversations"][0]["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        451,
        "the first message and 450 more, across history pages"
    );
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert_eq!(messages[450]["text"], "message number 449");
}

/// Sets the engine's clock (`admin.clock_control`).
async fn at(server: &Server, now: &str) {
    let (status, body) = server
        .admin_call("PUT", "/admin/v1/clock", Some(json!({ "now": now })))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_retention_sweep_removes_only_what_is_older_than_the_cutoff() {
    let server = Server::start_with(&[("SWITCHBOARD_ADMIN__CLOCK_CONTROL", "true")]).await;
    at(&server, "2026-01-01T10:00:00Z").await;
    let (customer, provider, conversation) = server.conversation("retention").await;
    say(
        &server,
        &provider,
        &conversation,
        json!({"text": "old answer"}),
    )
    .await;
    at(&server, "2026-01-01T10:00:10Z").await;
    say(
        &server,
        &customer,
        &conversation,
        json!({"text": "younger question"}),
    )
    .await;

    // 730 days later, plus 5 s: the cutoff falls between the two.
    at(&server, "2028-01-01T10:00:05Z").await;
    say(
        &server,
        &provider,
        &conversation,
        json!({"text": "brand new"}),
    )
    .await;
    let mut watcher = Ws::connect(&server, &customer).await;
    let (status, sweep) = server
        .admin_call("POST", "/admin/v1/retention/run", None)
        .await;
    assert_eq!(status, 200, "{sweep}");
    assert_eq!(sweep["messages_removed"], 2, "{sweep}");
    // The clock runs on from where it was set, so the cutoff is a few milliseconds past 10:00:05.
    assert!(
        sweep["cutoff"]
            .as_str()
            .is_some_and(|c| c.starts_with("2026-01-01T10:00:05.")),
        "{sweep}"
    );
    assert!(
        tokio::time::timeout(WAIT, watcher.next_of("message_deleted"))
            .await
            .is_ok(),
        "open sockets hear of the removal"
    );

    let items = history(&server, &customer, &conversation).await;
    let mut by_seq: Vec<(u64, bool, String)> = items
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["deleted"] == true,
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_seq.sort();
    assert_eq!(
        by_seq,
        [
            (1, true, String::new()),
            (2, true, String::new()),
            (3, false, "younger question".to_string()),
            (4, false, "brand new".to_string()),
        ]
    );

    // The next sweep starts past what this one removed and finds nothing new.
    let (status, again) = server
        .admin_call("POST", "/admin/v1/retention/run", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["messages_removed"], 0, "{again}");
    // A minute later the younger question is past the cutoff too.
    at(&server, "2028-01-01T10:01:00Z").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (_, later) = server
        .admin_call("POST", "/admin/v1/retention/run", None)
        .await;
    assert_eq!(later["messages_removed"], 1, "{later}");
}
