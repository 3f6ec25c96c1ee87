//! The dispatcher: one task that takes durable notifications from the outbox and delivers them,
//! at most [`CONCURRENCY`] at a time, retrying with backoff.
//!
//! It owns the schedule (what is due when) and nothing else: the outbox items in the store are
//! the truth, the schedule is a bounded window onto them. New notifications arrive through the
//! notifier's hand-off queue once their write is durable; at start, and whenever the window was
//! full or a hand-off was lost, the dispatcher reads the outbox again and schedules what it does
//! not hold yet. Each delivery ends in one store write: the item deleted (delivered, or nothing to
//! send any more), rewritten with its next try, or moved to the dead letters in one atomic write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::email::{self, Recipient, DIGEST_MESSAGES};
use super::webhook::{self, SendError};
use super::{key, Notifier, Pending, Work};
use crate::actors::registry::Registry;
use crate::domain::clock::now_ms;
use crate::domain::conversation::{ConversationDoc, Side};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::metrics::Metrics;
use crate::storage::items::ItemKind;
use crate::storage::{SeqRange, Store, StoreError};

/// Deliveries in flight at once.
pub const CONCURRENCY: usize = 16;
/// Notifications scheduled in memory at most; the rest wait in the outbox until there is room.
pub const MAX_SCHEDULED: usize = 10_000;
/// How long a receiver (or Brevo) has to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay; each later one doubles, up to [`MAX_BACKOFF_MS`].
pub const FIRST_BACKOFF_MS: i64 = 1_000;
pub const MAX_BACKOFF_MS: i64 = 5 * 60 * 1_000;
/// How often the dispatcher checks whether it must read the outbox again.
const RESCAN_CHECK: Duration = Duration::from_secs(5);
const PAGE: usize = 512;

/// What the dispatcher works with (never the whole engine).
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub notifier: Arc<Notifier>,
    pub metrics: Arc<Metrics>,
    pub client: reqwest::Client,
}

/// The HTTP client deliveries use: every request ends within [`REQUEST_TIMEOUT`].
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// The delay before try `attempts + 1`, after `attempts` failed ones: about 1 s, doubling, at
/// most 5 minutes, each within ±25 % so receivers that came back are not hit by every sender's
/// retries in the same second.
pub fn backoff_ms(attempts: u32, jitter: f64) -> i64 {
    let base = FIRST_BACKOFF_MS
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(20))
        .min(MAX_BACKOFF_MS);
    let factor = 0.75 + 0.5 * jitter.clamp(0.0, 1.0);
    ((base as f64) * factor) as i64
}

/// What became of one delivery.
enum Done {
    /// Finished: delivered, given up, or nothing to send. The item is gone from the outbox.
    Finished,
    /// To try again at its new `due_at` (already written to the outbox).
    Retry(Pending),
    /// Its channel is not configured now: left in the outbox for when it is.
    Parked,
}

/// The schedule: due notifications by (due, id), and every id scheduled or in flight.
#[derive(Default)]
struct Schedule {
    due: BTreeMap<(i64, Id), Pending>,
    known: HashSet<Id>,
}

impl Schedule {
    /// Schedules `p` unless it is already known; `false` when there is no room.
    fn insert(&mut self, p: Pending) -> bool {
        if self.known.contains(&p.id) {
            return true;
        }
        if self.due.len() >= MAX_SCHEDULED {
            return false;
        }
        self.known.insert(p.id);
        self.due.insert((p.due_at, p.id), p);
        true
    }

    /// Puts back one that is in flight (it stays known).
    fn again(&mut self, p: Pending) {
        self.due.insert((p.due_at, p.id), p);
    }

    fn take_due(&mut self, now: i64) -> Option<Pending> {
        let (&(at, id), _) = self.due.first_key_value()?;
        if at > now {
            return None;
        }
        self.due.remove(&(at, id))
    }

    fn next_due(&self) -> Option<i64> {
        self.due.first_key_value().map(|(&(at, _), _)| at)
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    deps: Deps,
    mut handoff: mpsc::Receiver<Pending>,
    mut stop: watch::Receiver<bool>,
) {
    let mut schedule = Schedule::default();
    let mut running: JoinSet<Done> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, Id> = HashMap::new();
    // The outbox may hold work from before a restart: read it first.
    let mut reread = true;
    let mut check = tokio::time::interval(RESCAN_CHECK);
    loop {
        if reread && schedule.due.len() < MAX_SCHEDULED / 2 {
            reread = read_outbox(&deps, &mut schedule).await;
        }
        let now = now_ms();
        while running.len() < CONCURRENCY {
            let Some(p) = schedule.take_due(now) else {
                break;
            };
            let id = p.id;
            let handle = running.spawn(deliver(deps.clone(), p));
            in_flight.insert(handle.id(), id);
        }
        deps.metrics
            .set_outbox_depth(schedule.due.len() + running.len());
        let wait = schedule
            .next_due()
            .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0).max(1)))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            got = handoff.recv() => match got {
                Some(p) => reread |= !schedule.insert(p),
                None => break,
            },
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let (task, outcome) = match done {
                    Ok((task, outcome)) => (task, Some(outcome)),
                    Err(e) => (e.id(), None),
                };
                let Some(id) = in_flight.remove(&task) else { continue };
                match outcome {
                    Some(Done::Retry(p)) => schedule.again(p),
                    Some(Done::Finished) => { schedule.known.remove(&id); }
                    Some(Done::Parked) => { schedule.known.remove(&id); }
                    // A delivery that panicked: its item is still in the outbox.
                    None => { schedule.known.remove(&id); reread = true; }
                }
            }
            _ = tokio::time::sleep(wait) => {}
            _ = check.tick() => reread |= deps.notifier.take_missed(),
            _ = stop.changed() => break,
        }
    }
    running.abort_all();
}

/// Schedules what the outbox holds and the schedule does not; answers whether it must be read
/// again later (it held more than there was room for, or could not be read).
async fn read_outbox(deps: &Deps, schedule: &mut Schedule) -> bool {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = match deps
            .store
            .list_items(ItemKind::Notification, "", after.as_deref(), PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "outbox could not be read; trying again shortly");
                return true;
            }
        };
        let Some(last) = page.last() else {
            return false;
        };
        after = Some(last.key.clone());
        let full = page.len() < PAGE;
        for item in page {
            match Pending::from_item(&item) {
                Ok(p) if channel_on(&deps.notifier, &p) => {
                    if !schedule.insert(p) {
                        return true;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "an outbox item could not be read; left in place")
                }
            }
        }
        if full {
            return false;
        }
    }
}

fn channel_on(n: &Notifier, p: &Pending) -> bool {
    match p.work {
        Work::Webhook { .. } => n.webhooks.enabled(),
        Work::Email { .. } => n.email.enabled(),
        Work::Push { .. } | Work::PushTo { .. } => n.push.enabled() && n.vapid.get().is_some(),
    }
}

fn max_attempts(n: &Notifier, p: &Pending) -> u32 {
    match p.work {
        Work::Webhook { .. } => n.webhooks.max_attempts,
        Work::Email { .. } => n.email.max_attempts,
        Work::Push { .. } | Work::PushTo { .. } => n.push.max_attempts,
    }
}

/// One try of one notification, and the store write that records how it went.
async fn deliver(deps: Deps, mut p: Pending) -> Done {
    if !channel_on(&deps.notifier, &p) {
        return Done::Parked;
    }
    let outcome = match &p.work {
        Work::Webhook { event, body } => {
            let n = &deps.notifier.webhooks;
            let delivery = p.id.to_string();
            webhook::send(
                &deps.client,
                &n.url,
                &n.secret,
                &delivery,
                event,
                body,
                now_ms() / 1000,
            )
            .await
            .map(|()| Sent::Delivered)
        }
        Work::Email {
            conversation,
            recipient,
        } => unread_mail(&deps, &p, *conversation, recipient).await,
        Work::Push {
            conversation,
            recipient,
            seq,
            sender_name,
            preview,
        } => {
            fan_out(
                &deps,
                &p,
                *conversation,
                recipient,
                *seq,
                sender_name,
                preview.as_deref(),
            )
            .await
        }
        Work::PushTo {
            recipient,
            subscription,
            payload,
            topic,
        } => push_one(&deps, recipient, *subscription, payload, topic).await,
    };
    let span = tracing::info_span!("notification", id = %p.id, channel = p.channel());
    let _e = span.enter();
    let push = matches!(p.work, Work::Push { .. } | Work::PushTo { .. });
    match outcome {
        Ok(Sent::Replaced) => Done::Finished,
        Ok(sent) => {
            match sent {
                Sent::Delivered => {
                    deps.metrics.notifications_sent.inc();
                    if push {
                        deps.metrics.pushes_sent.inc();
                    }
                }
                Sent::Skipped(why) => {
                    tracing::debug!(why, "nothing to send");
                    deps.metrics.notifications_skipped.inc();
                }
                Sent::Replaced => {}
            }
            if let Err(e) = deps
                .store
                .delete_item(ItemKind::Notification, "", &key(p.id))
                .await
            {
                // Sent but still in the outbox: it goes again after a restart (same id).
                tracing::warn!(error = %e, "a delivered notification could not be removed");
            }
            Done::Finished
        }
        Err(e) => {
            deps.metrics.notification_failures.inc();
            if push {
                deps.metrics.push_failures.inc();
            }
            p.attempts += 1;
            p.last_error = Some(e.to_string());
            if p.attempts >= max_attempts(&deps.notifier, &p) {
                tracing::warn!(attempts = p.attempts, error = %e, "notification given up: moved to the dead letters");
                deps.metrics.notifications_dead.inc();
                let dead = p.item(ItemKind::DeadLetter);
                let gone = (ItemKind::Notification, String::new(), key(p.id));
                if let Err(e) = deps.store.write_items(&[dead], &[gone]).await {
                    tracing::warn!(error = %e, "a dead notification could not be moved; it stays in the outbox");
                }
                return Done::Finished;
            }
            deps.metrics.notification_retries.inc();
            if push {
                deps.metrics.push_retries.inc();
            }
            let mut wait = backoff_ms(p.attempts, fastrand::f64());
            if let SendError::RetryAfter(_, secs) = e {
                // The receiver said when; at most an hour, so a bad header cannot park it for good.
                wait = wait.max(i64::try_from(secs.min(3600)).unwrap_or(3600) * 1000);
            }
            p.due_at = now_ms() + wait;
            tracing::info!(attempts = p.attempts, error = %e, "notification failed; will retry");
            if let Err(e) = deps.store.put_item(&p.item(ItemKind::Notification)).await {
                tracing::warn!(error = %e, "a retry could not be recorded; retrying from memory");
            }
            Done::Retry(p)
        }
    }
}

enum Sent {
    Delivered,
    /// Nothing to send any more (read, online, opted out, no address): the reason, for the log.
    Skipped(&'static str),
    /// Replaced in the outbox by the work it fanned out to (in the same write): nothing to delete.
    Replaced,
}

fn store_err(e: StoreError) -> SendError {
    SendError::Network(format!("store: {e}"))
}

/// What a due mail or push checks first: the conversation, and the recipient's side of it, while
/// the recipient still has unread messages there and no connected socket; otherwise why not.
async fn still_unread(
    deps: &Deps,
    conversation: Id,
    recipient: &ExternalId,
) -> Result<Result<(ConversationDoc, Side), &'static str>, SendError> {
    let Some(doc) = deps
        .store
        .get_conversation(conversation)
        .await
        .map_err(store_err)?
    else {
        return Ok(Err("the conversation is gone"));
    };
    let Some(side) = doc.record.side_of(recipient) else {
        return Ok(Err("not a participant"));
    };
    if doc.state.side(side).unread == 0 {
        return Ok(Err("read in time"));
    }
    if deps.registry.is_online(recipient) {
        return Ok(Err("online"));
    }
    Ok(Ok((doc, side)))
}

/// A due push: still worth sending (the newest message, unread, recipient offline), it becomes
/// one push per subscription, written in place of this one in one atomic write.
async fn fan_out(
    deps: &Deps,
    p: &Pending,
    conversation: Id,
    recipient: &ExternalId,
    seq: u64,
    sender_name: &str,
    preview: Option<&str>,
) -> Result<Sent, SendError> {
    let doc = match still_unread(deps, conversation, recipient).await? {
        Ok((doc, _)) => doc,
        Err(why) => return Ok(Sent::Skipped(why)),
    };
    if doc.state.last_seq > seq {
        return Ok(Sent::Skipped("a newer message is pushed instead"));
    }
    let subscriptions = super::push::list(&*deps.store, recipient)
        .await
        .map_err(store_err)?;
    if subscriptions.is_empty() {
        return Ok(Sent::Skipped("no subscriptions"));
    }
    let mut payload = serde_json::json!({
        "type": "chat_message",
        "conversation_id": conversation,
        "sender_name": sender_name,
    });
    if let Some(text) = preview {
        payload["preview"] = serde_json::json!(text);
    }
    let ids: Vec<Id> = subscriptions.iter().map(|s| s.id).collect();
    let pushes = deps.notifier.push_to(
        recipient,
        &ids,
        &payload.to_string(),
        &format!("c{conversation}"),
    );
    let gone = (ItemKind::Notification, String::new(), key(p.id));
    deps.store
        .write_items(&Notifier::items(&pushes), &[gone])
        .await
        .map_err(store_err)?;
    deps.notifier.committed(pushes);
    Ok(Sent::Replaced)
}

/// One encrypted push to one subscription; a subscription its push service says is gone is
/// removed.
async fn push_one(
    deps: &Deps,
    recipient: &ExternalId,
    subscription: Id,
    payload: &str,
    topic: &str,
) -> Result<Sent, SendError> {
    let Some(vapid) = deps.notifier.vapid.get() else {
        return Err(SendError::Network("no VAPID key loaded".into()));
    };
    let Some(sub) = super::push::get(&*deps.store, recipient, subscription)
        .await
        .map_err(store_err)?
    else {
        return Ok(Sent::Skipped("the subscription was removed"));
    };
    let ttl = Duration::from_secs(deps.notifier.push.ttl_secs.max(1));
    match super::push::send(&deps.client, vapid, &sub, payload.as_bytes(), topic, ttl).await? {
        super::push::Answer::Accepted => Ok(Sent::Delivered),
        super::push::Answer::Gone => {
            super::push::remove(&*deps.store, recipient, subscription)
                .await
                .map_err(store_err)?;
            deps.metrics.push_subscriptions_removed.inc();
            tracing::info!(user_id = %recipient, subscription = %subscription, "push subscription gone; removed");
            Ok(Sent::Skipped("the subscription is gone"))
        }
    }
}

/// The unread-messages mail, if it is still due: the recipient still has unread messages in the
/// conversation, no connected device, an address, and has not opted out.
async fn unread_mail(
    deps: &Deps,
    p: &Pending,
    conversation: Id,
    recipient: &ExternalId,
) -> Result<Sent, SendError> {
    let (doc, side) = match still_unread(deps, conversation, recipient).await? {
        Ok(found) => found,
        Err(why) => return Ok(Sent::Skipped(why)),
    };
    let state = doc.state.side(side);
    let profile = deps.store.get_user(recipient).await.map_err(store_err)?;
    if profile.as_ref().is_some_and(|u| !u.notify_email) {
        return Ok(Sent::Skipped("opted out"));
    }
    let address = match profile.as_ref().and_then(|u| u.email.clone()) {
        Some(a) => Some(a),
        None => super::claims::remembered_email(&*deps.store, recipient)
            .await
            .map_err(store_err)?,
    };
    let Some(address) = address else {
        return Ok(Sent::Skipped("no address"));
    };
    let name = profile
        .map(|u| u.name)
        .unwrap_or_else(|| doc.record.user(side).as_str().to_string());
    let range = SeqRange {
        after: Some(state.read_seq),
        before: None,
    };
    let mut recent: Vec<_> = deps
        .store
        .list_messages(conversation, range, DIGEST_MESSAGES * 2, true)
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|m| m.sender_id != *recipient && !m.deleted)
        .take(DIGEST_MESSAGES)
        .collect();
    recent.reverse();
    let to = Recipient {
        email: address,
        name,
    };
    let body = email::brevo_body(
        &deps.notifier.email,
        &to,
        &doc.record,
        state.unread,
        &recent,
        &p.id.to_string(),
    );
    email::send(&deps.client, &deps.notifier.email, &body).await?;
    Ok(Sent::Delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_near_a_second_doubles_and_stops_at_five_minutes() {
        assert_eq!(backoff_ms(1, 0.5), 1_000);
        assert_eq!(backoff_ms(2, 0.5), 2_000);
        assert_eq!(backoff_ms(3, 0.5), 4_000);
        assert_eq!(backoff_ms(12, 0.5), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(u32::MAX, 0.5), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1, 0.0), 750);
        assert_eq!(backoff_ms(1, 1.0), 1_250);
    }

    fn pending(id: u64, due_at: i64) -> Pending {
        Pending {
            id: Id(id),
            created_at: 0,
            due_at,
            attempts: 0,
            last_error: None,
            work: Work::Webhook {
                event: "message.created".into(),
                body: "{}".into(),
            },
        }
    }

    #[test]
    fn the_schedule_hands_out_what_is_due_in_order_and_once() {
        let mut s = Schedule::default();
        assert!(s.insert(pending(2, 20)));
        assert!(s.insert(pending(1, 10)));
        assert!(s.insert(pending(1, 10)), "known: not scheduled twice");
        assert_eq!(s.due.len(), 2);
        assert_eq!(s.take_due(5), None);
        assert_eq!(s.take_due(15).map(|p| p.id), Some(Id(1)));
        // In flight: a re-read of the outbox does not schedule it again.
        assert!(s.insert(pending(1, 10)));
        assert_eq!(s.due.len(), 1);
        assert_eq!(s.next_due(), Some(20));
    }

    #[test]
    fn a_full_schedule_says_so() {
        let mut s = Schedule::default();
        for i in 0..MAX_SCHEDULED as u64 {
            assert!(s.insert(pending(i, 0)));
        }
        assert!(!s.insert(pending(u64::MAX, 0)));
    }
}
