//! E-mail addresses learned from tokens. A recipient's address comes from their profile
//! (`PUT /admin/v1/users/{id}`) or, failing that, from the `email` claim of the last token they
//! used; a mail goes to someone who is *not* connected, so the claim must have been kept.
//!
//! Kept as an item per user, written only when the address is new to this process (a bounded
//! cache remembers what was already written), so a user's requests cost no store write each.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::domain::user::{ExternalId, Principal};
use crate::storage::items::{Item, ItemKind};
use crate::storage::{Store, StoreResult};

/// Users whose current address this process has already written.
const REMEMBERED: u64 = 100_000;

pub struct Claims {
    store: Arc<dyn Store>,
    written: Cache<ExternalId, String>,
}

impl Claims {
    pub fn new(store: Arc<dyn Store>) -> Claims {
        Claims {
            store,
            written: Cache::builder()
                .max_capacity(REMEMBERED)
                .time_to_idle(Duration::from_secs(24 * 3600))
                .build(),
        }
    }

    /// Keeps the token's address for later mails, off the caller's path.
    pub fn saw(&self, principal: &Principal) {
        let Some(email) = principal.email.as_ref().filter(|e| e.contains('@')) else {
            return;
        };
        if self.written.get(&principal.user_id).as_ref() == Some(email) {
            return;
        }
        self.written
            .insert(principal.user_id.clone(), email.clone());
        let item = Item {
            kind: ItemKind::EmailClaim,
            partition: String::new(),
            key: principal.user_id.as_str().as_bytes().to_vec(),
            value: email.as_bytes().to_vec(),
        };
        let (store, written, user) = (
            self.store.clone(),
            self.written.clone(),
            principal.user_id.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = store.put_item(&item).await {
                // Not kept: let the next request try again.
                written.invalidate(&user);
                tracing::warn!(user_id = %user, error = %e, "e-mail claim not kept");
            }
        });
    }
}

impl Claims {
    /// Forgets the user's address (erasure): the kept item and this process's memory of it.
    pub async fn forget(&self, user: &ExternalId) -> StoreResult<()> {
        self.written.invalidate(user);
        self.store
            .delete_item(ItemKind::EmailClaim, "", user.as_str().as_bytes())
            .await
    }
}

/// The address the user's last token claimed, if one was kept.
pub async fn remembered_email(store: &dyn Store, user: &ExternalId) -> StoreResult<Option<String>> {
    let value = store
        .get_item(ItemKind::EmailClaim, "", user.as_str().as_bytes())
        .await?;
    Ok(value.and_then(|v| String::from_utf8(v).ok()))
}
