//! The WebSocket's two formats say the same thing: a server event is the same document in JSON
//! and MessagePack, and a client frame written as API.md describes it (ids as strings or numbers,
//! optional fields absent or `null`) decodes to the same `ClientFrame` in both.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use switchboard::domain::conversation::Side;
use switchboard::domain::events::{ClientFrame, ServerEvent};
use switchboard::wire::{self, WireFormat};

use super::{conversation_doc, edge_i64, edge_u64, external_id, id, status, stored_message, text};

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Customer), Just(Side::Provider)]
}

fn reference() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn server_event() -> impl Strategy<Value = ServerEvent> {
    let code = prop::sample::select(vec![
        "internal",
        "rate_limited",
        "invalid_frame",
        "message_rejected",
    ]);
    prop_oneof![
        (external_id(), id()).prop_map(|(user_id, session_id)| ServerEvent::Ready {
            user_id,
            session_id
        }),
        (reference(), stored_message(), status()).prop_map(|(reference, m, s)| {
            ServerEvent::Ack {
                reference,
                message: m.view(s),
            }
        }),
        (stored_message(), status())
            .prop_map(|(m, s)| ServerEvent::ChatMessage { message: m.view(s) }),
        (id(), external_id(), any::<bool>()).prop_map(|(conversation_id, user_id, is_typing)| {
            ServerEvent::TypingStatus {
                conversation_id,
                user_id,
                is_typing,
            }
        }),
        (id(), external_id(), status(), id(), edge_u64()).prop_map(
            |(conversation_id, user_id, status, up_to, up_to_seq)| ServerEvent::Receipt {
                conversation_id,
                user_id,
                status,
                up_to,
                up_to_seq,
            }
        ),
        (id(), edge_u64(), edge_u64()).prop_map(|(conversation_id, unread_count, total_unread)| {
            ServerEvent::Unread {
                conversation_id,
                unread_count,
                total_unread,
            }
        }),
        (external_id(), any::<bool>(), prop::option::of(edge_i64())).prop_map(
            |(user_id, online, last_seen_at)| ServerEvent::Presence {
                user_id,
                online,
                last_seen_at,
            }
        ),
        (conversation_doc(), side()).prop_map(|(c, s)| ServerEvent::Conversation {
            conversation: c.view(s)
        }),
        (id(), id()).prop_map(
            |(conversation_id, message_id)| ServerEvent::MessageDeleted {
                conversation_id,
                message_id,
            }
        ),
        (id(), edge_u64(), reference()).prop_map(|(conversation_id, last_seq, reference)| {
            ServerEvent::Synced {
                conversation_id,
                last_seq,
                reference,
            }
        }),
        reference().prop_map(|reference| ServerEvent::Pong { reference }),
        (code, text(), reference(), prop::option::of(edge_u64())).prop_map(
            |(code, message, reference, retry_after)| ServerEvent::Error {
                code,
                message,
                reference,
                retry_after,
            }
        ),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        text().prop_map(|token| ClientFrame::Auth { token }),
        (
            id(),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::collection::vec(id(), 0..4),
            reference(),
        )
            .prop_map(
                |(conversation_id, text, client_msg_id, attachment_ids, reference)| {
                    ClientFrame::ChatMessage {
                        conversation_id,
                        text,
                        client_msg_id,
                        attachment_ids,
                        reference,
                    }
                }
            ),
        (id(), any::<bool>()).prop_map(|(conversation_id, is_typing)| {
            ClientFrame::TypingStatus {
                conversation_id,
                is_typing,
            }
        }),
        (id(), prop::option::of(id()), reference()).prop_map(
            |(conversation_id, up_to, reference)| ClientFrame::MarkRead {
                conversation_id,
                up_to,
                reference,
            }
        ),
        (id(), id(), reference()).prop_map(|(conversation_id, up_to, reference)| {
            ClientFrame::Delivered {
                conversation_id,
                up_to,
                reference,
            }
        }),
        (id(), edge_i64(), reference()).prop_map(|(conversation_id, after_seq, reference)| {
            ClientFrame::Sync {
                conversation_id,
                after_seq,
                reference,
            }
        }),
        reference().prop_map(|reference| ClientFrame::Ping { reference }),
    ]
}

/// Writes a client frame the way a client following API.md might: each id as a string or a
/// number, each unset optional field absent or `null`, as `choices` (one bit per decision) say.
struct Writer {
    choices: u64,
    fields: Map<String, Value>,
}

impl Writer {
    fn choose(&mut self) -> bool {
        let c = self.choices & 1 == 1;
        self.choices = self.choices.rotate_right(1);
        c
    }

    fn id(&mut self, key: &str, v: switchboard::domain::Id) {
        let v = self.id_value(v);
        self.fields.insert(key.into(), v);
    }

    fn id_value(&mut self, v: switchboard::domain::Id) -> Value {
        if self.choose() {
            json!(v.0)
        } else {
            json!(v.to_string())
        }
    }

    fn optional(&mut self, key: &str, v: Option<Value>) {
        match v {
            Some(v) => {
                self.fields.insert(key.into(), v);
            }
            None if self.choose() => {
                self.fields.insert(key.into(), Value::Null);
            }
            None => {}
        }
    }

    fn write(choices: u64, frame: &ClientFrame) -> Value {
        let mut w = Writer {
            choices,
            fields: Map::new(),
        };
        let (kind, reference) = match frame {
            ClientFrame::Auth { token } => {
                w.fields.insert("token".into(), json!(token));
                ("auth", None)
            }
            ClientFrame::ChatMessage {
                conversation_id,
                text,
                client_msg_id,
                attachment_ids,
                reference,
            } => {
                w.id("conversation_id", *conversation_id);
                w.optional("text", text.as_ref().map(|t| json!(t)));
                w.optional("client_msg_id", client_msg_id.as_ref().map(|c| json!(c)));
                if !attachment_ids.is_empty() || w.choose() {
                    let ids = attachment_ids.iter().map(|a| w.id_value(*a)).collect();
                    w.fields.insert("attachment_ids".into(), Value::Array(ids));
                }
                ("chat_message", Some(reference))
            }
            ClientFrame::TypingStatus {
                conversation_id,
                is_typing,
            } => {
                w.id("conversation_id", *conversation_id);
                w.fields.insert("is_typing".into(), json!(is_typing));
                ("typing_status", None)
            }
            ClientFrame::MarkRead {
                conversation_id,
                up_to,
                reference,
            } => {
                w.id("conversation_id", *conversation_id);
                let up_to = up_to.map(|u| w.id_value(u));
                w.optional("up_to", up_to);
                ("mark_read", Some(reference))
            }
            ClientFrame::Delivered {
                conversation_id,
                up_to,
                reference,
            } => {
                w.id("conversation_id", *conversation_id);
                w.id("up_to", *up_to);
                ("delivered", Some(reference))
            }
            ClientFrame::Sync {
                conversation_id,
                after_seq,
                reference,
            } => {
                w.id("conversation_id", *conversation_id);
                w.fields.insert("after_seq".into(), json!(after_seq));
                ("sync", Some(reference))
            }
            ClientFrame::Ping { reference } => ("ping", Some(reference)),
        };
        w.fields.insert("type".into(), json!(kind));
        if let Some(r) = reference {
            w.optional("ref", r.as_ref().map(|r| json!(r)));
        }
        Value::Object(w.fields)
    }
}

proptest! {
    #[test]
    fn server_events_read_the_same_in_both_formats(event in server_event()) {
        let json: Value = serde_json::from_slice(&wire::encode(WireFormat::Json, &event))
            .expect("wire::encode writes JSON");
        let msgpack: Value = rmp_serde::from_slice(&wire::encode(WireFormat::MessagePack, &event))
            .expect("wire::encode writes MessagePack");
        prop_assert_eq!(&json, &msgpack);
        // Not the fallback `internal` error that replaces an event that failed to encode.
        let kind = serde_json::to_value(&event).unwrap()["type"].clone();
        prop_assert_eq!(&json["type"], &kind);
        prop_assert!(json.get("message").is_none_or(|m| !m.is_null()));
    }

    #[test]
    fn client_frames_decode_the_same_in_both_formats(frame in client_frame(), choices in any::<u64>()) {
        let doc = Writer::write(choices, &frame);
        let as_json = serde_json::to_vec(&doc).unwrap();
        let as_msgpack = rmp_serde::to_vec_named(&doc).unwrap();
        prop_assert_eq!(wire::decode(WireFormat::Json, &as_json), Ok(frame.clone()), "JSON {}", doc);
        prop_assert_eq!(wire::decode(WireFormat::MessagePack, &as_msgpack), Ok(frame), "MessagePack of {}", doc);
    }
}
