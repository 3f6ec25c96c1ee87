//! How both stores write a record's value: MessagePack with field names, so a field added to a
//! domain type reads back from values written before it (with `#[serde(default)]`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{StoreError, StoreResult};

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain structs to MessagePack cannot fail (no maps with non-string
    // keys, no custom serializers that error); an empty value would surface as Corrupt on read.
    // Sized for a conversation record or a chat message up front: grown from empty, the buffer
    // was reallocated six or seven times per value (realloc was ~5% of the instructions per
    // message, load-tests/instructions.sh).
    let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
    match rmp_serde::encode::write_named(&mut buf, v) {
        Ok(()) => buf,
        Err(_) => Vec::new(),
    }
}

/// The starting size of an encoded value's buffer: most records and messages fit.
const ENCODE_CAPACITY: usize = 384;

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Bytes as lowercase hex: how opaque positions (scan cursors) travel as text.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of `hex`, or `None` for anything it could not have written.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let raw = vec![0u8, 7, 0xab, 255];
        assert_eq!(unhex(&hex(&raw)), Some(raw));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
