//! Query-side behaviour: ranking order, cursor paging, snippets, lenient parsing.

use super::*;

#[test]
fn order_is_score_then_newest_then_id() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path());
    let m = &["u"];
    for d in [
        doc("old", "c", "u", m, "apple", 10),
        doc("new", "c", "u", m, "apple", 20),
        doc("b-tie", "c", "u", m, "apple", 15),
        doc("a-tie", "c", "u", m, "apple", 15),
        doc(
            "long",
            "c",
            "u",
            m,
            "apple with many other words that dilute it",
            99,
        ),
    ] {
        assert!(idx.submit(Change::Upsert(d)));
    }
    idx.sync(T).unwrap();
    assert_eq!(
        ids(&idx, &q("u", "apple")),
        vec!["new", "a-tie", "b-tie", "old", "long"]
    );
}

#[test]
fn cursor_pages_return_each_hit_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path());
    for i in 0..23 {
        // Same score for most, a few distinct timestamps: exercises tie handling.
        let text = if i % 4 == 0 {
            "needle in hay hay"
        } else {
            "needle"
        };
        let d = doc(&format!("m{i:02}"), "c", "u", &["u"], text, i / 3);
        assert!(idx.submit(Change::Upsert(d)));
    }
    idx.sync(T).unwrap();
    let all = ids(&idx, &q("u", "needle"));
    assert_eq!(all.len(), 23);
    let mut paged = Vec::new();
    let mut query = q("u", "needle");
    query.limit = 5;
    loop {
        let page = idx.search(&query).unwrap();
        assert!(page.items.len() <= 5);
        paged.extend(page.items.into_iter().map(|h| h.message_id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, all, "pages concatenate to the full ordered result");
    query.cursor = Some("garbage".into());
    assert!(matches!(idx.search(&query), Err(SearchError::BadCursor)));
}

#[test]
fn snippet_marks_match_and_escapes_html() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path());
    let text = "look <script>alert('x')</script> & the Café is open";
    assert!(idx.submit(Change::Upsert(doc("m", "c", "u", &["u"], text, 1))));
    idx.sync(T).unwrap();
    let page = idx.search(&q("u", "cafe")).unwrap(); // ascii folding
    assert_eq!(page.items.len(), 1);
    let s = &page.items[0].snippet;
    assert!(s.contains("<mark>Café</mark>"), "{s}");
    assert!(
        s.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp;"),
        "{s}"
    );
    assert!(!s.contains("<script>"), "{s}");
    // A query without text terms still yields a (plain, escaped) snippet.
    let page = idx.search(&q("u", "*")).unwrap();
    assert!(page.items[0].snippet.starts_with("look &lt;script&gt;"));
}

#[test]
fn lenient_parsing_and_query_validation() {
    let (_d, idx) = seeded();
    for garbage in [
        "\"foo AND (",
        "((( ",
        "AND OR NOT",
        "text:",
        "~~^^!!",
        "[1 TO",
        "-",
    ] {
        assert!(idx.search(&q("alice", garbage)).is_ok(), "{garbage}");
    }
    assert!(matches!(
        idx.search(&q("alice", "  \t ")),
        Err(SearchError::EmptyQuery)
    ));
    let long = "a".repeat(MAX_QUERY_BYTES + 1);
    assert!(matches!(
        idx.search(&q("alice", &long)),
        Err(SearchError::QueryTooLong)
    ));
}
