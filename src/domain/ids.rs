//! Time-ordered 64-bit ids (snowflake layout), shared by conversations, messages and sessions.
//!
//! Layout, high to low: 41 bits of milliseconds since [`EPOCH_MS`], 10 bits of node id, 12 bits
//! of sequence within the millisecond. Sorting ids sorts by creation time, which is what lets the
//! API page by id and lets clients order what they receive without a second field.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 2024-01-01T00:00:00Z: 41 bits of milliseconds from here last until 2093.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// A snowflake id. Written in JSON as a decimal string (JavaScript numbers cannot hold 64 bits);
/// a JSON number is accepted on input too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub u64);

impl Id {
    /// Milliseconds since the Unix epoch at which this id was minted.
    pub fn unix_ms(self) -> i64 {
        ((self.0 >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS) as i64
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Id {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse::<u64>().map(Id)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id as a decimal string or a non-negative integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Id, E> {
                u64::try_from(v)
                    .map(Id)
                    .map_err(|_| E::custom("an id cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Id, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("`{v}` is not a valid id")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Mints ids without a lock: the last (millisecond, sequence) pair lives in one atomic word.
pub struct IdGenerator {
    node: u64,
    last: AtomicU64,
}

impl IdGenerator {
    pub fn new(node: u16) -> Self {
        Self {
            node: u64::from(node) & ((1 << NODE_BITS) - 1),
            last: AtomicU64::new(0),
        }
    }

    pub fn next_id(&self) -> Id {
        loop {
            let now = crate::domain::clock::machine_ms().max(EPOCH_MS as i64) as u64 - EPOCH_MS;
            let prev = self.last.load(Ordering::Acquire);
            let prev_ms = prev >> SEQ_BITS;
            // A clock that steps back must not produce a smaller id: keep counting on the last ms.
            let next = if now > prev_ms {
                now << SEQ_BITS
            } else if prev & SEQ_MASK < SEQ_MASK {
                prev + 1
            } else {
                (prev_ms + 1) << SEQ_BITS
            };
            if self
                .last
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let ms = next >> SEQ_BITS;
                let seq = next & SEQ_MASK;
                return Id((ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing_and_carry_their_time() {
        let gen = IdGenerator::new(7);
        let before = crate::domain::clock::machine_ms();
        let mut last = Id(0);
        for _ in 0..20_000 {
            let id = gen.next_id();
            assert!(id > last, "{id} should be greater than {last}");
            last = id;
        }
        assert!(last.unix_ms() >= before);
    }

    #[test]
    fn ids_serialize_as_strings_and_accept_numbers() {
        let id = Id(1234567890123456789);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"1234567890123456789\""
        );
        let a: Id = serde_json::from_str("\"42\"").unwrap();
        let b: Id = serde_json::from_str("42").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<Id>("-1").is_err());
        assert!(serde_json::from_str::<Id>("\"abc\"").is_err());
    }
}
