//! The classifier against a real HTTP server on a local port, answering by hand: the contract,
//! and every way a server can let us down.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    head: String,
    body: serde_json::Value,
}

/// A server that answers every request with `status` and `body` after `delay`, and reports
/// what it received.
async fn server(
    status: u16,
    body: &'static str,
    delay: Duration,
) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/moderations", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "client closed mid-body");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let received = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
                let _ = tx.send(Seen {
                    head,
                    body: received,
                });
                tokio::time::sleep(delay).await;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, rx)
}

fn classifier(url: &str, f: impl FnOnce(&mut ClassifierConfig)) -> Classifier {
    let mut c = ClassifierConfig {
        url: url.into(),
        timeout_ms: 500,
        ..ClassifierConfig::default()
    };
    f(&mut c);
    Classifier::new(&c).unwrap().expect("a url is set")
}

const FLAGGED: &str = r#"{"id":"modr-1","model":"m","results":[{"flagged":true,
  "categories":{"harassment":true,"violence":false,"self-harm/intent":true,"sexual":null},
  "category_scores":{"harassment":0.9}}]}"#;
const CLEAN: &str = r#"{"results":[{"flagged":false,"categories":{"harassment":false}}]}"#;

#[tokio::test]
async fn sends_the_text_as_input_and_reads_flagged_categories() {
    let (url, mut seen) = server(200, FLAGGED, Duration::ZERO).await;
    let c = classifier(&url, |_| {});
    assert_eq!(
        c.classify("you are \"awful\" 😠").await,
        Outcome::Flagged(vec!["harassment".into(), "self-harm/intent".into()])
    );
    let req = seen.recv().await.unwrap();
    assert_eq!(
        req.body,
        serde_json::json!({"input": "you are \"awful\" 😠"})
    );
    assert!(
        req.head.starts_with("POST /v1/moderations HTTP/1.1"),
        "{}",
        req.head
    );
    assert!(
        req.head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        req.head
    );
    assert!(
        !req.head.to_ascii_lowercase().contains("authorization"),
        "no key, no header: {}",
        req.head
    );
}

#[tokio::test]
async fn sends_the_key_and_model_when_set() {
    let (url, mut seen) = server(200, CLEAN, Duration::ZERO).await;
    let c = classifier(&url, |c| {
        c.api_key = "sk-test".into();
        c.model = "omni-moderation-latest".into();
    });
    assert_eq!(c.classify("hello").await, Outcome::Clean);
    let req = seen.recv().await.unwrap();
    assert_eq!(
        req.body,
        serde_json::json!({"input": "hello", "model": "omni-moderation-latest"})
    );
    assert!(
        req.head
            .to_ascii_lowercase()
            .contains("authorization: bearer sk-test"),
        "{}",
        req.head
    );
}

#[tokio::test]
async fn flagged_without_categories_is_still_flagged() {
    let (url, _seen) = server(200, r#"{"results":[{"flagged":true}]}"#, Duration::ZERO).await;
    assert_eq!(
        classifier(&url, |_| {}).classify("x").await,
        Outcome::Flagged(vec![])
    );
}

#[tokio::test]
async fn a_slow_classifier_times_out_within_the_timeout() {
    let (url, _seen) = server(200, CLEAN, Duration::from_secs(10)).await;
    let c = classifier(&url, |c| c.timeout_ms = 300);
    let started = Instant::now();
    assert_eq!(c.classify("hello").await, Outcome::Timeout);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "returned after {took:?}, the timeout is 300 ms"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = classifier(&format!("http://{addr}/v1/moderations"), |_| {});
    assert_eq!(c.classify("hello").await, Outcome::Unavailable);
}

#[tokio::test]
async fn an_error_status_is_unavailable() {
    for status in [500, 503, 401, 429, 301] {
        let (url, _seen) = server(status, r#"{"error":"nope"}"#, Duration::ZERO).await;
        assert_eq!(
            classifier(&url, |_| {}).classify("hello").await,
            Outcome::Unavailable,
            "{status}"
        );
    }
}

#[tokio::test]
async fn an_answer_outside_the_contract_is_a_bad_answer() {
    for body in [
        "not json",
        "{}",
        r#"{"results":[]}"#,
        r#"{"results":[{"categories":{}}]}"#,
        r#"{"results":[{"flagged":"yes"}]}"#,
        r#"{"results":{"flagged":true}}"#,
        "",
    ] {
        let (url, _seen) = server(200, body, Duration::ZERO).await;
        assert_eq!(
            classifier(&url, |_| {}).classify("hello").await,
            Outcome::BadAnswer,
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_answer_is_a_bad_answer() {
    let huge: &'static str = Box::leak(
        format!(
            r#"{{"results":[{{"flagged":false,"categories":{{"x":"{}"}}}}]}}"#,
            "a".repeat(MAX_ANSWER_BYTES)
        )
        .into_boxed_str(),
    );
    let (url, _seen) = server(200, huge, Duration::ZERO).await;
    assert_eq!(
        classifier(&url, |_| {}).classify("x").await,
        Outcome::BadAnswer
    );
}

#[tokio::test]
async fn category_names_are_capped() {
    let body: &'static str = Box::leak(
        format!(
            r#"{{"results":[{{"flagged":true,"categories":{{{}}}}}]}}"#,
            (0..100)
                .map(|i| format!(r#""{i:03}{}":true"#, "n".repeat(100)))
                .collect::<Vec<_>>()
                .join(",")
        )
        .into_boxed_str(),
    );
    let (url, _seen) = server(200, body, Duration::ZERO).await;
    let Outcome::Flagged(categories) = classifier(&url, |_| {}).classify("x").await else {
        panic!("expected flagged");
    };
    assert_eq!(categories.len(), MAX_CATEGORIES);
    assert!(categories
        .iter()
        .all(|c| c.chars().count() == MAX_CATEGORY_CHARS));
}

#[test]
fn no_url_is_no_classifier() {
    assert!(Classifier::new(&ClassifierConfig::default())
        .unwrap()
        .is_none());
}
