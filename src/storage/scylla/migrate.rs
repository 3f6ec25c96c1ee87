//! `switchboard migrate`: applies `schema/` to a cluster, in file order, and says what it did.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so a migration cut short is simply run again.
//! A file is recorded in `<keyspace>.schema_migrations` once all of its statements are applied;
//! the report names the files applied now and those applied before.

use std::time::Duration;

use scylla::client::session::Session;

use super::cql::{replication, schema_statements, SCHEMA};
use super::session;
use crate::config::ScyllaConfig;
use crate::storage::open::OpenError;

/// What a migration did, file by file.
#[derive(Debug, Default)]
pub struct Report {
    pub keyspace: String,
    pub replication: String,
    /// Files applied by this run, with how many statements each.
    pub applied: Vec<(String, usize)>,
    /// Files a previous run had already applied (their statements ran again, changing nothing).
    pub already: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "keyspace {} (replication {})",
            self.keyspace, self.replication
        )?;
        for (file, n) in &self.applied {
            writeln!(f, "applied {file} ({n} statements)")?;
        }
        for file in &self.already {
            writeln!(f, "already applied {file}")?;
        }
        write!(
            f,
            "schema is current: {} file(s) applied now, {} before",
            self.applied.len(),
            self.already.len()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{file}: {statement}: {reason}")]
    Statement {
        file: String,
        statement: String,
        reason: String,
    },
}

/// Connects and applies every schema file.
pub async fn migrate(config: &ScyllaConfig) -> Result<Report, MigrateError> {
    let limit = Duration::from_secs(config.connect_timeout_secs);
    let unreachable = |reason: String| OpenError::Unreachable {
        uri: config.uri.clone(),
        reason,
    };
    let session = match tokio::time::timeout(limit, session(config)).await {
        Ok(Ok(s)) => s,
        Ok(Err(reason)) => return Err(unreachable(reason).into()),
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} s",
                config.connect_timeout_secs
            ))
            .into())
        }
    };
    apply(&session, config).await
}

/// The strategy whose keyspaces ScyllaDB 6 makes tablet-based.
const NTS: &str = "NetworkTopologyStrategy";

async fn apply(session: &Session, config: &ScyllaConfig) -> Result<Report, MigrateError> {
    let repl = replication(&config.replication_strategy, config.replication_factor);
    let ks = &config.keyspace;
    let mut report = Report {
        keyspace: ks.clone(),
        replication: repl.clone(),
        ..Report::default()
    };
    for (file, text) in SCHEMA {
        let statements = schema_statements(text, ks, &repl);
        let fail = |statement: &str, reason: String| MigrateError::Statement {
            file: file.to_string(),
            statement: statement.chars().take(80).collect(),
            reason,
        };
        // Known only once the first file has created the table.
        let before = was_applied(session, ks, file).await;
        for s in &statements {
            if s.starts_with("CREATE KEYSPACE") && config.replication_strategy == NTS {
                // ScyllaDB 6 makes NetworkTopologyStrategy keyspaces tablet-based by default, and
                // tablets do not take the lightweight transaction that keeps conversations unique.
                // Older versions do not know the option and refuse it: then the plain statement.
                let vnodes = format!("{s} AND tablets = {{'enabled': false}}");
                if session.query_unpaged(vnodes.as_str(), ()).await.is_ok() {
                    continue;
                }
            }
            session
                .query_unpaged(s.as_str(), ())
                .await
                .map_err(|e| fail(s, e.to_string()))?;
        }
        // Tables must exist on every node before the next file (or a server) uses them.
        session
            .await_schema_agreement()
            .await
            .map_err(|e| fail("schema agreement", e.to_string()))?;
        if before {
            report.already.push(file.to_string());
        } else {
            let record = format!(
                "INSERT INTO {ks}.schema_migrations (file, applied_at) VALUES (?, toTimestamp(now()))"
            );
            session
                .query_unpaged(record.as_str(), (file.to_string(),))
                .await
                .map_err(|e| fail("schema_migrations", e.to_string()))?;
            report.applied.push((file.to_string(), statements.len()));
        }
    }
    Ok(report)
}

async fn was_applied(session: &Session, ks: &str, file: &str) -> bool {
    let q = format!("SELECT file FROM {ks}.schema_migrations WHERE file = ?");
    match session.query_unpaged(q.as_str(), (file.to_string(),)).await {
        Ok(r) => r
            .into_rows_result()
            .ok()
            .and_then(|rows| rows.maybe_first_row::<(String,)>().ok().flatten())
            .is_some(),
        // No keyspace or table yet: a first migration.
        Err(_) => false,
    }
}
