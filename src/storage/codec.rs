//! How both stores write a record's value: MessagePack with field names, so a field added to a
//! domain type reads back from values written before it (with `#[serde(default)]`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{StoreError, StoreResult};

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain structs to MessagePack cannot fail (no maps with non-string
    // keys, no custom serializers that error); an empty value would surface as Corrupt on read.
    rmp_serde::to_vec_named(v).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
