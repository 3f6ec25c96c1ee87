//! Everything about a user as one JSON document (`GET /admin/v1/users/{id}/export`): their
//! profile, templates, conversations and, in each, the messages they wrote with their
//! attachments' metadata.
//!
//! Streamed: a producer task walks the store a page at a time and hands the body over in chunks
//! through a small bounded channel, so a user with 100,000 messages is never held in memory
//! and a slow reader slows the walk instead of growing a buffer. If the store fails half-way
//! the body ends with an error (the connection is cut), so a truncated document can never be
//! mistaken for a whole one.
//!
//! Messages the user deleted, or that were removed or erased, are tombstones with nothing in
//! them and are left out; so an export after an erasure shows none of the user's messages.

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::domain::clock::{format_ms, now_ms};
use crate::domain::message::{Attachment, MessageType, StoredMessage};
use crate::domain::user::ExternalId;
use crate::engine::EngineRef;
use crate::error::ApiError;
use crate::storage::SeqRange;

/// Conversations and messages read per page.
const PAGE: usize = 200;
/// A chunk is handed to the response once it is this big.
const CHUNK: usize = 32 * 1024;
/// Chunks between the producer and the socket.
const CHUNKS_QUEUED: usize = 4;

#[derive(Serialize)]
struct ConversationEntry<'a> {
    id: crate::domain::Id,
    service_id: &'a ExternalId,
    service_title: &'a str,
    /// `customer` or `provider`: which side the user is.
    role: crate::domain::conversation::Side,
    other_party_id: &'a ExternalId,
    other_party_name: &'a str,
    created_at: String,
}

#[derive(Serialize)]
struct MessageEntry<'a> {
    id: crate::domain::Id,
    seq: u64,
    message_type: MessageType,
    text: &'a str,
    attachments: &'a [Attachment],
    created_at: String,
}

impl<'a> MessageEntry<'a> {
    fn of(m: &'a StoredMessage) -> Self {
        MessageEntry {
            id: m.id,
            seq: m.seq,
            message_type: m.message_type,
            text: &m.text,
            attachments: &m.attachments,
            created_at: format_ms(m.created_at),
        }
    }
}

/// The export as a stream of body chunks. Call after checking the user is known.
pub fn stream(
    engine: EngineRef,
    user: ExternalId,
) -> impl Stream<Item = Result<Bytes, ApiError>> + Send + Sync + 'static {
    let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
    tokio::spawn(async move {
        let mut out = Writer {
            buf: Vec::with_capacity(CHUNK * 2),
            tx,
        };
        if let Err(e) = write(&engine, &user, &mut out).await {
            tracing::warn!(user_id = %user, error = %e, "export cut short");
            let _ = out.tx.send(Err(e)).await;
        }
    });
    Chunks(rx)
}

/// The receiving end of the producer's channel, as the response body's stream.
struct Chunks(mpsc::Receiver<Result<Bytes, ApiError>>);

impl Stream for Chunks {
    type Item = Result<Bytes, ApiError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Serializes into a buffer and hands it on in chunks. A send fails only when the response is
/// gone (the client went away): then the walk stops.
struct Writer {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, ApiError>>,
}

/// The reader went away.
struct Gone;

impl From<Gone> for ApiError {
    fn from(_: Gone) -> Self {
        ApiError::unavailable("the export's reader went away")
    }
}

impl Writer {
    fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn value<T: Serialize>(&mut self, v: &T) -> Result<(), ApiError> {
        serde_json::to_writer(&mut self.buf, v)
            .map_err(|e| ApiError::internal(format!("export encoding failed: {e}")))
    }

    async fn maybe_flush(&mut self) -> Result<(), Gone> {
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK * 2),
        ));
        self.tx.send(Ok(chunk)).await.map_err(|_| Gone)
    }
}

async fn write(engine: &EngineRef, user: &ExternalId, out: &mut Writer) -> Result<(), ApiError> {
    let profile = engine.store.get_user(user).await?;
    let templates = crate::templates::list(&*engine.store, user).await?;
    out.raw("{\"user_id\":");
    out.value(user)?;
    out.raw(",\"exported_at\":");
    out.value(&format_ms(now_ms()))?;
    out.raw(",\"profile\":");
    out.value(&profile)?;
    out.raw(",\"templates\":");
    out.value(&templates)?;
    out.raw(",\"conversations\":[");
    let mut first_conversation = true;
    let mut cursor: Option<String> = None;
    loop {
        let page = engine
            .store
            .list_conversations(user, None, cursor.as_deref(), PAGE)
            .await?
            .map_err(|_| ApiError::internal("the store refused its own cursor"))?;
        for doc in &page.items {
            let r = &doc.record;
            let Some(side) = r.side_of(user) else {
                continue;
            };
            if !first_conversation {
                out.raw(",");
            }
            first_conversation = false;
            let other = side.other();
            let entry = ConversationEntry {
                id: r.id,
                service_id: &r.service_id,
                service_title: &r.service_title,
                role: side,
                other_party_id: r.user(other),
                other_party_name: match other {
                    crate::domain::conversation::Side::Customer => &r.customer_name,
                    crate::domain::conversation::Side::Provider => &r.provider_name,
                },
                created_at: format_ms(r.created_at),
            };
            // The entry's own object, left open for its messages.
            out.value(&entry)?;
            out.buf.pop();
            out.raw(",\"messages\":[");
            write_messages(engine, r.id, user, out).await?;
            out.raw("]}");
            out.maybe_flush().await?;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.raw("]}");
    out.flush().await?;
    Ok(())
}

async fn write_messages(
    engine: &EngineRef,
    conversation: crate::domain::Id,
    user: &ExternalId,
    out: &mut Writer,
) -> Result<(), ApiError> {
    let mut first = true;
    let mut after = None;
    loop {
        let range = SeqRange {
            after,
            before: None,
        };
        let page = engine
            .store
            .list_messages(conversation, range, PAGE, false)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.seq);
        for m in page.iter().filter(|m| &m.sender_id == user && !m.deleted) {
            if !first {
                out.raw(",");
            }
            first = false;
            out.value(&MessageEntry::of(m))?;
        }
        out.maybe_flush().await?;
        if page.len() < PAGE {
            break;
        }
    }
    Ok(())
}
