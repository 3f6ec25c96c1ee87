//! Byte layouts of the embedded store's keys. Big-endian integers, so byte order is numeric
//! order and range scans return messages by `seq` and conversations by activity.

use crate::domain::user::ExternalId;
use crate::domain::Id;

/// An external id as a key part: one length byte, then its bytes, so ids of any content (even
/// with separators in them) cannot run into each other.
pub fn push_external(buf: &mut Vec<u8>, id: &ExternalId) {
    let bytes = id.as_str().as_bytes();
    buf.push(bytes.len().min(255) as u8);
    buf.extend_from_slice(&bytes[..bytes.len().min(255)]);
}

pub fn external(id: &ExternalId) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + id.as_str().len());
    push_external(&mut b, id);
    b
}

pub fn id(id: Id) -> [u8; 8] {
    id.0.to_be_bytes()
}

/// (service, provider, customer): the one conversation between them.
pub fn conversation_key(
    service: &ExternalId,
    provider: &ExternalId,
    customer: &ExternalId,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    push_external(&mut b, service);
    push_external(&mut b, provider);
    push_external(&mut b, customer);
    b
}

/// conversation id, seq.
pub fn message(conversation: Id, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&conversation.0.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// sender, client_msg_id.
pub fn dedupe(conversation: Id, sender: &ExternalId, client_msg_id: &str) -> Vec<u8> {
    let mut b = id(conversation).to_vec();
    push_external(&mut b, sender);
    b.extend_from_slice(client_msg_id.as_bytes());
    b
}

/// user, conversation.
pub fn user_and_id(user: &ExternalId, other: Id) -> Vec<u8> {
    let mut b = external(user);
    b.extend_from_slice(&other.0.to_be_bytes());
    b
}

/// The last 8 bytes of a key as an id.
pub fn trailing_id(key: &[u8]) -> Option<Id> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(Id(u64::from_be_bytes(tail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_id_reads_the_last_eight_bytes() {
        let u = ExternalId::parse("u").unwrap();
        assert_eq!(trailing_id(&user_and_id(&u, Id(42))), Some(Id(42)));
        assert_eq!(trailing_id(&[1, 2]), None);
    }

    #[test]
    fn length_prefix_keeps_ids_apart() {
        let a = ExternalId::parse("ab").unwrap();
        let b = ExternalId::parse("a").unwrap();
        let c = ExternalId::parse("bc").unwrap();
        assert_ne!(
            conversation_key(&a, &c, &c),
            conversation_key(&b, &ExternalId::parse("bbc").unwrap(), &c)
        );
    }
}
