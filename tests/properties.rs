//! Property tests: the storage codec round-trips every record, both WebSocket formats say the same
//! thing, and ids and store keys sort the way paging and range scans assume.
//!
//! Values are arbitrary where the type allows it (any Unicode text, control characters included,
//! empty and absent optional fields, the extremes of every integer); ids are only as free as
//! `ExternalId::parse` lets them be. 256 cases per property (proptest's default), so the file runs
//! in seconds; `PROPTEST_CASES=10000 cargo test --test properties` searches harder.

#[path = "properties/codec.rs"]
mod codec;
#[path = "properties/ids.rs"]
mod ids;
#[path = "properties/wire.rs"]
mod wire;

use proptest::prelude::*;
use switchboard::domain::conversation::{
    ConversationDoc, ConversationRecord, ConversationState, ParticipantState,
};
use switchboard::domain::message::{Attachment, MessageType, Status, StoredMessage};
use switchboard::domain::user::{ExternalId, MAX_EXTERNAL_ID_LEN};
use switchboard::domain::Id;

/// Any `i64`, with its extremes and the values around zero drawn often.
pub fn edge_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => any::<i64>(),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => -1i64..=1,
    ]
}

/// Any `u64`, with its extremes drawn often.
pub fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => Just(i64::MAX as u64 + 1),
        1 => 0u64..=1,
    ]
}

pub fn id() -> impl Strategy<Value = Id> {
    edge_u64().prop_map(Id)
}

/// Any text at all: empty, astral-plane characters, control characters, `\0`.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => "(?s).{0,40}",
        1 => "[\\u{10000}-\\u{10FFFF}]{1,8}",
    ]
}

/// Any id `ExternalId::parse` accepts: 1 to 64 characters, none of them control characters.
/// Short ids from a two-letter alphabet are drawn often, so two draws are sometimes equal.
pub fn external_id() -> impl Strategy<Value = ExternalId> {
    let any_valid = format!("[^\\p{{Cc}}]{{1,{MAX_EXTERNAL_ID_LEN}}}");
    let any_valid = proptest::string::string_regex(&any_valid).expect("a valid regex");
    prop_oneof![
        1 => "[ab]{1,2}".boxed(),
        1 => "[0-9]{1,20}".boxed(),
        2 => any_valid.boxed(),
    ]
    .prop_map(|s| ExternalId::parse(&s).expect("the strategy only writes valid ids"))
}

pub fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Text),
        Just(MessageType::Image),
        Just(MessageType::File),
        Just(MessageType::System),
    ]
}

pub fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Sent),
        Just(Status::Delivered),
        Just(Status::Read)
    ]
}

pub fn attachment() -> impl Strategy<Value = Attachment> {
    (id(), text(), text(), edge_u64(), text()).prop_map(
        |(id, filename, content_type, size, url)| Attachment {
            id,
            filename,
            content_type,
            size,
            url,
        },
    )
}

pub fn stored_message() -> impl Strategy<Value = StoredMessage> {
    (
        (
            id(),
            id(),
            edge_u64(),
            external_id(),
            text(),
            message_type(),
        ),
        text(),
        prop::collection::vec(attachment(), 0..3),
        edge_i64(),
        prop::option::of(text()),
        any::<bool>(),
    )
        .prop_map(
            |(
                (id, conversation_id, seq, sender_id, sender_name, message_type),
                text,
                attachments,
                created_at,
                client_msg_id,
                deleted,
            )| StoredMessage {
                id,
                conversation_id,
                seq,
                sender_id,
                sender_name,
                message_type,
                text,
                attachments,
                created_at,
                client_msg_id,
                deleted,
            },
        )
}

fn participant() -> impl Strategy<Value = ParticipantState> {
    (
        edge_u64(),
        edge_u64(),
        prop::option::of(id()),
        edge_u64(),
        any::<bool>(),
    )
        .prop_map(
            |(unread, read_seq, read_message_id, delivered_seq, archived)| ParticipantState {
                unread,
                read_seq,
                read_message_id,
                delivered_seq,
                archived,
            },
        )
}

pub fn conversation_doc() -> impl Strategy<Value = ConversationDoc> {
    let record = (
        id(),
        (external_id(), text()),
        (external_id(), text()),
        (external_id(), text()),
        edge_i64(),
    )
        .prop_map(
            |(
                id,
                (service_id, service_title),
                (provider_id, provider_name),
                (customer_id, customer_name),
                created_at,
            )| {
                ConversationRecord {
                    id,
                    service_id,
                    service_title,
                    provider_id,
                    provider_name,
                    customer_id,
                    customer_name,
                    created_at,
                }
            },
        );
    let state = (
        edge_u64(),
        prop::option::of(id()),
        prop::option::of(edge_i64()),
        text(),
        edge_i64(),
        participant(),
        participant(),
    )
        .prop_map(
            |(
                last_seq,
                last_message_id,
                last_message_at,
                preview,
                activity_ms,
                customer,
                provider,
            )| {
                ConversationState {
                    last_seq,
                    last_message_id,
                    last_message_at,
                    preview,
                    activity_ms,
                    customer,
                    provider,
                    awaiting_reply_since: last_message_at,
                }
            },
        );
    (record, state).prop_map(|(record, state)| ConversationDoc { record, state })
}
