//! `switchboard copy-store`: every record of one store streamed into another (embedded to
//! ScyllaDB, or between two embedded stores), resumable, then checked by counting both.
//!
//! Stores are opened only through `storage::open::open`, and records move only through
//! `Store::scan` and `Store::import`, so a copy between two backends never depends on either's
//! layout: the target rebuilds every index (activity lists, unread counts, dedupe entries) from
//! the records as its own writes would.
//!
//! The source must be stopped: a copy reads a store that is still being written in no consistent
//! state, and the count check would fail. An embedded store is locked by the process that has it
//! open, so a running server makes the open fail, and the error says to stop it.

mod state;
mod stream;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::{Config, StoreKind};
use crate::storage::open::{open, OpenError};
use crate::storage::StoreError;
pub use state::StateError;

/// Where progress is kept when `--state` is not given: in the current directory, so a rerun
/// from the same place resumes.
pub const DEFAULT_STATE_FILE: &str = "copy-store.state";
/// Records per scanned and imported page when `--batch` is not given.
pub const DEFAULT_BATCH: usize = 500;

/// EX_USAGE: the arguments or configurations cannot run as given (same store twice, no source,
/// a state file of another copy, a target that is not empty).
pub const EXIT_USAGE: u8 = 64;
/// EX_DATAERR: the copy ran, but the target's counts differ from the source's.
pub const EXIT_COUNT_MISMATCH: u8 = 65;
/// EX_UNAVAILABLE: a store cannot be opened or reached (a running server holds the embedded
/// store's lock; ScyllaDB does not answer or has no schema).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// EX_TEMPFAIL: stopped on purpose (`--stop-after-pages`) with progress saved; run again.
pub const EXIT_STOPPED: u8 = 75;

#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub state_file: PathBuf,
    /// Records per page (at least 1).
    pub batch: usize,
    /// Stop after this many pages, progress saved, as if interrupted: how the tests show a copy
    /// resumes without killing a process at a lucky moment.
    pub stop_after_pages: Option<u64>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            state_file: PathBuf::from(DEFAULT_STATE_FILE),
            batch: DEFAULT_BATCH,
            stop_after_pages: None,
        }
    }
}

/// How a copy that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything copied and the counts match; the state file is gone.
    Done,
    /// Stopped by `stop_after_pages` after this many pages, progress saved.
    Stopped { pages: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "--from and --to are the same store ({0}); note that SWITCHBOARD_* environment \
         variables apply to both configurations"
    )]
    SameStore(String),
    #[error(
        "the source has no store at {0}: check store.path in the --from configuration \
         (relative paths are taken from the current directory)"
    )]
    NoSource(String),
    #[error("cannot resolve {path}: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the {role} store: {source}{hint}")]
    Open {
        role: &'static str,
        #[source]
        source: OpenError,
        hint: &'static str,
    },
    #[error(
        "the state file {path} is for another copy (from {from} to {to}); pass another --state, \
         or delete it to start this copy from the beginning"
    )]
    StateMismatch {
        path: PathBuf,
        from: String,
        to: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "the target already holds {table} records and there is no state file to resume from: \
         copy into an empty store (a new directory or keyspace); if an earlier copy completed, \
         there is nothing left to do"
    )]
    TargetNotEmpty { table: &'static str },
    #[error("{op} {table} in the {role} store failed: {source}")]
    Store {
        op: &'static str,
        table: &'static str,
        role: &'static str,
        #[source]
        source: StoreError,
    },
    #[error(
        "the position saved for {table} in {path} is not one the source store gave out; delete \
         the state file to copy again from the start"
    )]
    BadCursor { table: &'static str, path: PathBuf },
    #[error(
        "the source's scan of {0} did not move past its position; stopping instead of looping"
    )]
    Stuck(&'static str),
    #[error(
        "count check failed, the target differs from the source: {0}. Was the source written \
         during the copy? Delete the state file and copy into an empty store again"
    )]
    CountMismatch(String),
}

impl CopyError {
    /// The process exit code for this failure (see the `EXIT_*` constants).
    pub fn exit_code(&self) -> u8 {
        match self {
            CopyError::SameStore(_)
            | CopyError::NoSource(_)
            | CopyError::Path { .. }
            | CopyError::StateMismatch { .. }
            | CopyError::TargetNotEmpty { .. } => EXIT_USAGE,
            CopyError::Open { .. } => EXIT_UNAVAILABLE,
            CopyError::CountMismatch(_) => EXIT_COUNT_MISMATCH,
            CopyError::State(_)
            | CopyError::Store { .. }
            | CopyError::BadCursor { .. }
            | CopyError::Stuck(_) => 1,
        }
    }
}

/// Which store a configuration names, to refuse copying a store onto itself and to tie a state
/// file to one pair of stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An embedded store's directory, absolute and with symlinks resolved.
    Embedded(PathBuf),
    Scylla {
        nodes: BTreeSet<String>,
        keyspace: String,
    },
}

impl Endpoint {
    pub fn of(config: &Config) -> Result<Endpoint, CopyError> {
        Ok(match config.store.kind {
            StoreKind::Embedded => Endpoint::Embedded(resolve(&config.store.path)?),
            StoreKind::Scylla => Endpoint::Scylla {
                nodes: config.scylla.nodes().into_iter().collect(),
                keyspace: config.scylla.keyspace.clone(),
            },
        })
    }

    /// Whether both name one store. Two lists of contact points that share a node are one
    /// cluster; different hosts of one cluster cannot be told apart from here.
    pub fn same_store(&self, other: &Endpoint) -> bool {
        match (self, other) {
            (Endpoint::Embedded(a), Endpoint::Embedded(b)) => a == b,
            (
                Endpoint::Scylla { nodes, keyspace },
                Endpoint::Scylla {
                    nodes: n2,
                    keyspace: k2,
                },
            ) => keyspace == k2 && !nodes.is_disjoint(n2),
            _ => false,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Embedded(p) => write!(f, "embedded store {}", p.display()),
            Endpoint::Scylla { nodes, keyspace } => {
                let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                write!(f, "ScyllaDB keyspace {keyspace} at {}", nodes.join(","))
            }
        }
    }
}

/// `path` made absolute with symlinks resolved, also when it does not exist yet (a new target):
/// its deepest existing ancestor is resolved and the rest appended.
fn resolve(path: &Path) -> Result<PathBuf, CopyError> {
    let fail = |source| CopyError::Path {
        path: path.to_path_buf(),
        source,
    };
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(fail)?.join(path)
    };
    let mut existing = abs.as_path();
    let mut missing = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut out) => {
                out.extend(missing.iter().rev());
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        missing.push(name.to_os_string());
                        existing = parent;
                    }
                    _ => return Err(fail(e)),
                }
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Copies every table of the store `from` names into the store `to` names, resuming from
/// `options.state_file` when it exists, then compares the counts of both. Prints one line per
/// table and the counts to stdout; a progress bar goes to stderr when it is a terminal.
pub async fn run(from: &Config, to: &Config, options: &CopyOptions) -> Result<Outcome, CopyError> {
    let source_at = Endpoint::of(from)?;
    let target_at = Endpoint::of(to)?;
    if source_at.same_store(&target_at) {
        return Err(CopyError::SameStore(source_at.to_string()));
    }
    // Opening an embedded store creates it: a mistyped source path must not copy an empty store.
    if let Endpoint::Embedded(dir) = &source_at {
        let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
        if empty {
            return Err(CopyError::NoSource(dir.display().to_string()));
        }
    }
    let path = &options.state_file;
    let saved = state::load(path)?;
    if let Some(s) = &saved {
        if s.source != source_at.to_string() || s.target != target_at.to_string() {
            return Err(CopyError::StateMismatch {
                path: path.clone(),
                from: s.source.clone(),
                to: s.target.clone(),
            });
        }
    }
    let source = open(from).await.map_err(|e| open_error("source", e))?;
    let target = open(to).await.map_err(|e| open_error("target", e))?;
    stream::say(&format!("copying from the {source_at} to the {target_at}"));
    let copier = stream::Copier {
        source,
        target,
        options,
    };
    let state = match saved {
        Some(s) => {
            stream::say(&format!(
                "resuming from {}: at {}",
                path.display(),
                s.position()
            ));
            s
        }
        None => {
            copier.check_target_empty().await?;
            let s = state::CopyState::new(source_at.to_string(), target_at.to_string());
            // Saved before the first import: from here on, a target that holds records always
            // has a state file saying how far it got.
            state::save(path, &s)?;
            s
        }
    };
    copier.run(state).await
}

fn open_error(role: &'static str, source: OpenError) -> CopyError {
    // fjall reports a held lock as `Locked`; OpenError carries it only as text.
    let hint = match &source {
        OpenError::Embedded { reason, .. } if reason.contains("Locked") => {
            ". Another process has it open: stop the switchboard server using this store first"
        }
        OpenError::NotReady { .. } => ". Has `switchboard migrate` run against this cluster?",
        _ => "",
    };
    CopyError::Open { role, source, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_that_do_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        let new = resolve(&dir.path().join("a/b")).unwrap();
        assert_eq!(new, real.join("a").join("b"));
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let via_dots = resolve(&dir.path().join("a/../a/b")).unwrap();
        assert_eq!(via_dots, new);
    }

    #[test]
    fn scylla_endpoints_are_one_store_when_they_share_a_node_and_keyspace() {
        let at = |nodes: &[&str], ks: &str| Endpoint::Scylla {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            keyspace: ks.into(),
        };
        assert!(at(&["a:9042", "b:9042"], "k").same_store(&at(&["b:9042"], "k")));
        assert!(!at(&["a:9042"], "k").same_store(&at(&["a:9042"], "other")));
        assert!(!at(&["a:9042"], "k").same_store(&at(&["c:9042"], "k")));
        assert!(!at(&["a:9042"], "k").same_store(&Endpoint::Embedded("/k".into())));
    }

    #[test]
    fn exit_codes_tell_usage_unavailable_and_mismatch_apart() {
        assert_eq!(CopyError::SameStore("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(
            CopyError::CountMismatch("x".into()).exit_code(),
            EXIT_COUNT_MISMATCH
        );
        let open = open_error(
            "source",
            OpenError::Embedded {
                path: "/d".into(),
                reason: "storage I/O failed: FjallError: Locked".into(),
            },
        );
        assert_eq!(open.exit_code(), EXIT_UNAVAILABLE);
        assert!(
            open.to_string().contains("stop the switchboard server"),
            "{open}"
        );
    }
}
