//! How much CPU the search index costs per message, measured on the real `search::Index`
//! (writer thread, batching, commits, reader reloads) outside the server, so the figure is the
//! indexer's alone.
//!
//! It feeds chat-like messages at a fixed rate for a fixed time, as the message path would, then
//! waits for the last commit and prints the process CPU time divided by the messages indexed.
//! `add` feeds first writes as the message path does (`Change::Add`); `upsert` feeds each as a
//! replacement (`Change::Upsert`, a delete of any older copy first), to show what that costs.
//!
//! ```text
//! cargo run --release --example index_cost -- [rate_per_s=5000] [seconds=10] [commit_ms=500] [add|upsert]
//! ```
//! Print-only: it asserts nothing about time. Run it in one sitting for before/after figures.

use std::time::{Duration, Instant};

use switchboard::search::{Change, Doc, Index, IndexConfig};

/// User plus system CPU of the whole process (every thread) so far, from `/proc/self/stat`
/// (clock ticks of 10 ms: plenty over a run of seconds).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces, hence the last ')').
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

const WORDS: [&str; 24] = [
    "hello", "could", "you", "come", "tomorrow", "morning", "the", "sink", "is", "leaking",
    "again", "thanks", "price", "quote", "booking", "friday", "address", "garden", "paint",
    "window", "great", "see", "soon", "invoice",
];

/// A message of 6 to 17 words drawn from a small vocabulary by a fixed LCG, so every run
/// indexes the same text.
fn doc(n: u64) -> Doc {
    let mut x = n
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let words = 6 + (x >> 60) as usize;
    let mut text = String::new();
    for _ in 0..words {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[(x >> 59) as usize % WORDS.len()]);
    }
    let pair = n % 1000;
    Doc {
        message_id: format!("{}", 400_000_000_000_000_000u64 + n),
        conversation_id: format!("{}", 300_000_000_000_000_000u64 + pair),
        seq: n / 1000 + 1,
        sender_id: format!("cust-{pair}"),
        members: vec![format!("cust-{pair}"), format!("prov-{pair}")],
        text,
        created_at_ms: 1_765_000_000_000 + n as i64,
    }
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (rate, seconds, commit_ms) = (arg(1, 5000), arg(2, 10), arg(3, 500));
    let upsert = std::env::args().nth(4).is_some_and(|a| a == "upsert");
    let dir = tempfile::tempdir().expect("temp dir");
    let index = Index::open(
        dir.path(),
        IndexConfig {
            commit_interval: Duration::from_millis(commit_ms),
            ..IndexConfig::default()
        },
    )
    .expect("index opens");
    let total = rate * seconds;
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let started = Instant::now();
    let cpu0 = cpu_time();
    let mut sent = 0u64;
    let mut dropped = 0u64;
    while sent < total {
        for _ in 0..per_tick.min(total - sent) {
            let d = doc(sent);
            let change = if upsert {
                Change::Upsert(d)
            } else {
                Change::Add(d)
            };
            if !index.submit(change) {
                dropped += 1;
            }
            sent += 1;
        }
        let due = started + tick * (sent / per_tick) as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    index.sync(Duration::from_secs(120)).expect("final commit");
    let cpu = cpu_time() - cpu0;
    let wall = started.elapsed();
    println!(
        "index_cost: {sent} messages ({}) at {rate}/s for {seconds} s, commit every {commit_ms} ms: \
         {:.1} µs CPU per message ({:.2} cores over {:.1} s wall), {dropped} dropped",
        if upsert { "upsert" } else { "add" },
        cpu.as_secs_f64() * 1e6 / sent as f64,
        cpu.as_secs_f64() / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
}
