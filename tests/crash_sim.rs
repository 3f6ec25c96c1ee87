//! Crash simulation of the message core (STYLE.md, the FoundationDB/turmoil row): the real
//! conversation actors, reached through the registry, run over a simulated disk through
//! thousands of seeded schedules of sends, retries, reads, syncs, failed writes, actor failures,
//! idle time and crashes. After every step the answers and the disk are checked against the
//! invariants in `crash_sim/model.rs`.
//!
//! - `SIM_SCHEDULES=n` runs n schedules (seeds 1..=n; default 2000).
//! - `SIM_SEED=n` runs the one schedule n and prints its trace: a failing seed is a test.
//! - `SIM_FAULTS=crash,poison,batch,kill` picks the faults (that set is `default`; `all` adds
//!   `single`): `crash` kills the process; `poison` fails a write and refuses every later one
//!   until restart (fjall); `batch` fails a write and everything queued behind it, then recovers;
//!   `single` fails one write while later ones land (a store the contract does not yet forbid);
//!   `kill` stops one conversation actor (an actor failure, e.g. a panic).
//!
//! `cargo test --test crash_sim -- --nocapture` shows the summary line.

#[path = "crash_sim/driver.rs"]
mod driver;
#[path = "crash_sim/model.rs"]
mod model;
#[path = "crash_sim/schedule.rs"]
mod schedule;
#[path = "crash_sim/sim_store.rs"]
mod sim_store;

use std::collections::BTreeMap;
use std::time::Instant;

use schedule::{Failure, Faults, Stats};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn faults() -> Faults {
    Faults::parse(&std::env::var("SIM_FAULTS").unwrap_or_else(|_| "default".into()))
}

fn describe(seed: u64, f: &Failure) -> String {
    format!(
        "seed {seed} (failed writes {:?}), step {}: {}: {}",
        f.mode, f.step, f.violation.kind, f.violation.detail
    )
}

/// Runs one seed, catching a panic in the simulation itself so it is reported with its seed.
fn run_seed(seed: u64, echo: bool) -> Result<Stats, Failure> {
    let faults = faults();
    match std::panic::catch_unwind(move || schedule::run(seed, faults, echo)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("seed {seed}: the simulation panicked: {msg} (rerun with SIM_SEED={seed})");
        }
    }
}

#[test]
fn crash_simulation() {
    if let Some(seed) = env_u64("SIM_SEED") {
        eprintln!("crash_sim: seed {seed}, faults {:?}", faults());
        match run_seed(seed, true) {
            Ok(s) => eprintln!("crash_sim: seed {seed} passed: {s:?}"),
            Err(f) => panic!("{}", describe(seed, &f)),
        }
        return;
    }
    let schedules = env_u64("SIM_SCHEDULES").unwrap_or(2000);
    let began = Instant::now();
    let mut total = Stats::default();
    let mut failures: BTreeMap<&'static str, Vec<(u64, Failure)>> = BTreeMap::new();
    let mut failed = 0u64;
    for seed in 1..=schedules {
        match run_seed(seed, false) {
            Ok(s) => total.add(&s),
            Err(f) => {
                failed += 1;
                total.schedules += 1;
                total.steps += f.step as u64;
                failures
                    .entry(f.violation.kind)
                    .or_default()
                    .push((seed, f));
            }
        }
    }
    eprintln!(
        "crash_sim: {} schedules ({failed} failed), {} steps, {} crashes, {} acks (+{} duplicate answers), {} send errors, {} reads, {} failed writes, {} unsynced writes dropped, {} answers lost in crashes, {} actor failures, {} idle stops in {} idle periods, in {:.1?}",
        total.schedules,
        total.steps,
        total.crashes,
        total.acks,
        total.duplicate_acks,
        total.send_errors,
        total.reads,
        total.failed_writes,
        total.dropped_writes,
        total.lost_answers,
        total.kills,
        total.idle_stops,
        total.idle_periods,
        began.elapsed()
    );
    if failures.is_empty() {
        return;
    }
    let mut report = String::new();
    for (kind, list) in &failures {
        let seeds: Vec<u64> = list.iter().map(|(s, _)| *s).take(20).collect();
        report.push_str(&format!(
            "\n{kind}: {} schedules, e.g. seeds {seeds:?}\n  first: {}",
            list.len(),
            describe(list[0].0, &list[0].1)
        ));
    }
    let (seed, first) = failures
        .values()
        .flatten()
        .min_by_key(|(s, _)| *s)
        .expect("a failure");
    eprintln!("crash_sim: trace of seed {seed}:");
    for line in &first.trace {
        eprintln!("  {line}");
    }
    panic!(
        "{failed} of {schedules} schedules broke an invariant (rerun one with SIM_SEED=n):{report}"
    );
}
