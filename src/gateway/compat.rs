//! The compatibility socket, `/ws/chat/{conversation_id}/`: one conversation, in the shape the
//! marketplace's existing `useWebSocket` hook speaks, so that frontend works unchanged while it
//! moves to `/ws`.
//!
//! In: `{"type":"chat_message","message":"text"}` and `{"type":"typing_status","is_typing":bool}`,
//! plus `auth` (first frame, or a token refresh) and `ping` as on `/ws`.
//! Out: `{"type":"chat_message","message":{"id","text","sender_id","sender_name","created_at",
//! "message_type"}}` for every message of the conversation, the sender's own included (the old
//! hook shows what it sent when it comes back), plus typing and error events as on `/ws`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::clock::rfc3339;
use crate::domain::events::{ClientFrame, ServerEvent};
use crate::domain::message::{Message, MessageType};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::wire::{self, FrameError, WireFormat};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum CompatFrame {
    ChatMessage {
        message: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    TypingStatus {
        is_typing: bool,
    },
    Auth {
        token: String,
    },
    Ping {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
}

/// Reads a frame of the old hook as the `/ws` frame it stands for.
pub fn decode(conversation: Id, bytes: &[u8]) -> Result<ClientFrame, FrameError> {
    match serde_json::from_slice::<CompatFrame>(bytes) {
        Ok(CompatFrame::ChatMessage {
            message,
            client_msg_id,
        }) => Ok(ClientFrame::ChatMessage {
            conversation_id: conversation,
            text: Some(message),
            client_msg_id,
            attachment_ids: Vec::new(),
            reference: None,
        }),
        Ok(CompatFrame::TypingStatus { is_typing }) => Ok(ClientFrame::TypingStatus {
            conversation_id: conversation,
            is_typing,
        }),
        Ok(CompatFrame::Auth { token }) => Ok(ClientFrame::Auth { token }),
        Ok(CompatFrame::Ping { reference }) => Ok(ClientFrame::Ping { reference }),
        Err(e) => {
            let base = wire::decode(WireFormat::Json, bytes).err();
            Err(match base {
                Some(fe) if fe.code != "invalid_frame" => fe,
                _ => FrameError {
                    code: "invalid_frame",
                    message: format!(
                        "expected chat_message with a `message` text or typing_status: {e}"
                    ),
                    reference: None,
                },
            })
        }
    }
}

#[derive(Serialize)]
struct CompatMessage<'a> {
    id: Id,
    text: &'a str,
    sender_id: &'a ExternalId,
    sender_name: &'a str,
    #[serde(serialize_with = "rfc3339::serialize")]
    created_at: i64,
    message_type: MessageType,
}

#[derive(Serialize)]
struct CompatChat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: CompatMessage<'a>,
}

fn chat(m: &Message) -> Bytes {
    wire::encode(
        WireFormat::Json,
        &CompatChat {
            kind: "chat_message",
            message: CompatMessage {
                id: m.id,
                text: &m.text,
                sender_id: &m.sender_id,
                sender_name: &m.sender_name,
                created_at: m.created_at,
                message_type: m.message_type,
            },
        },
    )
}

/// What the old hook gets for an event, if anything: only this conversation's messages and
/// typing, plus errors and pongs.
pub fn encode(conversation: Id, event: &ServerEvent) -> Option<Bytes> {
    match event {
        ServerEvent::ChatMessage { message } | ServerEvent::Ack { message, .. } => {
            (message.conversation_id == conversation).then(|| chat(message))
        }
        ServerEvent::TypingStatus {
            conversation_id, ..
        } if *conversation_id == conversation => Some(wire::encode(WireFormat::Json, event)),
        ServerEvent::Error { .. } | ServerEvent::Pong { .. } | ServerEvent::Ready { .. } => {
            Some(wire::encode(WireFormat::Json, event))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_hook_frames_become_ws_frames() {
        let f = decode(Id(9), br#"{"type":"chat_message","message":"hello"}"#).unwrap();
        assert!(
            matches!(f, ClientFrame::ChatMessage { conversation_id: Id(9), text: Some(t), .. } if t == "hello")
        );
        let f = decode(Id(9), br#"{"type":"typing_status","is_typing":true}"#).unwrap();
        assert!(matches!(
            f,
            ClientFrame::TypingStatus {
                conversation_id: Id(9),
                is_typing: true
            }
        ));
        let f = decode(Id(9), br#"{"type":"auth","token":"t"}"#).unwrap();
        assert!(matches!(f, ClientFrame::Auth { token } if token == "t"));
        assert_eq!(decode(Id(9), b"nope").unwrap_err().code, "malformed_frame");
        assert_eq!(
            decode(Id(9), br#"{"type":"chat_message"}"#)
                .unwrap_err()
                .code,
            "invalid_frame"
        );
    }
}
