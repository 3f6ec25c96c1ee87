//! Attachment bytes encrypted at rest: envelope encryption with AES-256-GCM.
//!
//! **What.** Every stored file gets its own random 256-bit data key and is encrypted with it
//! (AES-256-GCM, random 96-bit nonce). The data key is itself encrypted ("wrapped") with a master
//! key from configuration (`attachments.encryption_key`) and kept next to the ciphertext, in a
//! small header that also names the master key by its id:
//!
//! ```text
//! MAGIC "SBE1" (4) | key id (8) | wrap nonce (12) | wrapped data key (32 + 16 tag)
//!                  | data nonce (12) | ciphertext + tag (16)
//! ```
//!
//! The wrap authenticates `MAGIC || key id`; the contents authenticate
//! `MAGIC || key id || object path`.
//!
//! **Why.** A copied bucket or directory (a leaked backup, a mis-shared S3 bucket, a stolen disk)
//! reveals nothing about the files but their sizes: without the master key, which lives only in
//! the server's configuration, the data keys cannot be unwrapped. Anything altered in the stored
//! bytes fails authentication and reads as [`SealError::Corrupt`], never as garbage.
//!
//! **Rotation.** The stored object names the master key that wrapped it (its [`key_id`], a
//! fingerprint of the key, so operators never pick ids and two keys cannot share one by
//! mistake). New uploads use the current key; files written under an older key stay readable as
//! long as that key is listed in `attachments.previous_encryption_keys`. Removing a key from the
//! configuration makes the files written under it unreadable ([`SealError::UnknownKey`], which
//! names the missing key's id) — there is no re-encryption step, so keep old keys as long as
//! their files exist.
//!
//! **Why the object path is bound in.** Authentication alone proves that *some* file was sealed
//! under our key, not that it is *this* file. Someone with write access to the bucket but not the
//! key could otherwise copy one user's (valid, authentic) attachment over another's path and have
//! the server serve it under the wrong metadata and permissions. With the object path (e.g.
//! `attachments/123`) as associated data, a sealed object only opens at the path it was written
//! for. The path is the store's logical object key, not a bucket or directory name, so moving the
//! whole bucket or directory elsewhere is fine; renaming individual objects is not.
//!
//! **Legacy objects.** Files stored before encryption was switched on have no header and are
//! returned by [`Keyring::open`] unchanged; the caller checks them against the sha256 in their
//! metadata (which also catches an unheadered object planted over an encrypted one). Uploads are
//! only PNG/JPEG/GIF/WebP/PDF, none of which begins with `SBE1`, so the header is unambiguous.

use std::fmt;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use base64ct::{Base64, Encoding};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// First bytes of every sealed object.
pub const MAGIC: &[u8; 4] = b"SBE1";

const KEY_LEN: usize = 32;
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;

const ID_AT: usize = MAGIC.len();
const WRAP_NONCE_AT: usize = ID_AT + ID_LEN;
const WRAPPED_AT: usize = WRAP_NONCE_AT + NONCE_LEN;
const DATA_NONCE_AT: usize = WRAPPED_AT + WRAPPED_LEN;
/// Everything before the ciphertext: 84 bytes.
const HEADER_LEN: usize = DATA_NONCE_AT + NONCE_LEN;
/// The smallest sealed object (an empty file): header and the contents' tag.
const MIN_SEALED_LEN: usize = HEADER_LEN + TAG_LEN;
/// How many bytes longer a sealed object is than its plaintext (100).
pub const OVERHEAD: usize = MIN_SEALED_LEN;

const CURRENT_SETTING: &str = "attachments.encryption_key";
const PREVIOUS_SETTING: &str = "attachments.previous_encryption_keys";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A configured key is unusable. The message names the setting and never includes key text.
    #[error("invalid attachment encryption key: {0}")]
    BadKey(String),
    /// The object was sealed under a master key (hex id) that is not configured.
    #[error(
        "the attachment was encrypted with key id {0}, which is not configured \
         (it must stay in attachments.previous_encryption_keys while files use it)"
    )]
    UnknownKey(String),
    /// The object does not open: truncated, altered, or copied from another object path.
    #[error("the stored attachment is corrupt: {0}")]
    Corrupt(String),
    /// An object without a header that is not the file its metadata describes. [`Keyring::open`]
    /// never returns this (it passes unheadered objects through as legacy plaintext); it is for
    /// the caller, whose sha256 check against the metadata finds it.
    #[error("the stored object is not encrypted and is not the file that was uploaded")]
    NotEncrypted,
    /// Sealing itself failed: the operating system's random number generator, or a file beyond
    /// AES-GCM's limit (64 GiB). Never caused by stored bytes.
    #[error("could not encrypt the attachment: {0}")]
    SealFailed(String),
}

/// The fingerprint that names a master key in sealed objects: the first 8 bytes of
/// SHA-256("switchboard attachment key id\0" || key).
pub fn key_id(key: &[u8; 32]) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(b"switchboard attachment key id\0")
        .chain_update(key)
        .finalize();
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&digest[..ID_LEN]);
    id
}

/// A master key, kept only as its cipher (the raw bytes are not stored) and its id.
#[derive(Clone)]
struct MasterKey {
    id: [u8; ID_LEN],
    cipher: Aes256Gcm,
}

/// The configured master keys: the current one (for new objects, if any) and the previous ones
/// (still accepted for reading).
#[derive(Clone)]
pub struct Keyring {
    current: Option<MasterKey>,
    previous: Vec<MasterKey>,
}

impl fmt::Debug for Keyring {
    /// Key ids only: master keys never appear in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.as_ref().map(|k| hex(&k.id)))
            .field(
                "previous",
                &self.previous.iter().map(|k| hex(&k.id)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// `current`: base64 of 32 bytes, or "" (then new objects are stored in the clear);
    /// `previous`: older keys, still accepted for reading. Surrounding whitespace is ignored.
    /// A key that is not base64, not 32 bytes, or configured twice is [`SealError::BadKey`].
    pub fn from_config(current: &str, previous: &[String]) -> Result<Keyring, SealError> {
        let current = current.trim();
        let current_key = if current.is_empty() {
            None
        } else {
            Some(decode_key(current, CURRENT_SETTING)?)
        };

        let mut seen: Vec<([u8; KEY_LEN], String)> = Vec::with_capacity(previous.len() + 1);
        if let Some(key) = current_key {
            seen.push((key, CURRENT_SETTING.to_string()));
        }
        let mut previous_keys = Vec::with_capacity(previous.len());
        for (i, text) in previous.iter().enumerate() {
            let setting = format!("{PREVIOUS_SETTING}[{i}]");
            let text = text.trim();
            if text.is_empty() {
                return Err(SealError::BadKey(format!("{setting} is empty")));
            }
            let key = decode_key(text, &setting)?;
            let id = key_id(&key);
            if let Some((_, earlier)) = seen
                .iter()
                .find(|(other, _)| *other == key || key_id(other) == id)
            {
                return Err(SealError::BadKey(format!(
                    "{setting} is the same key as {earlier} (key id {})",
                    hex(&id)
                )));
            }
            seen.push((key, setting));
            previous_keys.push(master_key(&key));
        }

        Ok(Keyring {
            current: current_key.as_ref().map(master_key),
            previous: previous_keys,
        })
    }

    /// A current key is set: new objects are sealed.
    pub fn enabled(&self) -> bool {
        self.current.is_some()
    }

    /// The current key's id in hex (16 digits), for logs and `switchboard config`.
    pub fn current_key_id(&self) -> Option<String> {
        self.current.as_ref().map(|k| hex(&k.id))
    }

    /// The bytes to store for `plaintext` at `object_path` (the object path, e.g.
    /// "attachments/123", is authenticated as associated data so a file copied over another
    /// one's path fails to open). When not enabled: the plaintext unchanged.
    pub fn seal(&self, object_path: &str, plaintext: Bytes) -> Result<Bytes, SealError> {
        let Some(master) = &self.current else {
            return Ok(plaintext);
        };

        let mut data_key = [0u8; KEY_LEN];
        let mut wrap_nonce = [0u8; NONCE_LEN];
        let mut data_nonce = [0u8; NONCE_LEN];
        for buf in [&mut data_key[..], &mut wrap_nonce[..], &mut data_nonce[..]] {
            OsRng
                .try_fill_bytes(buf)
                .map_err(|e| SealError::SealFailed(format!("random number generator: {e}")))?;
        }

        let mut out = Vec::with_capacity(MIN_SEALED_LEN + plaintext.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&master.id);
        out.extend_from_slice(&wrap_nonce);

        // The wrapped data key: encrypted in place right where it goes.
        out.extend_from_slice(&data_key);
        let wrap_tag = master
            .cipher
            .encrypt_in_place_detached(
                &Nonce::from(wrap_nonce),
                &wrap_aad(&master.id),
                &mut out[WRAPPED_AT..],
            )
            .map_err(|_| SealError::SealFailed("wrapping the data key".to_string()))?;
        out.extend_from_slice(&wrap_tag);

        out.extend_from_slice(&data_nonce);
        let aad = data_aad(&master.id, object_path);
        out.extend_from_slice(&plaintext);
        let data_cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(data_key));
        let tag = data_cipher
            .encrypt_in_place_detached(&Nonce::from(data_nonce), &aad, &mut out[HEADER_LEN..])
            .map_err(|_| {
                SealError::SealFailed(format!(
                    "{} bytes is more than AES-GCM can encrypt",
                    plaintext.len()
                ))
            })?;
        out.extend_from_slice(&tag);
        Ok(Bytes::from(out))
    }

    /// The plaintext of stored bytes. Objects beginning with MAGIC are decrypted with the key
    /// their header names ([`SealError::UnknownKey`] if not configured, [`SealError::Corrupt`] if
    /// they are truncated or authentication fails: wrong key, altered, or moved to another path).
    /// Objects without MAGIC are legacy plaintext written before encryption was switched on:
    /// they are returned unchanged, and the caller verifies their sha256 against the metadata
    /// (returning [`SealError::NotEncrypted`] when encryption is on and that check fails). Uploads
    /// are always PNG/JPEG/GIF/WebP/PDF, whose own magic numbers never begin with "SBE1", so the
    /// header is unambiguous. Works whether or not a current key is set: previous keys alone
    /// still open what they sealed.
    pub fn open(&self, object_path: &str, stored: Bytes) -> Result<Bytes, SealError> {
        if !stored.starts_with(MAGIC) {
            return Ok(stored);
        }
        if stored.len() < MIN_SEALED_LEN {
            return Err(SealError::Corrupt(format!(
                "truncated: {} bytes, a sealed object has at least {MIN_SEALED_LEN}",
                stored.len()
            )));
        }
        let id: [u8; ID_LEN] = field(&stored, ID_AT)?;
        let wrap_nonce: [u8; NONCE_LEN] = field(&stored, WRAP_NONCE_AT)?;
        let wrapped: [u8; KEY_LEN] = field(&stored, WRAPPED_AT)?;
        let wrap_tag: [u8; TAG_LEN] = field(&stored, WRAPPED_AT + KEY_LEN)?;
        let data_nonce: [u8; NONCE_LEN] = field(&stored, DATA_NONCE_AT)?;
        let tag_at = stored.len() - TAG_LEN;
        let tag: [u8; TAG_LEN] = field(&stored, tag_at)?;

        let master = self
            .keys()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(hex(&id)))?;

        let mut data_key = wrapped;
        master
            .cipher
            .decrypt_in_place_detached(
                &Nonce::from(wrap_nonce),
                &wrap_aad(&id),
                &mut data_key,
                &Tag::from(wrap_tag),
            )
            .map_err(|_| {
                SealError::Corrupt(format!(
                    "the header's data key does not authenticate under key id {}",
                    hex(&id)
                ))
            })?;

        let mut plaintext = stored
            .get(HEADER_LEN..tag_at)
            .ok_or_else(|| SealError::Corrupt("truncated".to_string()))?
            .to_vec();
        let data_cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(data_key));
        data_cipher
            .decrypt_in_place_detached(
                &Nonce::from(data_nonce),
                &data_aad(&id, object_path),
                &mut plaintext,
                &Tag::from(tag),
            )
            .map_err(|_| {
                SealError::Corrupt(format!(
                    "the contents do not authenticate at {object_path:?} \
                     (altered, or copied from another object path)"
                ))
            })?;
        Ok(Bytes::from(plaintext))
    }

    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        self.current.iter().chain(self.previous.iter())
    }
}

fn master_key(key: &[u8; KEY_LEN]) -> MasterKey {
    MasterKey {
        id: key_id(key),
        cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
    }
}

/// A key from configuration. Errors name `setting` and never echo the text.
fn decode_key(text: &str, setting: &str) -> Result<[u8; KEY_LEN], SealError> {
    let bytes = Base64::decode_vec(text).map_err(|_| {
        SealError::BadKey(format!(
            "{setting} is not valid base64 (expected 32 random bytes in standard base64, \
             e.g. from `openssl rand -base64 32`)"
        ))
    })?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        SealError::BadKey(format!(
            "{setting} decodes to {} bytes; it must be 32 (e.g. from `openssl rand -base64 32`)",
            bytes.len()
        ))
    })
}

/// Associated data of the wrapped data key: MAGIC || key id.
fn wrap_aad(id: &[u8; ID_LEN]) -> [u8; WRAP_NONCE_AT] {
    let mut aad = [0u8; WRAP_NONCE_AT];
    aad[..ID_AT].copy_from_slice(MAGIC);
    aad[ID_AT..].copy_from_slice(id);
    aad
}

/// Associated data of the contents: MAGIC || key id || object path.
fn data_aad(id: &[u8; ID_LEN], object_path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + ID_LEN + object_path.len());
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(id);
    aad.extend_from_slice(object_path.as_bytes());
    aad
}

/// `N` bytes of `stored` at `at`, or Corrupt (never a panic) if they are not all there.
fn field<const N: usize>(stored: &[u8], at: usize) -> Result<[u8; N], SealError> {
    stored
        .get(at..at.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| SealError::Corrupt("truncated header".to_string()))
}

fn hex(bytes: &[u8]) -> String {
    crate::storage::codec::hex(bytes)
}

#[cfg(test)]
mod tests;
