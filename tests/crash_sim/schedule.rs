//! One seeded schedule: a random sequence of client requests, disk syncs, failed writes, actor
//! failures, idle time and crashes, with every invariant checked after every step.
//!
//! Everything runs on one current-thread tokio runtime, so the only source of order is the seed:
//! a step starts requests (tasks that `ask` the engine), then the schedule waits until the
//! runtime has nothing left to run ([`Idle`]: the scheduler is about to park its thread).
//!
//! Time: the crate's dev-dependencies do not enable tokio's `test-util`, so time cannot be
//! paused and advanced here, and the idle step only lets the actors' timers be (see
//! `IDLE_SECS`). With `test-util`, build the runtime with `.start_paused(true)` and make the idle
//! step `tokio::time::sleep(Duration::from_secs(IDLE_SECS + 1))`, which is then instant.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use switchboard::domain::clock::now_ms;
use switchboard::domain::conversation::{
    ConversationDoc, ConversationRecord, ConversationState, Side,
};
use switchboard::domain::user::ExternalId;
use switchboard::domain::Id;

use super::driver::{self, Incarnation, Sent};
use super::model::{ConvModel, Violation};
use super::sim_store::{Disk, FailMode};

/// splitmix64: small, fast, and good enough to pick steps.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// Which faults a run injects (`SIM_FAULTS`, a comma-separated list; `default` is
/// `crash,poison,batch,kill`, `all` adds `single`).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub crash: bool,
    pub poison: bool,
    pub batch: bool,
    pub single: bool,
    pub kill: bool,
}

impl Faults {
    pub fn parse(s: &str) -> Faults {
        let has = |f: &str| {
            s.split(',').any(|x| {
                let x = x.trim();
                x == f || x == "all" || (x == "default" && f != "single")
            })
        };
        Faults {
            crash: has("crash"),
            poison: has("poison"),
            batch: has("batch"),
            single: has("single"),
            kill: has("kill"),
        }
    }

    fn modes(&self) -> Vec<FailMode> {
        [
            (self.poison, FailMode::Poison),
            (self.batch, FailMode::Batch),
            (self.single, FailMode::Single),
        ]
        .into_iter()
        .filter_map(|(on, m)| on.then_some(m))
        .collect()
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub schedules: u64,
    pub steps: u64,
    pub crashes: u64,
    pub acks: u64,
    pub duplicate_acks: u64,
    pub send_errors: u64,
    pub reads: u64,
    pub read_errors: u64,
    pub lost_answers: u64,
    pub failed_writes: u64,
    pub dropped_writes: u64,
    pub kills: u64,
    pub idle_periods: u64,
    pub idle_stops: u64,
    pub durable_messages: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.schedules += o.schedules;
        self.steps += o.steps;
        self.crashes += o.crashes;
        self.acks += o.acks;
        self.duplicate_acks += o.duplicate_acks;
        self.send_errors += o.send_errors;
        self.reads += o.reads;
        self.read_errors += o.read_errors;
        self.lost_answers += o.lost_answers;
        self.failed_writes += o.failed_writes;
        self.dropped_writes += o.dropped_writes;
        self.kills += o.kills;
        self.idle_periods += o.idle_periods;
        self.idle_stops += o.idle_stops;
        self.durable_messages += o.durable_messages;
    }
}

/// A schedule that broke an invariant: at which step, doing what, and the trace so far.
pub struct Failure {
    pub violation: Violation,
    pub step: usize,
    pub mode: FailMode,
    pub trace: Vec<String>,
}

/// The conversation actor's idle timeout, seconds. Long enough that real (unpaused) time never
/// reaches it during a schedule, so a `std::time::Instant` in the actor cannot make a run depend
/// on the machine's speed.
const IDLE_SECS: u64 = 60;

enum Request {
    Send {
        conv: usize,
        sender: ExternalId,
        client_id: Option<String>,
    },
    Read,
}

enum Answer {
    Send(Result<Sent, String>),
    Read(Result<u64, String>),
}

struct Sim {
    rng: Rng,
    disk: Arc<Disk>,
    inc: Option<Incarnation>,
    incarnation: u64,
    convs: Vec<ConvModel>,
    /// Requests not answered yet, by number, with the incarnation they went to.
    outstanding: BTreeMap<u64, (Request, u64)>,
    answers: Arc<Mutex<Vec<(u64, Answer)>>>,
    next_request: u64,
    next_client_id: u64,
    faults: Faults,
    stats: Stats,
    trace: Vec<String>,
    echo: bool,
    park: Arc<ParkSignal>,
}

/// Tells the schedule when the runtime has gone idle. The current-thread scheduler calls its
/// `on_thread_park` hook only when no task is ready and nothing is deferred; the hook wakes the
/// schedule's [`Idle`] future, which then completes. So "idle" is exact: every task and actor has
/// run until it waits on something only the schedule (a sync, a crash) or a timer can give it.
#[derive(Default)]
pub struct ParkSignal {
    waiting: Mutex<Option<Waker>>,
    fired: AtomicBool,
}

impl ParkSignal {
    fn on_park(&self) {
        if let Some(w) = self.waiting.lock().unwrap().take() {
            self.fired.store(true, Ordering::Release);
            w.wake();
        }
    }
}

/// Completes once the runtime has had nothing to run.
struct Idle(Arc<ParkSignal>);

impl Future for Idle {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.fired.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        *self.0.waiting.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

pub fn run(seed: u64, faults: Faults, echo: bool) -> Result<Stats, Failure> {
    let park = Arc::new(ParkSignal::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .on_thread_park({
            let park = park.clone();
            move || park.on_park()
        })
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut rng = Rng::new(seed);
        let modes = faults.modes();
        let mode = match modes.len() {
            0 => FailMode::Poison,
            n => modes[rng.below(n as u64) as usize],
        };
        let steps = 50 + rng.below(51) as usize;
        let mut sim = Sim::new(rng, mode, faults, echo, park).await;
        sim.log(format!(
            "seed {seed}: {steps} steps, failed writes {mode:?}"
        ));
        let mut step = 0;
        let result = async {
            while step < steps {
                sim.step().await?;
                sim.settle_and_check().await?;
                step += 1;
            }
            sim.finish().await
        }
        .await;
        sim.stats.schedules = 1;
        sim.stats.steps = step as u64;
        match result {
            Ok(()) => {
                let (failed, dropped) = sim.disk.counters();
                sim.stats.failed_writes = failed;
                sim.stats.dropped_writes = dropped;
                if let Some(inc) = sim.inc.take() {
                    driver::stop(inc).await;
                }
                Ok(sim.stats)
            }
            Err(violation) => Err(Failure {
                violation,
                step,
                mode,
                trace: sim.trace,
            }),
        }
    })
}

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).expect("valid id")
}

impl Sim {
    async fn new(
        rng: Rng,
        mode: FailMode,
        faults: Faults,
        echo: bool,
        park: Arc<ParkSignal>,
    ) -> Sim {
        let disk = Disk::new(mode);
        let provider = ext("prov");
        let mut convs = Vec::new();
        // Two conversations sharing a provider: the provider's client ids must be told apart by
        // conversation.
        for (n, customer) in ["cust1", "cust2"].into_iter().enumerate() {
            let id = Id(1000 + n as u64);
            let now = now_ms();
            disk.seed_conversation(ConversationDoc {
                record: ConversationRecord {
                    id,
                    service_id: ext(&format!("svc{n}")),
                    service_title: "Service".into(),
                    provider_id: provider.clone(),
                    provider_name: "Prov".into(),
                    customer_id: ext(customer),
                    customer_name: customer.into(),
                    created_at: now,
                },
                state: ConversationState {
                    activity_ms: now,
                    ..ConversationState::default()
                },
            });
            convs.push(ConvModel::new(id, ext(customer), provider.clone()));
        }
        let inc = driver::start(driver::config(IDLE_SECS), disk.handle()).await;
        Sim {
            rng,
            disk,
            inc: Some(inc),
            incarnation: 0,
            convs,
            outstanding: BTreeMap::new(),
            answers: Arc::new(Mutex::new(Vec::new())),
            next_request: 0,
            next_client_id: 0,
            faults,
            stats: Stats::default(),
            trace: Vec::new(),
            echo,
            park,
        }
    }

    fn log(&mut self, line: String) {
        if self.echo {
            eprintln!("  {line}");
        }
        self.trace.push(line);
    }

    fn inc(&self) -> &Incarnation {
        self.inc.as_ref().expect("a running incarnation")
    }

    async fn step(&mut self) -> Result<(), Violation> {
        let roll = self.rng.below(100);
        match roll {
            0..=39 => self.send(),
            40..=51 => self.read(),
            52..=69 => {
                let queued = self.disk.queued();
                if queued > 0 {
                    let n = 1 + self.rng.below(queued as u64) as usize;
                    self.disk.sync(n);
                    self.log(format!("sync {n} of {queued} queued"));
                }
            }
            70..=75 => {
                let n = self.disk.sync(usize::MAX);
                self.log(format!("sync all ({n})"));
            }
            76..=80 => {
                let before = driver::running_actors(self.inc());
                // Virtual time: the actors' idle checks fire, nothing waits for real.
                tokio::time::sleep(std::time::Duration::from_secs(IDLE_SECS + 1)).await;
                self.quiesce().await;
                let after = driver::running_actors(self.inc());
                self.stats.idle_periods += 1;
                self.stats.idle_stops += before.saturating_sub(after) as u64;
                self.log(format!("idle: {before} actors before, {after} after"));
            }
            81..=85 => {
                if !self.faults.modes().is_empty() {
                    let failed = self.disk.fail_next();
                    self.log(format!("fail the next write: {failed}"));
                }
            }
            86..=90 => {
                if self.faults.crash {
                    self.crash().await;
                }
            }
            91..=94 => {
                if self.faults.kill {
                    let pick = self.rng.below(8) as usize;
                    if driver::stop_one_actor(self.inc(), pick) {
                        self.stats.kills += 1;
                        self.log("an actor fails (stopped)".into());
                    }
                }
            }
            _ => {
                // Two requests at once, so they queue behind each other in one actor.
                self.send();
                self.send();
            }
        }
        Ok(())
    }

    fn send(&mut self) {
        let conv = self.rng.below(self.convs.len() as u64) as usize;
        let side = if self.rng.percent(50) {
            Side::Customer
        } else {
            Side::Provider
        };
        let sender = self.convs[conv].user(side).clone();
        let roll = self.rng.below(100);
        let mine: Vec<String> = self.convs[conv]
            .client_ids
            .iter()
            .filter(|(u, _)| *u == sender)
            .map(|(_, c)| c.clone())
            .collect();
        let client_id = if roll < 25 && !mine.is_empty() {
            Some(mine[self.rng.below(mine.len() as u64) as usize].clone())
        } else if roll < 90 {
            self.next_client_id += 1;
            // The same strings in both conversations: dedupe is per conversation.
            let c = format!("c{}", self.next_client_id / 2);
            self.convs[conv]
                .client_ids
                .push((sender.clone(), c.clone()));
            Some(c)
        } else {
            None
        };
        let n = self.next_request;
        self.next_request += 1;
        let text = format!("message {n}");
        self.log(format!(
            "#{n} send conversation {} from {sender} client id {client_id:?}",
            self.convs[conv].id
        ));
        let engine = self.inc().engine.clone();
        let id = self.convs[conv].id;
        let answers = self.answers.clone();
        let (s, c) = (sender.clone(), client_id.clone());
        tokio::spawn(async move {
            let r = driver::send(&engine, id, s, c, text).await;
            answers.lock().unwrap().push((n, Answer::Send(r)));
        });
        self.outstanding.insert(
            n,
            (
                Request::Send {
                    conv,
                    sender,
                    client_id,
                },
                self.incarnation,
            ),
        );
    }

    fn read(&mut self) {
        let conv = self.rng.below(self.convs.len() as u64) as usize;
        let side = if self.rng.percent(50) {
            Side::Customer
        } else {
            Side::Provider
        };
        let user = self.convs[conv].user(side).clone();
        let acked = self.convs[conv].acked_ids();
        let up_to = if self.rng.percent(30) && !acked.is_empty() {
            Some(acked[self.rng.below(acked.len() as u64) as usize])
        } else {
            None
        };
        let n = self.next_request;
        self.next_request += 1;
        self.log(format!(
            "#{n} mark read conversation {} by {user} up to {up_to:?}",
            self.convs[conv].id
        ));
        let engine = self.inc().engine.clone();
        let id = self.convs[conv].id;
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let r = driver::mark_read(&engine, id, user, up_to).await;
            answers.lock().unwrap().push((n, Answer::Read(r)));
        });
        self.outstanding
            .insert(n, (Request::Read, self.incarnation));
    }

    /// The process dies: unsynced writes are gone, unanswered requests never get an answer, and
    /// a fresh engine starts over what the disk holds.
    async fn crash(&mut self) {
        self.disk.crash();
        let lost: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, (_, inc))| *inc == self.incarnation)
            .map(|(n, _)| *n)
            .collect();
        for n in &lost {
            self.outstanding.remove(n);
        }
        self.stats.crashes += 1;
        self.stats.lost_answers += lost.len() as u64;
        self.log(format!("CRASH: answers lost for {lost:?}; restart"));
        if let Some(old) = self.inc.take() {
            driver::stop(old).await;
        }
        // Whatever the dead incarnation answered while it was being stopped is not an answer.
        self.answers
            .lock()
            .unwrap()
            .retain(|(n, _)| !lost.contains(n));
        self.incarnation += 1;
        // A restart takes longer than a millisecond. Message ids are minted from the wall clock
        // by a generator that starts afresh with each process, so a restart within the same
        // millisecond would mint the ids the dead process just used (see the report).
        let died = now_ms();
        while now_ms() <= died {
            std::hint::spin_loop();
        }
        self.inc = Some(driver::start(driver::config(IDLE_SECS), self.disk.handle()).await);
    }

    /// Lets every task and actor run until all are idle, then checks the answers and the disk.
    /// Lets every task and actor run until none can go on.
    async fn quiesce(&self) {
        Idle(self.park.clone()).await;
    }

    async fn settle_and_check(&mut self) -> Result<(), Violation> {
        self.quiesce().await;
        let answers = std::mem::take(&mut *self.answers.lock().unwrap());
        for (n, answer) in answers {
            let Some((request, _)) = self.outstanding.remove(&n) else {
                continue;
            };
            match (request, answer) {
                (
                    Request::Send {
                        conv,
                        sender,
                        client_id,
                    },
                    Answer::Send(r),
                ) => match r {
                    Ok(sent) => {
                        self.log(format!(
                            "#{n} acked: message {} seq {} duplicate {}",
                            sent.id, sent.seq, sent.duplicate
                        ));
                        if sent.duplicate {
                            self.stats.duplicate_acks += 1;
                        } else {
                            self.stats.acks += 1;
                        }
                        self.convs[conv].on_sent(&sender, client_id.as_deref(), &sent)?;
                    }
                    Err(e) => {
                        self.stats.send_errors += 1;
                        self.log(format!("#{n} send failed: {e}"));
                    }
                },
                (Request::Read, Answer::Read(r)) => {
                    self.stats.reads += 1;
                    match r {
                        Ok(unread) => self.log(format!("#{n} read: unread now {unread}")),
                        Err(e) => {
                            self.stats.read_errors += 1;
                            self.log(format!("#{n} read failed: {e}"));
                        }
                    }
                }
                _ => unreachable!("answers match their requests"),
            }
        }
        if let Some(event) = self.disk.take_events().into_iter().next() {
            return Err(Violation {
                kind: if event.contains("replaced") {
                    "durable-overwrite"
                } else {
                    "last-seq-backwards"
                },
                detail: event,
            });
        }
        let durable = self.disk.durable();
        for conv in &mut self.convs {
            conv.check_durable(&durable)?;
        }
        Ok(())
    }

    /// Syncs until nothing is queued, checks, and requires every request of the running
    /// incarnation to have been answered.
    async fn finish(&mut self) -> Result<(), Violation> {
        for _ in 0..20 {
            if self.disk.queued() == 0 {
                break;
            }
            let n = self.disk.sync(usize::MAX);
            self.log(format!("final sync ({n})"));
            self.settle_and_check().await?;
        }
        self.settle_and_check().await?;
        if !self.outstanding.is_empty() {
            let waiting: Vec<u64> = self.outstanding.keys().copied().collect();
            return Err(Violation {
                kind: "never-answered",
                detail: format!(
                    "after the final sync, requests {waiting:?} still have no answer ({} writes queued)",
                    self.disk.queued()
                ),
            });
        }
        let durable = self.disk.durable();
        self.stats.durable_messages = durable.messages.len() as u64;
        self.log(format!(
            "end: {} durable messages, {} acked",
            durable.messages.len(),
            self.convs.iter().map(|c| c.acked_count()).sum::<usize>()
        ));
        Ok(())
    }
}
