//! The ScyllaDB store's failure paths, through the real driver, against a real CQL endpoint that
//! injects faults: `scylla-proxy` in dry mode answers the driver's frames itself, by rules. No
//! ScyllaDB answers queries here; these tests are about what the store does when the cluster
//! errs, stalls, drops connections and comes back: nothing is acknowledged that was not written,
//! failures become `StoreError`s (503 at the edge), and the store recovers by itself.
//!
//! The handshake is forged (OPTIONS -> SUPPORTED, STARTUP/REGISTER -> READY), PREPARE is answered
//! with the bind markers `cql.rs` declares for the statement, and every rule list ends with a
//! catch-all, because the proxy drops frames no rule matches. The driver's own metadata queries
//! get errors, after which it goes on with what it knows (the contact point).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use scylla_proxy::{
    Condition, Node, Proxy, Reaction, RequestFrame, RequestOpcode, RequestReaction, RequestRule,
    ResponseFrame, ResponseOpcode, RunningProxy,
};

use switchboard::config::{Config, ScyllaConfig};
use switchboard::domain::conversation::{ConversationDoc, ConversationRecord, ConversationState};
use switchboard::domain::message::{MessageType, StoredMessage};
use switchboard::domain::user::ExternalId;
use switchboard::domain::Id;
use switchboard::storage::open::OpenError;
use switchboard::storage::scylla::cql::{Ty, Q};
use switchboard::storage::scylla::ScyllaStore;
use switchboard::storage::{durable_channel, ConversationWrite, Store, StoreHealth, StoreResult};

const KEYSPACE: &str = "sb_faults";

fn config(addr: SocketAddr) -> ScyllaConfig {
    ScyllaConfig {
        uri: addr.to_string(),
        keyspace: KEYSPACE.into(),
        request_timeout_ms: 400,
        connect_timeout_secs: 5,
        ..Config::default().scylla
    }
}

/// The text of a PREPARE request: a [long string].
fn prepared_text(body: &[u8]) -> String {
    let len = body
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .unwrap_or(0);
    String::from_utf8_lossy(body.get(4..4 + len).unwrap_or_default()).into_owned()
}

fn type_id(t: Ty) -> u16 {
    match t {
        Ty::BigInt => 0x0002,
        Ty::Blob => 0x0003,
        Ty::Int => 0x0009,
        Ty::Text => 0x000D,
    }
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_u16(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

/// RESULT Prepared for a statement of the store: an id, its bind markers typed as `cql.rs`
/// declares them, and no result metadata (rows would carry their own).
fn forged_prepared(frame: RequestFrame) -> ResponseFrame {
    let text = prepared_text(&frame.body);
    let binds = Q::ALL
        .iter()
        .find(|q| q.cql(KEYSPACE) == text)
        .map(|q| q.binds())
        .unwrap_or(&[]);
    let id = prepared_id(&text);
    let mut b = BytesMut::new();
    b.put_i32(0x0004); // Prepared
    b.put_u16(id.len() as u16);
    b.put_slice(&id);
    b.put_i32(0x0001); // global table spec
    b.put_i32(binds.len() as i32);
    b.put_i32(0); // no partition key indexes: the driver routes without a token
    put_string(&mut b, KEYSPACE);
    put_string(&mut b, "t");
    for (i, t) in binds.iter().enumerate() {
        put_string(&mut b, &format!("v{i}"));
        b.put_u16(type_id(*t));
    }
    b.put_i32(0x0004); // result metadata: none
    b.put_i32(0);
    ResponseFrame::new(
        frame.params.for_response(),
        ResponseOpcode::Result,
        b.freeze(),
    )
}

/// The id `forged_prepared` gives a statement's text.
fn prepared_id(text: &str) -> [u8; 8] {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish().to_be_bytes()
}

/// A column value as the protocol carries it.
enum Cell {
    Bool(bool),
    Big(i64),
}

/// RESULT Rows with its own metadata: column names and types, then the rows.
fn forged_rows(frame: &RequestFrame, columns: &[(&str, u16)], rows: &[Vec<Cell>]) -> ResponseFrame {
    let mut b = BytesMut::new();
    b.put_i32(0x0002); // Rows
    b.put_i32(0x0001); // global table spec
    b.put_i32(columns.len() as i32);
    put_string(&mut b, KEYSPACE);
    put_string(&mut b, "t");
    for (name, ty) in columns {
        put_string(&mut b, name);
        b.put_u16(*ty);
    }
    b.put_i32(rows.len() as i32);
    for row in rows {
        for cell in row {
            match cell {
                Cell::Bool(v) => {
                    b.put_i32(1);
                    b.put_u8(u8::from(*v));
                }
                Cell::Big(v) => {
                    b.put_i32(8);
                    b.put_i64(*v);
                }
            }
        }
    }
    ResponseFrame::new(
        frame.params.for_response(),
        ResponseOpcode::Result,
        b.freeze(),
    )
}

/// Answers EXECUTEs of one statement of the store with `answer`.
fn on(q: Q, answer: Arc<dyn Fn(RequestFrame) -> ResponseFrame + Send + Sync>) -> RequestRule {
    RequestRule(
        Condition::and(
            is(RequestOpcode::Execute),
            Condition::BodyContainsCaseSensitive(Box::new(prepared_id(&q.cql(KEYSPACE)))),
        ),
        RequestReaction::forge_response(answer),
    )
}

fn applied(v: bool) -> Arc<dyn Fn(RequestFrame) -> ResponseFrame + Send + Sync> {
    Arc::new(move |f| forged_rows(&f, &[("[applied]", 0x0004)], &[vec![Cell::Bool(v)]]))
}

/// The key's holder as `FindKey` reads it: (conversation id, claimed at).
fn key_held_by(id: i64, claimed_at: fn() -> i64) -> RequestRule {
    on(
        Q::FindKey,
        Arc::new(move |f| {
            forged_rows(
                &f,
                &[("conversation_id", 0x0002), ("created_at", 0x0002)],
                &[vec![Cell::Big(id), Cell::Big(claimed_at())]],
            )
        }),
    )
}

/// No conversation record (the holder's creation never wrote it).
fn no_record() -> RequestRule {
    on(
        Q::GetConversation,
        Arc::new(|f| forged_rows(&f, &[("body", 0x0003), ("writetime", 0x0002)], &[])),
    )
}

fn void(frame: RequestFrame) -> ResponseFrame {
    ResponseFrame::new(
        frame.params.for_response(),
        ResponseOpcode::Result,
        Bytes::from_static(&[0, 0, 0, 1]),
    )
}

fn ok() -> RequestReaction {
    RequestReaction::forge_response(Arc::new(void))
}

fn server_error() -> RequestReaction {
    RequestReaction::forge().server_error()
}

fn is(op: RequestOpcode) -> Condition {
    Condition::RequestOpcode(op)
}

/// The rules of a cluster whose writes get `writes` and whose health probe gets `probe`.
fn rules(writes: fn() -> RequestReaction, probe: fn() -> RequestReaction) -> Vec<RequestRule> {
    rules_with(Vec::new(), writes, probe)
}

/// `rules`, with `first` tried before the rule for writes (answers to particular statements).
fn rules_with(
    first: Vec<RequestRule>,
    writes: fn() -> RequestReaction,
    probe: fn() -> RequestReaction,
) -> Vec<RequestRule> {
    let mut all = vec![
        RequestRule(
            is(RequestOpcode::Options),
            RequestReaction::forge_response(Arc::new(|f: RequestFrame| {
                ResponseFrame::forged_supported(f.params, &HashMap::default()).unwrap()
            })),
        ),
        RequestRule(
            Condition::or(is(RequestOpcode::Startup), is(RequestOpcode::Register)),
            RequestReaction::forge_response(Arc::new(|f: RequestFrame| {
                ResponseFrame::forged_ready(f.params)
            })),
        ),
        RequestRule(
            is(RequestOpcode::Prepare),
            RequestReaction::forge_response(Arc::new(forged_prepared)),
        ),
        RequestRule(
            Condition::and(
                is(RequestOpcode::Query),
                Condition::BodyContainsCaseSensitive(Box::new(
                    *b"release_version FROM system.local",
                )),
            ),
            probe(),
        ),
    ];
    all.extend(first);
    all.extend([
        RequestRule(
            Condition::or(is(RequestOpcode::Batch), is(RequestOpcode::Execute)),
            writes(),
        ),
        // Everything else (the driver's metadata queries): an error, never silence.
        RequestRule(Condition::True, server_error()),
    ]);
    all
}

async fn proxy(rules: Vec<RequestRule>) -> (SocketAddr, RunningProxy) {
    let addr = SocketAddr::new(scylla_proxy::get_exclusive_local_address(), 9042);
    let proxy = Proxy::builder()
        .with_node(
            Node::builder()
                .proxy_address(addr)
                .request_rules(rules)
                .build_dry_mode(),
        )
        .build()
        .run()
        .await
        .unwrap();
    (addr, proxy)
}

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap()
}

fn write(seq: u64) -> ConversationWrite {
    let doc = ConversationDoc {
        record: ConversationRecord {
            id: Id(5),
            service_id: ext("svc"),
            service_title: "S".into(),
            provider_id: ext("prov"),
            provider_name: "P".into(),
            customer_id: ext("cust"),
            customer_name: "C".into(),
            created_at: 1,
        },
        state: ConversationState {
            last_seq: seq,
            activity_ms: 100 + seq as i64,
            ..ConversationState::default()
        },
    };
    ConversationWrite {
        message: Some(StoredMessage {
            id: Id(500 + seq),
            conversation_id: Id(5),
            seq,
            sender_id: ext("cust"),
            sender_name: "C".into(),
            message_type: MessageType::Text,
            text: format!("m{seq}"),
            attachments: vec![],
            created_at: switchboard::domain::clock::now_ms(),
            client_msg_id: Some(format!("c{seq}")),
            deleted: false,
        }),
        doc,
        unread_of: None,
        moved_from: Some(99 + seq as i64),
        items: Vec::new(),
    }
}

/// Submits a write; the receiver gets its callback's answer.
fn submit(
    store: &ScyllaStore,
    seq: u64,
) -> StoreResult<tokio::sync::oneshot::Receiver<StoreResult<()>>> {
    let (done, rx) = durable_channel();
    store.submit(&write(seq), done).map(|()| rx)
}

async fn settle(store: &ScyllaStore) {
    let (done, rx) = durable_channel();
    store.settle(Id(5), done);
    rx.await.unwrap().unwrap();
}

#[tokio::test]
async fn no_cluster_is_one_clear_error_within_the_timeout() {
    // Nothing listens there.
    let closed = SocketAddr::new(scylla_proxy::get_exclusive_local_address(), 9042);
    let started = Instant::now();
    let err = ScyllaStore::connect(&config(closed)).await.err().unwrap();
    assert!(matches!(err, OpenError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(6));
    // A node that accepts connections and never answers: given up at connect_timeout_secs.
    let (silent, _proxy) = proxy(vec![RequestRule(
        Condition::True,
        RequestReaction::drop_frame(),
    )])
    .await;
    let started = Instant::now();
    let err = ScyllaStore::connect(&ScyllaConfig {
        connect_timeout_secs: 2,
        ..config(silent)
    })
    .await
    .err()
    .unwrap();
    assert!(matches!(err, OpenError::Unreachable { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cluster_without_the_schema_says_to_migrate() {
    let mut r = rules(ok, ok);
    r.insert(
        2,
        RequestRule(
            is(RequestOpcode::Prepare),
            RequestReaction::forge().invalid(),
        ),
    );
    let (addr, _proxy) = proxy(r).await;
    let err = ScyllaStore::connect(&config(addr)).await.err().unwrap();
    assert!(matches!(err, OpenError::NotReady { .. }), "{err}");
    assert!(err.to_string().contains("switchboard migrate"), "{err}");
}

#[tokio::test]
async fn failed_writes_are_never_acknowledged_and_fail_the_writes_behind_them() {
    let (addr, _proxy) = proxy(rules(server_error, server_error)).await;
    let store = ScyllaStore::connect(&config(addr)).await.unwrap();
    let waits: Vec<_> = (1..=3).map(|seq| submit(&store, seq).unwrap()).collect();
    for rx in waits {
        let answer = rx.await.unwrap();
        assert!(
            answer.is_err(),
            "a write the cluster refused was acknowledged"
        );
    }
    // Until the next incarnation fences itself, the conversation takes no writes.
    assert!(submit(&store, 4).is_err());
    assert_eq!(store.health().await, StoreHealth::Down);
    // Other requests fail the same way, never as success.
    assert!(store.set_last_seen(&ext("cust"), 1).await.is_err());
}

#[tokio::test]
async fn a_write_without_an_answer_fails_at_the_request_timeout() {
    fn stall() -> RequestReaction {
        RequestReaction::forge_response_with_delay(Duration::from_secs(10), Arc::new(void))
    }
    let (addr, _proxy) = proxy(rules(stall, ok)).await;
    let store = ScyllaStore::connect(&config(addr)).await.unwrap();
    let started = Instant::now();
    let answer = submit(&store, 1).unwrap().await.unwrap();
    let err = answer.expect_err("a write without an answer is not acknowledged");
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_store_recovers_by_itself_when_the_cluster_comes_back() {
    let (addr, mut proxy) = proxy(rules(server_error, server_error)).await;
    let store = ScyllaStore::connect(&config(addr)).await.unwrap();
    assert!(submit(&store, 1).unwrap().await.unwrap().is_err());
    assert_eq!(store.health().await, StoreHealth::Down);

    proxy.running_nodes[0].change_request_rules(Some(rules(ok, ok)));
    assert_eq!(store.health().await, StoreHealth::Ok);
    settle(&store).await;
    submit(&store, 1).unwrap().await.unwrap().unwrap();
    submit(&store, 2).unwrap().await.unwrap().unwrap();
}

#[tokio::test]
async fn a_dropped_connection_fails_the_write_and_the_driver_reconnects() {
    fn drop_it() -> RequestReaction {
        RequestReaction::drop_connection()
    }
    let (addr, mut proxy) = proxy(rules(drop_it, ok)).await;
    let store = ScyllaStore::connect(&config(addr)).await.unwrap();
    assert!(submit(&store, 1).unwrap().await.unwrap().is_err());

    proxy.running_nodes[0].change_request_rules(Some(rules(ok, ok)));
    // The pool reconnects in the background; within a few seconds writes go through again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        settle(&store).await;
        match submit(&store, 1).unwrap().await.unwrap() {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the store did not reconnect: {e}"),
        }
    }
    assert_eq!(store.health().await, StoreHealth::Ok);
}

/// `switchboard serve` against a cluster that is not there: one line naming the cluster, exit code
/// 69 (EX_UNAVAILABLE), within `connect_timeout_secs` (30 s by default).
async fn serve_without_a_cluster(uri: SocketAddr, connect_timeout_secs: u64) {
    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/local.toml"))
        .env_remove("RUST_LOG")
        .env("SWITCHBOARD_HTTP__ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD_ADMIN__ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE__KIND", "scylla")
        .env("SWITCHBOARD_SCYLLA__URI", uri.to_string())
        .env(
            "SWITCHBOARD_SCYLLA__CONNECT_TIMEOUT_SECS",
            connect_timeout_secs.to_string(),
        )
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, not the driver's story: {stderr}");
    assert!(
        lines[0].starts_with(&format!("switchboard: cannot reach ScyllaDB at {uri}")),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(connect_timeout_secs + 5));
}

#[tokio::test]
async fn serve_exits_69_with_one_line_when_no_cluster_answers() {
    let closed = SocketAddr::new(scylla_proxy::get_exclusive_local_address(), 9042);
    serve_without_a_cluster(closed, 30).await;
    let (silent, _proxy) = proxy(vec![RequestRule(
        Condition::True,
        RequestReaction::drop_frame(),
    )])
    .await;
    serve_without_a_cluster(silent, 3).await;
}

fn new_doc() -> ConversationDoc {
    let mut doc = write(1).doc;
    doc.state.last_seq = 0;
    doc
}

#[tokio::test]
async fn a_claim_whose_conversation_never_arrived_is_taken_over_by_one_creation() {
    let taken = rules_with(
        vec![
            on(Q::ClaimKey, applied(false)),
            // Claimed by conversation 77 long ago, which was never written.
            key_held_by(77, || 1),
            no_record(),
            on(Q::TakeOverKey, applied(true)),
        ],
        ok,
        ok,
    );
    let (addr, mut proxy) = proxy(taken).await;
    let store = ScyllaStore::connect(&config(addr)).await.unwrap();
    let (doc, created) = store.create_conversation(new_doc(), None).await.unwrap();
    assert!(created);
    assert_eq!(doc.record.id, Id(5), "written under this creation's own id");

    // Another creation took it over first: this one does not write.
    proxy.running_nodes[0].change_request_rules(Some(rules_with(
        vec![
            on(Q::ClaimKey, applied(false)),
            key_held_by(77, || 1),
            no_record(),
            on(Q::TakeOverKey, applied(false)),
        ],
        server_error,
        ok,
    )));
    let err = store
        .create_conversation(new_doc(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("try again"), "{err}");
}

#[tokio::test]
async fn a_fresh_claim_of_another_creation_is_waited_for_then_refused_for_a_retry() {
    let fresh = rules_with(
        vec![
            on(Q::ClaimKey, applied(false)),
            key_held_by(77, switchboard::domain::clock::now_ms),
            no_record(),
        ],
        // Nothing may be written: the key is not ours.
        server_error,
        ok,
    );
    let (addr, _proxy) = proxy(fresh).await;
    let store = ScyllaStore::connect(&config(addr)).await.unwrap();
    let started = Instant::now();
    let err = store
        .create_conversation(new_doc(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("being created"), "{err}");
    // It waited for the other creation's record (about a second) before giving up.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_found_to_be_ours() {
    let lost = rules_with(
        vec![
            RequestRule(
                Condition::and(
                    is(RequestOpcode::Execute),
                    Condition::BodyContainsCaseSensitive(Box::new(prepared_id(
                        &Q::ClaimKey.cql(KEYSPACE),
                    ))),
                ),
                RequestReaction::forge_response_with_delay(Duration::from_secs(10), applied(true)),
            ),
            // The key names this creation's own id.
            key_held_by(5, switchboard::domain::clock::now_ms),
        ],
        ok,
        ok,
    );
    let (addr, _proxy) = proxy(lost).await;
    let store = ScyllaStore::connect(&config(addr)).await.unwrap();
    let (doc, created) = store.create_conversation(new_doc(), None).await.unwrap();
    assert!(created);
    assert_eq!(doc.record.id, Id(5));
}
