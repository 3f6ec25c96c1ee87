//! What the store keeps about an upload, and where (`storage::items`).
//!
//! - the upload itself: `Attachment` item, partition and key its id;
//! - each conversation it was sent in: `AttachmentLink` item, partition its id, key the
//!   conversation id (one item per link, so two sends never overwrite each other's link);
//! - while it is unsent: `PendingUpload` item, partition its upload day, key its id, so the daily
//!   sweep reads one small partition per day instead of every upload there is.

use serde::{Deserialize, Serialize};

use crate::domain::message::Attachment;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::items::{Item, ItemKind};
use crate::storage::{codec, keys, StoreResult};

/// One upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub id: Id,
    pub owner: ExternalId,
    /// As uploaded, cleaned of path parts and control characters (shown, never used as a path).
    pub filename: String,
    /// Decided by the bytes (`sniff`).
    pub content_type: String,
    /// Of the stored bytes, after metadata stripping.
    pub size: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    pub created_at: i64,
    /// What the virus scan said (`off` for uploads from before scanning existed).
    #[serde(default)]
    pub scan: ScanState,
}

/// An upload's virus scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanState {
    /// No scanner is configured.
    #[default]
    Off,
    /// clamd found nothing.
    Clean,
    /// clamd could not be reached and `attachments.clamd_unavailable` is `fail_open`: accepted,
    /// and listed for an operator (`unscanned_item`).
    Unscanned,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl AttachmentMeta {
    /// How a message shows it.
    pub fn view(&self) -> Attachment {
        Attachment {
            id: self.id,
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            url: format!("/api/v1/attachments/{}", self.id),
        }
    }

    pub fn item(&self) -> Item {
        Item {
            kind: ItemKind::Attachment,
            partition: self.id.to_string(),
            key: keys::id(self.id).to_vec(),
            value: codec::encode(self),
        }
    }

    pub fn decode(value: &[u8]) -> StoreResult<AttachmentMeta> {
        codec::decode(value)
    }

    /// Where the bytes are in the object store.
    pub fn object_path(id: Id) -> object_store::path::Path {
        object_store::path::Path::from(format!("attachments/{id}"))
    }
}

/// The pending-upload partition of a time: its day since the Unix epoch.
pub fn pending_day(at_ms: i64) -> String {
    at_ms.div_euclid(DAY_MS).to_string()
}

pub fn pending_item(id: Id) -> Item {
    Item {
        kind: ItemKind::PendingUpload,
        partition: pending_day(id.unix_ms()),
        key: keys::id(id).to_vec(),
        value: Vec::new(),
    }
}

/// An upload accepted without a scan, for review: one queue (partition empty), keyed by id.
pub fn unscanned_item(id: Id) -> Item {
    Item {
        kind: ItemKind::UnscannedUpload,
        partition: String::new(),
        key: keys::id(id).to_vec(),
        value: Vec::new(),
    }
}

pub fn link_item(attachment: Id, conversation: Id) -> Item {
    Item {
        kind: ItemKind::AttachmentLink,
        partition: attachment.to_string(),
        key: keys::id(conversation).to_vec(),
        value: Vec::new(),
    }
}

/// A filename fit to show and to put in `Content-Disposition`: its last path component, without
/// control characters or quotes, at most 255 bytes; `fallback` when nothing is left.
pub fn clean_filename(raw: Option<&str>, fallback: &str) -> String {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::new();
    for c in base.chars().filter(|c| !c.is_control() && *c != '"') {
        if out.len() + c.len_utf8() > 255 {
            break;
        }
        out.push(c);
    }
    let out = out.trim().to_string();
    if out.is_empty() || out == "." || out == ".." {
        fallback.to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_controls_and_quotes() {
        assert_eq!(clean_filename(Some("../../etc/passwd"), "f"), "passwd");
        assert_eq!(
            clean_filename(Some("C:\\Users\\me\\photo.jpg"), "f"),
            "photo.jpg"
        );
        assert_eq!(clean_filename(Some("a\"b\r\n.png"), "f"), "ab.png");
        assert_eq!(clean_filename(Some(".."), "upload.pdf"), "upload.pdf");
        assert_eq!(clean_filename(None, "upload.pdf"), "upload.pdf");
        let long = "é".repeat(300);
        let cleaned = clean_filename(Some(&long), "f");
        assert!(cleaned.len() <= 255 && cleaned.chars().all(|c| c == 'é'));
    }

    #[test]
    fn pending_days_are_calendar_days() {
        assert_eq!(pending_day(0), "0");
        assert_eq!(pending_day(DAY_MS - 1), "0");
        assert_eq!(pending_day(DAY_MS), "1");
    }
}
