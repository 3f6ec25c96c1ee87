//! `idle`: open N authenticated sockets (one user each), hold them, and measure what each costs
//! the server in resident memory.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::probe::rss_kib;
use crate::report::round;
use crate::setup::{run_id, Target};
use crate::socket::connect;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Seconds to hold every socket open once all are connected.
    #[arg(long, default_value_t = 10)]
    hold_s: u64,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
}

pub async fn run(target: &Target, a: Args) -> Result<Value, String> {
    let run = run_id();
    eprintln!("idle: minting {} tokens…", a.sockets);
    let tokens = target.tokens(&run, a.sockets).await?;
    // Let the server settle after the token burst before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(target.server_pid);
    let started = Instant::now();
    let hold_until = Arc::new(tokio::sync::Notify::new());
    let urls: Vec<String> = tokens.iter().map(|t| target.ws_url(t)).collect();
    let opened: Vec<Result<tokio::task::JoinHandle<()>, String>> = stream::iter(urls)
        .map(|url| {
            let hold = hold_until.clone();
            async move {
                let mut ws = connect(&url).await?;
                // Keep reading so pings are answered, until told to let go.
                Ok(tokio::spawn(async move {
                    let notified = hold.notified();
                    tokio::pin!(notified);
                    loop {
                        tokio::select! {
                            _ = &mut notified => break,
                            m = ws.next() => if !matches!(m, Some(Ok(_))) { break },
                        }
                    }
                    let _ = ws.close(None).await;
                }))
            }
        })
        .buffer_unordered(a.concurrency.max(1))
        .collect()
        .await;
    let open_s = started.elapsed().as_secs_f64();
    let failed = opened.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = opened.iter().find(|r| r.is_err()) {
        eprintln!("idle: first failure: {e}");
    }
    let ok = opened.len() - failed;
    eprintln!(
        "idle: {ok} sockets open ({failed} failed) in {open_s:.1} s; holding {} s",
        a.hold_s
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(target.server_pid);
    tokio::time::sleep(Duration::from_secs(a.hold_s)).await;
    let after_hold = rss_kib(target.server_pid);
    hold_until.notify_waiters();
    for h in opened.into_iter().flatten() {
        let _ = h.await;
    }
    let per_socket = match (before, after) {
        (Some(b), Some(a)) if ok > 0 => Some(a.saturating_sub(b) as f64 / ok as f64),
        _ => None,
    };
    eprintln!(
        "idle: server RSS {} → {} KiB ({} after holding): {} KiB per socket",
        before.unwrap_or(0),
        after.unwrap_or(0),
        after_hold.unwrap_or(0),
        per_socket.map_or("n/a".into(), |p| format!("{p:.1}"))
    );
    Ok(json!({
        "scenario": "idle",
        "tool": "switchboard-load",
        "sockets": a.sockets,
        "opened": ok,
        "failed": failed,
        "open_seconds": round(open_s),
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_rss_after_hold_kib": after_hold,
        "rss_per_socket_kib": per_socket.map(round),
    }))
}
