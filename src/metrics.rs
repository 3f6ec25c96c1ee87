//! Counters and gauges for operators: `/admin/v1/stats` and Prometheus `/metrics`.
//!
//! Plain atomics, bumped on the message path without locks; a once-a-second sampler keeps the
//! last minute of message counts for the `messages_per_second` average.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub messages_stored: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_rejected: AtomicU64,
    pub slow_socket_closes: AtomicU64,
    pub oversized_frame_closes: AtomicU64,
    pub actor_failures: AtomicU64,
    pub store_errors: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Notifications (webhooks and e-mails) waiting in the outbox or in flight, as the dispatcher
    /// last saw them.
    pub outbox_depth: AtomicI64,
    pub notifications_sent: AtomicU64,
    /// Due e-mails that had nothing to say any more (read in time, recipient online, opted out).
    pub notifications_skipped: AtomicU64,
    pub notification_failures: AtomicU64,
    pub notification_retries: AtomicU64,
    pub notifications_dead: AtomicU64,
    /// Of the notification counters above, the Web Push part.
    pub pushes_sent: AtomicU64,
    pub push_failures: AtomicU64,
    pub push_retries: AtomicU64,
    /// Subscriptions removed because their push service said they are gone (404/410).
    pub push_subscriptions_removed: AtomicU64,
    /// (second, messages_stored) samples over the last minute, for the rate. Touched once a
    /// second by the sampler and on stats requests; never on the message path.
    window: Mutex<VecDeque<(Instant, u64)>>,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gauge(g: &AtomicI64, delta: i64) {
        g.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn set_outbox_depth(&self, n: usize) {
        self.outbox_depth
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Records the current message count; call once a second.
    pub fn sample(&self) {
        let now = Instant::now();
        let total = self.messages_stored.load(Ordering::Relaxed);
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
                (c1 - c0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self, live: &Live) -> String {
        let mut out = String::with_capacity(2048);
        let mut line = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed).to_string();
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        line(
            "switchboard_connections",
            "gauge",
            "Open WebSocket connections.",
            g(&self.connections),
        );
        line(
            "switchboard_online_users",
            "gauge",
            "Users with at least one socket.",
            live.online_users.to_string(),
        );
        line(
            "switchboard_conversation_actors",
            "gauge",
            "Live conversation actors.",
            live.conversation_actors.to_string(),
        );
        line(
            "switchboard_session_actors",
            "gauge",
            "Live user session actors.",
            live.session_actors.to_string(),
        );
        line(
            "switchboard_messages_stored_total",
            "counter",
            "Messages durably stored.",
            c(&self.messages_stored),
        );
        line(
            "switchboard_frames_in_total",
            "counter",
            "WebSocket frames received.",
            c(&self.frames_in),
        );
        line(
            "switchboard_frames_rejected_total",
            "counter",
            "Frames answered with an error.",
            c(&self.frames_rejected),
        );
        line(
            "switchboard_slow_socket_closes_total",
            "counter",
            "Sockets closed for not reading their events.",
            c(&self.slow_socket_closes),
        );
        line(
            "switchboard_oversized_frame_closes_total",
            "counter",
            "Sockets closed for a frame over the limit.",
            c(&self.oversized_frame_closes),
        );
        line(
            "switchboard_actor_failures_total",
            "counter",
            "Actors that failed and were stopped by their supervisor.",
            c(&self.actor_failures),
        );
        line(
            "switchboard_store_errors_total",
            "counter",
            "Failed store writes.",
            c(&self.store_errors),
        );
        line(
            "switchboard_rate_limited_total",
            "counter",
            "Messages refused by the per-user budget.",
            c(&self.rate_limited),
        );
        line(
            "switchboard_outbox_depth",
            "gauge",
            "Notifications waiting in the outbox or being delivered.",
            g(&self.outbox_depth),
        );
        line(
            "switchboard_notifications_sent_total",
            "counter",
            "Webhooks and e-mails delivered.",
            c(&self.notifications_sent),
        );
        line(
            "switchboard_notifications_skipped_total",
            "counter",
            "Due e-mails not sent: read in time, recipient online, opted out or no address.",
            c(&self.notifications_skipped),
        );
        line(
            "switchboard_notification_failures_total",
            "counter",
            "Failed delivery attempts.",
            c(&self.notification_failures),
        );
        line(
            "switchboard_notification_retries_total",
            "counter",
            "Deliveries scheduled again after a failure.",
            c(&self.notification_retries),
        );
        line(
            "switchboard_notifications_dead_total",
            "counter",
            "Notifications given up after their last attempt (dead letters).",
            c(&self.notifications_dead),
        );
        line(
            "switchboard_pushes_sent_total",
            "counter",
            "Web Push messages accepted by a push service.",
            c(&self.pushes_sent),
        );
        line(
            "switchboard_push_failures_total",
            "counter",
            "Failed Web Push attempts.",
            c(&self.push_failures),
        );
        line(
            "switchboard_push_retries_total",
            "counter",
            "Web Push messages scheduled again after a failure.",
            c(&self.push_retries),
        );
        line(
            "switchboard_push_subscriptions_removed_total",
            "counter",
            "Push subscriptions removed because their push service said they are gone.",
            c(&self.push_subscriptions_removed),
        );
        line(
            "switchboard_messages_per_second",
            "gauge",
            "Messages stored per second, last minute.",
            format!("{:.3}", self.messages_per_second()),
        );
        line(
            "switchboard_store_up",
            "gauge",
            "1 when the store answers.",
            u8::from(live.store_up).to_string(),
        );
        line(
            "switchboard_uptime_seconds",
            "gauge",
            "Seconds since start.",
            live.uptime_secs.to_string(),
        );
        out
    }
}

/// Figures read from elsewhere at render time (actor counts from the registry, store health).
pub struct Live {
    pub online_users: usize,
    pub conversation_actors: usize,
    pub session_actors: usize,
    pub store_up: bool,
    pub uptime_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.messages_stored);
        let text = m.render(&Live {
            online_users: 3,
            conversation_actors: 1,
            session_actors: 3,
            store_up: true,
            uptime_secs: 7,
        });
        assert!(text.contains("switchboard_messages_stored_total 1\n"));
        assert!(
            text.contains("# TYPE switchboard_online_users gauge\nswitchboard_online_users 3\n")
        );
    }
}
