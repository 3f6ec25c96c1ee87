//! Ids sort by creation time and survive every way they are written; the embedded store's keys
//! sort the way its range scans assume.

use std::collections::HashSet;

use proptest::prelude::*;
use switchboard::domain::clock::now_ms;
use switchboard::domain::ids::IdGenerator;
use switchboard::domain::user::ExternalId;
use switchboard::domain::Id;
use switchboard::storage::keys;

use super::{edge_i64, edge_u64, external_id, id};

/// External ids whose key part is exact. `keys::push_external` keeps only the first 255 bytes of
/// an id, and 64 characters of 4 bytes are 256 (see `long_external_ids_keep_their_own_keys`).
fn keyable_external_id() -> impl Strategy<Value = ExternalId> {
    external_id().prop_filter("at most 255 bytes", |u| u.as_str().len() <= 255)
}

proptest! {
    #[test]
    fn generated_ids_increase_and_carry_their_time(node in any::<u16>(), n in 1usize..2000) {
        let generator = IdGenerator::new(node);
        let before = now_ms();
        let ids: Vec<Id> = (0..n).map(|_| generator.next_id()).collect();
        let after = now_ms();
        for pair in ids.windows(2) {
            prop_assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for i in &ids {
            prop_assert!((before..=after).contains(&i.unix_ms()), "{i} minted at {}", i.unix_ms());
        }
    }

    /// Ids from two nodes, minted interleaved: sorting them by id sorts them by creation time.
    #[test]
    fn ids_of_different_nodes_sort_by_time((a, b) in (0u16..1024, 0u16..1024).prop_filter("two nodes", |(a, b)| a != b), order in prop::collection::vec(any::<bool>(), 1..500)) {
        let (ga, gb) = (IdGenerator::new(a), IdGenerator::new(b));
        let mut ids: Vec<Id> = order.iter().map(|&first| if first { ga.next_id() } else { gb.next_id() }).collect();
        prop_assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "ids repeat");
        ids.sort();
        for pair in ids.windows(2) {
            prop_assert!(pair[0].unix_ms() <= pair[1].unix_ms(), "{} sorts before {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn ids_read_back_from_every_way_they_are_written(v in edge_u64()) {
        let i = Id(v);
        prop_assert_eq!(i.to_string().parse::<Id>(), Ok(i));
        let as_json = serde_json::to_string(&i).unwrap();
        prop_assert_eq!(&as_json, &format!("\"{v}\""));
        prop_assert_eq!(serde_json::from_str::<Id>(&as_json).unwrap(), i);
        prop_assert_eq!(serde_json::from_str::<Id>(&v.to_string()).unwrap(), i);
        prop_assert_eq!(rmp_serde::from_slice::<Id>(&rmp_serde::to_vec(&v).unwrap()).unwrap(), i);
    }

    #[test]
    fn id_keys_sort_like_ids(a in id(), b in id()) {
        prop_assert_eq!(keys::id(a).cmp(&keys::id(b)), a.cmp(&b));
    }

    #[test]
    fn message_keys_sort_by_conversation_then_seq(a in (id(), edge_u64()), b in (id(), edge_u64())) {
        prop_assert_eq!(keys::message(a.0, a.1).cmp(&keys::message(b.0, b.1)), a.cmp(&b));
    }

    /// Sorted by key, each user's entries are one run, in id order, and each key reads back.
    #[test]
    fn user_keys_group_by_user_then_id(entries in prop::collection::vec((keyable_external_id(), id()), 1..40)) {
        let mut keyed: Vec<(Vec<u8>, &(ExternalId, Id))> =
            entries.iter().map(|e| (keys::user_and_id(&e.0, e.1), e)).collect();
        keyed.sort();
        let mut finished: HashSet<&ExternalId> = HashSet::new();
        for (i, (key, (user, id))) in keyed.iter().enumerate() {
            let (back, rest) = keys::external_of(key).expect("the key starts with its user");
            prop_assert_eq!(&back, user);
            prop_assert_eq!(rest.len(), 8);
            prop_assert_eq!(keys::trailing_id(key), Some(*id));
            if let Some((_, (prev_user, prev_id))) = i.checked_sub(1).map(|p| &keyed[p]) {
                if prev_user == user {
                    prop_assert!(prev_id <= id, "{user}: {prev_id} sorts after {id}");
                } else {
                    prop_assert!(finished.insert(prev_user), "{prev_user}'s keys are split");
                }
            }
        }
        let last = &keyed[keyed.len() - 1].1 .0;
        prop_assert!(!finished.contains(last), "{last}'s keys are split");
    }

    /// A user's activity list reads newest first, ties to the higher id, and each key reads back.
    #[test]
    fn activity_keys_sort_newest_first(user in keyable_external_id(), a in (edge_i64(), id()), b in (edge_i64(), id())) {
        let (ka, kb) = (keys::activity(&user, a.0, a.1), keys::activity(&user, b.0, b.1));
        prop_assert_eq!(ka.cmp(&kb), b.cmp(&a));
        prop_assert_eq!(keys::activity_of(&ka), Some(a));
        prop_assert!(ka.starts_with(&keys::external(&user)));
    }

    #[test]
    fn expiry_keys_sort_by_time(a in edge_i64(), b in edge_i64(), key in prop::collection::vec(any::<u8>(), 0..20)) {
        prop_assert_eq!(keys::dedupe_expiry_start(a).cmp(&keys::dedupe_expiry_start(b)), a.cmp(&b));
        let k = keys::dedupe_expiry(a, &key);
        prop_assert!(k.starts_with(&keys::dedupe_expiry_start(a)));
        prop_assert_eq!(keys::dedupe_of_expiry(&k), Some(key.as_slice()));
    }
}

/// Two different users must never share keys. Ids of 64 four-byte characters are 256 bytes, one
/// more than `push_external`'s length byte can say: it cuts them to 255 bytes, so two such ids
/// that differ only in their last character get the same key (and the cut splits a character, so
/// `external_of` cannot read it back). Reported; ignored until keys.rs decides how to encode them.
#[test]
#[ignore = "keys::push_external truncates external ids longer than 255 bytes (reported)"]
fn long_external_ids_keep_their_own_keys() {
    let stem = "\u{1D538}".repeat(63);
    let a = ExternalId::parse(&format!("{stem}\u{1D538}")).unwrap();
    let b = ExternalId::parse(&format!("{stem}\u{1D539}")).unwrap();
    assert_ne!(a, b);
    assert_ne!(
        keys::user_and_id(&a, Id(1)),
        keys::user_and_id(&b, Id(1)),
        "two users share a key"
    );
    assert_eq!(
        keys::external_of(&keys::external(&a)).map(|(u, _)| u),
        Some(a)
    );
}
