//! The routes the source declares, read from `src/` at test time, so a route added without a row
//! in the matrix fails a test instead of going unchecked.
//!
//! It reads every `warp::path!(...)` under `src/` and turns it into segments (`"{}"` for a
//! parameter). Some filters add a prefix outside the macro (`conversations.rs` puts
//! `api/v1` in front with `warp::path`), so a declared path is covered when some row's path
//! *ends with* its segments. `/ws` itself is built with `warp::path("ws")`, not the macro, and is
//! covered by its rows without being read here.
//!
//! When the statement that holds the macro also names the method (`.and(warp::post())` before its
//! `;`, as every route here does except `services.rs`, which shares one path among three
//! methods), a row must have that method too, so a new method on an old path needs its row.

use std::path::{Path, PathBuf};

/// A `warp::path!` found in the source: where, its segments, and its method when the same
/// statement names one.
#[derive(Debug)]
pub struct Declared {
    pub at: String,
    pub segments: Vec<String>,
    pub method: Option<&'static str>,
}

/// A row as the coverage check sees it: its HTTP method (none for sockets) and path segments.
pub struct Covered {
    pub method: Option<&'static str>,
    pub segments: Vec<String>,
}

const METHODS: [(&str, &str); 5] = [
    ("warp::get()", "GET"),
    ("warp::post()", "POST"),
    ("warp::put()", "PUT"),
    ("warp::patch()", "PATCH"),
    ("warp::delete()", "DELETE"),
];

/// The method filter in the rest of the macro's statement, if it names exactly one.
fn method_in(statement: &str) -> Option<&'static str> {
    let named: Vec<&'static str> = METHODS
        .iter()
        .filter(|(filter, _)| statement.contains(filter))
        .map(|(_, m)| *m)
        .collect();
    match named.as_slice() {
        [one] => Some(one),
        _ => None,
    }
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
            let statement = after[end..].split(';').next().unwrap_or_default();
            if !segments.is_empty() {
                let line = text[..offset].matches('\n').count() + 1;
                let name = file.strip_prefix(root).unwrap_or(&file).display();
                found.push(Declared {
                    at: format!("{name}:{line}"),
                    segments,
                    method: method_in(statement),
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

/// Whether some row's path ends with the declared segments, with the declared method if any.
pub fn covered(declared: &Declared, rows: &[Covered]) -> bool {
    rows.iter().any(|r| {
        r.segments.ends_with(&declared.segments)
            && declared.method.is_none_or(|m| r.method == Some(m))
    })
}
