//! Privacy law: everything about a user as one document (`export`), a user erased (`erase`),
//! and messages past the retention period removed in the background (`retention`).
//!
//! Erasure and retention remove a message the way a moderator does, through the conversation's
//! actor: it owns the conversation's state, so the removal is ordered with the sends around it,
//! and both sides' open sockets get `message_deleted`. What is left is a tombstone: it keeps its
//! seq, so history stays gapless for clients that sync by seq, and nothing of the content (text,
//! attachments; for an erasure also the sender's name and `client_msg_id`). The search index
//! drops the message when the tombstone is durable, as for any deletion.

pub mod erase;
pub mod export;
pub mod retention;

use serde::{Deserialize, Serialize};

use crate::actors::conversation::{ConversationMsg, Removal};
use crate::domain::message::StoredMessage;
use crate::engine::Engine;
use crate::error::ApiError;

/// `[privacy]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Messages older than this many days are removed by the sweeper; 0 keeps them forever.
    /// The plan's policy is two years.
    pub retention_days: u64,
    /// Seconds between two retention sweeps.
    pub retention_sweep_secs: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            retention_days: 730,
            retention_sweep_secs: 3_600,
        }
    }
}

/// Removes one message through its conversation's actor, then what its attachments leave behind;
/// answers how many uploads were deleted. Removing a tombstone again changes nothing, so an
/// interrupted erasure or sweep is simply run again.
pub(crate) async fn remove_message(
    engine: &Engine,
    m: &StoredMessage,
    why: Removal,
) -> Result<u64, ApiError> {
    if why == Removal::Erasure {
        // Before the tombstone: the tombstone no longer names the id, so a rerun could not.
        engine.store.forget_dedupe(m).await?;
    }
    engine
        .ask(m.conversation_id, |reply| ConversationMsg::Remove {
            message: m.id,
            why,
            reply,
        })
        .await?;
    let mut deleted = 0;
    for a in &m.attachments {
        if why == Removal::Erasure {
            // The sender's own upload, wherever they sent it.
            engine.attachments.erase(a.id).await?;
            deleted += 1;
        } else {
            engine
                .attachments
                .unlink(m.conversation_id, std::slice::from_ref(a))
                .await;
            if !engine.attachments.linked(a.id).await? {
                engine.attachments.erase(a.id).await?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
