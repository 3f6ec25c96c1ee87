//! The moderator as the send paths use it: rules and classifier together.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A classifier endpoint that answers every request with `body` (200) after `delay`.
async fn endpoint(body: &'static str, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/moderate", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Requests are small: one read holds head and body.
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

fn moderator(f: impl FnOnce(&mut ModerationConfig)) -> Moderator {
    let mut c = ModerationConfig::default();
    f(&mut c);
    Moderator::new(&c).unwrap()
}

fn reasons(r: &Review) -> Vec<(ReasonSource, &str)> {
    r.reasons
        .iter()
        .map(|x| (x.source, x.rule.as_str()))
        .collect()
}

#[test]
fn a_bad_configuration_is_refused_in_one_line() {
    let mut c = ModerationConfig::default();
    c.classifier.url = "not a url".into();
    let err = Moderator::new(&c).err().expect("refused");
    assert!(
        err.contains("moderation.classifier.url") && !err.contains('\n'),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_classifier_review_is_the_rules() {
    let m = moderator(|_| {});
    assert!(!m.has_classifier());
    for text in ["hello", "call 0612345678", "john@gmail.com"] {
        assert_eq!(m.review(text).await, m.review_rules(text));
    }
}

#[tokio::test]
async fn classifier_categories_add_to_the_rules_reasons() {
    let url = endpoint(
        r#"{"results":[{"flagged":true,"categories":{"harassment":true,"hate":false}}]}"#,
        Duration::ZERO,
    )
    .await;
    let m = moderator(|c| c.classifier.url = url);
    let r = m.review("you idiot, call 0612345678").await;
    assert_eq!(r.verdict, Verdict::Flag);
    assert_eq!(
        reasons(&r),
        [
            (ReasonSource::Rule, "phone_number"),
            (ReasonSource::Classifier, "harassment")
        ]
    );
}

#[tokio::test]
async fn on_flagged_reject_rejects() {
    let url = endpoint(r#"{"results":[{"flagged":true}]}"#, Duration::ZERO).await;
    let m = moderator(|c| {
        c.classifier.url = url;
        c.classifier.on_flagged = OnFlagged::Reject;
    });
    let r = m.review("hello").await;
    assert_eq!(r.verdict, Verdict::Reject);
    assert_eq!(
        reasons(&r),
        [(ReasonSource::Classifier, "classifier_flagged")]
    );
}

#[tokio::test]
async fn a_clean_answer_changes_nothing() {
    let url = endpoint(r#"{"results":[{"flagged":false}]}"#, Duration::ZERO).await;
    let m = moderator(|c| c.classifier.url = url);
    assert_eq!(m.review("hello").await, m.review_rules("hello"));
    assert_eq!(m.review("hello").await.verdict, Verdict::Allow);
}

#[tokio::test]
async fn a_slow_classifier_lets_the_message_through_flagged_in_time() {
    let url = endpoint(
        r#"{"results":[{"flagged":false}]}"#,
        Duration::from_secs(10),
    )
    .await;
    let m = moderator(|c| {
        c.classifier.url = url;
        c.classifier.timeout_ms = 200;
    });
    let started = Instant::now();
    let r = m.review("hello").await;
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.verdict, Verdict::Flag);
    assert_eq!(r.text, "hello", "the message is kept");
    assert_eq!(
        reasons(&r),
        [(ReasonSource::Classifier, "classifier_timeout")]
    );
}

#[tokio::test]
async fn a_down_classifier_or_garbage_flags_for_review() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let m = moderator(|c| c.classifier.url = down);
    let r = m.review("hello").await;
    assert_eq!(r.verdict, Verdict::Flag);
    assert_eq!(
        reasons(&r),
        [(ReasonSource::Classifier, "classifier_unavailable")]
    );

    let url = endpoint("<html>oops</html>", Duration::ZERO).await;
    let m = moderator(|c| c.classifier.url = url);
    let r = m.review("hello").await;
    assert_eq!(
        reasons(&r),
        [(ReasonSource::Classifier, "classifier_bad_answer")]
    );
}

#[tokio::test]
async fn a_rejected_message_is_not_sent_to_the_classifier() {
    // A classifier that never answers in time: asking it would take the whole timeout.
    let url = endpoint("{}", Duration::from_secs(10)).await;
    let m = moderator(|c| {
        c.classifier.url = url;
        c.classifier.timeout_ms = 5_000;
        c.blocked_words = vec!["scam".into()];
    });
    let started = Instant::now();
    let r = m.review("total scam").await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(r.verdict, Verdict::Reject);
    assert_eq!(reasons(&r), [(ReasonSource::Rule, "blocked_word")]);
}

#[tokio::test]
async fn the_classifier_is_sent_the_masked_text() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let m = moderator(|c| {
        c.classifier.url = url;
        c.phone_numbers = Action::Mask;
    });
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).ends_with('}') {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"results":[{"flagged":false}]}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8(got).unwrap()
    });
    let r = m.review("call 0612345678 now").await;
    assert_eq!(r.text, "call *** now");
    let request = server.await.unwrap();
    assert!(
        request.ends_with(r#"{"input":"call *** now"}"#),
        "{request}"
    );
}

#[test]
fn reviews_serialize_as_the_wire_names() {
    let r = moderator(|_| {}).review_rules("0612345678");
    assert_eq!(serde_json::to_value(r.verdict).unwrap(), "flag");
    assert_eq!(
        serde_json::to_value(&r.reasons).unwrap(),
        serde_json::json!([{"source": "rule", "rule": "phone_number"}])
    );
    assert!(Verdict::Allow < Verdict::Flag && Verdict::Flag < Verdict::Reject);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Compiled once: each case would otherwise compile every rule again.
    static EVERYTHING_MASKED: std::sync::LazyLock<Moderator> = std::sync::LazyLock::new(|| {
        moderator(|c| {
            c.phone_numbers = Action::Mask;
            c.email_addresses = Action::Mask;
            c.urls = Action::Mask;
            c.messenger_handles = Action::Mask;
            c.blocked_words = vec!["ü".into(), "a.b".into()];
            c.blocked_words_action = Action::Mask;
            c.allowed_domains = vec!["ok.example".into()];
        })
    });
    static DEFAULTS: std::sync::LazyLock<Moderator> =
        std::sync::LazyLock::new(|| moderator(|_| {}));

    /// Text made of the pieces the rules care about, mixed with multi-byte characters.
    fn tricky() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            prop::sample::select(vec![
                "0",
                "7",
                " ",
                "-",
                ".",
                "/",
                "@",
                "(",
                ")",
                "[",
                "at",
                "dot",
                "com",
                "https://",
                "www.",
                "wa.me/",
                "whatsapp me",
                "my insta is",
                "ok.example",
                "2026",
                "12",
                "€",
                "ü",
                "😀",
                "\u{a0}",
                "\u{2013}",
                "٣",
                "_",
                "\n",
            ])
            .prop_map(str::to_string),
            "\\PC{0,3}",
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn on_any_text(text in "\\PC{0,200}") {
            let r = EVERYTHING_MASKED.review_rules(&text);
            prop_assert_eq!(r.text == text, r.verdict == Verdict::Allow);
            let r = DEFAULTS.review_rules(&text);
            prop_assert_eq!(r.text, text, "flagging never changes the text");
        }

        #[test]
        fn on_text_made_to_trip_the_rules(text in tricky()) {
            let r = EVERYTHING_MASKED.review_rules(&text);
            // With every rule masking, a message is changed exactly when a rule matched.
            prop_assert_eq!(r.text == text, r.verdict == Verdict::Allow, "{:?}", r);
            prop_assert_eq!(r.verdict == Verdict::Allow, r.reasons.is_empty());
        }
    }
}
