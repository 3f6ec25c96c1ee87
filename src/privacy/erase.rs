//! Erasing a user (`DELETE /admin/v1/users/{id}`): what they wrote becomes tombstones for the
//! other side, their uploads' bytes, profile, templates, push subscriptions and kept e-mail
//! address are deleted, their dedupe and search entries go.
//!
//! It walks the user's conversations and each one's history a page at a time, so a user with
//! 100,000 messages is never held in memory; removals run a few at a time per conversation
//! (each is a durable write, and the store's group commit takes them together). Idempotent: a
//! second run finds only tombstones and answers zeros. A marker item remembers the erasure, so
//! the user stays known (200, not 404) after their profile is gone.
//!
//! What stays: the conversations themselves (they are the other participant's too), with the
//! name the user had when each was created (a conversation's record never changes), and the
//! other participant's messages.

use futures_util::future::try_join_all;
use serde::Serialize;

use super::remove_message;
use crate::actors::conversation::Removal;
use crate::actors::outbox::close_code;
use crate::actors::user_session::SessionMsg;
use crate::domain::clock::now_ms;
use crate::domain::message::StoredMessage;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::storage::items::{Item, ItemAddress, ItemKind};
use crate::storage::SeqRange;

/// Conversations and messages read per page.
const PAGE: usize = 200;
/// Removals in flight at once.
const IN_FLIGHT: usize = 16;

/// What an erasure did (the answer of `DELETE /admin/v1/users/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    pub user_id: ExternalId,
    pub conversations: u64,
    pub messages_erased: u64,
    pub attachments_deleted: u64,
}

/// Whether the store knows anything of the user: a profile, a conversation, an earlier erasure.
pub async fn known(engine: &Engine, user: &ExternalId) -> Result<bool, ApiError> {
    if engine.store.get_user(user).await?.is_some() {
        return Ok(true);
    }
    if engine
        .store
        .get_item(ItemKind::Erased, "", user.as_str().as_bytes())
        .await?
        .is_some()
    {
        return Ok(true);
    }
    let page = engine
        .store
        .list_conversations(user, None, None, 1)
        .await?
        .map_err(|_| ApiError::internal("conversation listing refused its own start"))?;
    Ok(!page.items.is_empty())
}

/// Erases `user`; `NotFound` if the store never knew them.
pub async fn erase(engine: &Engine, user: &ExternalId) -> Result<Erasure, ApiError> {
    if !known(engine, user).await? {
        return Err(ApiError::not_found("user_not_found", "user not found"));
    }
    // Their sockets close first, so nothing they send lands behind the walk.
    if let Some(session) = engine.registry.session(user) {
        let _ = session.send_message(SessionMsg::Disconnect {
            code: close_code::POLICY,
            reason: "account erased".into(),
        });
    }
    let mut out = Erasure {
        user_id: user.clone(),
        conversations: 0,
        messages_erased: 0,
        attachments_deleted: 0,
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = engine
            .store
            .list_conversations(user, None, cursor.as_deref(), PAGE)
            .await?
            .map_err(|_| ApiError::internal("the store refused its own cursor"))?;
        for doc in &page.items {
            out.conversations += 1;
            let (messages, attachments) = erase_in(engine, doc.record.id, user).await?;
            out.messages_erased += messages;
            out.attachments_deleted += attachments;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    forget_profile(engine, user).await?;
    tracing::info!(
        user_id = %user,
        conversations = out.conversations,
        messages = out.messages_erased,
        attachments = out.attachments_deleted,
        "user erased"
    );
    Ok(out)
}

/// Tombstones the user's messages in one conversation; (messages, uploads) removed.
async fn erase_in(
    engine: &Engine,
    conversation: Id,
    user: &ExternalId,
) -> Result<(u64, u64), ApiError> {
    let (mut messages, mut attachments) = (0, 0);
    let mut after = None;
    loop {
        let range = SeqRange {
            after,
            before: None,
        };
        let page = engine
            .store
            .list_messages(conversation, range, PAGE, false)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.seq);
        let full = page.len() == PAGE;
        let theirs: Vec<StoredMessage> = page
            .into_iter()
            .filter(|m| &m.sender_id == user && !m.deleted)
            .collect();
        messages += theirs.len() as u64;
        for batch in theirs.chunks(IN_FLIGHT) {
            let removed = try_join_all(
                batch
                    .iter()
                    .map(|m| remove_message(engine, m, Removal::Erasure)),
            )
            .await?;
            attachments += removed.iter().sum::<u64>();
        }
        if !full {
            break;
        }
    }
    Ok((messages, attachments))
}

/// Deletes what the user left outside conversations, then marks them erased.
async fn forget_profile(engine: &Engine, user: &ExternalId) -> Result<(), ApiError> {
    let store = &engine.store;
    let mut gone: Vec<ItemAddress> = Vec::new();
    for kind in [ItemKind::Template, ItemKind::PushSubscription] {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let items = store
                .list_items(kind, user.as_str(), after.as_deref(), PAGE)
                .await?;
            let full = items.len() == PAGE;
            after = items.last().map(|i| i.key.clone());
            gone.extend(items.into_iter().map(|i| (i.kind, i.partition, i.key)));
            if !full {
                break;
            }
        }
    }
    store.write_items(&[], &gone).await?;
    engine.claims.forget(user).await?;
    store.delete_user(user).await?;
    store
        .put_item(&Item {
            kind: ItemKind::Erased,
            partition: String::new(),
            key: user.as_str().as_bytes().to_vec(),
            value: now_ms().to_be_bytes().to_vec(),
        })
        .await?;
    Ok(())
}
