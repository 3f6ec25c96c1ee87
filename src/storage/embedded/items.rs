//! Items (`storage::items`) in the embedded store: one keyspace, addressed by
//! `keys::item(kind, partition, key)`, so a partition is one key range.

use std::ops::Bound;

use fjall::Readable;

use super::committer::Op;
use super::{io, Ks, View};
use crate::storage::items::{Item, ItemKind};
use crate::storage::{keys, StoreError, StoreResult};

pub(super) fn put(item: &Item) -> Op {
    Op::Put(
        Ks::Items,
        keys::item(item.kind.name(), &item.partition, &item.key),
        item.value.clone(),
    )
}

pub(super) fn delete(kind: ItemKind, partition: &str, key: &[u8]) -> Op {
    Op::Delete(Ks::Items, keys::item(kind.name(), partition, key))
}

/// The item stored at `address` holding `value`.
pub(super) fn item_at(address: &[u8], value: &[u8]) -> StoreResult<Item> {
    let corrupt = || StoreError::Corrupt("item address".into());
    let (kind, partition, key) = keys::item_of(address).ok_or_else(corrupt)?;
    Ok(Item {
        kind: ItemKind::from_name(kind).ok_or_else(corrupt)?,
        partition: partition.to_owned(),
        key: key.to_vec(),
        value: value.to_vec(),
    })
}

impl View {
    pub(super) fn item(
        &self,
        kind: ItemKind,
        partition: &str,
        key: &[u8],
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .raw(Ks::Items, &keys::item(kind.name(), partition, key))?
            .map(|v| v.to_vec()))
    }

    pub(super) fn list_items(
        &self,
        kind: ItemKind,
        partition: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Item>> {
        let prefix = keys::item_partition(kind.name(), partition);
        let start = match after {
            Some(k) => Bound::Excluded(keys::item(kind.name(), partition, k)),
            None => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::with_capacity(limit.min(256));
        for g in self
            .snap
            .range(self.ks(Ks::Items), (start, Bound::Unbounded))
        {
            if out.len() == limit {
                break;
            }
            let (k, v) = g.into_inner().map_err(io)?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(item_at(&k, &v)?);
        }
        Ok(out)
    }
}
