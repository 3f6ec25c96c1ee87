//! Messages: what is stored, what is shown, and the rules for text.

use serde::{Deserialize, Serialize};

use super::clock::rfc3339;
use super::ids::Id;
use super::user::ExternalId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Text,
    Image,
    File,
    System,
}

/// Delivery status, from the sender's point of view. Ordered: it only ever moves forward.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Sent,
    Delivered,
    Read,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    pub id: Id,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub url: String,
}

/// A message as the store keeps it. Its status is not stored: it follows from the recipient's
/// delivered and read watermarks, so a receipt is one write, not one per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: Id,
    pub conversation_id: Id,
    pub seq: u64,
    pub sender_id: ExternalId,
    pub sender_name: String,
    pub message_type: MessageType,
    pub text: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub created_at: i64,
    #[serde(default)]
    pub client_msg_id: Option<String>,
    #[serde(default)]
    pub deleted: bool,
}

/// A message as the API shows it (`Message` in API.md).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: Id,
    pub conversation_id: Id,
    pub seq: u64,
    pub sender_id: ExternalId,
    pub sender_name: String,
    pub message_type: MessageType,
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub status: Status,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    pub client_msg_id: Option<String>,
    /// Present (and `true`) only on a message deleted for everyone: a tombstone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl StoredMessage {
    pub fn view(&self, status: Status) -> Message {
        Message {
            id: self.id,
            conversation_id: self.conversation_id,
            seq: self.seq,
            sender_id: self.sender_id.clone(),
            sender_name: self.sender_name.clone(),
            message_type: self.message_type,
            text: self.text.clone(),
            attachments: self.attachments.clone(),
            status,
            created_at: self.created_at,
            client_msg_id: self.client_msg_id.clone(),
            deleted: self.deleted,
        }
    }
}

/// Why a text was refused; each maps to its own error code at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text must not be empty")]
    Empty,
    #[error("text is longer than {0} characters")]
    TooLong(usize),
    #[error("text must not contain control characters other than newline and tab")]
    ControlCharacter,
}

/// Checks a text as typed. It is stored exactly as given: the engine never interprets it as HTML.
pub fn validate_text(text: &str, max_chars: usize, has_attachments: bool) -> Result<(), TextError> {
    if text.trim().is_empty() && !has_attachments {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(TextError::ControlCharacter);
    }
    Ok(())
}

/// The longest `client_msg_id` accepted.
pub const MAX_CLIENT_MSG_ID: usize = 128;

/// A `client_msg_id` is 1 to 128 bytes; it names a message for retries.
pub fn client_msg_id_ok(c: Option<&str>) -> bool {
    c.is_none_or(|c| !c.is_empty() && c.len() <= MAX_CLIENT_MSG_ID)
}

/// The first 100 characters, for conversation lists.
pub fn preview(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(validate_text("", 10, false), Err(TextError::Empty));
        assert_eq!(validate_text("  \n", 10, false), Err(TextError::Empty));
        assert_eq!(validate_text("", 10, true), Ok(()));
        assert_eq!(validate_text("héllo", 5, false), Ok(()));
        assert_eq!(
            validate_text("héllo!", 5, false),
            Err(TextError::TooLong(5))
        );
        assert_eq!(
            validate_text("a\u{7}b", 5, false),
            Err(TextError::ControlCharacter)
        );
        assert_eq!(validate_text("a\nb\tc", 5, false), Ok(()));
        assert_eq!(validate_text("<b>x</b>", 50, false), Ok(()));
    }

    #[test]
    fn preview_is_at_most_100_characters() {
        assert_eq!(preview(&"é".repeat(150)).chars().count(), 100);
        assert_eq!(preview("short"), "short");
    }

    #[test]
    fn status_only_orders_forward() {
        assert!(Status::Sent < Status::Delivered && Status::Delivered < Status::Read);
    }
}
