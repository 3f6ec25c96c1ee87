//! Quick-reply templates: each provider's own short texts, in the order the provider chose, kept
//! as items in the provider's partition (at most [`MAX_PER_PROVIDER`], so a partition is one small
//! read). Reordering rewrites the positions of the whole list in one atomic write, so positions
//! are always 0..n without gaps or repeats.

use serde::{Deserialize, Serialize};

use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::codec::{decode, encode};
use crate::storage::items::{Item, ItemAddress, ItemKind};
use crate::storage::{Store, StoreError};

pub const MAX_PER_PROVIDER: usize = 50;
pub const MAX_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    pub id: Id,
    pub text: String,
    pub position: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("text must be 1 to {MAX_CHARS} characters")]
    BadText,
    #[error("at most {MAX_PER_PROVIDER} templates per provider")]
    TooMany,
    #[error("no template of yours has this id")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A template's text: trimmed, 1 to [`MAX_CHARS`] characters.
pub fn checked_text(text: &str) -> Result<String, TemplateError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_CHARS {
        return Err(TemplateError::BadText);
    }
    Ok(t.to_string())
}

fn item(provider: &ExternalId, t: &Template) -> Item {
    Item {
        kind: ItemKind::Template,
        partition: provider.as_str().to_string(),
        key: t.id.0.to_be_bytes().to_vec(),
        value: encode(t),
    }
}

/// The provider's templates in their order.
pub async fn list(
    store: &dyn Store,
    provider: &ExternalId,
) -> Result<Vec<Template>, TemplateError> {
    let items = store
        .list_items(
            ItemKind::Template,
            provider.as_str(),
            None,
            MAX_PER_PROVIDER + 1,
        )
        .await?;
    let mut out = items
        .iter()
        .map(|i| decode::<Template>(&i.value))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|t| (t.position, t.id));
    Ok(out)
}

/// Appends a template at the end.
pub async fn add(
    store: &dyn Store,
    provider: &ExternalId,
    id: Id,
    text: &str,
) -> Result<Template, TemplateError> {
    let text = checked_text(text)?;
    let mine = list(store, provider).await?;
    if mine.len() >= MAX_PER_PROVIDER {
        return Err(TemplateError::TooMany);
    }
    let t = Template {
        id,
        text,
        position: mine.len() as u32,
    };
    store.put_item(&item(provider, &t)).await?;
    Ok(t)
}

/// Changes a template's text and/or moves it to `position` (clamped to the end); the others
/// keep their order around it.
pub async fn update(
    store: &dyn Store,
    provider: &ExternalId,
    id: Id,
    text: Option<&str>,
    position: Option<u32>,
) -> Result<Template, TemplateError> {
    let text = text.map(checked_text).transpose()?;
    let mut mine = list(store, provider).await?;
    let at = mine
        .iter()
        .position(|t| t.id == id)
        .ok_or(TemplateError::NotFound)?;
    let mut t = mine.remove(at);
    if let Some(text) = text {
        t.text = text;
    }
    let to = position.map_or(at, |p| (p as usize).min(mine.len()));
    mine.insert(to, t);
    write_in_order(store, provider, &mut mine, &[]).await?;
    Ok(mine.swap_remove(to))
}

pub async fn remove(store: &dyn Store, provider: &ExternalId, id: Id) -> Result<(), TemplateError> {
    let mut mine = list(store, provider).await?;
    let at = mine
        .iter()
        .position(|t| t.id == id)
        .ok_or(TemplateError::NotFound)?;
    mine.remove(at);
    let gone = (
        ItemKind::Template,
        provider.as_str().to_string(),
        id.0.to_be_bytes().to_vec(),
    );
    write_in_order(store, provider, &mut mine, &[gone]).await
}

/// Numbers `list` 0..n as it stands and writes it, with `deletes`, in one atomic write.
async fn write_in_order(
    store: &dyn Store,
    provider: &ExternalId,
    list: &mut [Template],
    deletes: &[ItemAddress],
) -> Result<(), TemplateError> {
    for (i, t) in list.iter_mut().enumerate() {
        t.position = i as u32;
    }
    let puts: Vec<Item> = list.iter().map(|t| item(provider, t)).collect();
    store.write_items(&puts, deletes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(checked_text("  Thanks!  ").unwrap(), "Thanks!");
        assert!(checked_text("   ").is_err());
        assert!(checked_text(&"é".repeat(MAX_CHARS)).is_ok());
        assert!(checked_text(&"é".repeat(MAX_CHARS + 1)).is_err());
    }
}
