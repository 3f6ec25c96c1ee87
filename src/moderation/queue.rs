//! The moderation queue: messages waiting for a moderator, flagged by the rules, the classifier
//! or a participant (`POST /api/v1/messages/{id}/flag`). One `Flag` item per message, keyed by the
//! message id, so the queue lists oldest first and a message flagged twice is one entry with two
//! reports. A moderator's decision (`approve`, `remove`) takes the entry out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::clock::now_ms;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::items::{Item, ItemKind};
use crate::storage::{codec, keys, Store, StoreResult};

/// Reports kept per message: enough to see who and why, bounded however often it is flagged.
const MAX_REPORTS: usize = 20;

/// Locks that make the read-modify-write of one entry atomic; an entry's lock is chosen by its
/// message id, so reports on different messages rarely wait on each other.
const SHARDS: usize = 16;

/// Who put a message in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportSource {
    /// A participant.
    User,
    /// A moderation rule.
    Rule,
    /// The external classifier (or its failure to answer).
    Classifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub source: ReportSource,
    /// The rule, category or the participant's words.
    pub reason: String,
    /// The participant who flagged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<ExternalId>,
    /// Unix milliseconds.
    pub at: i64,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub message_id: Id,
    pub conversation_id: Id,
    pub reports: Vec<Report>,
}

pub struct ModerationQueue {
    store: Arc<dyn Store>,
    locks: Vec<Mutex<()>>,
}

/// The queue is one partition.
const QUEUE: &str = "";

impl ModerationQueue {
    pub fn new(store: Arc<dyn Store>) -> Self {
        ModerationQueue {
            store,
            locks: (0..SHARDS).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Adds reports to a message's entry (creating it). A report equal to one already there (same
    /// source, reason and reporter) is not added twice.
    pub async fn flag(
        &self,
        message_id: Id,
        conversation_id: Id,
        reports: Vec<Report>,
    ) -> StoreResult<()> {
        self.flag_with(message_id, conversation_id, reports, &[])
            .await
    }

    /// `flag`, with `with` written in the same atomic write (the `message.flagged` notification).
    pub async fn flag_with(
        &self,
        message_id: Id,
        conversation_id: Id,
        reports: Vec<Report>,
        with: &[Item],
    ) -> StoreResult<()> {
        let _guard = self.locks[(message_id.0 % SHARDS as u64) as usize]
            .lock()
            .await;
        let key = keys::id(message_id);
        let mut entry = match self.store.get_item(ItemKind::Flag, QUEUE, &key).await? {
            Some(v) => codec::decode::<QueueEntry>(&v)?,
            None => QueueEntry {
                message_id,
                conversation_id,
                reports: Vec::new(),
            },
        };
        for r in reports {
            let seen = entry
                .reports
                .iter()
                .any(|e| e.source == r.source && e.reason == r.reason && e.by == r.by);
            if !seen && entry.reports.len() < MAX_REPORTS {
                entry.reports.push(r);
            }
        }
        let mut puts = vec![Item {
            kind: ItemKind::Flag,
            partition: QUEUE.into(),
            key: key.to_vec(),
            value: codec::encode(&entry),
        }];
        puts.extend_from_slice(with);
        self.store.write_items(&puts, &[]).await
    }

    /// Up to `limit` entries, oldest message first, after the message `after`.
    pub async fn page(&self, after: Option<Id>, limit: usize) -> StoreResult<Vec<QueueEntry>> {
        let after = after.map(keys::id);
        let items = self
            .store
            .list_items(ItemKind::Flag, QUEUE, after.as_ref().map(|k| &k[..]), limit)
            .await?;
        items
            .iter()
            .map(|i| codec::decode::<QueueEntry>(&i.value))
            .collect()
    }

    pub async fn get(&self, message_id: Id) -> StoreResult<Option<QueueEntry>> {
        match self
            .store
            .get_item(ItemKind::Flag, QUEUE, &keys::id(message_id))
            .await?
        {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Takes a message out of the queue (a moderator decided).
    pub async fn resolve(&self, message_id: Id) -> StoreResult<()> {
        let _guard = self.locks[(message_id.0 % SHARDS as u64) as usize]
            .lock()
            .await;
        self.store
            .delete_item(ItemKind::Flag, QUEUE, &keys::id(message_id))
            .await
    }
}

impl Report {
    pub fn now(source: ReportSource, reason: impl Into<String>, by: Option<ExternalId>) -> Self {
        Report {
            source,
            reason: reason.into(),
            by,
            at: now_ms(),
        }
    }
}
