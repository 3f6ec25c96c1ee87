//! The ScyllaDB store (`store.kind = "scylla"`): history for when one disk is not enough.
//!
//! The same `Store` as the embedded one, proven by the same conformance suite. What is particular
//! to a cluster lives in the submodules: the statements (`cql.rs`), what each write puts where
//! (`rows.rs`), the per-conversation write chains that keep a conversation's order against a
//! cluster (`chain.rs`), conversation creation behind a lightweight transaction (`creation.rs`),
//! the schema migration (`migrate.rs`) and the `Store` operations (`ops.rs`). This file connects, prepares
//! every statement once, and answers reads: every multi-row read pages, point reads are one
//! partition, and conversation records (which never change) are cached with `moka`, so a burst
//! of membership checks for one conversation makes one query.

mod chain;
pub mod cql;
mod creation;
pub mod migrate;
mod ops;
mod records;
pub mod rows;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::ExecutionError;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use self::chain::{Apply, Chains};
use self::cql::Q;
use self::rows::Bound;
use super::open::OpenError;
use super::{StoreError, StoreResult};
use crate::config::ScyllaConfig;
use crate::domain::conversation::ConversationRecord;
use crate::domain::Id;

/// How long a conversation whose key was claimed may go without its record before another
/// creation takes the key over: a creation cut short between its claim and its batch (a crash, a
/// failed write) must not block that conversation for ever, and a creation still under way has
/// long finished by then.
const ADOPT_AFTER_MS: i64 = 30_000;

/// A creation that finds another one's claim and not yet its conversation looks again this many
/// times, this often, before answering "try again": the claimant writes it one round trip later.
const CLAIM_POLLS: usize = 20;
const CLAIM_POLL_EVERY: Duration = Duration::from_millis(50);

pub struct ScyllaStore {
    session: Arc<Session>,
    prepared: Arc<HashMap<Q, PreparedStatement>>,
    chains: Arc<Chains>,
    clock: Arc<Clock>,
    records: moka::future::Cache<Id, Arc<ConversationRecord>>,
}

/// Write timestamps (microseconds) that only go up within this process, even if the wall clock
/// steps back: the order of a conversation's writes is the order of their timestamps.
#[derive(Default)]
pub struct Clock(AtomicI64);

impl Clock {
    /// Makes every later timestamp greater than `at` (a timestamp read from the cluster).
    pub fn observe(&self, at: i64) {
        self.0.fetch_max(at, Ordering::AcqRel);
    }

    pub fn next(&self) -> i64 {
        let now = crate::domain::clock::machine_ms().saturating_mul(1000);
        let mut last = self.0.load(Ordering::Acquire);
        loop {
            let next = now.max(last + 1);
            match self
                .0
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("scylla: {e}"))
}

/// A request that failed: timed out, refused, or lost with its connection. Whatever happened on
/// the cluster, the caller answers `store_unavailable` and never acknowledges it.
fn failed(e: ExecutionError) -> StoreError {
    match e {
        ExecutionError::RequestTimeout(d) => {
            StoreError::Io(format!("scylla: no answer within {} ms", d.as_millis()))
        }
        e => io(e),
    }
}

impl ScyllaStore {
    /// Connects to the cluster and prepares every statement. Gives up after
    /// `connect_timeout_secs` with `Unreachable` (no node answered) or `NotReady` (a node answered
    /// but the schema is missing: run `switchboard migrate`).
    pub async fn connect(config: &ScyllaConfig) -> Result<Arc<Self>, OpenError> {
        let limit = Duration::from_secs(config.connect_timeout_secs);
        match tokio::time::timeout(limit, Self::connect_now(config)).await {
            Ok(result) => result,
            Err(_) => Err(OpenError::Unreachable {
                uri: config.uri.clone(),
                reason: format!("no answer within {} s", config.connect_timeout_secs),
            }),
        }
    }

    async fn connect_now(config: &ScyllaConfig) -> Result<Arc<Self>, OpenError> {
        let session = session(config)
            .await
            .map_err(|reason| OpenError::Unreachable {
                uri: config.uri.clone(),
                reason,
            })?;
        let mut prepared = HashMap::new();
        for q in Q::ALL {
            let mut p = session
                .prepare(q.cql(&config.keyspace))
                .await
                .map_err(|e| OpenError::NotReady {
                    uri: config.uri.clone(),
                    reason: format!(
                        "cannot prepare {q:?} ({e}); has `switchboard migrate` created keyspace {}?",
                        config.keyspace
                    ),
                })?;
            // Every statement is safe to send twice: writes carry their own timestamps, so the
            // driver may retry them after a timeout. The conversation key claim is the exception
            // and takeover (transactions, which answer whether *this* request applied them).
            let transaction = matches!(q, Q::ClaimKey | Q::TakeOverKey);
            p.set_is_idempotent(!transaction);
            if transaction {
                p.set_serial_consistency(Some(SerialConsistency::LocalSerial));
            }
            prepared.insert(*q, p);
        }
        let session = Arc::new(session);
        let prepared = Arc::new(prepared);
        let apply: Apply = {
            let (session, prepared) = (session.clone(), prepared.clone());
            Arc::new(move |stmts| {
                let (session, prepared) = (session.clone(), prepared.clone());
                Box::pin(async move { write_batch(&session, &prepared, stmts).await })
            })
        };
        Ok(Arc::new(ScyllaStore {
            session,
            prepared,
            chains: Chains::new(
                apply,
                config.max_in_flight,
                tokio::runtime::Handle::current(),
            ),
            clock: Arc::new(Clock::default()),
            records: moka::future::Cache::new(config.cache_conversations),
        }))
    }

    fn statement(&self, q: Q) -> &PreparedStatement {
        // Every `Q` is prepared in `connect` or the store does not exist.
        &self.prepared[&q]
    }

    async fn write(&self, stmts: Vec<Bound>) -> StoreResult<()> {
        write_batch(&self.session, &self.prepared, stmts).await
    }

    /// A cheap query that needs a live node: what `/readyz` asks.
    async fn probe(&self) -> StoreResult<()> {
        self.session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .map(|_| ())
            .map_err(failed)
    }
}

/// A session from the configuration: LOCAL_QUORUM, the request timeout, token-aware routing that
/// prefers `local_dc`, and client-side monotonic timestamps.
async fn session(config: &ScyllaConfig) -> Result<Session, String> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if !config.local_dc.is_empty() {
        policy = policy.prefer_datacenter(config.local_dc.clone());
    }
    let profile = ExecutionProfile::builder()
        .consistency(Consistency::LocalQuorum)
        .serial_consistency(Some(SerialConsistency::LocalSerial))
        .request_timeout(Some(Duration::from_millis(config.request_timeout_ms)))
        .load_balancing_policy(policy.build())
        .build();
    SessionBuilder::new()
        .known_nodes(config.nodes())
        .connection_timeout(Duration::from_secs(config.connect_timeout_secs.min(10)))
        .default_execution_profile_handle(profile.into_handle())
        // Statements without `USING TIMESTAMP` (directory, hidden, last seen) get client
        // timestamps too, so coordinators with skewed clocks cannot reorder them.
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .keyspaces_to_fetch([config.keyspace.clone()])
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// Sends statements: one alone, several as one logged batch (all of a write lands or none does,
/// across the partitions it touches). Each statement carries its own write's timestamp.
async fn write_batch(
    session: &Session,
    prepared: &HashMap<Q, PreparedStatement>,
    stmts: Vec<Bound>,
) -> StoreResult<()> {
    match stmts.len() {
        0 => Ok(()),
        1 => {
            let Some(b) = stmts.into_iter().next() else {
                return Ok(());
            };
            session
                .execute_unpaged(&prepared[&b.q], b.values)
                .await
                .map(|_| ())
                .map_err(failed)
        }
        _ => {
            let mut batch = Batch::new(BatchType::Logged);
            batch.set_is_idempotent(true);
            let mut values = Vec::with_capacity(stmts.len());
            for b in stmts {
                batch.append_statement(prepared[&b.q].clone());
                values.push(b.values);
            }
            session
                .batch(&batch, values)
                .await
                .map(|_| ())
                .map_err(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_clock_passes_what_it_has_seen() {
        let c = Clock::default();
        let far = c.next() + 3_600_000_000;
        c.observe(far);
        assert!(c.next() > far);
    }

    #[test]
    fn the_write_clock_only_goes_up() {
        let c = Clock::default();
        let mut last = 0;
        for _ in 0..10_000 {
            let t = c.next();
            assert!(t > last);
            last = t;
        }
    }
}
