//! `switchboard copy-store`, run as the real binary: a store filled by the real server over its
//! HTTP API and WebSocket is copied into an empty store, and the copy answers every read the
//! original does. Embedded → embedded always; embedded → ScyllaDB when `SCYLLA_URI` is set.

#[allow(dead_code)]
#[path = "integration/harness.rs"]
mod harness;

#[path = "copy_store/compare.rs"]
mod compare;
#[path = "copy_store/fill.rs"]
mod fill;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use switchboard::storage::records::Table;
use switchboard::storage::Store;

use compare::assert_same;
use fill::filled_store;
use harness::{Server, SECRET};

/// A configuration naming an embedded store at `store`; valid as a whole (HS256 needs a secret).
fn embedded_config(dir: &Path, name: &str, store: &Path) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[auth]\njwt_secret = {}\n\n[store]\nkind = \"embedded\"\npath = {}\n",
        toml::Value::String(SECRET.into()),
        toml::Value::String(store.display().to_string())
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `switchboard <args>` with none of this process's SWITCHBOARD_* variables, plus `env`.
fn switchboard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("switchboard runs");
    eprintln!(
        "switchboard {args:?} -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn copy(from: &Path, to: &Path, state: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "copy-store",
        "--from",
        from.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    switchboard(&args, &[])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn open(dir: &Path) -> Arc<dyn Store> {
    EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap()
}

#[tokio::test]
async fn copies_every_record_and_index_embedded_to_embedded() {
    let source = filled_store().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target-store");
    let from = embedded_config(dir.path(), "from.toml", &source.dir);
    let to = embedded_config(dir.path(), "to.toml", &target);
    let state = dir.path().join("copy.state");
    let out = copy(&from, &to, &state, &["--batch", "5"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for table in Table::ALL {
        assert!(
            stdout.contains(&format!("\n{}", table.name())),
            "a summary line for {}",
            table.name()
        );
    }
    assert!(stdout.contains("count check passed"), "{stdout}");
    assert!(!stdout.contains("DIFFERENT"), "{stdout}");
    assert!(
        !state.exists(),
        "the state file is removed once the copy is checked"
    );
    {
        let (s, t) = (open(&source.dir), open(&target));
        assert_same(&*s, &*t).await;
    }
    // Copying again into the now full target is refused: there is nothing to resume. (The
    // stores above close their databases, and locks, on their committer threads just after the
    // drop: a moment for that.)
    std::thread::sleep(Duration::from_millis(300));
    let again = copy(&from, &to, &state, &[]);
    assert_eq!(again.status.code(), Some(64));
    assert!(
        text(&again.stderr).contains("already holds"),
        "{}",
        text(&again.stderr)
    );
}

#[tokio::test]
async fn an_interrupted_copy_resumes_and_a_count_mismatch_fails() {
    let source = filled_store().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target-store");
    let from = embedded_config(dir.path(), "from.toml", &source.dir);
    let to = embedded_config(dir.path(), "to.toml", &target);
    let state = dir.path().join("copy.state");
    let small = ["--batch", "2", "--stop-after-pages", "3"];
    let out = copy(&from, &to, &state, &small);
    assert_eq!(out.status.code(), Some(75), "stopped on purpose");
    assert!(text(&out.stdout).contains("stopped after 3 pages"));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    // Pages of 2: the 3 services in two pages, then the first 2 users.
    assert_eq!(saved["table"], "users");
    assert!(saved["cursor"].is_string(), "{saved}");
    assert_eq!(saved["copied"], json!({"services": 3, "users": 2}));

    // A state file claiming everything is copied: the count check scans both and fails.
    let mut done = saved.clone();
    done["table"] = Value::Null;
    done["cursor"] = Value::Null;
    std::fs::write(&state, done.to_string()).unwrap();
    let out = copy(&from, &to, &state, &[]);
    assert_eq!(out.status.code(), Some(65), "counts differ");
    assert!(text(&out.stdout).contains("DIFFERENT"));
    assert!(text(&out.stderr).contains("count check failed"));
    assert!(state.exists(), "kept, so a rerun checks again");

    // The saved position rewound to the start of the table, as if the saves after an import had
    // been lost: those pages are imported twice, which changes nothing.
    let mut rewound = saved.clone();
    rewound["cursor"] = Value::Null;
    std::fs::write(&state, rewound.to_string()).unwrap();
    let out = copy(&from, &to, &state, &small);
    assert_eq!(out.status.code(), Some(75));
    assert!(text(&out.stdout).contains("resuming from"));
    let out = copy(&from, &to, &state, &["--batch", "3"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains("resuming from") && stdout.contains("(in an earlier run)"),
        "{stdout}"
    );
    assert!(stdout.contains("count check passed"), "{stdout}");
    assert!(!state.exists());
    let (s, t) = (open(&source.dir), open(&target));
    assert_same(&*s, &*t).await;
}

#[test]
fn a_store_is_not_copied_onto_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let from = embedded_config(dir.path(), "from.toml", &store);
    // The same directory by another spelling.
    let to = embedded_config(dir.path(), "to.toml", &dir.path().join("store/../store"));
    let state = dir.path().join("copy.state");
    let out = copy(&from, &to, &state, &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("same store"),
        "{}",
        text(&out.stderr)
    );
    // An environment variable applies to both configurations: the message says so.
    let other = embedded_config(dir.path(), "other.toml", &dir.path().join("other"));
    let path = store.to_str().unwrap();
    let args = [
        "copy-store",
        "--from",
        from.to_str().unwrap(),
        "--to",
        other.to_str().unwrap(),
    ];
    let out = switchboard(&args, &[("SWITCHBOARD_STORE__PATH", path)]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("environment variables apply to both"));
    assert!(
        !dir.path().join("other").exists() && !state.exists(),
        "nothing was created"
    );
}

#[test]
fn a_missing_source_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let from = embedded_config(dir.path(), "from.toml", &dir.path().join("typo"));
    let to = embedded_config(dir.path(), "to.toml", &dir.path().join("target"));
    let out = copy(&from, &to, &dir.path().join("copy.state"), &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("has no store"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("typo").exists() && !dir.path().join("target").exists());
}

#[test]
fn a_state_file_of_another_copy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("not-empty"), "").unwrap();
    let from = embedded_config(dir.path(), "from.toml", &source);
    let to = embedded_config(dir.path(), "to.toml", &dir.path().join("target"));
    let state = dir.path().join("copy.state");
    let other = json!({"version": 1, "source": "embedded store /elsewhere", "target": "embedded store /t",
        "table": "messages", "cursor": null, "copied": {}});
    std::fs::write(&state, other.to_string()).unwrap();
    let out = copy(&from, &to, &state, &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is for another copy") && stderr.contains("/elsewhere"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("target").exists(),
        "refused before opening anything"
    );
}

#[tokio::test]
async fn a_running_server_holds_its_store_and_the_copy_says_to_stop_it() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let from = embedded_config(dir.path(), "from.toml", &server.dir);
    let to = embedded_config(dir.path(), "to.toml", &dir.path().join("target"));
    let out = copy(&from, &to, &dir.path().join("copy.state"), &[]);
    assert_eq!(out.status.code(), Some(69));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("source") && stderr.contains("stop the switchboard server"),
        "{stderr}"
    );
}

/// Embedded → ScyllaDB, into a fresh keyspace that `switchboard migrate` creates; only where
/// `SCYLLA_URI` names a cluster.
#[tokio::test]
async fn copies_embedded_to_scylla_when_scylla_uri_is_set() {
    let Ok(uri) = std::env::var("SCYLLA_URI") else {
        eprintln!("SCYLLA_URI is not set: skipping the embedded -> ScyllaDB copy");
        return;
    };
    let source = filled_store().await;
    let dir = tempfile::tempdir().unwrap();
    let from = embedded_config(dir.path(), "from.toml", &source.dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let keyspace = format!("copy_store_{}_{nanos}", std::process::id());
    let to = dir.path().join("to.toml");
    let toml_text = format!(
        "[auth]\njwt_secret = {}\n\n[store]\nkind = \"scylla\"\n\n[scylla]\nuri = {}\nkeyspace = \"{keyspace}\"\n\
         replication_strategy = \"SimpleStrategy\"\nreplication_factor = 1\n",
        toml::Value::String(SECRET.into()),
        toml::Value::String(uri.clone()),
    );
    std::fs::write(&to, toml_text).unwrap();
    let migrated = switchboard(&["migrate", "--config", to.to_str().unwrap()], &[]);
    assert_eq!(migrated.status.code(), Some(0), "switchboard migrate");
    let out = copy(
        &from,
        &to,
        &dir.path().join("copy.state"),
        &["--batch", "4"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("count check passed"));
    let config = switchboard::config::Config::load(Some(&to)).unwrap();
    let target = switchboard::storage::open::open(&config).await.unwrap();
    assert_same(&*open(&source.dir), &*target).await;
    drop(target);
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(config.scylla.nodes())
        .build()
        .await
        .unwrap();
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .unwrap();
}
