//! The dead letters: notifications given up after their last attempt (`webhooks.max_attempts`,
//! `email.max_attempts`). Operators list them and send one back to the outbox once the receiver
//! is fixed; it then goes out with its original id and body, so a receiver that did get it after
//! all can tell.

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::admin::operator;
use super::reply::{id_cursor, json, limit_param, query_pairs, reject, with_engine};
use crate::describe::errors::Operator;
use crate::domain::clock::{format_ms, now_ms};
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::notify::{key, Pending, Work};
use crate::storage::items::ItemKind;

pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("admin" / "v1" / "webhooks" / "dead")
        .and(warp::get())
        .and(operator(engine.clone()))
        .and(query_pairs())
        .and(with_engine(engine.clone()))
        .and_then(list);
    let retry = warp::path!("admin" / "v1" / "webhooks" / "dead" / String / "retry")
        .and(warp::post())
        .and(operator(engine.clone()))
        .and(with_engine(engine))
        .and_then(retry);
    list.or(retry).unify()
}

/// A dead letter sent back to the outbox.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Requeued {
    id: Id,
    #[schema(value_type = String, example = "queued")]
    status: &'static str,
}

fn not_found() -> ApiError {
    ApiError::not_found("notification_not_found", "no dead letter has this id")
}

fn view(p: &Pending) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": p.id,
        "channel": p.channel(),
        "created_at": format_ms(p.created_at),
        "attempts": p.attempts,
        "last_error": p.last_error,
    });
    match &p.work {
        Work::Webhook { event, body } => {
            v["type"] = serde_json::json!(event);
            v["body"] = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        }
        Work::Email {
            conversation,
            recipient,
        } => {
            v["type"] = serde_json::json!("email.unread");
            v["conversation_id"] = serde_json::json!(conversation);
            v["recipient_id"] = serde_json::json!(recipient);
        }
        Work::Push {
            conversation,
            recipient,
            ..
        } => {
            v["type"] = serde_json::json!("push.check");
            v["conversation_id"] = serde_json::json!(conversation);
            v["recipient_id"] = serde_json::json!(recipient);
        }
        Work::PushTo {
            recipient,
            subscription,
            payload,
            ..
        } => {
            v["type"] = serde_json::json!("push");
            v["recipient_id"] = serde_json::json!(recipient);
            v["subscription_id"] = serde_json::json!(subscription);
            v["body"] = serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
        }
    }
    v
}

/// Notifications given up after their last attempt. Items: `id`, `channel`, `type`,
/// `created_at`, `attempts`, `last_error` and what the notification was about.
#[utoipa::path(get, path = "/admin/v1/webhooks/dead", tag = "admin: notifications",
    security(("admin_token" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 50, at most 200 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = super::reply::Page<serde_json::Value>), Operator, (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody)))]
async fn list(_op: (), q: Vec<(String, String)>, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let limit = limit_param(&q, 50, 200)?;
        let after = id_cursor(&q)?;
        let after = after.map(key);
        let items = engine
            .store
            .list_items(ItemKind::DeadLetter, "", after.as_deref(), limit + 1)
            .await?;
        let more = items.len() > limit;
        let mut out = Vec::with_capacity(limit);
        let mut last = None;
        for item in items.iter().take(limit) {
            let p = Pending::from_item(item)?;
            last = Some(p.id);
            out.push(view(&p));
        }
        let next = if more {
            last.map(|id| id.to_string())
        } else {
            None
        };
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({"items": out, "next_cursor": next}),
        ))
    }
    .await
    .map_err(reject)
}

/// Send a dead letter back to the outbox, with its original id and body.
#[utoipa::path(post, path = "/admin/v1/webhooks/dead/{id}/retry", tag = "admin: notifications",
    security(("admin_token" = [])), params(("id" = String, Path, description = "notification id")),
    responses((status = 202, body = Requeued), Operator,
        (status = 404, description = "`notification_not_found`", body = ErrorBody)))]
async fn retry(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let id: Id = id.parse().map_err(|_| not_found())?;
        let value = engine
            .store
            .get_item(ItemKind::DeadLetter, "", &key(id))
            .await?
            .ok_or_else(not_found)?;
        let mut p: Pending = crate::storage::codec::decode(&value)?;
        p.attempts = 0;
        p.due_at = now_ms();
        engine
            .store
            .write_items(
                &[p.item(ItemKind::Notification)],
                &[(ItemKind::DeadLetter, String::new(), key(id))],
            )
            .await?;
        tracing::info!(notification = %id, "dead letter sent back to the outbox");
        engine.notifier.committed(vec![p]);
        Ok(json(
            StatusCode::ACCEPTED,
            &Requeued {
                id,
                status: "queued",
            },
        ))
    }
    .await
    .map_err(reject)
}
