//! The `Store` operations of the ScyllaDB store: reads as paged queries of one partition each,
//! conversation writes through the per-conversation chains, creations behind one lightweight
//! transaction. Whole-table scans and imports (`copy-store`) are in `records.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::value::CqlValue;

use super::cql::{bucket_of, Q};
use super::rows::{self, id, text, Bound};
use super::{failed, io, ScyllaStore};
use crate::domain::conversation::{ConversationDoc, ConversationRecord};
use crate::domain::message::StoredMessage;
use crate::domain::user::{ExternalId, Service, UserProfile};
use crate::domain::Id;
use crate::storage::codec::{decode, encode};
use crate::storage::items::{Item, ItemAddress, ItemKind};
use crate::storage::records::{Record, ScanPage, Table};
use crate::storage::{
    BadCursor, ConversationPage, ConversationWrite, OnDurable, SeqRange, Store, StoreError,
    StoreHealth, StoreResult,
};

/// Rows per page of a multi-row read.
const PAGE_ROWS: i32 = 256;

/// A CQL `bigint` column holding one of our unsigned ids or counts.
pub(super) fn u(v: i64) -> u64 {
    v as u64
}

impl ScyllaStore {
    /// The first row of a one-partition read, if any.
    pub(super) async fn one<R>(&self, q: Q, values: impl SerializeRow) -> StoreResult<Option<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let result = self
            .session
            .execute_unpaged(self.statement(q), values)
            .await
            .map_err(failed)?;
        let rows = result.into_rows_result().map_err(io)?;
        rows.maybe_first_row::<R>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Every row of a read, page by page.
    async fn all<R>(&self, q: Q, values: impl SerializeRow, max: usize) -> StoreResult<Vec<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + 'static,
    {
        let mut statement = self.statement(q).clone();
        statement.set_page_size(max.clamp(1, PAGE_ROWS as usize) as i32);
        let pager = self
            .session
            .execute_iter(statement, values)
            .await
            .map_err(io)?;
        let mut stream = pager
            .rows_stream::<R>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut out = Vec::new();
        while out.len() < max {
            match stream.try_next().await.map_err(io)? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }

    async fn body<T: serde::de::DeserializeOwned>(
        &self,
        q: Q,
        values: impl SerializeRow,
    ) -> StoreResult<Option<T>> {
        match self.one::<(Vec<u8>,)>(q, values).await? {
            Some((b,)) => decode(&b).map(Some),
            None => Ok(None),
        }
    }

    /// The message at (conversation, seq) if it is the one with `expected` id: an index entry
    /// (message id, dedupe) written by a write that failed and was never acknowledged may land
    /// late and point at a seq another message took since.
    async fn message_if(
        &self,
        conversation: Id,
        seq: u64,
        expected: Id,
    ) -> StoreResult<Option<StoredMessage>> {
        Ok(self
            .get_message(conversation, seq)
            .await?
            .filter(|m| m.id == expected))
    }

    pub(super) async fn remember(&self, doc: &ConversationDoc) {
        let id = doc.record.id;
        if !self.records.contains_key(&id) {
            self.records.insert(id, Arc::new(doc.record.clone())).await;
        }
    }

    /// A page of the user's activity-ordered list entries after `after`.
    async fn activity_page(
        &self,
        user: &ExternalId,
        after: Option<(i64, Id)>,
        max: usize,
    ) -> StoreResult<Vec<(i64, Id)>> {
        let rows: Vec<(i64, i64)> = match after {
            Some((at, cid)) => {
                self.all(Q::ListActivityAfter, (user.as_str(), at, cid.0 as i64), max)
                    .await?
            }
            None => self.all(Q::ListActivity, (user.as_str(),), max).await?,
        };
        Ok(rows.into_iter().map(|(at, c)| (at, Id(u(c)))).collect())
    }

    /// Whether a list entry should be shown, with its conversation (see the embedded store's
    /// list: an entry the conversation has moved away from is skipped when the current one
    /// exists).
    async fn listed(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        (at, cid): (i64, Id),
    ) -> StoreResult<Option<ConversationDoc>> {
        let Some(doc) = self.get_conversation(cid).await? else {
            return Ok(None);
        };
        if doc.state.activity_ms != at
            && self
                .one::<(i64,)>(
                    Q::HasActivity,
                    (user.as_str(), doc.state.activity_ms, cid.0 as i64),
                )
                .await?
                .is_some()
        {
            return Ok(None);
        }
        let Some(side) = doc.record.side_of(user) else {
            return Ok(None);
        };
        if archived.is_some_and(|want| doc.state.side(side).archived != want) {
            return Ok(None);
        }
        Ok(Some(doc))
    }
}

#[async_trait]
impl Store for ScyllaStore {
    async fn put_service(&self, s: &Service) -> StoreResult<()> {
        self.write(vec![Bound {
            q: Q::PutService,
            values: vec![text(s.id.as_str()), CqlValue::Blob(encode(s))],
        }])
        .await
    }

    async fn get_service(&self, id: &ExternalId) -> StoreResult<Option<Service>> {
        self.body(Q::GetService, (id.as_str(),)).await
    }

    async fn delete_service(&self, id: &ExternalId) -> StoreResult<bool> {
        let existed = self.get_service(id).await?.is_some();
        self.write(vec![Bound {
            q: Q::DeleteService,
            values: vec![text(id.as_str())],
        }])
        .await?;
        Ok(existed)
    }

    async fn put_user(&self, user: &UserProfile) -> StoreResult<()> {
        self.write(vec![Bound {
            q: Q::PutUser,
            values: vec![text(user.id.as_str()), CqlValue::Blob(encode(user))],
        }])
        .await
    }

    async fn get_user(&self, id: &ExternalId) -> StoreResult<Option<UserProfile>> {
        self.body(Q::GetUser, (id.as_str(),)).await
    }

    async fn delete_user(&self, id: &ExternalId) -> StoreResult<bool> {
        let existed = self.get_user(id).await?.is_some();
        self.write(vec![Bound {
            q: Q::DeleteUser,
            values: vec![text(id.as_str())],
        }])
        .await?;
        Ok(existed)
    }

    /// See `creation.rs`.
    async fn create_conversation_with(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        self.create(doc, first, items).await
    }

    async fn find_conversation(
        &self,
        service: &ExternalId,
        provider: &ExternalId,
        customer: &ExternalId,
    ) -> StoreResult<Option<Id>> {
        let key: Option<(i64, i64)> = self
            .one(
                Q::FindKey,
                (service.as_str(), provider.as_str(), customer.as_str()),
            )
            .await?;
        let Some((cid, _)) = key else {
            return Ok(None);
        };
        // A claim whose conversation was never written is not a conversation yet.
        let cid = Id(u(cid));
        Ok(self.conversation_record(cid).await?.map(|_| cid))
    }

    async fn get_conversation(&self, cid: Id) -> StoreResult<Option<ConversationDoc>> {
        let row: Option<(Vec<u8>, i64)> = self.one(Q::GetConversation, (cid.0 as i64,)).await?;
        let Some((body, written_at)) = row else {
            return Ok(None);
        };
        // An actor reads its state here before its first write: from now on this process stamps
        // writes after the stored one, even if this machine's clock is behind the one that wrote
        // it (a write stamped earlier would be silently discarded by the cluster).
        self.clock.observe(written_at);
        let doc: ConversationDoc = decode(&body)?;
        self.remember(&doc).await;
        Ok(Some(doc))
    }

    async fn conversation_record(&self, cid: Id) -> StoreResult<Option<Arc<ConversationRecord>>> {
        // A cached record answers at once; concurrent misses for one conversation wait for one
        // query.
        let loaded = self
            .records
            .try_get_with(cid, async {
                let doc = self.get_conversation(cid).await.map_err(Some)?;
                doc.map(|d| Arc::new(d.record)).ok_or(None::<StoreError>)
            })
            .await;
        match loaded {
            Ok(r) => Ok(Some(r)),
            Err(e) => match e.as_ref() {
                None => Ok(None),
                Some(e) => Err(e.clone()),
            },
        }
    }

    async fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ConversationPage, BadCursor>> {
        let mut after = match crate::storage::parse_cursor(cursor) {
            Ok(after) => after,
            Err(bad) => return Ok(Err(bad)),
        };
        let mut items = Vec::with_capacity(limit.min(256));
        let mut last = None;
        'pages: loop {
            // Fetch a little more than is missing, so a page usually takes one round of reads.
            let want = limit
                .saturating_sub(items.len())
                .saturating_add(1)
                .min(PAGE_ROWS as usize);
            let entries = self.activity_page(user, after, want).await?;
            let exhausted = entries.len() < want;
            // The entries' conversations are read concurrently, and judged in list order.
            let docs: Vec<StoreResult<Option<ConversationDoc>>> =
                stream::iter(entries.iter().copied())
                    .map(|e| self.listed(user, archived, e))
                    .buffered(16)
                    .collect()
                    .await;
            for (entry, doc) in entries.iter().zip(docs) {
                if items.len() == limit {
                    let next_cursor = last.map(|(at, cid): (i64, Id)| format!("{at}.{cid}"));
                    return Ok(Ok(ConversationPage { items, next_cursor }));
                }
                after = Some(*entry);
                if let Some(doc) = doc? {
                    items.push(doc);
                    last = Some(*entry);
                }
            }
            if exhausted {
                break 'pages;
            }
        }
        Ok(Ok(ConversationPage {
            items,
            next_cursor: None,
        }))
    }

    fn submit(&self, write: &ConversationWrite, on_durable: OnDurable) -> StoreResult<()> {
        let ts = self.clock.next();
        let stmts = rows::conversation_write(write, ts, crate::domain::clock::now_ms());
        self.chains.submit(write.doc.record.id, stmts, on_durable)
    }

    fn settle(&self, conversation: Id, done: OnDurable) {
        self.chains.settle(conversation, done);
    }

    async fn get_message(&self, conversation: Id, seq: u64) -> StoreResult<Option<StoredMessage>> {
        self.body(
            Q::GetMessage,
            (conversation.0 as i64, bucket_of(seq), seq as i64),
        )
        .await
    }

    async fn find_message(&self, mid: Id) -> StoreResult<Option<StoredMessage>> {
        let at: Option<(i64, i64)> = self.one(Q::GetMessageId, (mid.0 as i64,)).await?;
        match at {
            Some((cid, seq)) => self.message_if(Id(u(cid)), u(seq), mid).await,
            None => Ok(None),
        }
    }

    /// Bucket by bucket from the newest (or oldest) one the range can touch, each a
    /// one-partition query, until `limit` messages are in.
    async fn list_messages(
        &self,
        conversation: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>> {
        let newest: Option<(i64,)> = self.one(Q::NewestBucket, (conversation.0 as i64,)).await?;
        let Some((newest,)) = newest else {
            return Ok(Vec::new());
        };
        let lo = range.after.unwrap_or(0).min(i64::MAX as u64);
        let hi = range.before.unwrap_or(u64::MAX).min(i64::MAX as u64);
        if hi <= lo.saturating_add(1) || limit == 0 {
            return Ok(Vec::new());
        }
        let first = bucket_of(lo + 1);
        let last = bucket_of(hi - 1).min(newest);
        let (q, buckets): (Q, Box<dyn Iterator<Item = i64> + Send>) = if newest_first {
            (Q::MessagesDesc, Box::new((first..=last).rev()))
        } else {
            (Q::MessagesAsc, Box::new(first..=last))
        };
        let mut out = Vec::with_capacity(limit.min(256));
        for b in buckets {
            let left = limit - out.len();
            let bodies: Vec<(Vec<u8>,)> = self
                .all(
                    q,
                    (
                        conversation.0 as i64,
                        b,
                        lo as i64,
                        hi as i64,
                        left.min(i32::MAX as usize) as i32,
                    ),
                    left,
                )
                .await?;
            for (body,) in bodies {
                out.push(decode::<StoredMessage>(&body)?);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn find_by_client_msg_id(
        &self,
        conversation: Id,
        sender: &ExternalId,
        client_msg_id: &str,
    ) -> StoreResult<Option<StoredMessage>> {
        let at: Option<(i64, i64)> = self
            .one(
                Q::GetDedupe,
                (conversation.0 as i64, sender.as_str(), client_msg_id),
            )
            .await?;
        match at {
            Some((mid, seq)) => self.message_if(conversation, u(seq), Id(u(mid))).await,
            None => Ok(None),
        }
    }

    /// Unconditional (a conditional delete would be a Paxos round): an entry past the window has
    /// expired by its TTL and is not touched, so only this message's own entry can be deleted.
    async fn forget_dedupe(&self, m: &StoredMessage) -> StoreResult<()> {
        let Some(c) = &m.client_msg_id else {
            return Ok(());
        };
        if rows::dedupe_ttl(m.created_at, crate::domain::clock::now_ms()).is_none() {
            return Ok(());
        }
        self.write(vec![Bound {
            q: Q::DeleteDedupe,
            values: vec![
                CqlValue::BigInt(self.clock.next()),
                id(m.conversation_id),
                text(m.sender_id.as_str()),
                text(c),
            ],
        }])
        .await
    }

    /// Dedupe entries are written with a TTL that ends with the window: the cluster expires them.
    async fn sweep_dedupe(&self, _before_ms: i64) -> StoreResult<u64> {
        Ok(0)
    }

    async fn unread_counts(&self, user: &ExternalId) -> StoreResult<Vec<(Id, u64)>> {
        let rows: Vec<(i64, i64)> = self
            .all(Q::ListWatermarks, (user.as_str(),), usize::MAX)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (Id(u(c)), u(n)))
            .collect())
    }

    async fn hide_message(&self, user: &ExternalId, message: Id) -> StoreResult<()> {
        self.write(vec![Bound {
            q: Q::PutHidden,
            values: vec![text(user.as_str()), id(message)],
        }])
        .await
    }

    async fn is_hidden(&self, user: &ExternalId, message: Id) -> StoreResult<bool> {
        let row: Option<(i64,)> = self
            .one(Q::GetHidden, (user.as_str(), message.0 as i64))
            .await?;
        Ok(row.is_some())
    }

    async fn set_last_seen(&self, user: &ExternalId, at_ms: i64) -> StoreResult<()> {
        self.write(vec![Bound {
            q: Q::PutLastSeen,
            values: vec![text(user.as_str()), CqlValue::BigInt(at_ms)],
        }])
        .await
    }

    async fn last_seen(&self, user: &ExternalId) -> StoreResult<Option<i64>> {
        let row: Option<(i64,)> = self.one(Q::GetLastSeen, (user.as_str(),)).await?;
        Ok(row.map(|(at,)| at))
    }

    async fn put_item(&self, item: &Item) -> StoreResult<()> {
        self.write(vec![rows::put_item(item)]).await
    }

    async fn get_item(
        &self,
        kind: ItemKind,
        partition: &str,
        key: &[u8],
    ) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = self.one(Q::GetItem, (kind.name(), partition, key)).await?;
        Ok(row.map(|(v,)| v))
    }

    async fn delete_item(&self, kind: ItemKind, partition: &str, key: &[u8]) -> StoreResult<()> {
        self.write(vec![Bound {
            q: Q::DeleteItem,
            values: vec![
                text(kind.name()),
                text(partition),
                CqlValue::Blob(key.to_vec()),
            ],
        }])
        .await
    }

    async fn write_items(&self, puts: &[Item], deletes: &[ItemAddress]) -> StoreResult<()> {
        let mut writes: Vec<Bound> = puts.iter().map(rows::put_item).collect();
        writes.extend(deletes.iter().map(|(kind, partition, key)| Bound {
            q: Q::DeleteItem,
            values: vec![
                text(kind.name()),
                text(partition),
                CqlValue::Blob(key.clone()),
            ],
        }));
        self.write(writes).await
    }

    async fn list_items(
        &self,
        kind: ItemKind,
        partition: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<Item>> {
        let limit = limit.min(i32::MAX as usize);
        let (k, n) = (kind.name(), limit as i32);
        let rows: Vec<(Vec<u8>, Vec<u8>)> = match after {
            Some(a) => {
                self.all(Q::ListItemsAfter, (k, partition, a, n), limit)
                    .await?
            }
            None => self.all(Q::ListItems, (k, partition, n), limit).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(key, value)| Item {
                kind,
                partition: partition.to_owned(),
                key,
                value,
            })
            .collect())
    }

    /// `Ok` while a node answers a query; `Degraded` while it does but writes are backing up
    /// (over half of `max_in_flight` unanswered); `Down` when no node answers. The driver
    /// reconnects by itself, so health comes back with the cluster.
    async fn health(&self) -> StoreHealth {
        match self.probe().await {
            Err(_) => StoreHealth::Down,
            Ok(()) if self.chains.in_flight() * 2 > self.chains.max_in_flight() => {
                StoreHealth::Degraded
            }
            Ok(()) => StoreHealth::Ok,
        }
    }

    async fn scan(
        &self,
        table: Table,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Result<ScanPage, BadCursor>> {
        self.scan_records(table, cursor, limit).await
    }

    async fn import(&self, records: &[Record]) -> StoreResult<()> {
        self.import_records(records).await
    }
}
