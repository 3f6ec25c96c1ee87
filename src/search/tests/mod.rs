//! Behavioural tests of the engine contract, on real on-disk indexes in temp dirs.
//! This file: helpers + feeding/filters/lifecycle; `query.rs`: ranking, paging, snippets.

mod query;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::writer::Msg;
use super::*;

pub(super) const T: Duration = Duration::from_secs(10);

pub(super) fn open(dir: &Path) -> Index {
    let cfg = IndexConfig {
        commit_interval: Duration::from_millis(50),
        ..IndexConfig::default()
    };
    Index::open(dir, cfg).unwrap()
}

pub(super) fn doc(
    id: &str,
    conv: &str,
    sender: &str,
    members: &[&str],
    text: &str,
    at: i64,
) -> Doc {
    Doc {
        message_id: id.into(),
        conversation_id: conv.into(),
        seq: at as u64,
        sender_id: sender.into(),
        members: members.iter().map(|s| s.to_string()).collect(),
        text: text.into(),
        created_at_ms: at,
    }
}

pub(super) fn q(user: &str, text: &str) -> Query {
    Query {
        user_id: user.into(),
        text: text.into(),
        limit: 50,
        ..Query::default()
    }
}

pub(super) fn ids(idx: &Index, query: &Query) -> Vec<String> {
    idx.search(query)
        .unwrap()
        .items
        .into_iter()
        .map(|h| h.message_id)
        .collect()
}

/// alice+bob in c1, carol+dave in c2, alice+carol in c3.
pub(super) fn seeded() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path());
    for d in [
        doc(
            "m1",
            "c1",
            "alice",
            &["alice", "bob"],
            "pizza on friday?",
            1,
        ),
        doc(
            "m2",
            "c1",
            "bob",
            &["alice", "bob"],
            "sure, friday works",
            2,
        ),
        doc(
            "m3",
            "c2",
            "carol",
            &["carol", "dave"],
            "secret pizza plans",
            3,
        ),
        doc(
            "m4",
            "c3",
            "carol",
            &["alice", "carol"],
            "pizza pizza pizza",
            4,
        ),
    ] {
        assert!(idx.submit(Change::Upsert(d)));
    }
    idx.sync(T).unwrap();
    (dir, idx)
}

#[test]
fn upsert_then_search_finds_by_word() {
    let (_d, idx) = seeded();
    let page = idx.search(&q("bob", "friday")).unwrap();
    let got: Vec<_> = page.items.iter().map(|h| h.message_id.as_str()).collect();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&"m1") && got.contains(&"m2"));
    assert_eq!(page.next_cursor, None);
    let h = &page.items[0];
    assert_eq!(
        (h.conversation_id.as_str(), h.seq),
        ("c1", h.created_at_ms as u64)
    );
}

#[test]
fn searchable_without_sync_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path());
    assert!(idx.submit(Change::Upsert(doc("x", "c", "a", &["a"], "hello", 1))));
    let start = Instant::now();
    while ids(&idx, &q("a", "hello")).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "not visible after 2 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn other_users_conversations_never_match() {
    let (_d, idx) = seeded();
    assert_eq!(ids(&idx, &q("dave", "pizza")), vec!["m3"]);
    let alice = ids(&idx, &q("alice", "pizza"));
    assert!(!alice.contains(&"m3".to_string()), "{alice:?}");
    assert_eq!(alice.len(), 2);
    assert!(ids(&idx, &q("mallory", "pizza")).is_empty());
    // Field syntax cannot widen the member filter.
    assert!(ids(&idx, &q("mallory", "member:carol")).is_empty());
}

#[test]
fn conversation_filter() {
    let (_d, idx) = seeded();
    let mut query = q("alice", "pizza");
    query.conversation_id = Some("c3".into());
    assert_eq!(ids(&idx, &query), vec!["m4"]);
    query.conversation_id = Some("c2".into()); // not alice's
    assert!(ids(&idx, &query).is_empty());
}

#[test]
fn delete_message_and_delete_sender() {
    let (_d, idx) = seeded();
    assert!(idx.submit(Change::DeleteMessage {
        message_id: "m1".into()
    }));
    idx.sync(T).unwrap();
    assert_eq!(ids(&idx, &q("alice", "friday")), vec!["m2"]);
    assert!(idx.submit(Change::DeleteSender {
        sender_id: "carol".into()
    }));
    idx.sync(T).unwrap();
    assert!(ids(&idx, &q("alice", "pizza")).is_empty());
    assert!(ids(&idx, &q("dave", "pizza")).is_empty());
    assert_eq!(ids(&idx, &q("bob", "friday")), vec!["m2"]);
}

#[test]
fn a_first_write_is_searchable_and_its_deletion_removes_it() {
    let (_d, idx) = seeded();
    let d = doc("m9", "c1", "bob", &["alice", "bob"], "the plumber came", 9);
    assert!(idx.submit(Change::Add(d)));
    idx.sync(T).unwrap();
    assert_eq!(ids(&idx, &q("alice", "plumber")), vec!["m9"]);
    assert!(idx.submit(Change::DeleteMessage {
        message_id: "m9".into()
    }));
    idx.sync(T).unwrap();
    assert!(ids(&idx, &q("alice", "plumber")).is_empty());
}

#[test]
fn upsert_is_idempotent_and_replaces() {
    let (_d, idx) = seeded();
    let d = doc(
        "m2",
        "c1",
        "bob",
        &["alice", "bob"],
        "sure, friday works",
        2,
    );
    assert!(idx.submit(Change::Upsert(d.clone())));
    assert!(idx.submit(Change::Upsert(d)));
    idx.sync(T).unwrap();
    assert_eq!(ids(&idx, &q("bob", "works")), vec!["m2"]);
    let edited = doc("m2", "c1", "bob", &["alice", "bob"], "saturday instead", 2);
    assert!(idx.submit(Change::Upsert(edited)));
    idx.sync(T).unwrap();
    assert!(ids(&idx, &q("bob", "works")).is_empty());
    assert_eq!(ids(&idx, &q("bob", "saturday")), vec!["m2"]);
}

#[test]
fn submit_returns_false_when_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = IndexConfig {
        queue_capacity: 2,
        ..IndexConfig::default()
    };
    let idx = Index::open(dir.path(), cfg).unwrap();
    // Park the writer thread so nothing drains the queue.
    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
    let (resume_tx, resume_rx) = mpsc::sync_channel(1);
    idx.sender()
        .unwrap()
        .send(Msg::Pause(ack_tx, resume_rx))
        .unwrap();
    ack_rx.recv_timeout(T).unwrap();
    let d = doc("m", "c", "u", &["u"], "queued", 1);
    assert!(idx.submit(Change::Upsert(d.clone())));
    assert!(idx.submit(Change::Upsert(d.clone())));
    assert!(!idx.submit(Change::Upsert(d.clone())));
    assert!(!idx.submit(Change::Upsert(d)));
    assert_eq!(idx.dropped(), 2);
    resume_tx.send(()).unwrap();
    idx.sync(T).unwrap();
    assert_eq!(ids(&idx, &q("u", "queued")), vec!["m"]);
}

#[test]
fn rebuild_then_search_finds_the_same_docs() {
    let (dir, idx) = seeded();
    let before = ids(&idx, &q("alice", "pizza"));
    idx.close();
    let docs = vec![
        doc(
            "m1",
            "c1",
            "alice",
            &["alice", "bob"],
            "pizza on friday?",
            1,
        ),
        doc(
            "m4",
            "c3",
            "carol",
            &["alice", "carol"],
            "pizza pizza pizza",
            4,
        ),
    ];
    assert_eq!(Index::rebuild(dir.path(), docs).unwrap(), 2);
    let idx = open(dir.path());
    assert_eq!(ids(&idx, &q("alice", "pizza")), before);
    // Docs absent from the rebuild input are gone.
    assert!(ids(&idx, &q("bob", "works")).is_empty());
}

#[test]
fn reopen_after_close_finds_committed_docs() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path());
    // No sync: close() itself must commit pending work.
    assert!(idx.submit(Change::Upsert(doc("m", "c", "u", &["u"], "persisted", 1))));
    idx.close();
    let idx = open(dir.path());
    assert_eq!(ids(&idx, &q("u", "persisted")), vec!["m"]);
    drop(idx); // Drop path: must not hang either.
}

/// This process's threads as (name, nice), read from /proc. A thread that ends while it is read
/// is left out.
#[cfg(target_os = "linux")]
fn threads_and_nice() -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("stat")),
        ) else {
            continue;
        };
        // Fields after the command (which is in parentheses): state is field 3, nice field 19.
        let nice = stat
            .rfind(')')
            .and_then(|end| stat.get(end + 2..))
            .and_then(|after| after.split(' ').nth(16))
            .and_then(|n| n.parse().ok());
        if let Some(nice) = nice {
            out.push((comm.trim().to_string(), nice));
        }
    }
    out
}

#[cfg(target_os = "linux")]
#[test]
fn the_writer_and_the_threads_it_starts_run_at_a_lower_priority() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path());
    assert!(idx.submit(Change::Upsert(doc("m", "c", "u", &["u"], "niced", 1))));
    idx.sync(T).unwrap();
    let threads = threads_and_nice();
    let nice_of = |wanted: &dyn Fn(&str) -> bool| -> Vec<i64> {
        threads
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|&(_, nice)| nice)
            .collect()
    };
    // Other tests' writers may run at the same time: every one of them is lowered.
    let writers = nice_of(&|name| name == "search-writer");
    assert!(!writers.is_empty(), "no writer thread found");
    assert!(
        writers.iter().all(|&n| n == writer::WRITER_NICE as i64),
        "{writers:?}"
    );
    // tantivy's indexing worker, started by the writer: "thrd-tantivy-index0" and the like. A
    // parallel test's `rebuild` makes a writer on its own thread, at the normal priority, so
    // this asserts that the writer's own worker inherited the lower one, not that all did.
    let workers = nice_of(&|name| name.contains("tantivy"));
    assert!(!workers.is_empty(), "no tantivy threads found");
    assert!(
        workers.contains(&(writer::WRITER_NICE as i64)),
        "{workers:?}"
    );
    drop(idx);
}
