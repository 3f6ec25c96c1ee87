//! Moderation over HTTP: a participant flags a message (`POST /api/v1/messages/{id}/flag`), an
//! operator works through the queue (`GET /admin/v1/moderation/queue`) and decides
//! (`POST /admin/v1/messages/{id}/moderation`: `approve` keeps the message, `remove` replaces it
//! with a tombstone for both sides, who get `message_deleted`).

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::admin::operator;
use super::conversations::load_for;
use super::reply::{
    id_cursor, json, json_body, limit_param, no_content, principal, query_pairs, reject,
    with_engine, Page,
};
use crate::actors::conversation::{ConversationMsg, Removal};
use crate::describe::errors::{Authed, JsonBody, Operator};
use crate::domain::clock::format_ms;
use crate::domain::message::StoredMessage;
use crate::domain::user::Principal;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::moderation::queue::{QueueEntry, Report, ReportSource};
use crate::notify::Notifier;

/// The answer to a flag: the message waits in the moderation queue.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Flagged {
    message_id: Id,
    #[schema(value_type = String, example = "queued")]
    status: &'static str,
}

/// Longest reason a participant may give.
const MAX_REASON_CHARS: usize = 500;

pub fn public_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    warp::path!("api" / "v1" / "messages" / String / "flag")
        .and(warp::post())
        .and(principal(engine.clone()))
        .and(json_body::<FlagBody>(limit))
        .and(with_engine(engine))
        .and_then(flag)
}

pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let queue = warp::path!("admin" / "v1" / "moderation" / "queue")
        .and(warp::get())
        .and(operator(engine.clone()))
        .and(query_pairs())
        .and(with_engine(engine.clone()))
        .and_then(queue);
    let decide = warp::path!("admin" / "v1" / "messages" / String / "moderation")
        .and(warp::post())
        .and(operator(engine.clone()))
        .and(json_body::<DecisionBody>(limit))
        .and(with_engine(engine))
        .and_then(decide);
    queue.or(decide).unify()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FlagBody {
    /// 1 to 500 characters once trimmed.
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

/// `approve` keeps the message; `remove` replaces it with a tombstone for both sides.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum Action {
    Approve,
    Remove,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    action: Action,
}

/// The message with `raw` id, or 404 `message_not_found`.
async fn message(engine: &EngineRef, raw: &str) -> Result<StoredMessage, ApiError> {
    let id: Id = raw.parse().map_err(|_| ApiError::message_not_found())?;
    engine
        .store
        .find_message(id)
        .await?
        .ok_or_else(ApiError::message_not_found)
}

/// Report a message to the moderators.
#[utoipa::path(post, path = "/api/v1/messages/{id}/flag", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "message id")), request_body = FlagBody,
    responses((status = 202, description = "queued for review", body = Flagged), Authed, JsonBody,
        (status = 404, description = "`message_not_found` (also for a message the caller cannot see)", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn flag(
    id: String,
    p: Principal,
    body: FlagBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let reason = body.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::unprocessable(
                "invalid_request",
                format!("reason must be 1 to {MAX_REASON_CHARS} characters"),
            ));
        }
        let m = message(&engine, &id).await?;
        // A stranger learns nothing: the same answer as for a message that does not exist.
        load_for(&engine, m.conversation_id, &p.user_id)
            .await
            .map_err(|_| ApiError::message_not_found())?;
        let report = Report::now(ReportSource::User, reason, Some(p.user_id.clone()));
        let notices = engine
            .notifier
            .on_flagged(&m, "user", &[reason.to_string()]);
        engine
            .queue
            .flag_with(m.id, m.conversation_id, vec![report], &Notifier::items(&notices))
            .await?;
        engine.notifier.committed(notices);
        tracing::info!(conversation_id = %m.conversation_id, message_id = %m.id, user_id = %p.user_id, "message flagged");
        Ok(json(
            StatusCode::ACCEPTED,
            &Flagged {
                message_id: m.id,
                status: "queued",
            },
        ))
    }
    .await
    .map_err(reject)
}

fn entry_view(entry: &QueueEntry, message: Option<&StoredMessage>) -> serde_json::Value {
    let reports: Vec<_> = entry
        .reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "source": r.source,
                "reason": r.reason,
                "by": r.by,
                "at": format_ms(r.at),
            })
        })
        .collect();
    serde_json::json!({
        "message_id": entry.message_id,
        "conversation_id": entry.conversation_id,
        "message": message.map(|m| m.view(crate::domain::message::Status::Sent)),
        "reports": reports,
    })
}

/// Flagged messages waiting for a decision, oldest first. Each item: `message_id`,
/// `conversation_id`, `message` (a `Message`, or null once gone) and `reports`
/// (`source`, `reason`, `by`, `at`).
#[utoipa::path(get, path = "/admin/v1/moderation/queue", tag = "admin: moderation",
    security(("admin_token" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 50, at most 200 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = Page<serde_json::Value>), Operator,
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody)))]
async fn queue(
    _op: (),
    q: Vec<(String, String)>,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let limit = limit_param(&q, 50, 200)?;
        let after = id_cursor(&q)?;
        let mut entries = engine.queue.page(after, limit + 1).await?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let mut items = Vec::with_capacity(entries.len());
        for e in &entries {
            let m = engine.store.find_message(e.message_id).await?;
            items.push(entry_view(e, m.as_ref()));
        }
        let next = if more {
            entries.last().map(|e| e.message_id.to_string())
        } else {
            None
        };
        Ok(json(
            StatusCode::OK,
            &Page {
                items,
                next_cursor: next,
            },
        ))
    }
    .await
    .map_err(reject)
}

/// Decide on a flagged message.
#[utoipa::path(post, path = "/admin/v1/messages/{id}/moderation", tag = "admin: moderation",
    security(("admin_token" = [])), params(("id" = String, Path, description = "message id")),
    request_body = DecisionBody,
    responses((status = 204, description = "decided"), Operator, JsonBody, (status = 404, description = "`message_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn decide(
    id: String,
    _op: (),
    body: DecisionBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let m = message(&engine, &id).await?;
        match body.action {
            Action::Approve => {
                tracing::info!(conversation_id = %m.conversation_id, message_id = %m.id, "moderation: approved");
            }
            Action::Remove => {
                engine
                    .ask(m.conversation_id, |reply| ConversationMsg::Remove {
                        message: m.id,
                        why: Removal::Moderator,
                        reply,
                    })
                    .await?;
                engine.attachments.unlink(m.conversation_id, &m.attachments).await;
                tracing::info!(conversation_id = %m.conversation_id, message_id = %m.id, "moderation: removed");
            }
        }
        engine.queue.resolve(m.id).await?;
        Ok(no_content())
    }
    .await
    .map_err(reject)
}
