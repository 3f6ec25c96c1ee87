//! Whole-table reads and writes of the ScyllaDB store, for `switchboard copy-store`: a table
//! scanned a page at a time as records, with the driver's paging state as the cursor, and records
//! imported as idempotent writes sent concurrently.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use scylla::response::PagingState;
use scylla::value::{CqlValue, Row};

use super::cql::Q;
use super::ops::u;
use super::rows;
use super::{failed, io, ScyllaStore};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::codec::{decode, hex, unhex};
use crate::storage::items::{Item, ItemKind};
use crate::storage::records::{Record, ScanPage, Table};
use crate::storage::{BadCursor, StoreError, StoreResult};

/// Statements of an import sent at once.
const IMPORT_CONCURRENCY: usize = 64;

impl ScyllaStore {
    pub(super) async fn scan_records(
        &self,
        table: Table,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ScanPage, BadCursor>> {
        let paging = match cursor {
            None => PagingState::start(),
            // A cursor names its table, so one from another table is refused, not sent.
            Some(c) => match c
                .strip_prefix(table.name())
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(unhex)
            {
                Some(raw) => PagingState::new_from_raw_bytes(raw),
                None => return Ok(Err(BadCursor)),
            },
        };
        let mut statement = self.statement(scan_query(table)).clone();
        statement.set_page_size(limit.clamp(1, i32::MAX as usize) as i32);
        let (result, next) = self
            .session
            .execute_single_page(&statement, (), paging)
            .await
            .map_err(failed)?;
        let rows = result.into_rows_result().map_err(io)?;
        let mut page = ScanPage::default();
        for row in rows
            .rows::<Row>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
        {
            let row = row.map_err(|e| StoreError::Corrupt(e.to_string()))?;
            page.records.push(record(table, row)?);
        }
        page.next = match next {
            scylla::response::PagingStateResponse::HasMorePages { state } => state
                .as_bytes_slice()
                .map(|b| format!("{}:{}", table.name(), hex(b))),
            scylla::response::PagingStateResponse::NoMorePages => None,
        };
        Ok(Ok(page))
    }

    /// Statements sent concurrently, each idempotent: a record imported twice is written twice
    /// with the same values.
    pub(super) async fn import_records(&self, records: &[Record]) -> StoreResult<()> {
        let ts = self.clock.next();
        let stmts = rows::import_writes(records, ts, crate::domain::clock::now_ms());
        stream::iter(stmts)
            .map(|b| self.write(vec![b]))
            .buffer_unordered(IMPORT_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}

fn scan_query(table: Table) -> Q {
    match table {
        Table::Services => Q::ScanServices,
        Table::Users => Q::ScanUsers,
        Table::Conversations => Q::ScanConversations,
        Table::Messages => Q::ScanMessages,
        Table::Hidden => Q::ScanHidden,
        Table::LastSeen => Q::ScanLastSeen,
        Table::Items => Q::ScanItems,
    }
}

fn record(table: Table, row: Row) -> StoreResult<Record> {
    let corrupt = || StoreError::Corrupt(format!("{} row", table.name()));
    let mut cols = row.columns.into_iter();
    let mut next = || cols.next().flatten().ok_or_else(corrupt);
    let blob = |v: CqlValue| v.into_blob().ok_or_else(corrupt);
    let user = |v: CqlValue| {
        v.into_string()
            .and_then(|s| ExternalId::parse(&s).ok())
            .ok_or_else(corrupt)
    };
    let bigint = |v: CqlValue| v.as_bigint().ok_or_else(corrupt);
    Ok(match table {
        Table::Services => Record::Service(decode(&blob(next()?)?)?),
        Table::Users => Record::User(decode(&blob(next()?)?)?),
        Table::Conversations => Record::Conversation(decode(&blob(next()?)?)?),
        Table::Messages => Record::Message(decode(&blob(next()?)?)?),
        Table::Hidden => Record::Hidden {
            user: user(next()?)?,
            message: Id(u(bigint(next()?)?)),
        },
        Table::LastSeen => Record::LastSeen {
            user: user(next()?)?,
            at_ms: bigint(next()?)?,
        },
        Table::Items => Record::Item(Item {
            kind: next()?
                .into_string()
                .and_then(|k| ItemKind::from_name(&k))
                .ok_or_else(corrupt)?,
            partition: next()?.into_string().ok_or_else(corrupt)?,
            key: blob(next()?)?,
            value: blob(next()?)?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanned_rows_become_records() {
        let row = Row {
            columns: vec![
                Some(CqlValue::Text("ann".into())),
                Some(CqlValue::BigInt(42)),
            ],
        };
        assert_eq!(
            record(Table::LastSeen, row).unwrap(),
            Record::LastSeen {
                user: ExternalId::parse("ann").unwrap(),
                at_ms: 42
            }
        );
        let bad = Row {
            columns: vec![None],
        };
        assert!(record(Table::Hidden, bad).is_err());
    }
}
