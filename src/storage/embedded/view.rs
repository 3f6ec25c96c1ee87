//! The read side of the embedded store: what the latest durable snapshot answers. A `View` is
//! taken per read (`EmbeddedStore::point` runs it right there, `read` on the blocking pool), so a
//! read never sees a write that is not yet synced. Items and raw records (`items.rs`,
//! `records.rs`) add their own reads to it.

use std::ops::Bound;
use std::sync::Arc;

use fjall::{Keyspace, Readable, Snapshot};
use serde::de::DeserializeOwned;

use super::committer::{Op, Shared};
use super::{io, Ks, SWEEP_BATCH};
use crate::domain::conversation::ConversationDoc;
use crate::domain::message::StoredMessage;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::codec::decode;
use crate::storage::{keys, ConversationPage, SeqRange, StoreError, StoreResult};

/// One read's view: the latest durable snapshot and the keyspaces to read it through.
pub(super) struct View {
    pub(super) snap: Arc<Snapshot>,
    pub(super) shared: Arc<Shared>,
}

impl View {
    pub(super) fn ks(&self, ks: Ks) -> &Keyspace {
        self.shared.ks(ks)
    }

    pub(super) fn raw(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<fjall::UserValue>> {
        self.snap.get(self.ks(ks), key).map_err(io)
    }

    pub(super) fn get<T: DeserializeOwned>(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<T>> {
        match self.raw(ks, key)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    /// The value `ks` holds under `key` is a message key: the message there.
    pub(super) fn message_at(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<StoredMessage>> {
        match self.raw(ks, key)? {
            Some(mkey) => self.get(Ks::Messages, &mkey),
            None => Ok(None),
        }
    }

    pub(super) fn conversation_id(&self, ckey: &[u8]) -> StoreResult<Option<Id>> {
        match self.raw(Ks::ConversationKeys, ckey)? {
            Some(v) => keys::trailing_id(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt("conversation key".into())),
            None => Ok(None),
        }
    }

    pub(super) fn list_conversations(
        &self,
        user: &ExternalId,
        archived: Option<bool>,
        after: Option<(i64, Id)>,
        limit: usize,
    ) -> StoreResult<ConversationPage> {
        let prefix = keys::external(user);
        let start = match after {
            Some((at, cid)) => Bound::Excluded(keys::activity(user, at, cid)),
            None => Bound::Included(prefix.clone()),
        };
        // Every key under the prefix is the prefix and 16 bytes.
        let mut end = prefix;
        end.extend_from_slice(&[0xFF; 16]);
        let mut items = Vec::with_capacity(limit.min(256));
        let mut next_cursor = None;
        let mut last = None;
        for g in self
            .snap
            .range(self.ks(Ks::Activity), (start, Bound::Included(end)))
        {
            let k = g.key().map_err(io)?;
            let (at, cid) = keys::activity_of(&k)
                .ok_or_else(|| StoreError::Corrupt("activity index".into()))?;
            if items.len() == limit {
                next_cursor = last.map(|(at, cid): (i64, Id)| format!("{at}.{cid}"));
                break;
            }
            let Some(doc) = self.get::<ConversationDoc>(Ks::Conversations, &keys::id(cid))? else {
                continue;
            };
            // An entry the conversation has moved away from (a write that named the wrong
            // `moved_from`) is stale: skipped when the entry at its current activity exists, and
            // listed where it is otherwise, since a conversation out of place beats one missing.
            if doc.state.activity_ms != at
                && self
                    .raw(
                        Ks::Activity,
                        &keys::activity(user, doc.state.activity_ms, cid),
                    )?
                    .is_some()
            {
                continue;
            }
            let Some(side) = doc.record.side_of(user) else {
                continue;
            };
            if archived.is_some_and(|want| doc.state.side(side).archived != want) {
                continue;
            }
            items.push(doc);
            // The cursor is a place in the index, which the next page starts after.
            last = Some((at, cid));
        }
        Ok(ConversationPage { items, next_cursor })
    }

    pub(super) fn list_messages(
        &self,
        conversation: Id,
        range: SeqRange,
        limit: usize,
        newest_first: bool,
    ) -> StoreResult<Vec<StoredMessage>> {
        let lo = keys::message(conversation, range.after.map_or(0, |a| a.saturating_add(1)));
        let hi = keys::message(conversation, range.before.unwrap_or(u64::MAX));
        let iter = self.snap.range(self.ks(Ks::Messages), lo..hi);
        let mut out = Vec::with_capacity(limit.min(256));
        let mut push = |g: fjall::Guard| -> StoreResult<bool> {
            let v = g.value().map_err(io)?;
            out.push(decode::<StoredMessage>(&v)?);
            Ok(out.len() < limit)
        };
        if newest_first {
            for g in iter.rev() {
                if !push(g)? {
                    break;
                }
            }
        } else {
            for g in iter {
                if !push(g)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The deletes of up to `SWEEP_BATCH` dedupe entries created before `before_ms`, and how many
    /// expired entries they cover.
    pub(super) fn expired_dedupe(&self, before_ms: i64) -> StoreResult<(Vec<Op>, usize)> {
        let end = keys::dedupe_expiry_start(before_ms);
        let mut ops = Vec::new();
        let mut n = 0;
        for g in self
            .snap
            .range(self.ks(Ks::DedupeExpiry), ..end.as_slice())
            .take(SWEEP_BATCH)
        {
            let (k, mkey) = g.into_inner().map_err(io)?;
            let dkey = keys::dedupe_of_expiry(&k)
                .ok_or_else(|| StoreError::Corrupt("dedupe expiry".into()))?;
            // Only while it still names the message this expiry entry was written for.
            if self.raw(Ks::Dedupe, dkey)?.is_some_and(|v| v == mkey) {
                ops.push(Op::Delete(Ks::Dedupe, dkey.to_vec()));
            }
            ops.push(Op::Delete(Ks::DedupeExpiry, k.to_vec()));
            n += 1;
        }
        Ok((ops, n))
    }
}
