//! Message search over the real server: only the caller's conversations, snippets marked and
//! escaped, deletions never match, paging, and `switchboard reindex` after the index is gone.

use std::time::Duration;

use serde_json::{json, Value};

use super::harness::Server;

async fn say(server: &Server, token: &str, conversation: &str, text: &str) -> String {
    let (status, body) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conversation}/messages"),
            token,
            Some(json!({ "text": text })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn search(server: &Server, token: &str, query: &str) -> (u16, Value) {
    server
        .api("GET", &format!("/api/v1/search?{query}"), token, None)
        .await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|h| h["message_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Searches until `want` hits come back (the index commits in the background), at most 10 s.
pub async fn until_hits(server: &Server, token: &str, query: &str, want: usize) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, page) = search(server, token, query).await;
        assert_eq!(status, 200, "{page}");
        if ids(&page).len() == want {
            return page;
        }
        last = page;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{query}: wanted {want} hits, last page {last}");
}

#[tokio::test]
async fn search_finds_only_the_caller_s_live_messages_and_survives_a_reindex() {
    let mut server = Server::start().await;
    let (customer, provider, mine) = server.conversation("search").await;
    // Another customer of the same provider: the provider sees both, each customer their own.
    let other = server.token("cust-search-2", "customer").await;
    let (status, body) = server
        .api(
            "POST",
            "/api/v1/conversations",
            &other,
            Some(json!({"service_id": "svc-search", "initial_message": "My plumbing leaks too"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let theirs = body["conversation"]["id"].as_str().unwrap().to_string();

    let quote = say(&server, &provider, &mine, "The plumbing quote is ready").await;
    let script = say(
        &server,
        &customer,
        &mine,
        "<script>x</script> more plumbing?",
    )
    .await;
    let _friday = say(&server, &customer, &mine, "Can you come on Friday").await;

    let page = until_hits(&server, &customer, "q=plumbing", 2).await;
    let found = ids(&page);
    assert!(found.contains(&quote) && found.contains(&script), "{page}");
    let hit = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["message_id"] == script.as_str())
        .unwrap();
    assert_eq!(hit["conversation_id"], mine.as_str());
    assert_eq!(hit["seq"], 3);
    let snippet = hit["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>plumbing</mark>"), "{snippet}");
    assert!(
        snippet.contains("&lt;script&gt;") && !snippet.contains("<script>"),
        "{snippet}"
    );
    assert!(hit["created_at"].as_str().unwrap().ends_with('Z'));

    // The provider sees both conversations; filtering by one narrows it.
    until_hits(&server, &provider, "q=plumbing", 3).await;
    let (_, one) = search(
        &server,
        &provider,
        &format!("q=plumbing&conversation_id={theirs}"),
    )
    .await;
    assert_eq!(ids(&one).len(), 1, "{one}");
    // Someone else's conversation is unknown, as a missing one is.
    let (status, body) = search(
        &server,
        &customer,
        &format!("q=plumbing&conversation_id={theirs}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("conversation_not_found"))
    );

    // Paging: two hits a page, each hit exactly once.
    let (_, first) = search(&server, &provider, "q=plumbing&limit=2").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, second) = search(
        &server,
        &provider,
        &format!("q=plumbing&limit=2&cursor={cursor}"),
    )
    .await;
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3, "{first} {second}");
    assert_eq!(second["next_cursor"], Value::Null);

    // A message deleted for everyone never matches again.
    let (status, _) = server
        .api(
            "DELETE",
            &format!("/api/v1/messages/{script}?for=everyone"),
            &customer,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, after) = search(&server, &customer, "q=plumbing").await;
    assert_eq!(
        ids(&after),
        std::slice::from_ref(&quote),
        "at once: the store has the last word"
    );

    // Bad queries get clear errors.
    for (query, code) in [
        ("q=", "invalid_query"),
        ("q=x&cursor=nope", "invalid_cursor"),
    ] {
        let (status, body) = search(&server, &customer, query).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
    let (status, _) = search(&server, &customer, "q=plumbing%20AND%20(").await;
    assert_eq!(status, 200, "query syntax is parsed leniently");

    // Reindex: stop, throw the index away, rebuild it from the store, start again.
    let friday_before = until_hits(&server, &customer, "q=friday", 1).await;
    server.stop();
    std::fs::remove_dir_all(server.dir.join("search")).expect("the index is under the store");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("reindex")
        .arg("--config")
        .arg(format!("{}/config/local.toml", env!("CARGO_MANIFEST_DIR")))
        .env("SWITCHBOARD_STORE__PATH", &server.dir)
        .output()
        .expect("reindex runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two first messages, three sent, one of them deleted.
    assert!(stdout.contains("reindexed 4 messages"), "{stdout}");
    server.restart();
    let (_, friday_after) = search(&server, &customer, "q=friday").await;
    assert_eq!(ids(&friday_after), ids(&friday_before));
    let (_, plumbing) = search(&server, &customer, "q=plumbing").await;
    assert_eq!(ids(&plumbing), [quote]);
}
