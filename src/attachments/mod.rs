//! Attachments: uploads checked by their bytes, stripped of photo metadata, kept in an object
//! store, and shown only to their uploader and to the participants of a conversation they were
//! sent in.
//!
//! An upload's life: `upload` (pending) → `link` when a message carries it (visible to that
//! conversation) → `sweep` removes uploads still pending after `attachments.unsent_ttl_secs`.
//! Bytes go to `object_store` (a local directory by default, S3-compatible storage when
//! configured: one code path); metadata goes to the store as items (`meta.rs`).
//!
//! On the way in, when configured, an upload is scanned by clamd (`scan.rs`) and refused if it
//! carries a signature, and its bytes are encrypted (`seal.rs`) before they reach the object
//! store; on the way out they are decrypted, so everything above this module sees plaintext.

pub mod meta;
pub mod objects;
pub mod scan;
pub mod seal;
pub mod sniff;
pub mod strip;

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{AttachmentsConfig, ScanFailure};
use crate::domain::ids::IdGenerator;
use crate::domain::message::Attachment;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::items::{ItemAddress, ItemKind};
use crate::storage::{keys, Store, StoreError};
use meta::{clean_filename, link_item, pending_day, pending_item, AttachmentMeta, ScanState};
use scan::{ScanAddr, ScanError, Scanner, Verdict};
use seal::{Keyring, SealError};
use sniff::Kind;

/// Conversations looked at when deciding whether a viewer may fetch an attachment: one upload is
/// rarely sent to more than a few.
const MAX_LINKS_CHECKED: usize = 64;

/// Pending uploads removed per day partition per sweep.
const SWEEP_BATCH: usize = 1000;

/// Days back a sweep looks for pending uploads. A server stopped for longer leaves older ones
/// behind (they are only bytes nobody can see: never linked, so never shown).
const SWEEP_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error(
        "only PNG, JPEG, GIF, WebP and PDF files are accepted (decided by the file's content)"
    )]
    Unsupported,
    #[error(transparent)]
    Malformed(#[from] strip::Malformed),
    #[error("the upload must be multipart/form-data (with a boundary)")]
    NotMultipart,
    #[error("the upload must be multipart/form-data with a `file` field: {0}")]
    BadForm(String),
    #[error("attachment {0} is not one of your uploads")]
    NotYours(Id),
    #[error("at most {0} attachments per message")]
    TooMany(usize),
    #[error("attachment not found")]
    NotFound,
    #[error("too many uploads in progress; try again shortly")]
    Busy,
    #[error("attachment storage failed: {0}")]
    Objects(String),
    #[error("the virus scan found {0} in the file")]
    Infected(String),
    #[error("the virus scanner would not scan the file: {0}")]
    Unscannable(String),
    #[error("the virus scanner is unavailable; try again shortly")]
    ScannerDown,
    /// Stored bytes that do not decrypt (a missing or wrong key, or altered bytes): served as an
    /// error, never as garbage.
    #[error("attachment {id} cannot be read: {source}")]
    Unreadable { id: Id, source: SealError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<object_store::Error> for AttachmentError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => AttachmentError::NotFound,
            e => AttachmentError::Objects(e.to_string()),
        }
    }
}

pub struct Attachments {
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
    ids: Arc<IdGenerator>,
    config: AttachmentsConfig,
    /// Uploads being received at once: each may hold up to `max_bytes` in memory (twice that
    /// while it is encrypted), so this is what bounds the memory uploads can take.
    uploads: Arc<Semaphore>,
    keyring: Arc<Keyring>,
    scanner: Option<Scanner>,
}

impl Attachments {
    /// Fails (a configuration error) on an unusable encryption key or clamd address.
    pub fn new(
        store: Arc<dyn Store>,
        objects: Arc<dyn ObjectStore>,
        ids: Arc<IdGenerator>,
        config: AttachmentsConfig,
    ) -> Result<Self, String> {
        let uploads = Arc::new(Semaphore::new(config.max_concurrent_uploads.max(1)));
        let keyring =
            Keyring::from_config(&config.encryption_key, &config.previous_encryption_keys)
                .map_err(|e| e.to_string())?;
        let scanner = if config.clamd_addr.trim().is_empty() {
            None
        } else {
            let timeout = std::time::Duration::from_millis(config.clamd_timeout_ms.max(1));
            Some(Scanner::new(ScanAddr::parse(&config.clamd_addr)?, timeout))
        };
        if let Some(id) = keyring.current_key_id() {
            tracing::info!(key_id = %id, "attachments are encrypted at rest");
        }
        Ok(Attachments {
            store,
            objects,
            ids,
            config,
            uploads,
            keyring: Arc::new(keyring),
            scanner,
        })
    }

    pub fn max_bytes(&self) -> u64 {
        self.config.max_bytes
    }

    /// A slot to receive one upload in, or `Busy`.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, AttachmentError> {
        self.uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| AttachmentError::Busy)
    }

    /// Checks, cleans and stores an upload; it stays pending (visible to its owner only) until a
    /// message carries it. The record that it is pending is written first and the metadata last,
    /// so a crash half-way leaves nothing the sweep will not remove, and metadata never names
    /// bytes that are not there.
    pub async fn upload(
        &self,
        owner: &ExternalId,
        filename: Option<&str>,
        bytes: Bytes,
    ) -> Result<AttachmentMeta, AttachmentError> {
        if bytes.len() as u64 > self.config.max_bytes {
            return Err(AttachmentError::TooLarge(self.config.max_bytes));
        }
        // Parsing, hashing and encrypting up to 5 MiB is milliseconds of CPU: not on an async
        // worker.
        let (kind, plain, sha256) = tokio::task::spawn_blocking(move || {
            let (kind, plain) = check_and_clean(bytes)?;
            let sha256 = hex(&Sha256::digest(&plain));
            Ok::<_, AttachmentError>((kind, plain, sha256))
        })
        .await
        .map_err(|e| AttachmentError::Objects(format!("upload processing failed: {e}")))??;
        // Before anything is stored (or encrypted): a refused file leaves nothing behind.
        let scan = self.scan(owner, &plain).await?;
        let id = self.ids.next_id();
        let size = plain.len() as u64;
        let keyring = self.keyring.clone();
        let sealed = tokio::task::spawn_blocking(move || {
            keyring.seal(AttachmentMeta::object_path(id).as_ref(), plain)
        })
        .await
        .map_err(|e| AttachmentError::Objects(format!("upload processing failed: {e}")))?
        .map_err(|e| AttachmentError::Objects(e.to_string()))?;
        let fallback = format!("upload-{id}.{}", kind.extension());
        let meta = AttachmentMeta {
            id,
            owner: owner.clone(),
            filename: clean_filename(filename, &fallback),
            content_type: kind.content_type().to_string(),
            size,
            sha256,
            created_at: id.unix_ms(),
            scan,
        };
        self.store.put_item(&pending_item(id)).await?;
        self.objects
            .put(&AttachmentMeta::object_path(id), sealed.into())
            .await?;
        self.store.put_item(&meta.item()).await?;
        if scan == ScanState::Unscanned {
            self.store.put_item(&meta::unscanned_item(id)).await?;
        }
        Ok(meta)
    }

    /// The scan's outcome for `bytes`, or why the upload is refused. Without a scanner: `Off`.
    /// A scanner that cannot be reached or does not answer in time is
    /// `attachments.clamd_unavailable`'s decision (refused, or accepted unscanned); a file clamd
    /// refuses to scan (over its `StreamMaxLength`, say) is refused whatever that says, or
    /// `fail_open` would let any file too large for clamd through.
    async fn scan(&self, owner: &ExternalId, bytes: &[u8]) -> Result<ScanState, AttachmentError> {
        let Some(scanner) = &self.scanner else {
            return Ok(ScanState::Off);
        };
        let down = match scanner.scan(bytes).await {
            Ok(Verdict::Clean) => return Ok(ScanState::Clean),
            Ok(Verdict::Infected(signature)) => {
                tracing::warn!(user_id = %owner, %signature, "upload refused by the virus scan");
                return Err(AttachmentError::Infected(signature));
            }
            Err(ScanError::Protocol(why)) => {
                tracing::warn!(user_id = %owner, %why, "upload refused: clamd would not scan it");
                return Err(AttachmentError::Unscannable(why));
            }
            Err(e @ ScanError::Unavailable(_)) => e,
        };
        match self.config.clamd_unavailable {
            ScanFailure::FailClosed => {
                tracing::warn!(user_id = %owner, error = %down, addr = %scanner.addr(), "upload refused: it could not be scanned");
                Err(AttachmentError::ScannerDown)
            }
            ScanFailure::FailOpen => {
                tracing::warn!(user_id = %owner, error = %down, addr = %scanner.addr(), "upload accepted unscanned and flagged for review");
                Ok(ScanState::Unscanned)
            }
        }
    }

    async fn meta(&self, id: Id) -> Result<Option<AttachmentMeta>, AttachmentError> {
        let key = keys::id(id);
        match self
            .store
            .get_item(ItemKind::Attachment, &id.to_string(), &key)
            .await?
        {
            Some(v) => Ok(Some(AttachmentMeta::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The attachments a message of `sender` in `conversation` carries: each must be the
    /// sender's own upload (someone else's, or one that does not exist, is refused alike). Links
    /// them to the conversation before the message is sent, so its participants can fetch them
    /// the moment they see it; a send that then fails leaves a link to a conversation the sender
    /// chose, which shows the file to nobody the sender did not address.
    pub async fn link(
        &self,
        sender: &ExternalId,
        conversation: Id,
        ids: &[Id],
    ) -> Result<Vec<Attachment>, AttachmentError> {
        let mut unique: Vec<Id> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(*id);
            }
        }
        if unique.len() > self.config.max_per_message {
            return Err(AttachmentError::TooMany(self.config.max_per_message));
        }
        let mut metas = Vec::with_capacity(unique.len());
        for id in unique {
            match self.meta(id).await? {
                Some(m) if &m.owner == sender => metas.push(m),
                _ => return Err(AttachmentError::NotYours(id)),
            }
        }
        for m in &metas {
            self.store.put_item(&link_item(m.id, conversation)).await?;
            let pending = pending_item(m.id);
            self.store
                .delete_item(pending.kind, &pending.partition, &pending.key)
                .await?;
        }
        Ok(metas.iter().map(AttachmentMeta::view).collect())
    }

    /// Takes attachments of a message that became a tombstone away from its conversation.
    pub async fn unlink(&self, conversation: Id, attachments: &[Attachment]) {
        for a in attachments {
            let link = link_item(a.id, conversation);
            if let Err(e) = self
                .store
                .delete_item(link.kind, &link.partition, &link.key)
                .await
            {
                tracing::warn!(attachment_id = %a.id, conversation_id = %conversation, error = %e, "attachment link not removed");
            }
        }
    }

    /// Deletes an upload for good: its bytes, its metadata, every link and review entry
    /// (erasure and retention). Deleting one that is gone already changes nothing.
    pub async fn erase(&self, id: Id) -> Result<(), AttachmentError> {
        match self.objects.delete(&AttachmentMeta::object_path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let partition = id.to_string();
        let links = self
            .store
            .list_items(
                ItemKind::AttachmentLink,
                &partition,
                None,
                MAX_LINKS_CHECKED,
            )
            .await?;
        let mut gone: Vec<ItemAddress> = links
            .into_iter()
            .map(|l| (l.kind, l.partition, l.key))
            .collect();
        let unscanned = meta::unscanned_item(id);
        gone.push((unscanned.kind, unscanned.partition, unscanned.key));
        gone.push((ItemKind::Attachment, partition, keys::id(id).to_vec()));
        self.store.write_items(&[], &gone).await?;
        Ok(())
    }

    /// Whether an upload is still sent in any conversation.
    pub async fn linked(&self, id: Id) -> Result<bool, AttachmentError> {
        Ok(!self
            .store
            .list_items(ItemKind::AttachmentLink, &id.to_string(), None, 1)
            .await?
            .is_empty())
    }

    /// The attachment and its bytes, for its owner or a participant of a conversation it was
    /// sent in; `NotFound` for anyone else, exactly as for an id that does not exist.
    pub async fn open_for(
        &self,
        viewer: &ExternalId,
        id: Id,
    ) -> Result<(AttachmentMeta, Bytes), AttachmentError> {
        let meta = self.meta(id).await?.ok_or(AttachmentError::NotFound)?;
        if &meta.owner != viewer && !self.shown_to(viewer, id).await? {
            return Err(AttachmentError::NotFound);
        }
        let path = AttachmentMeta::object_path(id);
        let stored = self.objects.get(&path).await?.bytes().await?;
        let keyring = self.keyring.clone();
        let (size, expected) = (meta.size, meta.sha256.clone());
        let bytes = tokio::task::spawn_blocking(move || {
            let encrypted = stored.starts_with(seal::MAGIC);
            let want = if encrypted {
                size + seal::OVERHEAD as u64
            } else {
                size
            };
            if stored.len() as u64 != want {
                return Err(SealError::Corrupt(format!(
                    "{} bytes stored where {want} were expected",
                    stored.len()
                )));
            }
            let plain = keyring.open(path.as_ref(), stored)?;
            // Stored in the clear (before encryption was on, or with it off), or planted in the
            // clear over an encrypted file: served only if it is the file the metadata describes.
            if !encrypted && hex(&Sha256::digest(&plain)) != expected {
                return Err(SealError::NotEncrypted);
            }
            Ok(plain)
        })
        .await
        .map_err(|e| AttachmentError::Objects(format!("attachment decryption failed: {e}")))?
        .map_err(|source| AttachmentError::Unreadable { id, source })?;
        Ok((meta, bytes))
    }

    /// Uploads accepted while the scanner was down (`fail_open`), oldest first, after `after`:
    /// at most `limit`, and whether there are more.
    pub async fn unscanned(
        &self,
        after: Option<Id>,
        limit: usize,
    ) -> Result<(Vec<AttachmentMeta>, bool), AttachmentError> {
        let after = after.map(keys::id);
        let items = self
            .store
            .list_items(
                ItemKind::UnscannedUpload,
                "",
                after.as_ref().map(|k| k.as_slice()),
                limit + 1,
            )
            .await?;
        let more = items.len() > limit;
        let mut metas = Vec::with_capacity(limit);
        for item in items.iter().take(limit) {
            let Ok(raw) = <[u8; 8]>::try_from(item.key.as_slice()) else {
                continue;
            };
            if let Some(m) = self.meta(Id(u64::from_be_bytes(raw))).await? {
                metas.push(m);
            }
        }
        Ok((metas, more))
    }

    /// An operator has looked at an unscanned upload: it leaves the review list (`NotFound` if
    /// it is not on it).
    pub async fn reviewed(&self, id: Id) -> Result<(), AttachmentError> {
        let item = meta::unscanned_item(id);
        if self
            .store
            .get_item(item.kind, &item.partition, &item.key)
            .await?
            .is_none()
        {
            return Err(AttachmentError::NotFound);
        }
        self.store
            .delete_item(item.kind, &item.partition, &item.key)
            .await?;
        Ok(())
    }

    async fn shown_to(&self, viewer: &ExternalId, id: Id) -> Result<bool, AttachmentError> {
        let links = self
            .store
            .list_items(
                ItemKind::AttachmentLink,
                &id.to_string(),
                None,
                MAX_LINKS_CHECKED,
            )
            .await?;
        for link in links {
            let Ok(raw) = <[u8; 8]>::try_from(link.key.as_slice()) else {
                continue;
            };
            let conversation = Id(u64::from_be_bytes(raw));
            if let Some(record) = self.store.conversation_record(conversation).await? {
                if record.side_of(viewer).is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Removes uploads that were never sent and are older than `unsent_ttl_secs` at `now_ms`:
    /// their bytes, their metadata, their pending record. Answers how many.
    pub async fn sweep(&self, now_ms: i64) -> Result<u64, AttachmentError> {
        let cutoff = now_ms - (self.config.unsent_ttl_secs as i64).saturating_mul(1000);
        let today: i64 = pending_day(now_ms).parse().unwrap_or(0);
        let mut removed = 0;
        for day in (today - SWEEP_DAYS)..=today {
            let partition = day.to_string();
            let pending = self
                .store
                .list_items(ItemKind::PendingUpload, &partition, None, SWEEP_BATCH)
                .await?;
            for item in pending {
                let Ok(raw) = <[u8; 8]>::try_from(item.key.as_slice()) else {
                    continue;
                };
                let id = Id(u64::from_be_bytes(raw));
                if id.unix_ms() >= cutoff {
                    // Keys are ids, in time order: the rest of this day is younger still.
                    break;
                }
                self.remove_unsent(id, &partition, &item.key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn remove_unsent(&self, id: Id, day: &str, key: &[u8]) -> Result<(), AttachmentError> {
        // Sent after all (its link landed, its pending record was not yet deleted): keep it.
        let linked = !self
            .store
            .list_items(ItemKind::AttachmentLink, &id.to_string(), None, 1)
            .await?
            .is_empty();
        if !linked {
            match self.objects.delete(&AttachmentMeta::object_path(id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            self.store
                .delete_item(ItemKind::Attachment, &id.to_string(), &keys::id(id))
                .await?;
            let unscanned = meta::unscanned_item(id);
            self.store
                .delete_item(unscanned.kind, &unscanned.partition, &unscanned.key)
                .await?;
        }
        self.store
            .delete_item(ItemKind::PendingUpload, day, key)
            .await?;
        Ok(())
    }
}

/// What an upload is (by its bytes) and the bytes to store (metadata stripped), or why it is
/// refused. Pure: the fuzz target's entry point for the sniffing and stripping path.
pub fn check_and_clean(bytes: Bytes) -> Result<(Kind, Bytes), AttachmentError> {
    let kind = sniff::sniff(&bytes).ok_or(AttachmentError::Unsupported)?;
    Ok((kind, strip::strip(kind, bytes)?))
}

/// `image` when every attachment is an image, `file` when any is not, `text` without any.
pub fn message_type_of(attachments: &[Attachment]) -> crate::domain::message::MessageType {
    use crate::domain::message::MessageType;
    if attachments.is_empty() {
        MessageType::Text
    } else if attachments
        .iter()
        .all(|a| Kind::from_content_type(&a.content_type).is_some_and(Kind::is_image))
    {
        MessageType::Image
    } else {
        MessageType::File
    }
}

fn hex(bytes: &[u8]) -> String {
    crate::storage::codec::hex(bytes)
}
