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

/// The external id a key starts with (`external`), and the rest of the key.
pub fn external_of(key: &[u8]) -> Option<(ExternalId, &[u8])> {
    let (&n, rest) = key.split_first()?;
    let (id, rest) = rest.split_at_checked(n as usize)?;
    let id = ExternalId::parse(std::str::from_utf8(id).ok()?).ok()?;
    Some((id, rest))
}

/// An item's address (`storage::items`): kind and partition, each behind a length byte, then
/// the key, so a partition's items are one contiguous, key-ordered range.
pub fn item(kind: &str, partition: &str, key: &[u8]) -> Vec<u8> {
    let mut b = item_partition(kind, partition);
    b.extend_from_slice(key);
    b
}

/// The prefix all items of one partition share.
pub fn item_partition(kind: &str, partition: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + kind.len() + partition.len());
    for part in [kind, partition] {
        let bytes = &part.as_bytes()[..part.len().min(255)];
        b.push(bytes.len() as u8);
        b.extend_from_slice(bytes);
    }
    b
}

/// (kind, partition, key) of an item's address.
pub fn item_of(address: &[u8]) -> Option<(&str, &str, &[u8])> {
    let mut rest = address;
    let mut parts = [""; 2];
    for part in &mut parts {
        let (&n, tail) = rest.split_first()?;
        let (bytes, tail) = tail.split_at_checked(n as usize)?;
        *part = std::str::from_utf8(bytes).ok()?;
        rest = tail;
    }
    Some((parts[0], parts[1], rest))
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

/// conversation, sender, client_msg_id.
pub fn dedupe(conversation: Id, sender: &ExternalId, client_msg_id: &str) -> Vec<u8> {
    let mut b = id(conversation).to_vec();
    push_external(&mut b, sender);
    b.extend_from_slice(client_msg_id.as_bytes());
    b
}

/// A time as a key part that sorts in numeric order, negative times included (sign bit flipped).
fn time(at_ms: i64) -> [u8; 8] {
    ((at_ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// user, activity, conversation, newest first: activity and id are stored inverted, so a forward
/// scan of a user's prefix reads their most recent conversation first and a page reads only a page.
/// Ties in activity go to the higher id first.
pub fn activity(user: &ExternalId, at_ms: i64, conversation: Id) -> Vec<u8> {
    activity_under(&external(user), at_ms, conversation)
}

/// `activity` under a user's key part as already encoded (`external`).
pub fn activity_under(user: &[u8], at_ms: i64, conversation: Id) -> Vec<u8> {
    let mut b = Vec::with_capacity(user.len() + 16);
    b.extend_from_slice(user);
    b.extend(time(at_ms).map(|x| !x));
    b.extend(conversation.0.to_be_bytes().map(|x| !x));
    b
}

/// The (activity, conversation) of an `activity` key.
pub fn activity_of(key: &[u8]) -> Option<(i64, Id)> {
    let n = key.len().checked_sub(16)?;
    let at: [u8; 8] = key.get(n..n + 8)?.try_into().ok()?;
    let id: [u8; 8] = key.get(n + 8..)?.try_into().ok()?;
    Some((time_from(at.map(|x| !x)), Id(!u64::from_be_bytes(id))))
}

/// created_at, then the dedupe key: the dedupe entries in the order they expire, so a sweep reads
/// only the expired range.
pub fn dedupe_expiry(created_at: i64, dedupe_key: &[u8]) -> Vec<u8> {
    let mut b = time(created_at).to_vec();
    b.extend_from_slice(dedupe_key);
    b
}

/// The first `dedupe_expiry` key at or after `at_ms`: the end of the range expired before it.
pub fn dedupe_expiry_start(at_ms: i64) -> [u8; 8] {
    time(at_ms)
}

/// The dedupe key inside a `dedupe_expiry` key.
pub fn dedupe_of_expiry(key: &[u8]) -> Option<&[u8]> {
    key.get(8..)
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
    fn activity_keys_sort_newest_first_and_read_back() {
        let u = ExternalId::parse("u").unwrap();
        let mut keys = [
            activity(&u, -5, Id(1)),
            activity(&u, 10, Id(1)),
            activity(&u, 10, Id(2)),
            activity(&u, 3, Id(9)),
        ];
        keys.sort();
        let order: Vec<_> = keys.iter().map(|k| activity_of(k).unwrap()).collect();
        assert_eq!(
            order,
            vec![(10, Id(2)), (10, Id(1)), (3, Id(9)), (-5, Id(1))]
        );
        assert!(keys.iter().all(|k| k.starts_with(&external(&u))));
    }

    #[test]
    fn expiry_keys_sort_by_time() {
        let d = dedupe(Id(1), &ExternalId::parse("s").unwrap(), "c");
        let early = dedupe_expiry(-1, &d);
        let late = dedupe_expiry(5, &d);
        assert!(early < late);
        assert!(late.as_slice() < &dedupe_expiry_start(6)[..]);
        assert!(late.as_slice() >= &dedupe_expiry_start(5)[..]);
        assert_eq!(dedupe_of_expiry(&late), Some(d.as_slice()));
    }

    #[test]
    fn external_ids_read_back_from_keys() {
        let u = ExternalId::parse("user-7").unwrap();
        let key = user_and_id(&u, Id(9));
        let (back, rest) = external_of(&key).unwrap();
        assert_eq!(back, u);
        assert_eq!(rest, &9u64.to_be_bytes());
        assert!(external_of(&[5, b'a']).is_none());
        assert!(external_of(&[]).is_none());
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
