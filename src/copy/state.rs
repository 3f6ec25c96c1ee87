//! The state file: where an interrupted `copy-store` resumes.
//!
//! Saved after every imported page, atomically (a temporary file, fsynced, renamed over the old
//! one, then the directory fsynced), so a copy killed at any instant finds either the previous
//! position or the new one, never a torn file. The page after the saved position may already be
//! in the target; imports are idempotent, so importing it again is harmless.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::storage::records::Table;

/// Bumped when the file's meaning changes, so a file from another version is refused rather than
/// misread.
const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is not one copy-store wrote ({reason}); delete it to copy again from the start")]
    Corrupt { path: PathBuf, reason: String },
}

/// How far a copy got. The source and target are named (`Endpoint`'s display) so that a state
/// file is never applied to a different pair of stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyState {
    pub version: u32,
    pub source: String,
    pub target: String,
    /// The table being copied (`Table::name`); `None` once every table is copied and only the
    /// count check remains.
    pub table: Option<String>,
    /// The source's scan position in `table`, after the last imported page; `None` at its start.
    pub cursor: Option<String>,
    /// Records imported so far, by table name, across every run of this copy.
    pub copied: BTreeMap<String, u64>,
}

impl CopyState {
    /// A copy that has not moved yet: the first table, from its start.
    pub fn new(source: String, target: String) -> CopyState {
        CopyState {
            version: STATE_VERSION,
            source,
            target,
            table: Some(Table::ALL[0].name().to_string()),
            cursor: None,
            copied: BTreeMap::new(),
        }
    }

    /// The table being copied, or `None` when all are.
    pub fn table(&self, path: &Path) -> Result<Option<Table>, StateError> {
        match &self.table {
            None => Ok(None),
            Some(name) => Table::from_name(name)
                .map(Some)
                .ok_or_else(|| corrupt(path, format!("it names an unknown table `{name}`"))),
        }
    }

    /// Where the copy is, for people: "messages after 1500 records".
    pub fn position(&self) -> String {
        match (&self.table, &self.cursor) {
            (None, _) => "the count check (every table is copied)".to_string(),
            (Some(t), None) => format!("the start of {t}"),
            (Some(t), Some(_)) => {
                format!("{t} after {} records", self.copied.get(t).unwrap_or(&0))
            }
        }
    }

    pub fn copied(&self, table: Table) -> u64 {
        self.copied.get(table.name()).copied().unwrap_or(0)
    }

    pub fn add_copied(&mut self, table: Table, n: u64) {
        *self.copied.entry(table.name().to_string()).or_insert(0) += n;
    }
}

fn corrupt(path: &Path, reason: String) -> StateError {
    StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The saved state, or `None` when there is no file (a fresh copy).
pub fn load(path: &Path) -> Result<Option<CopyState>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let state: CopyState = serde_json::from_str(&text).map_err(|e| corrupt(path, e.to_string()))?;
    if state.version != STATE_VERSION {
        return Err(corrupt(
            path,
            format!(
                "version {} where this build writes {STATE_VERSION}",
                state.version
            ),
        ));
    }
    state.table(path)?;
    Ok(Some(state))
}

/// Replaces the file with `state`, durably and atomically.
pub fn save(path: &Path, state: &CopyState) -> Result<(), StateError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_vec_pretty(state).map_err(|e| corrupt(path, e.to_string()))?;
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(&text).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path)
}

/// Deletes the file once the copy is complete and checked.
pub fn remove(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Syncs the directory holding `path`, so the rename (or removal) itself survives a crash.
fn sync_dir(path: &Path) -> Result<(), StateError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.state");
        assert!(load(&path).unwrap().is_none());
        let mut s = CopyState::new("a".into(), "b".into());
        s.add_copied(Table::Services, 3);
        s.table = Some(Table::Messages.name().into());
        s.cursor = Some("00ff".into());
        save(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), Some(s.clone()));
        assert_eq!(s.table(&path).unwrap(), Some(Table::Messages));
        assert_eq!(s.copied(Table::Services), 3);
        assert!(!dir.path().join("copy.state.tmp").exists());
        remove(&path).unwrap();
        assert!(load(&path).unwrap().is_none());
    }

    #[test]
    fn refuses_files_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.state");
        fs::write(&path, "not json").unwrap();
        assert!(matches!(load(&path), Err(StateError::Corrupt { .. })));
        let mut s = CopyState::new("a".into(), "b".into());
        s.table = Some("nonsense".into());
        fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("nonsense") && err.contains("delete it"),
            "{err}"
        );
        s.table = None;
        s.version = 99;
        fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("version 99"));
    }
}
