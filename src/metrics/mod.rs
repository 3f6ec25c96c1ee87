//! Counters, gauges and histograms for operators: `/admin/v1/stats` and Prometheus `/metrics`.
//!
//! Every metric is registered once in a `prometheus_client` [`Registry`], which writes the
//! OpenMetrics exposition; nothing here formats text by hand. On the message path only atomics
//! are touched: the crate's counters and gauges are atomics, its label families are not (a
//! `Family` lookup takes a read lock), so the series the hot path uses (the two wire formats,
//! the common refusal reasons, the store operations) are created once up front and their handles
//! kept. Histograms are [`AtomicHistogram`]s, because the crate's own histogram takes a mutex on
//! every observation.
//!
//! A once-a-second sampler keeps the last minute of message counts for the
//! `messages_per_second` average of `/admin/v1/stats`.

pub mod histogram;

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

pub use histogram::{AtomicHistogram, LabeledHistograms};

use crate::wire::WireFormat;

/// A label set of one pair, e.g. `[("reason", "rate_limited")]`; label values here are
/// `&'static str` (error codes, operation names), so a lookup never allocates.
pub type OneLabel = [(&'static str, &'static str); 1];

/// The media type of the OpenMetrics text exposition `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Send→ack latency bounds, seconds: an fsync-bound ack is around a millisecond on a good disk;
/// anything past a second is an incident.
const SEND_ACK_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Store operation latency bounds, seconds: a cached read is microseconds, a durable write
/// includes the wait for its group commit.
const STORE_OP_BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Writes per group commit: powers of two up to the largest `store.max_batch` worth setting.
pub const BATCH_SIZE_BOUNDS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// Refusal reasons created up front: the ones that come in floods (an overloaded or failing
/// store, a client over its budget), so counting them never takes the family's lock.
const HOT_REFUSALS: [&str; 3] = ["rate_limited", "overloaded", "store_unavailable"];

/// Store operation latencies and errors, one series per operation. Handed to the store wrapper
/// (`storage::instrumented`), which names the operations.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    latency: LabeledHistograms,
    errors: Family<OneLabel, Counter>,
    ops: &'static [&'static str],
}

impl StoreMetrics {
    pub fn new(ops: &'static [&'static str]) -> Self {
        StoreMetrics {
            latency: LabeledHistograms::new("op", ops, &STORE_OP_BOUNDS),
            errors: Family::default(),
            ops,
        }
    }

    /// Records how long operation `op` (an index into the names given to `new`) took.
    pub fn observe(&self, op: usize, started: Instant) {
        if let Some(h) = self.latency.get(op) {
            h.observe_duration(started.elapsed());
        }
    }

    /// Counts a failed operation. Errors are rare, so the family's lock is fine here.
    pub fn error(&self, op: usize) {
        if let Some(name) = self.ops.get(op) {
            self.errors.get_or_create(&[("op", *name)]).inc();
        }
    }
}

/// Open sockets, one gauge per wire format, kept as handles so opening and closing a socket
/// touches one atomic.
#[derive(Debug, Clone)]
pub struct ConnectionGauges {
    json: Gauge,
    msgpack: Gauge,
}

impl ConnectionGauges {
    pub fn of(&self, format: WireFormat) -> &Gauge {
        match format {
            WireFormat::Json => &self.json,
            WireFormat::MessagePack => &self.msgpack,
        }
    }

    /// All open sockets, whatever their format.
    pub fn total(&self) -> i64 {
        self.json.get() + self.msgpack.get()
    }
}

pub struct Metrics {
    registry: Registry,
    pub connections: ConnectionGauges,
    /// Sends the conversation actor handed to the store (each is later stored or refused).
    pub messages_accepted: Counter,
    pub messages_stored: Counter,
    refused: Family<OneLabel, Counter>,
    refused_hot: Vec<(&'static str, Counter)>,
    /// Events written to sockets (messages, receipts, typing, acks, ...), one per socket.
    pub fanout_events: Counter,
    /// From the moment the gateway (socket task or HTTP handler) received a send until the
    /// conversation actor released its ack, after the write was durable. Stored messages only:
    /// a refused send is counted by reason instead.
    pub send_ack: AtomicHistogram,
    pub store: StoreMetrics,
    pub frames_in: Counter,
    pub frames_rejected: Counter,
    pub slow_socket_closes: Counter,
    pub oversized_frame_closes: Counter,
    pub actor_failures: Counter,
    /// Conversation actors that stopped after a failed write, to start again from the store.
    pub conversation_restarts: Counter,
    pub store_errors: Counter,
    pub rate_limited: Counter,
    /// Notifications (webhooks and e-mails) waiting in the outbox or in flight, as the dispatcher
    /// last saw them.
    pub outbox_depth: Gauge,
    pub notifications_sent: Counter,
    /// Due e-mails that had nothing to say any more (read in time, recipient online, opted out).
    pub notifications_skipped: Counter,
    pub notification_failures: Counter,
    pub notification_retries: Counter,
    pub notifications_dead: Counter,
    /// Of the notification counters above, the Web Push part.
    pub pushes_sent: Counter,
    pub push_failures: Counter,
    pub push_retries: Counter,
    /// Subscriptions removed because their push service said they are gone (404/410).
    pub push_subscriptions_removed: Counter,
    /// Set from [`Live`] at each scrape: they are read from the registry and the store, not
    /// counted as they change.
    live: LiveGauges,
    /// (second, messages_stored) samples over the last minute, for the rate. Touched once a
    /// second by the sampler and on stats requests; never on the message path.
    window: Mutex<VecDeque<(Instant, u64)>>,
}

#[derive(Default)]
struct LiveGauges {
    online_users: Gauge,
    conversation_actors: Gauge,
    session_actors: Gauge,
    store_up: Gauge,
    uptime: Gauge,
    messages_per_second: Gauge<f64, AtomicU64>,
    /// Counted by the search index and the analytics recorder themselves; brought up to their
    /// count at each scrape.
    search_dropped: Counter,
    analytics_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None, &[])
    }
}

impl Metrics {
    /// `batch_sizes` is the store's group-commit histogram, when it has one (the embedded store);
    /// `store_ops` names the operations the store wrapper times.
    pub fn new(batch_sizes: Option<AtomicHistogram>, store_ops: &'static [&'static str]) -> Self {
        let mut r = Registry::default();
        let connections: Family<OneLabel, Gauge> = Family::default();
        let conns = ConnectionGauges {
            json: connections.get_or_create_owned(&[("format", "json")]),
            msgpack: connections.get_or_create_owned(&[("format", "msgpack")]),
        };
        r.register(
            "switchboard_connections",
            "Open WebSocket connections, by wire format",
            connections,
        );
        let live = LiveGauges::default();
        r.register(
            "switchboard_online_users",
            "Users with at least one socket",
            live.online_users.clone(),
        );
        r.register(
            "switchboard_conversation_actors",
            "Live conversation actors",
            live.conversation_actors.clone(),
        );
        r.register(
            "switchboard_session_actors",
            "Live user session actors",
            live.session_actors.clone(),
        );
        r.register(
            "switchboard_messages_per_second",
            "Messages stored per second, last minute",
            live.messages_per_second.clone(),
        );
        r.register(
            "switchboard_store_up",
            "1 when the store answers",
            live.store_up.clone(),
        );
        r.register_with_unit(
            "switchboard_uptime",
            "Seconds since start",
            Unit::Seconds,
            live.uptime.clone(),
        );
        r.register(
            "switchboard_search_dropped",
            "Index changes refused because the indexer's queue was full (reindex restores them)",
            live.search_dropped.clone(),
        );
        r.register(
            "switchboard_analytics_dropped",
            "Analytics events refused because the recorder's queue was full",
            live.analytics_dropped.clone(),
        );
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let messages_accepted = counter(
            &mut r,
            "switchboard_messages_accepted",
            "Messages a conversation accepted and handed to the store",
        );
        let messages_stored = counter(
            &mut r,
            "switchboard_messages_stored",
            "Messages durably stored",
        );
        let refused: Family<OneLabel, Counter> = Family::default();
        let refused_hot = HOT_REFUSALS
            .iter()
            .map(|code| (*code, refused.get_or_create_owned(&[("reason", *code)])))
            .collect();
        r.register(
            "switchboard_messages_refused",
            "Sends a conversation answered with an error, by error code",
            refused.clone(),
        );
        let fanout_events = counter(
            &mut r,
            "switchboard_fanout_events",
            "Events written to sockets (messages, receipts, typing, acks), one per socket",
        );
        let send_ack = AtomicHistogram::new(SEND_ACK_BOUNDS);
        r.register_with_unit(
            "switchboard_send_ack",
            "Seconds from the gateway receiving a send (socket task or HTTP handler) until the \
             conversation actor releases its ack after the write is durable; stored messages only",
            Unit::Seconds,
            send_ack.clone(),
        );
        let store = StoreMetrics::new(store_ops);
        r.register_with_unit(
            "switchboard_store_operation",
            "Seconds a store operation took, by operation; submit is until the write is durable",
            Unit::Seconds,
            store.latency.clone(),
        );
        r.register(
            "switchboard_store_operation_errors",
            "Store operations that failed, by operation",
            store.errors.clone(),
        );
        if let Some(h) = batch_sizes {
            r.register(
                "switchboard_store_batch_size",
                "Writes applied and synced together in one group commit",
                h,
            );
        }
        Metrics {
            connections: conns,
            messages_accepted,
            messages_stored,
            refused,
            refused_hot,
            fanout_events,
            send_ack,
            store,
            frames_in: counter(&mut r, "switchboard_frames_in", "WebSocket frames received"),
            frames_rejected: counter(
                &mut r,
                "switchboard_frames_rejected",
                "Frames answered with an error",
            ),
            slow_socket_closes: counter(
                &mut r,
                "switchboard_slow_socket_closes",
                "Sockets closed for not reading their events",
            ),
            oversized_frame_closes: counter(
                &mut r,
                "switchboard_oversized_frame_closes",
                "Sockets closed for a frame over the limit",
            ),
            actor_failures: counter(
                &mut r,
                "switchboard_actor_failures",
                "Actors that failed and were stopped by their supervisor",
            ),
            conversation_restarts: counter(
                &mut r,
                "switchboard_conversation_restarts",
                "Conversation actors that stopped after a failed write to restart from the store",
            ),
            store_errors: counter(&mut r, "switchboard_store_errors", "Failed store writes"),
            rate_limited: counter(
                &mut r,
                "switchboard_rate_limited",
                "Messages refused by the per-user budget",
            ),
            outbox_depth: {
                let g = Gauge::default();
                r.register(
                    "switchboard_outbox_depth",
                    "Notifications waiting in the outbox or being delivered",
                    g.clone(),
                );
                g
            },
            notifications_sent: counter(
                &mut r,
                "switchboard_notifications_sent",
                "Webhooks and e-mails delivered",
            ),
            notifications_skipped: counter(
                &mut r,
                "switchboard_notifications_skipped",
                "Due e-mails not sent: read in time, recipient online, opted out or no address",
            ),
            notification_failures: counter(
                &mut r,
                "switchboard_notification_failures",
                "Failed delivery attempts",
            ),
            notification_retries: counter(
                &mut r,
                "switchboard_notification_retries",
                "Deliveries scheduled again after a failure",
            ),
            notifications_dead: counter(
                &mut r,
                "switchboard_notifications_dead",
                "Notifications given up after their last attempt (dead letters)",
            ),
            pushes_sent: counter(
                &mut r,
                "switchboard_pushes_sent",
                "Web Push messages accepted by a push service",
            ),
            push_failures: counter(
                &mut r,
                "switchboard_push_failures",
                "Failed Web Push attempts",
            ),
            push_retries: counter(
                &mut r,
                "switchboard_push_retries",
                "Web Push messages scheduled again after a failure",
            ),
            push_subscriptions_removed: counter(
                &mut r,
                "switchboard_push_subscriptions_removed",
                "Push subscriptions removed because their push service said they are gone",
            ),
            live,
            window: Mutex::new(VecDeque::new()),
            registry: r,
        }
    }

    /// Counts a send a conversation refused, by its error code. The common codes use handles made
    /// up front; any other (invalid input, not a participant) takes the family's read lock.
    pub fn refused(&self, code: &'static str) {
        match self.refused_hot.iter().find(|(c, _)| *c == code) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                self.refused.get_or_create(&[("reason", code)]).inc();
            }
        }
    }

    pub fn set_outbox_depth(&self, n: usize) {
        self.outbox_depth.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Records the current message count; call once a second.
    pub fn sample(&self) {
        let now = Instant::now();
        let total = self.messages_stored.get();
        if let Ok(mut w) = self.window.lock() {
            w.push_back((now, total));
            while w.len() > 61 {
                w.pop_front();
            }
        }
    }

    /// Messages stored per second, averaged over up to the last minute.
    pub fn messages_per_second(&self) -> f64 {
        let Ok(w) = self.window.lock() else {
            return 0.0;
        };
        match (w.front(), w.back()) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                c1.saturating_sub(*c0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`), with the figures of `live` as of now.
    pub fn render(&self, live: &Live) -> Result<String, std::fmt::Error> {
        let l = &self.live;
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        l.online_users.set(n(live.online_users));
        l.conversation_actors.set(n(live.conversation_actors));
        l.session_actors.set(n(live.session_actors));
        l.store_up.set(i64::from(live.store_up));
        l.uptime
            .set(i64::try_from(live.uptime_secs).unwrap_or(i64::MAX));
        l.messages_per_second.set(self.messages_per_second());
        catch_up(&l.search_dropped, live.search_dropped);
        catch_up(&l.analytics_dropped, live.analytics_dropped);
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Figures read from elsewhere at render time (actor counts from the registry, store health).
pub struct Live {
    pub online_users: usize,
    pub conversation_actors: usize,
    pub session_actors: usize,
    pub store_up: bool,
    pub uptime_secs: u64,
    /// Totals since start, kept by their owners.
    pub search_dropped: u64,
    pub analytics_dropped: u64,
}

/// Brings a counter up to a total counted elsewhere. `fetch_max` rather than a read and an
/// increment of the difference: two scrapes at once would both add the same difference.
fn catch_up(counter: &Counter, total: u64) {
    counter
        .inner()
        .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Live {
        Live {
            online_users: 3,
            conversation_actors: 1,
            session_actors: 3,
            store_up: true,
            uptime_secs: 7,
            search_dropped: 0,
            analytics_dropped: 0,
        }
    }

    #[test]
    fn dropped_changes_are_counters_that_follow_their_owners_totals() {
        let m = Metrics::default();
        let mut l = live();
        l.search_dropped = 5;
        l.analytics_dropped = 2;
        m.render(&l).unwrap();
        l.search_dropped = 9;
        let text = m.render(&l).unwrap();
        assert!(
            text.contains("switchboard_search_dropped_total 9\n"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_analytics_dropped_total 2\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_openmetrics_with_the_existing_names() {
        let m = Metrics::default();
        m.messages_stored.inc();
        m.connections.of(WireFormat::Json).inc();
        let text = m.render(&live()).unwrap();
        assert!(
            text.contains("switchboard_messages_stored_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE switchboard_online_users gauge\nswitchboard_online_users 3\n"),
            "{text}"
        );
        assert!(text.contains("switchboard_connections{format=\"json\"} 1\n"));
        assert!(text.contains("switchboard_connections{format=\"msgpack\"} 0\n"));
        assert!(text.contains("switchboard_uptime_seconds 7\n"), "{text}");
        assert!(text.contains("switchboard_slow_socket_closes_total 0\n"));
        assert!(text.contains("switchboard_outbox_depth 0\n"));
        assert!(text.ends_with("# EOF\n"));
        assert!(
            !text.contains("..\n"),
            "the crate ends every HELP with a period itself: {text}"
        );
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let m = Metrics::default();
        m.refused("rate_limited");
        m.refused("rate_limited");
        m.refused("text_too_long");
        let text = m.render(&live()).unwrap();
        assert!(text.contains("switchboard_messages_refused_total{reason=\"rate_limited\"} 2\n"));
        assert!(text.contains("switchboard_messages_refused_total{reason=\"text_too_long\"} 1\n"));
        assert!(text.contains("switchboard_messages_refused_total{reason=\"overloaded\"} 0\n"));
    }

    #[test]
    fn send_ack_store_ops_and_batches_are_histograms() {
        const OPS: &[&str] = &["get", "submit"];
        let batches = AtomicHistogram::new(BATCH_SIZE_BOUNDS);
        let m = Metrics::new(Some(batches.clone()), OPS);
        m.send_ack.observe(0.002);
        m.store.observe(1, Instant::now());
        m.store.error(1);
        batches.observe(3.0);
        let text = m.render(&live()).unwrap();
        assert!(text.contains("# TYPE switchboard_send_ack_seconds histogram\n"));
        assert!(text.contains("# UNIT switchboard_send_ack_seconds seconds\n"));
        assert!(text.contains("switchboard_send_ack_seconds_count 1\n"));
        assert!(text.contains("switchboard_store_operation_seconds_count{op=\"submit\"} 1\n"));
        assert!(
            !text.contains("op=\"get\""),
            "unused operations are left out"
        );
        assert!(text.contains("switchboard_store_operation_errors_total{op=\"submit\"} 1\n"));
        assert!(text.contains("switchboard_store_batch_size_bucket{le=\"4.0\"} 1\n"));
    }
}
