//! The routes the source declares, read from `src/` at test time, so a route added without a row
//! in the matrix fails a test instead of going unchecked.
//!
//! It reads every `warp::path!(...)` under `src/` and turns it into segments (`"{}"` for a
//! parameter). Some filters add a prefix outside the macro (`conversations.rs` puts
//! `api/v1` in front with `warp::path`), so a declared path is covered when some row's path
//! *ends with* its segments. `/ws` itself is built with `warp::path("ws")`, not the macro, and is
//! covered by its rows without being read here.

use std::path::{Path, PathBuf};

/// A `warp::path!` found in the source: where, and its segments.
#[derive(Debug)]
pub struct Declared {
    pub at: String,
    pub segments: Vec<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}"));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The segments of one macro's arguments: `"api" / "v1" / String` is `["api", "v1", "{}"]`.
/// `..` (no end of path required) adds nothing.
pub fn segments(args: &str) -> Vec<String> {
    args.split('/')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "..")
        .map(
            |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(literal) => literal.to_string(),
                None => "{}".to_string(),
            },
        )
        .collect()
}

/// Every non-empty `warp::path!` under `src/`.
pub fn declared() -> Vec<Declared> {
    const MACRO: &str = "warp::path!(";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source file reads");
        let mut rest = text.as_str();
        while let Some(start) = rest.find(MACRO) {
            let offset = text.len() - rest.len() + start;
            let after = &rest[start + MACRO.len()..];
            let end = after.find(')').expect("warp::path! is closed");
            let segments = segments(&after[..end]);
            if !segments.is_empty() {
                let line = text[..offset].matches('\n').count() + 1;
                let name = file.strip_prefix(root).unwrap_or(&file).display();
                found.push(Declared {
                    at: format!("{name}:{line}"),
                    segments,
                });
            }
            rest = &after[end..];
        }
    }
    found
}

/// A row's path template as segments: `/api/v1/conversations/{conv}?x=1` is
/// `["api", "v1", "conversations", "{}"]`.
pub fn template_segments(path: &str) -> Vec<String> {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}".to_string()
            } else {
                s.to_string()
            }
        })
        .collect()
}

/// Whether some row path ends with the declared segments.
pub fn covered(declared: &[String], rows: &[Vec<String>]) -> bool {
    rows.iter().any(|r| r.ends_with(declared))
}
