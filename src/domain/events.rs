//! The WebSocket vocabulary: frames clients send and events the server pushes.
//!
//! One set of serde types serves both wire formats: JSON in text frames and MessagePack (with
//! field names) in binary frames, so the two can never drift apart.

use serde::{Deserialize, Serialize};

use super::clock::rfc3339;
use super::conversation::Conversation;
use super::ids::Id;
use super::message::{Message, Status};
use super::user::ExternalId;

/// A frame from a client. `PartialEq` so tests and fuzz targets can tell that both wire formats
/// decode a frame to the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    ChatMessage {
        conversation_id: Id,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        #[schema(min_length = 1, max_length = 128)]
        client_msg_id: Option<String>,
        #[serde(default)]
        attachment_ids: Vec<Id>,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    TypingStatus {
        conversation_id: Id,
        is_typing: bool,
    },
    MarkRead {
        conversation_id: Id,
        #[serde(default)]
        up_to: Option<Id>,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    Delivered {
        conversation_id: Id,
        up_to: Id,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    Sync {
        conversation_id: Id,
        after_seq: i64,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    Ping {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
}

/// Just enough of a frame that failed to decode to answer it well: its `ref` and `type`.
#[derive(Debug, Default, Deserialize)]
pub struct FrameHeader {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
}

/// The frame types a client may send, for error messages.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "auth",
    "chat_message",
    "typing_status",
    "mark_read",
    "delivered",
    "sync",
    "ping",
];

/// An event for a client.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    Ready {
        user_id: ExternalId,
        session_id: Id,
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        message: Message,
    },
    ChatMessage {
        message: Message,
    },
    TypingStatus {
        conversation_id: Id,
        user_id: ExternalId,
        is_typing: bool,
    },
    Receipt {
        conversation_id: Id,
        user_id: ExternalId,
        status: Status,
        up_to: Id,
        up_to_seq: u64,
    },
    Unread {
        conversation_id: Id,
        unread_count: u64,
        total_unread: u64,
    },
    Presence {
        user_id: ExternalId,
        online: bool,
        #[serde(serialize_with = "rfc3339::option::serialize")]
        #[schema(value_type = Option<String>, format = DateTime)]
        last_seen_at: Option<i64>,
    },
    Conversation {
        conversation: Conversation,
    },
    MessageDeleted {
        conversation_id: Id,
        message_id: Id,
    },
    Synced {
        conversation_id: Id,
        last_seq: u64,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_message_frame_accepts_numeric_and_string_ids() {
        let a: ClientFrame = serde_json::from_str(
            r#"{"type":"chat_message","conversation_id":"12","text":"hi","ref":"r1"}"#,
        )
        .unwrap();
        let b: ClientFrame =
            serde_json::from_str(r#"{"type":"chat_message","conversation_id":12,"text":"hi"}"#)
                .unwrap();
        match (a, b) {
            (
                ClientFrame::ChatMessage {
                    conversation_id: x,
                    reference: Some(r),
                    ..
                },
                ClientFrame::ChatMessage {
                    conversation_id: y,
                    reference: None,
                    ..
                },
            ) => {
                assert_eq!(x, y);
                assert_eq!(r, "r1");
            }
            other => panic!("unexpected frames: {other:?}"),
        }
    }

    #[test]
    fn pong_echoes_ref_only_when_given() {
        let with = serde_json::to_string(&ServerEvent::Pong {
            reference: Some("x".into()),
        })
        .unwrap();
        assert_eq!(with, r#"{"type":"pong","ref":"x"}"#);
        let without = serde_json::to_string(&ServerEvent::Pong { reference: None }).unwrap();
        assert_eq!(without, r#"{"type":"pong"}"#);
    }
}
