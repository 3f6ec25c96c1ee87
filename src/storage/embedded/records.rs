//! Scanning the embedded store table by table, and importing records into it (`copy-store`).
//!
//! A scan's cursor is the last key it returned, in hex: keys sort the same way on every open, so
//! a copy stopped half-way resumes exactly where it was.

use std::ops::Bound;

use fjall::Readable;

use super::committer::Op;
use super::{decode, encode, indexes, io, Ks, View};
use crate::domain::Id;
use crate::storage::codec::{hex, unhex};
use crate::storage::records::{Record, ScanPage, Table};
use crate::storage::{keys, BadCursor, StoreError, StoreResult};

fn keyspace(table: Table) -> Ks {
    match table {
        Table::Services => Ks::Services,
        Table::Users => Ks::Users,
        Table::Conversations => Ks::Conversations,
        Table::Messages => Ks::Messages,
        Table::Hidden => Ks::Hidden,
        Table::LastSeen => Ks::LastSeen,
        Table::Items => Ks::Items,
    }
}

impl View {
    pub(super) fn scan(
        &self,
        table: Table,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> StoreResult<ScanPage> {
        let start = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut page = ScanPage::default();
        let mut last = None;
        for g in self
            .snap
            .range(self.ks(keyspace(table)), (start, Bound::Unbounded))
            .take(limit)
        {
            let (k, v) = g.into_inner().map_err(io)?;
            page.records.push(record(table, &k, &v)?);
            last = Some(k);
        }
        if page.records.len() == limit {
            page.next = last.map(|k| hex(&k));
        }
        Ok(page)
    }
}

fn record(table: Table, k: &[u8], v: &[u8]) -> StoreResult<Record> {
    let corrupt = || StoreError::Corrupt(format!("{} entry", table.name()));
    Ok(match table {
        Table::Services => Record::Service(decode(v)?),
        Table::Users => Record::User(decode(v)?),
        Table::Conversations => Record::Conversation(decode(v)?),
        Table::Messages => Record::Message(decode(v)?),
        Table::Hidden => {
            let (user, rest) = keys::external_of(k).ok_or_else(corrupt)?;
            let id: [u8; 8] = rest.try_into().map_err(|_| corrupt())?;
            Record::Hidden {
                user,
                message: Id(u64::from_be_bytes(id)),
            }
        }
        Table::Items => Record::Item(super::items::item_at(k, v)?),
        Table::LastSeen => {
            let (user, _) = keys::external_of(k).ok_or_else(corrupt)?;
            let at: [u8; 8] = v.try_into().map_err(|_| corrupt())?;
            Record::LastSeen {
                user,
                at_ms: i64::from_be_bytes(at),
            }
        }
    })
}

/// The operations that write `records` with their indexes.
pub(super) fn import_ops(records: &[Record]) -> Vec<Op> {
    let mut ops = Vec::with_capacity(records.len() * 4);
    for r in records {
        match r {
            Record::Service(s) => ops.push(Op::Put(Ks::Services, keys::external(&s.id), encode(s))),
            Record::User(u) => ops.push(Op::Put(Ks::Users, keys::external(&u.id), encode(u))),
            Record::Conversation(doc) => ops.extend(indexes::create_ops(doc, None)),
            Record::Message(m) => indexes::message_ops(&mut ops, m),
            Record::Hidden { user, message } => ops.push(Op::Put(
                Ks::Hidden,
                keys::user_and_id(user, *message),
                Vec::new(),
            )),
            Record::LastSeen { user, at_ms } => ops.push(Op::Put(
                Ks::LastSeen,
                keys::external(user),
                at_ms.to_be_bytes().to_vec(),
            )),
            Record::Item(item) => ops.push(super::items::put(item)),
        }
    }
    ops
}

pub(super) fn parse_cursor(cursor: Option<&str>) -> Result<Option<Vec<u8>>, BadCursor> {
    cursor.map(|c| unhex(c).ok_or(BadCursor)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(parse_cursor(Some(&hex(&key))).unwrap(), Some(key));
        assert!(parse_cursor(Some("abc")).is_err());
        assert!(parse_cursor(None).unwrap().is_none());
    }
}
