//! The retention sweeper: messages older than `privacy.retention_days` become tombstones, in
//! the background, a small batch at a time.
//!
//! It walks every conversation (a paged scan of the store, the only way to reach conversations
//! nobody opens any more) and reads each one's history from the oldest message up to the
//! cutoff: seqs are in creation order, so the first message younger than the cutoff ends the
//! conversation's part. A mark per conversation remembers how far it got, so the next sweep
//! starts there instead of re-reading the tombstones it left. Conversations created after the
//! cutoff are skipped without reading anything.
//!
//! Removals go one at a time, through the conversation's actor like any deletion, with a pause
//! between conversations: the sweep is never in a hurry, and live traffic keeps the store.

use std::time::Duration;

use serde::Serialize;

use super::remove_message;
use crate::actors::conversation::Removal;
use crate::domain::clock::{format_ms, now_ms};
use crate::domain::conversation::ConversationDoc;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::storage::items::{Item, ItemKind};
use crate::storage::records::{Record, Table};
use crate::storage::SeqRange;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Conversations per scan page, messages per history page.
const PAGE: usize = 100;
/// Between two conversations that had something to remove. Each one's actor is started for the
/// removal and stays until it idles out, so the pause also bounds how many a sweep keeps alive at
/// once (about 100 a second, times the idle timeout).
const PAUSE: Duration = Duration::from_millis(10);

/// One sweep at a time (a manual run waits for the background one).
static SWEEPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a sweep did (the answer of `POST /admin/v1/retention/run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Sweep {
    /// Messages created before this were removed; `None` when retention is off.
    #[schema(format = DateTime)]
    pub cutoff: Option<String>,
    pub conversations_checked: u64,
    pub messages_removed: u64,
    pub attachments_deleted: u64,
}

/// The creation time before which messages go, now; `None` when retention is off.
pub fn cutoff(retention_days: u64) -> Option<i64> {
    if retention_days == 0 {
        return None;
    }
    let days = i64::try_from(retention_days).unwrap_or(i64::MAX / DAY_MS);
    Some(now_ms().saturating_sub(days.saturating_mul(DAY_MS)))
}

/// Runs one sweep over every conversation.
pub async fn sweep(engine: &Engine) -> Result<Sweep, ApiError> {
    let _one = SWEEPING.lock().await;
    let Some(cutoff) = cutoff(engine.config.privacy.retention_days) else {
        return Ok(Sweep::default());
    };
    let mut out = Sweep {
        cutoff: Some(format_ms(cutoff)),
        ..Sweep::default()
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = engine
            .store
            .scan(Table::Conversations, cursor.as_deref(), PAGE)
            .await?
            .map_err(|_| ApiError::internal("the store refused its own cursor"))?;
        for record in &page.records {
            let Record::Conversation(doc) = record else {
                continue;
            };
            out.conversations_checked += 1;
            if doc.record.created_at >= cutoff {
                continue;
            }
            let (messages, attachments) = sweep_one(engine, doc, cutoff).await?;
            out.messages_removed += messages;
            out.attachments_deleted += attachments;
            if messages > 0 {
                tokio::time::sleep(PAUSE).await;
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if out.messages_removed > 0 {
        tracing::info!(
            messages = out.messages_removed,
            attachments = out.attachments_deleted,
            cutoff = %format_ms(cutoff),
            "retention sweep removed old messages"
        );
    }
    Ok(out)
}

fn mark_item(conversation: crate::domain::Id, seq: u64) -> Item {
    Item {
        kind: ItemKind::RetentionMark,
        partition: conversation.to_string(),
        key: b"seq".to_vec(),
        value: seq.to_be_bytes().to_vec(),
    }
}

/// Removes one conversation's messages created before `cutoff`; (messages, uploads) removed.
async fn sweep_one(
    engine: &Engine,
    doc: &ConversationDoc,
    cutoff: i64,
) -> Result<(u64, u64), ApiError> {
    let id = doc.record.id;
    let partition = id.to_string();
    let mark = engine
        .store
        .get_item(ItemKind::RetentionMark, &partition, b"seq")
        .await?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes);
    let (mut messages, mut attachments) = (0, 0);
    let mut after = mark;
    loop {
        let range = SeqRange {
            after,
            before: None,
        };
        let page = engine.store.list_messages(id, range, PAGE, false).await?;
        let full = page.len() == PAGE;
        let mut passed = None;
        let mut reached_cutoff = false;
        for m in &page {
            if m.created_at >= cutoff {
                reached_cutoff = true;
                break;
            }
            if !m.deleted {
                attachments += remove_message(engine, m, Removal::Retention).await?;
                messages += 1;
            }
            passed = Some(m.seq);
        }
        if let Some(seq) = passed {
            engine.store.put_item(&mark_item(id, seq)).await?;
            after = Some(seq);
        }
        if reached_cutoff || !full || passed.is_none() {
            break;
        }
    }
    Ok((messages, attachments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_retention_means_no_cutoff_and_days_count_back_from_now() {
        assert_eq!(cutoff(0), None);
        let before = now_ms();
        let c = cutoff(730).unwrap_or_default();
        assert!(c <= before - 730 * DAY_MS + 1_000 && c >= before - 730 * DAY_MS - 1_000);
        // Absurd settings saturate rather than overflow.
        assert!(cutoff(u64::MAX).is_some());
    }
}
