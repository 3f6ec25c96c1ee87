//! The plan's KPIs, counted as events happen: adoption (contact views → conversations),
//! provider response time, conversion (booked outcomes) and message delivery time.
//!
//! The message path only drops an [`Event`] into a bounded queue ([`Analytics::record`] never
//! waits); one task, the [`recorder`], owns the rollups of the days in flight, adds the events
//! into them and writes the changed ones to the store every `analytics.flush_ms`. A rollup is one
//! item per (dimension, day): everything, one provider, one service. Reading a period is then a
//! single ordered read per dimension, and nothing ever scans messages.
//!
//! What a crash loses: the events of the last flush interval (two seconds by default). These are
//! figures for graphs, not records; messages themselves never depend on them.

pub mod recorder;
pub mod report;
pub mod rollup;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::domain::clock::{day_of, now_ms};
use crate::domain::conversation::ConversationRecord;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::{Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Off: nothing is counted (the endpoints answer with zeros).
    pub enabled: bool,
    /// How often changed rollups are written, milliseconds.
    pub flush_ms: u64,
    /// Events waiting for the recorder; past this they are dropped (and counted), so a stalled
    /// store never holds up messages.
    pub queue: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            enabled: true,
            flush_ms: 2_000,
            queue: 65_536,
        }
    }
}

/// Where a figure is counted: each event counts in all three.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    All,
    Provider(ExternalId),
    Service(ExternalId),
}

impl Dimension {
    /// The item partition of this dimension's rollups.
    pub fn partition(&self) -> String {
        match self {
            Dimension::All => "all".into(),
            Dimension::Provider(p) => format!("p:{p}"),
            Dimension::Service(s) => format!("s:{s}"),
        }
    }

    fn of(service: &ExternalId, provider: &ExternalId) -> [Dimension; 3] {
        [
            Dimension::All,
            Dimension::Provider(provider.clone()),
            Dimension::Service(service.clone()),
        ]
    }
}

/// What happened, and when (engine clock, milliseconds).
#[derive(Debug)]
pub enum Event {
    View {
        service: ExternalId,
        provider: ExternalId,
        at: i64,
    },
    Created {
        service: ExternalId,
        provider: ExternalId,
        at: i64,
    },
    /// The provider answered a customer who had waited `waited_ms`.
    Replied {
        service: ExternalId,
        provider: ExternalId,
        waited_ms: i64,
        at: i64,
    },
    /// A message's first `delivered` receipt, `took_ms` after it was sent.
    Delivered {
        service: ExternalId,
        provider: ExternalId,
        took_ms: i64,
        at: i64,
    },
    /// The marketplace reported whether a conversation led to a booking. Counted on the day the
    /// conversation was created, once per conversation (a changed report replaces the old one).
    Outcome {
        conversation: Id,
        service: ExternalId,
        provider: ExternalId,
        created_at: i64,
        booked: bool,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Write everything counted so far, then answer: reports read what happened before them.
    Flush { done: oneshot::Sender<()> },
}

/// The handle the engine, the actors and the handlers share.
#[derive(Clone)]
pub struct Analytics {
    tx: Option<mpsc::Sender<Event>>,
    dropped: Arc<AtomicU64>,
    store: Arc<dyn Store>,
    /// Typical response minutes per provider (by partition), for the contact endpoint: read on
    /// every view, so not recomputed from 30 rollups each time. The recorder drops a provider's
    /// entry when it writes a new response of theirs.
    typical: Typical,
}

pub type Typical = moka::sync::Cache<String, Option<u64>>;

/// Past this the recorder is gone (shutting down) or hopelessly behind.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

impl Analytics {
    /// Starts the recorder (when enabled) and answers its handle.
    pub fn start(config: &AnalyticsConfig, store: Arc<dyn Store>) -> Analytics {
        let typical: Typical = moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(60))
            .build();
        let tx = config.enabled.then(|| {
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            let flush = Duration::from_millis(config.flush_ms.max(10));
            tokio::spawn(recorder::run(rx, store.clone(), flush, typical.clone()));
            tx
        });
        Analytics {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            store,
            typical,
        }
    }

    /// Queues an event without waiting; a full queue drops it.
    fn record(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "analytics queue full: events dropped");
            }
        }
    }

    /// Events dropped because the recorder fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn viewed(&self, service: &ExternalId, provider: &ExternalId) {
        self.record(Event::View {
            service: service.clone(),
            provider: provider.clone(),
            at: now_ms(),
        });
    }

    pub fn created(&self, record: &ConversationRecord) {
        self.record(Event::Created {
            service: record.service_id.clone(),
            provider: record.provider_id.clone(),
            at: record.created_at,
        });
    }

    pub fn replied(&self, record: &ConversationRecord, waited_ms: i64, at: i64) {
        self.record(Event::Replied {
            service: record.service_id.clone(),
            provider: record.provider_id.clone(),
            waited_ms,
            at,
        });
    }

    pub fn delivered(&self, record: &ConversationRecord, sent_at: i64) {
        let at = now_ms();
        self.record(Event::Delivered {
            service: record.service_id.clone(),
            provider: record.provider_id.clone(),
            took_ms: at - sent_at,
            at,
        });
    }

    /// Records a conversation's outcome and waits until it is stored.
    pub async fn outcome(
        &self,
        record: &ConversationRecord,
        booked: bool,
    ) -> Result<(), StoreError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (done, answer) = oneshot::channel();
        let event = Event::Outcome {
            conversation: record.id,
            service: record.service_id.clone(),
            provider: record.provider_id.clone(),
            created_at: record.created_at,
            booked,
            done,
        };
        // The recorder only stops with the process; a wait past FLUSH_WAIT means it is stuck on
        // the store, which the caller hears as the store being unavailable.
        let asked = async {
            tx.send(event).await.map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        };
        tokio::time::timeout(FLUSH_WAIT, asked)
            .await
            .map_err(|_| StoreError::Io("the analytics recorder did not answer".into()))?
    }

    /// Waits until everything recorded so far is in the store (a bounded wait).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, answer) = oneshot::channel();
        let _ = tokio::time::timeout(FLUSH_WAIT, async {
            if tx.send(Event::Flush { done }).await.is_ok() {
                let _ = answer.await;
            }
        })
        .await;
    }

    /// The provider's median response over the last 30 days, in whole minutes rounded up;
    /// `None` under three answers.
    pub async fn typical_response_minutes(
        &self,
        provider: &ExternalId,
    ) -> Result<Option<u64>, StoreError> {
        let dim = Dimension::Provider(provider.clone());
        let partition = dim.partition();
        if let Some(hit) = self.typical.get(&partition) {
            return Ok(hit);
        }
        let today = day_of(now_ms());
        let period = report::Period {
            from: today - 29,
            to: today,
        };
        let days = report::read_days(&*self.store, &dim, period).await?;
        let mut total = rollup::Rollup::default();
        for (_, r) in &days {
            total.merge(r);
        }
        let minutes = if rollup::count(&total.responses) < 3 {
            None
        } else {
            rollup::median(&total.responses).map(|secs| (secs / 60.0).ceil() as u64)
        };
        self.typical.insert(partition, minutes);
        Ok(minutes)
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }
}
