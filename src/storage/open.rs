//! Opening the store a configuration names: what `serve`, `copy-store` and `migrate` share.

use std::sync::Arc;

use super::embedded::{EmbeddedOptions, EmbeddedStore};
use super::Store;
use crate::config::{Config, StoreKind};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the embedded store at {path}: {reason}")]
    Embedded { path: String, reason: String },
    /// No node answered within `scylla.connect_timeout_secs` (exit code 69, EX_UNAVAILABLE).
    #[error("cannot reach ScyllaDB at {uri}: {reason}")]
    Unreachable { uri: String, reason: String },
    /// The cluster answered, but cannot serve (no schema: run `switchboard migrate`).
    #[error("ScyllaDB at {uri} cannot serve: {reason}")]
    NotReady { uri: String, reason: String },
}

/// Opens the store `config.store.kind` names.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>, OpenError> {
    match config.store.kind {
        StoreKind::Embedded => open_embedded(config),
        StoreKind::Scylla => {
            let store = super::scylla::ScyllaStore::connect(&config.scylla).await?;
            Ok(store)
        }
    }
}

fn open_embedded(config: &Config) -> Result<Arc<dyn Store>, OpenError> {
    let s = &config.store;
    let store = EmbeddedStore::open(
        &s.path,
        EmbeddedOptions {
            max_batch: s.max_batch,
            background_threads: s.background_threads,
            max_queue: s.max_queue,
        },
    )
    .map_err(|e| OpenError::Embedded {
        path: s.path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(store)
}
