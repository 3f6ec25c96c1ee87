//! The one task that owns the rollups in flight: it adds events into them and writes the changed
//! ones to the store. Being the only writer of rollups and outcomes is what makes a
//! read-modify-write of either safe without a lock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::rollup::Rollup;
use super::{Dimension, Event, Typical};
use crate::domain::clock::{day_of, now_ms};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::codec::{decode, encode};
use crate::storage::items::{Item, ItemKind};
use crate::storage::{Store, StoreError, StoreResult};

/// Rollups of days older than this many days before today are dropped from memory once written:
/// late events (a delivery receipt for yesterday's message) still find theirs loaded.
const KEEP_DAYS: i64 = 1;

/// Rollups held in memory at most (between flushes a burst can pass it briefly).
const MAX_ENTRIES: usize = 100_000;

/// The stored record of a conversation's outcome.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Outcome {
    booked: bool,
}

struct Entry {
    rollup: Rollup,
    dirty: bool,
}

struct Recorder {
    store: Arc<dyn Store>,
    days: HashMap<(String, i64), Entry>,
    /// Providers' typical response times, dropped when a new response of theirs is written.
    typical: Typical,
    /// Provider partitions with responses not written yet.
    replied: HashSet<String>,
}

/// The item key of a day's rollup: the day number, big-endian with the sign bit flipped, so keys
/// list in day order.
pub fn day_key(day: i64) -> Vec<u8> {
    ((day as u64) ^ (1 << 63)).to_be_bytes().to_vec()
}

pub async fn run(
    mut rx: mpsc::Receiver<Event>,
    store: Arc<dyn Store>,
    flush: Duration,
    typical: Typical,
) {
    let mut recorder = Recorder {
        store,
        days: HashMap::new(),
        typical,
        replied: HashSet::new(),
    };
    let mut tick = tokio::time::interval(flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => recorder.apply(event).await,
                None => break,
            },
            _ = tick.tick() => recorder.flush().await,
        }
    }
    recorder.flush().await;
}

impl Recorder {
    async fn apply(&mut self, event: Event) {
        match event {
            Event::View {
                service,
                provider,
                at,
            } => {
                self.add(&service, &provider, at, |r| r.views += 1).await;
            }
            Event::Created {
                service,
                provider,
                at,
            } => {
                self.add(&service, &provider, at, |r| r.conversations += 1)
                    .await;
            }
            Event::Replied {
                service,
                provider,
                waited_ms,
                at,
            } => {
                self.add(&service, &provider, at, |r| r.add_response(waited_ms))
                    .await;
                self.replied
                    .insert(Dimension::Provider(provider).partition());
            }
            Event::Delivered {
                service,
                provider,
                took_ms,
                at,
            } => {
                self.add(&service, &provider, at, |r| r.add_delivery(took_ms))
                    .await;
            }
            Event::Outcome {
                conversation,
                service,
                provider,
                created_at,
                booked,
                done,
            } => {
                let result = self
                    .outcome(conversation, &service, &provider, created_at, booked)
                    .await;
                let _ = done.send(result);
            }
            Event::Flush { done } => {
                self.flush().await;
                let _ = done.send(());
            }
        }
    }

    /// Applies `change` to the rollup of `at`'s day in all three dimensions.
    async fn add(
        &mut self,
        service: &ExternalId,
        provider: &ExternalId,
        at: i64,
        change: impl Fn(&mut Rollup),
    ) {
        let day = day_of(at);
        for dim in Dimension::of(service, provider) {
            match self.entry(dim.partition(), day).await {
                Ok(entry) => {
                    change(&mut entry.rollup);
                    entry.dirty = true;
                }
                Err(e) => tracing::warn!(error = %e, "analytics rollup unreadable: event dropped"),
            }
        }
    }

    /// The day's rollup, read from the store the first time it is touched.
    async fn entry(&mut self, partition: String, day: i64) -> StoreResult<&mut Entry> {
        let key = (partition, day);
        if !self.days.contains_key(&key) {
            let stored = self
                .store
                .get_item(ItemKind::AnalyticsDay, &key.0, &day_key(day))
                .await?;
            let rollup = match stored {
                Some(bytes) => decode(&bytes)?,
                None => Rollup::default(),
            };
            self.days.insert(
                key.clone(),
                Entry {
                    rollup,
                    dirty: false,
                },
            );
        }
        self.days
            .get_mut(&key)
            .ok_or_else(|| StoreError::Corrupt("rollup vanished".into()))
    }

    /// Stores a conversation's outcome; counts it once, on its creation day, and moves the
    /// booked count when a report changes its mind. The outcome and the three rollups it changes
    /// are one atomic write, so a crash cannot keep one without the other; on failure nothing
    /// changes and the caller hears of it (a retry then counts it).
    async fn outcome(
        &mut self,
        conversation: Id,
        service: &ExternalId,
        provider: &ExternalId,
        created_at: i64,
        booked: bool,
    ) -> StoreResult<()> {
        let partition = conversation.to_string();
        let previous: Option<Outcome> = match self
            .store
            .get_item(ItemKind::Outcome, &partition, b"outcome")
            .await?
        {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        if previous.is_some_and(|p| p.booked == booked) {
            return Ok(());
        }
        let day = day_of(created_at);
        let mut puts = vec![Item {
            kind: ItemKind::Outcome,
            partition,
            key: b"outcome".to_vec(),
            value: encode(&Outcome { booked }),
        }];
        let mut changed = Vec::with_capacity(3);
        for dim in Dimension::of(service, provider) {
            let key = dim.partition();
            let mut rollup = self.entry(key.clone(), day).await?.rollup.clone();
            if previous.is_none() {
                rollup.outcomes += 1;
            }
            if booked {
                rollup.booked += 1;
            } else if previous.is_some() {
                rollup.booked = rollup.booked.saturating_sub(1);
            }
            puts.push(Item {
                kind: ItemKind::AnalyticsDay,
                partition: key.clone(),
                key: day_key(day),
                value: encode(&rollup),
            });
            changed.push((key, rollup));
        }
        self.store.write_items(&puts, &[]).await?;
        for (key, rollup) in changed {
            if let Some(entry) = self.days.get_mut(&(key, day)) {
                // Whatever else was pending for this day is in `rollup` too, and now written.
                entry.rollup = rollup;
                entry.dirty = false;
            }
        }
        Ok(())
    }

    /// Writes every changed rollup, then forgets the old days that are written.
    async fn flush(&mut self) {
        for ((partition, day), entry) in self.days.iter_mut().filter(|(_, e)| e.dirty) {
            let item = Item {
                kind: ItemKind::AnalyticsDay,
                partition: partition.clone(),
                key: day_key(*day),
                value: encode(&entry.rollup),
            };
            match self.store.put_item(&item).await {
                Ok(()) => entry.dirty = false,
                // Kept dirty: the next flush tries again.
                Err(e) => tracing::warn!(error = %e, "analytics rollup not written"),
            }
        }
        // Providers with new responses written: their typical response is read again.
        let unwritten: HashSet<&String> = self
            .days
            .iter()
            .filter(|(_, e)| e.dirty)
            .map(|((p, _), _)| p)
            .collect();
        let mut still = HashSet::new();
        for partition in self.replied.drain() {
            if unwritten.contains(&partition) {
                still.insert(partition);
            } else {
                self.typical.invalidate(&partition);
            }
        }
        self.replied = still;
        let oldest = day_of(now_ms()) - KEEP_DAYS;
        self.days.retain(|(_, day), e| e.dirty || *day >= oldest);
        if self.days.len() > MAX_ENTRIES {
            // More providers and services active at once than memory is meant for: keep only
            // what is not written yet; the rest is read again when touched.
            self.days.retain(|_, e| e.dirty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_keys_sort_in_day_order_across_the_epoch() {
        let mut days = [-3, 20_000, -1, 0, 5];
        let mut keys: Vec<Vec<u8>> = days.iter().map(|d| day_key(*d)).collect();
        keys.sort();
        days.sort();
        assert_eq!(keys, days.iter().map(|d| day_key(*d)).collect::<Vec<_>>());
    }
}
