//! `pairs`: N conversations, each with a customer socket and a provider socket; every customer
//! sends one message every I ms. Figures: delivered messages/s, lost, errors, seq gaps, and
//! send→ack and send→receive latency.
//!
//! Each message's text is its *scheduled* send time (µs since the run started, on this process's
//! monotonic clock), so the receiving side computes latency without any shared table. Latency is
//! counted from the schedule, not from when the frame actually left: a generator that falls
//! behind its schedule (a busy core, a slow `send`) then shows up in the figures instead of
//! hiding the wait (coordinated omission). How far behind it fell is reported as `send lag`.
//!
//! The text also carries when the frame was actually written (`scheduled:written`), for a second
//! ack figure, `write→ack`: the server's own answer time. At low rates the two differ by tokio's
//! timer, which wakes a task on the next whole millisecond after its schedule (a send lag of
//! ~1 ms that is the generator's, not the server's); under load they differ by the generator
//! falling behind, and `send→ack` is the honest figure.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::probe::{rss_kib, CpuMeter};
use crate::report::{round, Latency, Stalls};
use crate::setup::{run_id, Pair, Target};
use crate::socket::{connect, parse};

#[derive(clap::Args)]
pub struct Args {
    /// Conversations (customer/provider pairs).
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Milliseconds between two messages of one customer.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
    /// Seconds of sending before measuring starts.
    #[arg(long, default_value_t = 3)]
    warmup_s: u64,
    /// Seconds to wait for stragglers after sending stops.
    #[arg(long, default_value_t = 5)]
    drain_s: u64,
}

/// When things happen, shared by every task.
struct Clock {
    epoch: Instant,
    measure_from_us: u64,
    measure_until_us: u64,
    stop_sending: Instant,
    deadline: Instant,
}

impl Clock {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn us_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    fn measured(&self, sent_us: u64) -> bool {
        (self.measure_from_us..self.measure_until_us).contains(&sent_us)
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    acked: u64,
    delivered: u64,
    errors: u64,
    gaps: u64,
    duplicates: u64,
    ack: Latency,
    /// From the moment the frame was written rather than its schedule.
    ack_written: Latency,
    delivery: Latency,
    /// How late the generator sent each frame after its scheduled time.
    lag: Latency,
    /// The worst send→ack of each 100 ms of send times.
    stalls: Stalls,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.delivered += o.delivered;
        self.errors += o.errors;
        self.gaps += o.gaps;
        self.duplicates += o.duplicates;
        self.ack.merge(&o.ack);
        self.ack_written.merge(&o.ack_written);
        self.delivery.merge(&o.delivery);
        self.lag.merge(&o.lag);
        self.stalls.merge(&o.stalls);
    }
}

async fn customer(
    target: Arc<Target>,
    pair: Pair,
    n: usize,
    interval: Duration,
    clock: Arc<Clock>,
    run: Arc<String>,
) -> Tally {
    let mut t = Tally::default();
    let mut ws = match connect(&target.ws_url(&pair.customer_token)).await {
        Ok(ws) => ws,
        Err(_) => {
            t.errors += 1;
            return t;
        }
    };
    // Stagger the customers evenly over one interval so the load is smooth, not in bursts. Ticks
    // keep to an absolute schedule (missed ones are sent at once), so the offered rate is exact.
    let offset = interval.mul_f64(pair.index as f64 / n.max(1) as f64);
    let mut tick = tokio::time::interval_at(clock.epoch + offset, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut outstanding = 0u64;
    let mut k = 0u64;
    loop {
        tokio::select! {
            scheduled = tick.tick(), if Instant::now() < clock.stop_sending => {
                k += 1;
                let sent_us = clock.us_at(scheduled);
                let written_us = clock.now_us();
                let frame = format!(
                    r#"{{"type":"chat_message","conversation_id":"{}","text":"{sent_us}:{written_us}","client_msg_id":"{run}-{}-{k}","ref":"{k}"}}"#,
                    pair.conversation, pair.index
                );
                if ws.send(Message::text(frame)).await.is_err() {
                    t.errors += 1;
                    break;
                }
                outstanding += 1;
                if clock.measured(sent_us) {
                    t.sent += 1;
                    t.lag.record_us(written_us.saturating_sub(sent_us));
                }
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { t.errors += 1; break };
                let Some(ev) = parse(&msg) else { continue };
                match ev.kind {
                    "ack" => {
                        outstanding = outstanding.saturating_sub(1);
                        if let Some((sent_us, written_us)) = ev.message.and_then(|m| stamps(m.text)) {
                            if clock.measured(sent_us) {
                                let now = clock.now_us();
                                t.acked += 1;
                                t.ack.record_us(now.saturating_sub(sent_us));
                                t.stalls.record_us(sent_us - clock.measure_from_us, now.saturating_sub(sent_us));
                                t.ack_written.record_us(now.saturating_sub(written_us));
                            }
                        }
                        if outstanding == 0 && Instant::now() >= clock.stop_sending {
                            break;
                        }
                    }
                    "error" => t.errors += 1,
                    _ => {}
                }
            }
            _ = sleep_until(clock.deadline) => break,
        }
    }
    let _ = ws.close(None).await;
    t
}

async fn provider(target: Arc<Target>, pair: Pair, clock: Arc<Clock>) -> Tally {
    let mut t = Tally::default();
    let mut ws = match connect(&target.ws_url(&pair.provider_token)).await {
        Ok(ws) => ws,
        Err(_) => {
            t.errors += 1;
            return t;
        }
    };
    let mut last_seq = 0u64;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { t.errors += 1; break };
                let Some(ev) = parse(&msg) else { continue };
                match (ev.kind, ev.message) {
                    ("chat_message", Some(m)) => {
                        if last_seq != 0 {
                            if m.seq <= last_seq {
                                t.duplicates += 1;
                            } else if m.seq != last_seq + 1 {
                                t.gaps += m.seq - last_seq - 1;
                            }
                        }
                        last_seq = last_seq.max(m.seq);
                        if let Some((sent_us, _)) = stamps(m.text) {
                            if clock.measured(sent_us) {
                                t.delivered += 1;
                                t.delivery.record_us(clock.now_us().saturating_sub(sent_us));
                            }
                        }
                    }
                    ("error", _) => t.errors += 1,
                    _ => {}
                }
            }
            _ = sleep_until(clock.deadline) => break,
        }
    }
    let _ = ws.close(None).await;
    t
}

/// A send→ack at or over this is a stall worth placing in time (the p99.9 target is 50 ms).
const STALL_MS: f64 = 50.0;

/// `HH:MM:SS.mmm` UTC, as the server's log prints its times, to set a slow window beside it.
fn utc_time(t: std::time::SystemTime) -> String {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let s = ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// The scheduled and written times (µs since the epoch) a message's text carries.
fn stamps(text: &str) -> Option<(u64, u64)> {
    let (scheduled, written) = text.split_once(':')?;
    Some((scheduled.parse().ok()?, written.parse().ok()?))
}

pub async fn run(target: &Target, a: Args) -> Result<Value, String> {
    let run = Arc::new(run_id());
    eprintln!("pairs: setting up {} conversations…", a.pairs);
    let pairs = target.pairs(&run, a.pairs).await?;
    let target = Arc::new(target.clone());
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let epoch = Instant::now() + Duration::from_secs(2); // time to connect every socket
    let wall_epoch = std::time::SystemTime::now() + Duration::from_secs(2);
    let clock = Arc::new(Clock {
        epoch,
        measure_from_us: a.warmup_s * 1_000_000,
        measure_until_us: (a.warmup_s + a.duration_s) * 1_000_000,
        stop_sending: epoch + Duration::from_secs(a.warmup_s + a.duration_s),
        deadline: epoch + Duration::from_secs(a.warmup_s + a.duration_s + a.drain_s),
    });
    let mut tasks = Vec::with_capacity(pairs.len() * 2);
    for p in &pairs {
        tasks.push(tokio::spawn(provider(
            target.clone(),
            p.clone(),
            clock.clone(),
        )));
        tasks.push(tokio::spawn(customer(
            target.clone(),
            p.clone(),
            pairs.len(),
            interval,
            clock.clone(),
            run.clone(),
        )));
    }
    eprintln!(
        "pairs: {} pairs, one message per {} ms each (offered {:.0} msg/s), {} s warm-up, {} s measured",
        a.pairs,
        a.interval_ms,
        a.pairs as f64 * 1000.0 / a.interval_ms as f64,
        a.warmup_s,
        a.duration_s
    );
    sleep_until(epoch + Duration::from_secs(a.warmup_s)).await;
    let server_cpu = CpuMeter::start(target.server_pid);
    let own_cpu = CpuMeter::start(None);
    sleep_until(epoch + Duration::from_secs(a.warmup_s + a.duration_s)).await;
    let (server_cores, own_cores) = (server_cpu.cores(), own_cpu.cores());
    let server_rss = rss_kib(target.server_pid);
    let mut total = Tally::default();
    for task in tasks {
        if let Ok(t) = task.await {
            total.add(&t);
        }
    }
    let lost = total.sent.saturating_sub(total.delivered);
    let per_sec = total.delivered as f64 / a.duration_s.max(1) as f64;
    eprintln!(
        "pairs: sent {} acked {} delivered {} lost {} errors {} gaps {} duplicates {}",
        total.sent, total.acked, total.delivered, lost, total.errors, total.gaps, total.duplicates
    );
    eprintln!("pairs: delivered {per_sec:.0} msg/s");
    eprintln!("pairs: {}", total.ack.line("send→ack"));
    eprintln!(
        "pairs: {}",
        total.ack_written.line("write→ack (from the frame's write)")
    );
    eprintln!("pairs: {}", total.delivery.line("send→receive"));
    eprintln!(
        "pairs: {}",
        total.lag.line("send lag (generator behind schedule)")
    );
    let measured_from = wall_epoch + Duration::from_secs(a.warmup_s);
    let worst: Vec<String> = total
        .stalls
        .worst(5)
        .into_iter()
        .map(|(at_us, ms)| {
            format!(
                "{} {ms:.1} ms",
                utc_time(measured_from + Duration::from_micros(at_us))
            )
        })
        .collect();
    let (over, windows) = total.stalls.over(STALL_MS);
    eprintln!(
        "pairs: slowest 100 ms windows of send→ack (UTC): {}; {over} of {windows} windows had an ack over {STALL_MS} ms",
        worst.join(", ")
    );
    eprintln!(
        "pairs: generator CPU {:.2} cores, server CPU {}, server RSS {}",
        own_cores.unwrap_or(0.0),
        server_cores.map_or("n/a".into(), |c| format!("{c:.2} cores")),
        server_rss.map_or("n/a".into(), |r| format!("{:.1} MiB", r as f64 / 1024.0)),
    );
    Ok(json!({
        "scenario": "pairs",
        "tool": "switchboard-load",
        "pairs": a.pairs,
        "interval_ms": a.interval_ms,
        "offered_per_sec": round(a.pairs as f64 * 1000.0 / a.interval_ms.max(1) as f64),
        "duration_s": a.duration_s,
        "sent": total.sent,
        "acked": total.acked,
        "delivered": total.delivered,
        "lost": lost,
        "errors": total.errors,
        "gaps": total.gaps,
        "duplicates": total.duplicates,
        "delivered_per_sec": round(per_sec),
        "send_to_ack": total.ack.summary(),
        "write_to_ack": total.ack_written.summary(),
        "send_to_receive": total.delivery.summary(),
        "send_lag": total.lag.summary(),
        "windows_over_50ms": over,
        "generator_cpu_cores": own_cores.map(round),
        "server_cpu_cores": server_cores.map(round),
        "server_rss_mib": server_rss.map(|r| round(r as f64 / 1024.0)),
    }))
}

#[cfg(test)]
mod tests {
    use super::stamps;

    #[test]
    fn times_print_as_the_server_log_does() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(86_400_000 + 3_723_045);
        assert_eq!(super::utc_time(t), "01:02:03.045");
    }

    #[test]
    fn a_message_text_carries_its_schedule_and_its_write() {
        assert_eq!(stamps("1500:2600"), Some((1500, 2600)));
        assert_eq!(stamps("1500"), None, "a text from another run");
        assert_eq!(stamps("a:1"), None);
    }
}
