//! Creating a conversation on ScyllaDB: one lightweight transaction claims (service, provider,
//! customer), and only the claimant writes the conversation, in one logged batch. What this file
//! adds to that is what happens when the claim's answer is not a clean "applied": a lost answer,
//! another creation's claim, or a claim whose conversation never arrived.

use scylla::value::{CqlValue, Row};

use super::cql::Q;
use super::rows::{self, id, text};
use super::{io, ScyllaStore, ADOPT_AFTER_MS, CLAIM_POLLS, CLAIM_POLL_EVERY};
use crate::domain::conversation::ConversationDoc;
use crate::domain::message::StoredMessage;
use crate::domain::Id;
use crate::storage::items::Item;
use crate::storage::{Store, StoreError, StoreResult};

impl ScyllaStore {
    pub(super) async fn create(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        // The claim is stamped with when it was made, which is what a takeover measures.
        let mut claim = rows::put_key(&doc).values;
        claim[4] = CqlValue::BigInt(crate::domain::clock::machine_ms());
        match self.lwt(Q::ClaimKey, claim).await? {
            Some(true) => self.write_created(doc, first, items).await,
            _ => self.settle_claim(doc, first, items).await,
        }
    }

    /// Runs a lightweight transaction; whether it applied. `None` when the answer was lost (a
    /// timeout, a dropped connection): the transaction may or may not have applied.
    async fn lwt(&self, q: Q, values: Vec<CqlValue>) -> StoreResult<Option<bool>> {
        let result = match self
            .session
            .execute_unpaged(self.statement(q), values)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "a conversation key transaction got no answer");
                return Ok(None);
            }
        };
        result
            .into_rows_result()
            .map_err(io)?
            .maybe_first_row::<Row>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .and_then(|row| row.columns.into_iter().next().flatten())
            .and_then(|v| v.as_boolean())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt("an LWT answer without [applied]".into()))
    }

    /// Who holds the conversation key of `doc`, and since when.
    async fn claim_of(&self, doc: &ConversationDoc) -> StoreResult<Option<(Id, i64)>> {
        let r = &doc.record;
        let row: Option<(i64, i64)> = self
            .one(
                Q::FindKey,
                (
                    r.service_id.as_str(),
                    r.provider_id.as_str(),
                    r.customer_id.as_str(),
                ),
            )
            .await?;
        Ok(row.map(|(cid, at)| (Id(cid as u64), at)))
    }

    /// Writes a conversation whose key this creation holds.
    async fn write_created(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        let ts = self.clock.next();
        let now = crate::domain::clock::machine_ms();
        let mut writes = rows::create_writes(&doc, first.as_ref(), ts, now);
        writes.extend(items.iter().map(rows::put_item));
        self.write(writes).await?;
        self.remember(&doc).await;
        Ok((doc, true))
    }

    /// After the claim: ours (applied, or our own claim whose answer was lost) is written; another
    /// creation's is waited for (its batch follows its claim by one round trip); a claim whose
    /// conversation never arrived within `ADOPT_AFTER_MS` (its creator crashed or failed between
    /// the two) is taken over by a second transaction, so only one taker wins.
    async fn settle_claim(
        &self,
        doc: ConversationDoc,
        first: Option<StoredMessage>,
        items: &[Item],
    ) -> StoreResult<(ConversationDoc, bool)> {
        let Some((holder, claimed_at)) = self.claim_of(&doc).await? else {
            return Err(StoreError::Io(
                "scylla: the conversation key could not be claimed; try again".into(),
            ));
        };
        if holder == doc.record.id {
            return self.write_created(doc, first, items).await;
        }
        for _ in 0..CLAIM_POLLS {
            if let Some(existing) = self.get_conversation(holder).await? {
                return Ok((existing, false));
            }
            if crate::domain::clock::machine_ms() - claimed_at >= ADOPT_AFTER_MS {
                break;
            }
            tokio::time::sleep(CLAIM_POLL_EVERY).await;
        }
        if crate::domain::clock::machine_ms() - claimed_at < ADOPT_AFTER_MS {
            return Err(StoreError::Io(
                "scylla: this conversation is being created; try again".into(),
            ));
        }
        tracing::warn!(conversation_id = %holder, "a conversation's creation was cut short; taking its key over");
        let r = &doc.record;
        let take = vec![
            id(r.id),
            CqlValue::BigInt(crate::domain::clock::machine_ms()),
            text(r.service_id.as_str()),
            text(r.provider_id.as_str()),
            text(r.customer_id.as_str()),
            id(holder),
            CqlValue::BigInt(claimed_at),
        ];
        match self.lwt(Q::TakeOverKey, take).await? {
            Some(true) => self.write_created(doc, first, items).await,
            // Lost the race to another taker, or the answer: look again.
            _ => match self.claim_of(&doc).await? {
                Some((h, _)) if h == doc.record.id => self.write_created(doc, first, items).await,
                Some((h, _)) => match self.get_conversation(h).await? {
                    Some(existing) => Ok((existing, false)),
                    None => Err(StoreError::Io(
                        "scylla: this conversation is being created; try again".into(),
                    )),
                },
                None => Err(StoreError::Io(
                    "scylla: the conversation key could not be claimed; try again".into(),
                )),
            },
        }
    }
}
