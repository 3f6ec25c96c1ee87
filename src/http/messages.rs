//! Message routes: history of a conversation and sending over HTTP.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::conversations::{check_client_msg_id, load_for};
use super::reply::{
    conversation_id, json, json_body, limit_param, no_content, param, principal, query_pairs,
    reject, with_engine, Page,
};
use crate::actors::conversation::{ConversationMsg, SendRequest};
use crate::actors::outbox::Outgoing;
use crate::describe::errors::{Authed, JsonBody};
use crate::domain::conversation::ConversationDoc;
use crate::domain::events::ServerEvent;
use crate::domain::message::Message;
use crate::domain::user::{ExternalId, Principal};
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::storage::SeqRange;

pub fn routes(engine: EngineRef) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let auth = principal(engine.clone());
    let engine_for_delete = engine.clone();
    let e = with_engine(engine);
    let list = warp::path!("api" / "v1" / "conversations" / String / "messages")
        .and(warp::get())
        .and(auth.clone())
        .and(query_pairs())
        .and(e.clone())
        .and_then(list);
    let send = warp::path!("api" / "v1" / "conversations" / String / "messages")
        .and(warp::post())
        .and(auth)
        .and(json_body::<SendBody>(limit))
        .and(e)
        .and_then(send);
    let delete = warp::path!("api" / "v1" / "messages" / String)
        .and(warp::delete())
        .and(principal(engine_for_delete.clone()))
        .and(query_pairs())
        .and(with_engine(engine_for_delete))
        .and_then(delete);
    list.or(send).unify().or(delete).unify()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// At most `limits.max_text_chars` (default 2000) characters, no control characters but
    /// newline and tab; may be empty only with attachments.
    #[serde(default)]
    text: Option<String>,
    /// Ids of attachments this sender uploaded.
    #[serde(default)]
    attachment_ids: Vec<Id>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    client_msg_id: Option<String>,
}

/// Where a page of history starts. Cursors are opaque to clients: `b<seq>` pages back from a
/// seq, `a<seq>` forward.
enum Anchor {
    Newest,
    Before(u64),
    After(u64),
}

async fn seq_of(engine: &EngineRef, doc: &ConversationDoc, raw: &str) -> Result<u64, ApiError> {
    let id: Id = raw.parse().map_err(|_| {
        ApiError::bad_request("invalid_query", format!("`{raw}` is not a message id"))
    })?;
    match engine.store.find_message(id).await? {
        Some(m) if m.conversation_id == doc.record.id => Ok(m.seq),
        _ => Err(ApiError::message_not_found()),
    }
}

fn parse_cursor(c: &str) -> Result<Anchor, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "the cursor is not one this server gave out",
        )
    };
    let (dir, n) = c.split_at_checked(1).ok_or_else(bad)?;
    let n: u64 = n.parse().map_err(|_| bad())?;
    match dir {
        "b" => Ok(Anchor::Before(n)),
        "a" => Ok(Anchor::After(n)),
        _ => Err(bad()),
    }
}

/// One page of a conversation's history, newest first. `viewer` hides what that user deleted
/// for themself; operators pass `None` and see everything.
pub async fn history_page(
    engine: &EngineRef,
    doc: &ConversationDoc,
    q: &[(String, String)],
    viewer: Option<&ExternalId>,
) -> Result<Page<Message>, ApiError> {
    let limit = limit_param(q, 30, 100)?;
    let anchor = match (param(q, "cursor"), param(q, "before"), param(q, "after")) {
        (Some(c), _, _) => parse_cursor(c)?,
        (None, Some(b), _) => Anchor::Before(seq_of(engine, doc, b).await?),
        (None, None, Some(a)) => Anchor::After(seq_of(engine, doc, a).await?),
        (None, None, None) => Anchor::Newest,
    };
    let store = &engine.store;
    let id = doc.record.id;
    // Pages toward older messages scan newest first; pages toward newer ones scan oldest first
    // (the messages right after the anchor) and are turned around, so every page reads newest first.
    let (mut items, forward) = match anchor {
        Anchor::Newest => (
            store
                .list_messages(id, SeqRange::default(), limit + 1, true)
                .await?,
            false,
        ),
        Anchor::Before(s) => (
            store
                .list_messages(
                    id,
                    SeqRange {
                        after: None,
                        before: Some(s),
                    },
                    limit + 1,
                    true,
                )
                .await?,
            false,
        ),
        Anchor::After(s) => (
            store
                .list_messages(
                    id,
                    SeqRange {
                        after: Some(s),
                        before: None,
                    },
                    limit + 1,
                    false,
                )
                .await?,
            true,
        ),
    };
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = match (more, forward) {
        (false, _) => None,
        (true, false) => items.last().map(|m| format!("b{}", m.seq)),
        (true, true) => items.last().map(|m| format!("a{}", m.seq)),
    };
    if forward {
        items.reverse();
    }
    let mut views = Vec::with_capacity(items.len());
    for m in &items {
        if let Some(v) = viewer {
            if store.is_hidden(v, m.id).await? {
                continue;
            }
        }
        let status = doc.status_of(m);
        views.push(m.view(status));
    }
    Ok(Page {
        items: views,
        next_cursor,
    })
}

/// A page of the conversation's history, newest first, without what the caller deleted for
/// themself.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "messages",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "conversation id"),
        ("before" = Option<String>, Query, description = "message id: the page before it"),
        ("after" = Option<String>, Query, description = "message id: the page after it"),
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 30, at most 100 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = Page<Message>), Authed,
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`, `message_not_found` (`before`/`after` not in this conversation)", body = ErrorBody)))]
async fn list(
    id: String,
    p: Principal,
    q: Vec<(String, String)>,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let (doc, _) = load_for(&engine, conversation_id(&id)?, &p.user_id).await?;
        let page = history_page(&engine, &doc, &q, Some(&p.user_id)).await?;
        Ok(json(StatusCode::OK, &page))
    }
    .await
    .map_err(reject)
}

/// `DELETE /api/v1/messages/{id}`: hides the message from the caller's history ("delete for
/// me"), or with `?for=everyone` replaces it with a tombstone for both sides (its sender only,
/// within `chat.delete_for_everyone_secs`). Either way the caller's devices, or both sides', get
/// `message_deleted`.
#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "messages",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "message id"),
        ("for" = Option<String>, Query, pattern = "^(me|everyone)$", description = "`me` (default) or `everyone`"),
    ),
    responses((status = 204, description = "deleted"), Authed,
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 403, description = "`not_sender` (`for=everyone` by someone else)", body = ErrorBody),
        (status = 409, description = "`delete_window_passed`", body = ErrorBody),
        (status = 404, description = "`message_not_found` (also for a message the caller cannot see)", body = ErrorBody)))]
async fn delete(
    id: String,
    p: Principal,
    q: Vec<(String, String)>,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let message_id: Id = id.parse().map_err(|_| ApiError::message_not_found())?;
        let m = engine
            .store
            .find_message(message_id)
            .await?
            .ok_or_else(ApiError::message_not_found)?;
        // A stranger learns nothing: the same answer as for a message that does not exist.
        let (doc, _) = load_for(&engine, m.conversation_id, &p.user_id)
            .await
            .map_err(|_| ApiError::message_not_found())?;
        match param(&q, "for") {
            None | Some("me") => {
                engine.store.hide_message(&p.user_id, message_id).await?;
                let ev = Outgoing::new(ServerEvent::MessageDeleted {
                    conversation_id: doc.record.id,
                    message_id,
                });
                engine.registry.to_user(&p.user_id, ev, None);
            }
            Some("everyone") => {
                engine
                    .ask(doc.record.id, |reply| ConversationMsg::DeleteForEveryone {
                        user: p.user_id.clone(),
                        message: message_id,
                        reply,
                    })
                    .await?;
                engine
                    .attachments
                    .unlink(doc.record.id, &m.attachments)
                    .await;
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "for must be me or everyone",
                ))
            }
        }
        Ok(no_content())
    }
    .await
    .map_err(reject)
}

/// Send a message; answered after it is durably stored. A repeated `client_msg_id` from the same
/// sender within 24 h answers the original message with 200.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "messages",
    security(("bearer" = [])), params(("id" = String, Path, description = "conversation id")),
    request_body = SendBody,
    responses(
        (status = 201, description = "stored", body = Message),
        (status = 200, description = "a retry: the message stored before", body = Message),
        Authed, JsonBody, (status = 404, description = "`conversation_not_found` (also for a conversation the caller is not in)", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `text_required`, `text_too_long`, `text_invalid`, `invalid_attachment`, `too_many_attachments`, `message_rejected`, `attachment_rejected`", body = ErrorBody)))]
async fn send(
    id: String,
    p: Principal,
    body: SendBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    // When the request arrived: where a send's ack latency starts (`switchboard_send_ack_seconds`).
    let received = std::time::Instant::now();
    async {
        let (doc, _) = load_for(&engine, conversation_id(&id)?, &p.user_id).await?;
        check_client_msg_id(&body.client_msg_id)?;
        let (text, flags) = engine.moderate(body.text.unwrap_or_default()).await?;
        let attachments = engine
            .attachments
            .link(&p.user_id, doc.record.id, &body.attachment_ids)
            .await?;
        // The actor spends the message budget, after its dedupe check: a retry is free.
        let outcome = engine
            .ask(doc.record.id, |reply| {
                ConversationMsg::Send(SendRequest {
                    sender: p.user_id.clone(),
                    sender_name: p.name.clone(),
                    text,
                    attachments,
                    flags,
                    client_msg_id: body.client_msg_id,
                    origin: None,
                    reply,
                    received,
                })
            })
            .await?;
        let status = if outcome.duplicate {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json(status, &outcome.message))
    }
    .await
    .map_err(reject)
}
