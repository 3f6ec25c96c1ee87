//! `reconnect-storm`: providers connect, then drop; customers send M messages each while the
//! providers are away; then every provider reconnects at once and `sync`s from the last seq it
//! saw. Each must get exactly the missed messages, in order: gaps and duplicates must be 0.

use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::report::{round, Latency};
use crate::setup::{run_id, Target};
use crate::socket::{connect, parse};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Messages each customer sends while its provider is offline.
    #[arg(long, default_value_t = 20)]
    messages: usize,
}

#[derive(Default)]
struct Outcome {
    replayed: u64,
    gaps: u64,
    duplicates: u64,
    errors: u64,
}

pub async fn run(target: &Target, a: Args) -> Result<Value, String> {
    let run = run_id();
    eprintln!("reconnect-storm: setting up {} conversations…", a.clients);
    let pairs = target.pairs(&run, a.clients).await?;
    // Every provider connects and then goes away; seq 1 (the opening message) is what it has.
    for p in &pairs {
        let mut ws = connect(&target.ws_url(&p.provider_token)).await?;
        let _ = ws.close(None).await;
    }
    let last_seen = 1u64;
    eprintln!(
        "reconnect-storm: providers offline; customers send {} messages each…",
        a.messages
    );
    let sends: Vec<Result<u64, String>> = stream::iter(
        pairs
            .iter()
            .flat_map(|p| (0..a.messages).map(move |k| (p, k))),
    )
    .map(|(p, k)| {
        let run = &run;
        async move {
            target
                .send_http(
                    &p.customer_token,
                    &p.conversation,
                    &format!("offline {k}"),
                    &format!("{run}-{}-{k}", p.index),
                )
                .await
        }
    })
    .buffer_unordered(64)
    .collect()
    .await;
    let send_errors = sends.iter().filter(|r| r.is_err()).count() as u64;

    eprintln!("reconnect-storm: all providers reconnect and sync at once…");
    let started = Instant::now();
    let expected_last = last_seen + a.messages as u64;
    let tasks: Vec<_> = pairs
        .iter()
        .map(|p| {
            let url = target.ws_url(&p.provider_token);
            let conversation = p.conversation.clone();
            tokio::spawn(async move {
                let mut o = Outcome::default();
                let mut ws = match connect(&url).await {
                    Ok(ws) => ws,
                    Err(_) => {
                        o.errors += 1;
                        return (o, None);
                    }
                };
                let frame = json!({"type": "sync", "conversation_id": conversation, "after_seq": last_seen}).to_string();
                if ws.send(Message::text(frame)).await.is_err() {
                    o.errors += 1;
                    return (o, None);
                }
                let mut expect = last_seen + 1;
                let deadline = tokio::time::sleep(std::time::Duration::from_secs(60));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        msg = ws.next() => {
                            let Some(Ok(msg)) = msg else { o.errors += 1; break };
                            let Some(ev) = parse(&msg) else { continue };
                            match (ev.kind, ev.message) {
                                ("chat_message", Some(m)) => {
                                    o.replayed += 1;
                                    if m.seq < expect {
                                        o.duplicates += 1;
                                    } else {
                                        o.gaps += m.seq - expect;
                                        expect = m.seq + 1;
                                    }
                                }
                                ("synced", _) => {
                                    if ev.last_seq != Some(expected_last) || expect != expected_last + 1 {
                                        o.gaps += expected_last + 1 - expect.min(expected_last + 1);
                                    }
                                    break;
                                }
                                ("error", _) => { o.errors += 1; break; }
                                _ => {}
                            }
                        }
                        _ = &mut deadline => { o.errors += 1; break; }
                    }
                }
                let _ = ws.close(None).await;
                (o, Some(Instant::now()))
            })
        })
        .collect();
    let mut total = Outcome::default();
    let mut per_client = Latency::default();
    let mut last_done = started;
    for t in tasks {
        if let Ok((o, done)) = t.await {
            total.replayed += o.replayed;
            total.gaps += o.gaps;
            total.duplicates += o.duplicates;
            total.errors += o.errors;
            if let Some(d) = done {
                per_client.record_us(d.duration_since(started).as_micros() as u64);
                last_done = last_done.max(d);
            }
        }
    }
    let resync_s = last_done.duration_since(started).as_secs_f64();
    eprintln!(
        "reconnect-storm: replayed {} (expected {}), gaps {}, duplicates {}, errors {} (+{} failed sends), all resynced in {:.2} s",
        total.replayed,
        a.clients * a.messages,
        total.gaps,
        total.duplicates,
        total.errors,
        send_errors,
        resync_s
    );
    eprintln!(
        "reconnect-storm: {}",
        per_client.line("reconnect→synced per client")
    );
    Ok(json!({
        "scenario": "reconnect_storm",
        "tool": "switchboard-load",
        "clients": a.clients,
        "messages_per_client": a.messages,
        "expected": a.clients * a.messages,
        "replayed": total.replayed,
        "gaps": total.gaps,
        "duplicates": total.duplicates,
        "errors": total.errors + send_errors,
        "resync_seconds": round(resync_s),
        "reconnect_to_synced": per_client.summary(),
    }))
}
