//! What the fuzz targets check, shared so that a target is one file in `fuzz_targets/` that hands
//! its input to one function here.
//!
//! Every check panics on a violation: under libFuzzer a panic is a crash, saved to
//! `artifacts/<target>/` with the input that caused it.

use serde_json::{json, Map, Value};
use switchboard::domain::events::{ClientFrame, ServerEvent};
use switchboard::domain::message::{Attachment, MessageType, Status, StoredMessage};
use switchboard::domain::user::ExternalId;
use switchboard::domain::Id;
use switchboard::wire::{self, FrameError, WireFormat};

/// The codes `wire::decode` may answer with; anything else would reach clients undocumented.
const DECODE_ERROR_CODES: &[&str] = &["malformed_frame", "invalid_frame", "unknown_type"];

/// Decodes `data` as a client frame in `format`, as the socket does, and checks what came out:
/// a refusal is well formed and can be answered; an accepted frame means the same thing in both
/// formats and its answers encode the same in both.
pub fn check_frame(format: WireFormat, data: &[u8]) {
    match wire::decode(format, data) {
        Err(e) => check_refusal(&e),
        Ok(frame) => {
            check_contract_round_trip(&frame);
            check_other_format(format, data, &frame);
            for event in answers(&frame) {
                check_event(&event, frame_reference(&frame));
            }
        }
    }
}

fn check_refusal(e: &FrameError) {
    assert!(
        DECODE_ERROR_CODES.contains(&e.code),
        "undocumented error code {:?}",
        e.code
    );
    assert!(
        !e.message.is_empty(),
        "error {:?} without a message",
        e.code
    );
    if e.code == "malformed_frame" {
        assert_eq!(
            e.reference, None,
            "a frame that did not parse has no readable ref"
        );
    }
    let event = ServerEvent::Error {
        code: e.code,
        message: e.message.clone(),
        reference: e.reference.clone(),
        retry_after: None,
    };
    let json = check_event(&event, e.reference.as_deref());
    assert_eq!(json["type"], "error");
    assert_eq!(json["code"], e.code);
    assert_eq!(json["message"], e.message.as_str());
}

/// The frame written the way API.md describes it, ids once as strings and once as JSON numbers,
/// in both formats, decodes to the same frame.
fn check_contract_round_trip(frame: &ClientFrame) {
    for numeric_ids in [false, true] {
        let value = contract(frame, numeric_ids);
        let as_json = serde_json::to_vec(&value).expect("a JSON value always serializes");
        let as_msgpack = rmp_serde::to_vec_named(&value).expect("a JSON value always serializes");
        for (format, bytes) in [
            (WireFormat::Json, as_json),
            (WireFormat::MessagePack, as_msgpack),
        ] {
            let back = wire::decode(format, &bytes);
            assert_eq!(
                back.as_ref(),
                Ok(frame),
                "{format:?} of {value} (numeric ids: {numeric_ids}) decodes differently"
            );
        }
    }
}

/// The same document in the other format decodes to the same frame: the two formats read the
/// same (wire.rs). Only for inputs that are plain JSON documents (no MessagePack binary or
/// extension values, string keys only), where "the same document" has a meaning.
fn check_other_format(format: WireFormat, data: &[u8], frame: &ClientFrame) {
    let (other, bytes) = match format {
        WireFormat::Json => {
            let Ok(v) = serde_json::from_slice::<Value>(data) else {
                return;
            };
            (WireFormat::MessagePack, rmp_serde::to_vec_named(&v).ok())
        }
        WireFormat::MessagePack => {
            let Ok(v) = rmp_serde::from_slice::<Value>(data) else {
                return;
            };
            (WireFormat::Json, serde_json::to_vec(&v).ok())
        }
    };
    let Some(bytes) = bytes else {
        return;
    };
    assert_eq!(
        wire::decode(other, &bytes).as_ref(),
        Ok(frame),
        "the same document as {other:?} decodes differently"
    );
}

fn id(v: Id, numeric: bool) -> Value {
    if numeric {
        json!(v.0)
    } else {
        json!(v.to_string())
    }
}

/// A client frame as API.md's WebSocket table spells it; optional fields absent when unset.
pub fn contract(frame: &ClientFrame, numeric_ids: bool) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    let (kind, reference) = match frame {
        ClientFrame::Auth { token } => {
            put("token", json!(token));
            ("auth", None)
        }
        ClientFrame::ChatMessage {
            conversation_id,
            text,
            client_msg_id,
            attachment_ids,
            reference,
        } => {
            put("conversation_id", id(*conversation_id, numeric_ids));
            if let Some(t) = text {
                put("text", json!(t));
            }
            if let Some(c) = client_msg_id {
                put("client_msg_id", json!(c));
            }
            if !attachment_ids.is_empty() {
                let ids = attachment_ids.iter().map(|a| id(*a, numeric_ids)).collect();
                put("attachment_ids", Value::Array(ids));
            }
            ("chat_message", reference.as_ref())
        }
        ClientFrame::TypingStatus {
            conversation_id,
            is_typing,
        } => {
            put("conversation_id", id(*conversation_id, numeric_ids));
            put("is_typing", json!(is_typing));
            ("typing_status", None)
        }
        ClientFrame::MarkRead {
            conversation_id,
            up_to,
            reference,
        } => {
            put("conversation_id", id(*conversation_id, numeric_ids));
            if let Some(u) = up_to {
                put("up_to", id(*u, numeric_ids));
            }
            ("mark_read", reference.as_ref())
        }
        ClientFrame::Delivered {
            conversation_id,
            up_to,
            reference,
        } => {
            put("conversation_id", id(*conversation_id, numeric_ids));
            put("up_to", id(*up_to, numeric_ids));
            ("delivered", reference.as_ref())
        }
        ClientFrame::Sync {
            conversation_id,
            after_seq,
            reference,
        } => {
            put("conversation_id", id(*conversation_id, numeric_ids));
            put("after_seq", json!(after_seq));
            ("sync", reference.as_ref())
        }
        ClientFrame::Ping { reference } => ("ping", reference.as_ref()),
    };
    put("type", json!(kind));
    if let Some(r) = reference {
        put("ref", json!(r));
    }
    Value::Object(m)
}

fn frame_reference(frame: &ClientFrame) -> Option<&str> {
    match frame {
        ClientFrame::ChatMessage { reference, .. }
        | ClientFrame::MarkRead { reference, .. }
        | ClientFrame::Delivered { reference, .. }
        | ClientFrame::Sync { reference, .. }
        | ClientFrame::Ping { reference } => reference.as_deref(),
        ClientFrame::Auth { .. } | ClientFrame::TypingStatus { .. } => None,
    }
}

/// Events the server could send in reply, filled from the frame's own (fuzzed) values, so text,
/// ids, extreme sequence numbers and times all pass through the event encoders.
fn answers(frame: &ClientFrame) -> Vec<ServerEvent> {
    let user = ExternalId::parse("fuzz-user").expect("a valid constant id");
    match frame {
        ClientFrame::Auth { token } => vec![ServerEvent::Error {
            code: "invalid_token",
            message: format!("token {token:?} refused"),
            reference: None,
            retry_after: Some(u64::MAX),
        }],
        ClientFrame::ChatMessage {
            conversation_id,
            text,
            client_msg_id,
            attachment_ids,
            reference,
        } => {
            let stored = StoredMessage {
                id: *conversation_id,
                conversation_id: *conversation_id,
                seq: conversation_id.0,
                sender_id: user,
                sender_name: text.clone().unwrap_or_default(),
                message_type: MessageType::Text,
                text: text.clone().unwrap_or_default(),
                attachments: attachment_ids
                    .iter()
                    .map(|a| Attachment {
                        id: *a,
                        filename: client_msg_id.clone().unwrap_or_default(),
                        content_type: "image/png".into(),
                        size: a.0,
                        url: format!("/api/v1/attachments/{a}"),
                    })
                    .collect(),
                created_at: conversation_id.unix_ms(),
                client_msg_id: client_msg_id.clone(),
                deleted: false,
            };
            vec![
                ServerEvent::Ack {
                    reference: reference.clone(),
                    message: stored.view(Status::Sent),
                },
                ServerEvent::ChatMessage {
                    message: stored.view(Status::Read),
                },
            ]
        }
        ClientFrame::TypingStatus {
            conversation_id,
            is_typing,
        } => vec![ServerEvent::TypingStatus {
            conversation_id: *conversation_id,
            user_id: user,
            is_typing: *is_typing,
        }],
        ClientFrame::MarkRead {
            conversation_id,
            up_to,
            ..
        } => vec![ServerEvent::Unread {
            conversation_id: *conversation_id,
            unread_count: up_to.map_or(0, |u| u.0),
            total_unread: u64::MAX,
        }],
        ClientFrame::Delivered {
            conversation_id,
            up_to,
            ..
        } => vec![ServerEvent::Receipt {
            conversation_id: *conversation_id,
            user_id: user,
            status: Status::Delivered,
            up_to: *up_to,
            up_to_seq: up_to.0,
        }],
        ClientFrame::Sync {
            conversation_id,
            after_seq,
            reference,
        } => vec![
            ServerEvent::Synced {
                conversation_id: *conversation_id,
                last_seq: after_seq.unsigned_abs(),
                reference: reference.clone(),
            },
            ServerEvent::Presence {
                user_id: user,
                online: false,
                last_seen_at: Some(*after_seq),
            },
        ],
        ClientFrame::Ping { reference } => vec![ServerEvent::Pong {
            reference: reference.clone(),
        }],
    }
}

/// Encodes an event in both formats; both read back as the same document, which echoes `ref`
/// exactly when the client sent one. Returns the document.
fn check_event(event: &ServerEvent, reference: Option<&str>) -> Value {
    let json: Value = serde_json::from_slice(&wire::encode(WireFormat::Json, event))
        .expect("wire::encode writes valid JSON");
    let msgpack: Value = rmp_serde::from_slice(&wire::encode(WireFormat::MessagePack, event))
        .expect("wire::encode writes valid MessagePack");
    assert_eq!(json, msgpack, "the two formats of {event:?} differ");
    let echoed = json.get("ref");
    match (event, reference) {
        // Only the answers that carry the frame's ref (API.md) are held to echoing it.
        (
            ServerEvent::Ack { .. }
            | ServerEvent::Synced { .. }
            | ServerEvent::Pong { .. }
            | ServerEvent::Error { .. },
            Some(r),
        ) => assert_eq!(echoed, Some(&json!(r)), "ref not echoed by {json}"),
        (_, None) => assert_eq!(echoed, None, "ref present without one sent: {json}"),
        _ => {}
    }
    json
}
