//! Conversation routes: contact a provider, list, read, archive, mark read, typing, unread.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::reply::{
    conversation_id, json, json_body, no_content, principal, query_pairs, reject, with_engine,
};
use crate::actors::conversation::{ConversationMsg, ReadState, SendRequest};
use crate::actors::outbox::Outgoing;
use crate::describe::errors::{Authed, JsonBody};
use crate::domain::clock::now_ms;
use crate::domain::conversation::{
    Conversation, ConversationDoc, ConversationRecord, ConversationState, Side,
};
use crate::domain::events::ServerEvent;
use crate::domain::message::{
    client_msg_id_ok, validate_text, Message, MessageType, Status, StoredMessage,
};
use crate::domain::user::{ExternalId, Principal, Role};
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::moderation::queue::Report;
use crate::notify::Notifier;

pub fn routes(engine: EngineRef) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let base = warp::path("api").and(warp::path("v1"));
    let auth = principal(engine.clone());
    let e = with_engine(engine);

    let create = base
        .and(warp::path!("conversations"))
        .and(warp::post())
        .and(auth.clone())
        .and(json_body::<CreateBody>(limit))
        .and(e.clone())
        .and_then(create);
    let list = base
        .and(warp::path!("conversations"))
        .and(warp::get())
        .and(auth.clone())
        .and(query_pairs())
        .and(e.clone())
        .and_then(super::conversation_list::list);
    let get = base
        .and(warp::path!("conversations" / String))
        .and(warp::get())
        .and(auth.clone())
        .and(e.clone())
        .and_then(get);
    let patch = base
        .and(warp::path!("conversations" / String))
        .and(warp::patch())
        .and(auth.clone())
        .and(json_body::<PatchBody>(limit))
        .and(e.clone())
        .and_then(patch);
    let mark_read = base
        .and(warp::path!("conversations" / String / "mark-read"))
        .and(warp::post())
        .and(auth.clone())
        .and(json_body::<MarkReadBody>(limit))
        .and(e.clone())
        .and_then(mark_read);
    let typing = base
        .and(warp::path!("conversations" / String / "typing"))
        .and(warp::post())
        .and(auth.clone())
        .and(json_body::<TypingBody>(limit))
        .and(e.clone())
        .and_then(typing);
    let unread = base
        .and(warp::path!("unread"))
        .and(warp::get())
        .and(auth)
        .and(e)
        .and_then(unread);
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(mark_read)
        .unify()
        .or(typing)
        .unify()
        .or(unread)
        .unify()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    service_id: ExternalId,
    /// When given, must be the service's provider (422 `provider_mismatch` otherwise).
    #[serde(default)]
    provider_id: Option<ExternalId>,
    /// The first message: not blank, at most `limits.max_text_chars` (default 2000) characters,
    /// no control characters but newline and tab.
    initial_message: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    client_msg_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    archived: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MarkReadBody {
    /// Read up to this message; absent: everything.
    #[serde(default)]
    up_to: Option<Id>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TypingBody {
    is_typing: bool,
}

/// A conversation with the message just added to it (`POST /api/v1/conversations`).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Opened {
    conversation: Conversation,
    message: Message,
}

/// One conversation's unread count.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct UnreadCount {
    conversation_id: Id,
    unread_count: u64,
}

/// `GET /api/v1/unread`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Unread {
    total: u64,
    conversations: Vec<UnreadCount>,
}

pub fn check_client_msg_id(c: &Option<String>) -> Result<(), ApiError> {
    if client_msg_id_ok(c.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::invalid_client_msg_id())
    }
}

/// The conversation as `user` sees it, or `conversation_not_found` for anyone else.
pub async fn load_for(
    engine: &EngineRef,
    id: Id,
    user: &ExternalId,
) -> Result<(ConversationDoc, Side), ApiError> {
    let doc = engine
        .store
        .get_conversation(id)
        .await?
        .ok_or_else(ApiError::conversation_not_found)?;
    let side = doc
        .record
        .side_of(user)
        .ok_or_else(ApiError::conversation_not_found)?;
    Ok((doc, side))
}

async fn display_name(
    engine: &EngineRef,
    user: &ExternalId,
    fallback: &str,
) -> Result<String, ApiError> {
    Ok(match engine.store.get_user(user).await? {
        Some(profile) => profile.name,
        None => fallback.to_string(),
    })
}

/// Contact a provider about a service: opens the conversation (201) or, when it exists, adds the
/// message to it (200); a retry with the same `client_msg_id` gets the original answer.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations",
    security(("bearer" = [])), request_body = CreateBody,
    responses(
        (status = 201, description = "conversation opened", body = Opened),
        (status = 200, description = "conversation existed; the message was added", body = Opened),
        Authed, JsonBody,
        (status = 403, description = "`forbidden_role` (customers only)", body = ErrorBody),
        (status = 404, description = "`service_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `provider_mismatch`, `own_service`, `text_required`, `text_too_long`, `text_invalid`, `message_rejected`", body = ErrorBody),
    ))]
async fn create(p: Principal, body: CreateBody, engine: EngineRef) -> Result<Response, Rejection> {
    // When the request arrived: where a send's ack latency starts (`switchboard_send_ack_seconds`).
    let received = std::time::Instant::now();
    create_inner(p, body, engine, received)
        .await
        .map_err(reject)
}

async fn create_inner(
    p: Principal,
    mut body: CreateBody,
    engine: EngineRef,
    received: std::time::Instant,
) -> Result<Response, ApiError> {
    if p.role != Role::Customer {
        return Err(ApiError::forbidden(
            "forbidden_role",
            "only customers can contact a provider",
        ));
    }
    let service = engine
        .store
        .get_service(&body.service_id)
        .await?
        .ok_or_else(|| ApiError::not_found("service_not_found", "service not found"))?;
    if let Some(given) = &body.provider_id {
        if *given != service.provider_id {
            return Err(ApiError::unprocessable(
                "provider_mismatch",
                "provider_id is not the provider of this service",
            ));
        }
    }
    if service.provider_id == p.user_id {
        return Err(ApiError::unprocessable(
            "own_service",
            "you cannot contact yourself about your own service",
        ));
    }
    validate_text(
        &body.initial_message,
        engine.config.limits.max_text_chars,
        false,
    )?;
    check_client_msg_id(&body.client_msg_id)?;
    let (text, flags) = engine
        .moderate(std::mem::take(&mut body.initial_message))
        .await?;
    body.initial_message = text;

    let existing = engine
        .store
        .find_conversation(&service.id, &service.provider_id, &p.user_id)
        .await?;
    if let Some(id) = existing {
        return append_to_existing(&engine, &p, id, body, flags, received).await;
    }
    // A new conversation and its first message are one atomic write: a crash can leave both or
    // neither, never an empty conversation in both lists. It costs one of the customer's new
    // conversations and one message; both are given back if it does not happen.
    engine
        .creations
        .check(&p.user_id)
        .map_err(|retry| ApiError::rate_limited_because(retry, "too many new conversations"))?;
    if let Err(e) = engine.spend_message_budget(&p.user_id) {
        engine.creations.refund(&p.user_id);
        return Err(e);
    }
    let provider_fallback = service
        .provider_name
        .clone()
        .unwrap_or_else(|| service.provider_id.to_string());
    let now = now_ms();
    let mut doc = ConversationDoc {
        record: ConversationRecord {
            id: engine.ids.next_id(),
            service_id: service.id.clone(),
            service_title: service.title.clone(),
            provider_name: match &service.provider_name {
                Some(n) => n.clone(),
                None => display_name(&engine, &service.provider_id, &provider_fallback).await?,
            },
            provider_id: service.provider_id.clone(),
            customer_name: display_name(&engine, &p.user_id, &p.name).await?,
            customer_id: p.user_id.clone(),
            created_at: now,
        },
        state: ConversationState {
            activity_ms: now,
            ..ConversationState::default()
        },
    };
    let first = StoredMessage {
        id: engine.ids.next_id(),
        conversation_id: doc.record.id,
        seq: doc.next_seq(),
        sender_id: p.user_id.clone(),
        sender_name: p.name.clone(),
        message_type: MessageType::Text,
        text: body.initial_message.clone(),
        attachments: Vec::new(),
        created_at: now,
        client_msg_id: body.client_msg_id.clone(),
        deleted: false,
    };
    doc.append(Side::Customer, &first);
    let flag_rules: Vec<String> = flags.iter().map(|r| r.reason.clone()).collect();
    let notices = engine.notifier.on_created(&doc, Some(&first), &flag_rules);
    let (stored, created) = match engine
        .store
        .create_conversation_with(doc, Some(first.clone()), &Notifier::items(&notices))
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            engine.conversations.refund_message_budget(&p.user_id);
            engine.creations.refund(&p.user_id);
            return Err(e.into());
        }
    };
    if !created {
        // Another request created it first; this message joins it like any other, and pays
        // there (or not at all, if it is that request's retry).
        engine.conversations.refund_message_budget(&p.user_id);
        engine.creations.refund(&p.user_id);
        return append_to_existing(&engine, &p, stored.record.id, body, flags, received).await;
    }
    engine.notifier.committed(notices);
    engine.analytics.created(&stored.record);
    crate::search::feed::message_stored(&engine.search, &stored.record, &first);
    if !flags.is_empty() {
        if let Err(e) = engine.queue.flag(first.id, stored.record.id, flags).await {
            tracing::warn!(conversation_id = %stored.record.id, message_id = %first.id, error = %e, "flagged message not queued for review");
        }
    }
    announce_created(&engine, &stored, &first);
    Ok(json(
        StatusCode::CREATED,
        &Opened {
            conversation: stored.view(Side::Customer),
            message: first.view(Status::Sent),
        },
    ))
}

/// The conversation exists: the message goes through its actor (which dedupes a retry and
/// spends the budget). 200, except for the retry of the request that created the conversation,
/// which gets what that request got: 201 and the first message.
async fn append_to_existing(
    engine: &EngineRef,
    p: &Principal,
    id: Id,
    body: CreateBody,
    flags: Vec<Report>,
    received: std::time::Instant,
) -> Result<Response, ApiError> {
    let outcome = engine
        .ask(id, |reply| {
            ConversationMsg::Send(SendRequest {
                sender: p.user_id.clone(),
                sender_name: p.name.clone(),
                text: body.initial_message,
                attachments: Vec::new(),
                flags,
                client_msg_id: body.client_msg_id,
                origin: None,
                reply,
                received,
            })
        })
        .await?;
    let (doc, side) = load_for(engine, id, &p.user_id).await?;
    let status = if outcome.duplicate && outcome.message.seq == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(
        status,
        &Opened {
            conversation: doc.view(side),
            message: outcome.message,
        },
    ))
}

/// Tells both participants' devices about a conversation created without its actor, as the actor
/// would have for a first message: the provider gets the message, the conversation and their
/// unread count; the customer's other devices get the message and the conversation.
fn announce_created(engine: &EngineRef, doc: &ConversationDoc, first: &StoredMessage) {
    let registry = &engine.registry;
    let provider = &doc.record.provider_id;
    let event = Outgoing::new(ServerEvent::ChatMessage {
        message: first.view(Status::Sent),
    });
    registry.new_message_to(
        provider,
        event.clone(),
        doc.record.id,
        doc.state.provider.unread,
    );
    registry.to_user(&doc.record.customer_id, event, None);
    for side in [Side::Provider, Side::Customer] {
        let ev = Outgoing::new(ServerEvent::Conversation {
            conversation: doc.view(side),
        });
        registry.to_user(doc.record.user(side), ev, None);
    }
}

/// One conversation, as the caller sees it.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = Conversation), Authed, (status = 404, description = "`conversation_not_found` (also for a conversation the caller is not in)", body = ErrorBody)))]
async fn get(id: String, p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let (doc, side) = load_for(&engine, conversation_id(&id)?, &p.user_id).await?;
        Ok(json(StatusCode::OK, &doc.view(side)))
    }
    .await
    .map_err(reject)
}

/// Archive or unarchive a conversation, for the caller only.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "conversation id")),
    request_body = PatchBody,
    responses((status = 200, body = Conversation), Authed, JsonBody, (status = 404, description = "`conversation_not_found` (also for a conversation the caller is not in)", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn patch(
    id: String,
    p: Principal,
    body: PatchBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let (doc, _) = load_for(&engine, conversation_id(&id)?, &p.user_id).await?;
        let view = engine
            .ask(doc.record.id, |reply| ConversationMsg::SetArchived {
                user: p.user_id.clone(),
                archived: body.archived,
                reply,
            })
            .await?;
        Ok(json(StatusCode::OK, &view))
    }
    .await
    .map_err(reject)
}

/// Mark the conversation read up to a message (or entirely); the body may be left out.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/mark-read", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "conversation id")),
    request_body(content = MarkReadBody, description = "optional: an empty body reads everything"),
    responses((status = 200, body = ReadState), Authed, JsonBody, (status = 404, description = "`conversation_not_found` (also for a conversation the caller is not in)", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn mark_read(
    id: String,
    p: Principal,
    body: MarkReadBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let (doc, _) = load_for(&engine, conversation_id(&id)?, &p.user_id).await?;
        let state = engine
            .ask(doc.record.id, |reply| ConversationMsg::MarkRead {
                user: p.user_id.clone(),
                up_to: body.up_to,
                reply,
            })
            .await?;
        Ok(json(StatusCode::OK, &state))
    }
    .await
    .map_err(reject)
}

/// Tell the other participant the caller is (or stopped) typing.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/typing", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "conversation id")),
    request_body = TypingBody,
    responses((status = 204, description = "relayed"), Authed, JsonBody, (status = 404, description = "`conversation_not_found` (also for a conversation the caller is not in)", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn typing(
    id: String,
    p: Principal,
    body: TypingBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        // The budget comes first, so a flood costs no store reads; it is the same for a made-up id
        // as for a real one, so a 429 tells nobody which ids exist.
        engine.typing.check(&p.user_id).map_err(|retry| ApiError {
            message: format!("too many typing events; try again in {retry} s"),
            ..ApiError::rate_limited(retry)
        })?;
        let (doc, _) = load_for(&engine, conversation_id(&id)?, &p.user_id).await?;
        engine
            .ask(doc.record.id, |reply| ConversationMsg::Typing {
                user: p.user_id.clone(),
                is_typing: body.is_typing,
                reply,
            })
            .await?;
        Ok(no_content())
    }
    .await
    .map_err(reject)
}

/// The caller's unread counts, per conversation and in total.
#[utoipa::path(get, path = "/api/v1/unread", tag = "conversations",
    security(("bearer" = [])), responses((status = 200, body = Unread), Authed))]
async fn unread(p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let counts = engine.store.unread_counts(&p.user_id).await?;
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let conversations = counts
            .iter()
            .map(|(id, n)| UnreadCount {
                conversation_id: *id,
                unread_count: *n,
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &Unread {
                total,
                conversations,
            },
        ))
    }
    .await
    .map_err(reject)
}
