//! The storage codec (`storage::codec`, MessagePack with field names) reads back every record
//! exactly as written, whatever its fields hold.

use proptest::prelude::*;
use switchboard::domain::user::{Role, Service, UserProfile};
use switchboard::storage::codec;

use super::{conversation_doc, external_id, stored_message, text};

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Customer),
        Just(Role::Provider),
        Just(Role::Admin)
    ]
}

fn service() -> impl Strategy<Value = Service> {
    (
        external_id(),
        external_id(),
        text(),
        prop::option::of(text()),
        prop::option::of("\\+?[0-9]{0,15}"),
        prop::option::of(prop::collection::vec(text(), 0..4)),
    )
        .prop_map(
            |(id, provider_id, title, provider_name, whatsapp, quick_messages)| Service {
                id,
                provider_id,
                title,
                provider_name,
                whatsapp,
                quick_messages,
            },
        )
}

fn user_profile() -> impl Strategy<Value = UserProfile> {
    (
        external_id(),
        text(),
        prop::option::of(text()),
        role(),
        any::<bool>(),
    )
        .prop_map(|(id, name, email, role, notify_email)| UserProfile {
            id,
            name,
            email,
            role,
            notify_email,
        })
}

/// `decode(encode(v)) == v`, with the value in the failure message.
fn round_trips<T>(v: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = codec::encode(v);
    prop_assert!(!bytes.is_empty(), "{v:?} encoded to nothing");
    let back: T = codec::decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, v);
    Ok(())
}

proptest! {
    #[test]
    fn stored_messages_round_trip(m in stored_message()) {
        round_trips(&m)?;
    }

    #[test]
    fn conversation_docs_round_trip(c in conversation_doc()) {
        round_trips(&c)?;
    }

    #[test]
    fn services_round_trip(s in service()) {
        round_trips(&s)?;
    }

    #[test]
    fn user_profiles_round_trip(u in user_profile()) {
        round_trips(&u)?;
    }

    /// Optional fields written as absent (`#[serde(default)]`: records from before the field
    /// existed) read back as their defaults.
    #[test]
    fn stored_messages_without_optional_fields_read_back(m in stored_message()) {
        let mut doc: serde_json::Value = serde_json::to_value(&m).unwrap();
        let fields = doc.as_object_mut().unwrap();
        for f in ["attachments", "client_msg_id", "deleted"] {
            fields.remove(f);
        }
        let back: switchboard::domain::message::StoredMessage =
            codec::decode(&codec::encode(&doc)).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert!(back.attachments.is_empty() && back.client_msg_id.is_none() && !back.deleted);
        prop_assert_eq!((back.id, back.seq, &back.text), (m.id, m.seq, &m.text));
    }
}
