//! The operators' API, served on the admin listener: users, stats, any conversation, forced
//! disconnects and Prometheus metrics. Authenticated by the configured admin token or a JWT with
//! role `admin`.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::messages::history_page;
use super::reply::{
    bearer_token, conversation_id, external_id, json, json_body, query_pairs, reject, with_engine,
};
use crate::actors::outbox::close_code;
use crate::actors::user_session::SessionMsg;
use crate::describe::errors::{JsonBody, Operator as OperatorErrors};
use crate::domain::conversation::Side;
use crate::domain::user::{Role, UserProfile};
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::metrics::{Live, CONTENT_TYPE};
use crate::storage::StoreHealth;

/// Who an operator is: the static admin token, or a user whose JWT has role `admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    Token,
    User(crate::domain::user::ExternalId),
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operator::Token => f.write_str("admin_token"),
            Operator::User(id) => write!(f, "user:{id}"),
        }
    }
}

/// The operator a bearer token names, or why it names none.
pub fn identify(engine: &EngineRef, token: Option<&str>) -> Result<Operator, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "missing_token",
            "an admin token is required",
        ));
    };
    let admin = &engine.config.admin.token;
    if !admin.is_empty() && constant_time_eq(admin.as_bytes(), token.as_bytes()) {
        return Ok(Operator::Token);
    }
    match engine.auth.verify(token) {
        Ok(p) if p.role == Role::Admin => Ok(Operator::User(p.user_id)),
        Ok(_) => Err(ApiError::forbidden("forbidden_role", "operators only")),
        Err(e) => Err(e.into()),
    }
}

/// Passes operators only.
pub fn operator(engine: EngineRef) -> impl Filter<Extract = ((),), Error = Rejection> + Clone {
    bearer_token().and_then(move |token: Option<String>| {
        let engine = engine.clone();
        async move {
            identify(&engine, token.as_deref())
                .map(|_| ())
                .map_err(reject)
        }
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn routes(engine: EngineRef) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let op = operator(engine.clone());
    let e = with_engine(engine);
    let put_user = warp::path!("admin" / "v1" / "users" / String)
        .and(warp::put())
        .and(op.clone())
        .and(json_body::<UserBody>(limit))
        .and(e.clone())
        .and_then(put_user);
    let get_user = warp::path!("admin" / "v1" / "users" / String)
        .and(warp::get())
        .and(op.clone())
        .and(e.clone())
        .and_then(get_user);
    let disconnect = warp::path!("admin" / "v1" / "users" / String / "disconnect")
        .and(warp::post())
        .and(op.clone())
        .and(e.clone())
        .and_then(disconnect);
    let stats = warp::path!("admin" / "v1" / "stats")
        .and(warp::get())
        .and(op.clone())
        .and(e.clone())
        .and_then(stats);
    let conversation = warp::path!("admin" / "v1" / "conversations" / String)
        .and(warp::get())
        .and(op.clone())
        .and(e.clone())
        .and_then(conversation);
    let messages = warp::path!("admin" / "v1" / "conversations" / String / "messages")
        .and(warp::get())
        .and(op.clone())
        .and(query_pairs())
        .and(e.clone())
        .and_then(messages);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(op)
        .and(e)
        .and_then(metrics);
    put_user
        .or(get_user)
        .unify()
        .or(disconnect)
        .unify()
        .or(stats)
        .unify()
        .or(conversation)
        .unify()
        .or(messages)
        .unify()
        .or(metrics)
        .unify()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserBody {
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// An address like `name@example.com`, at most 254 characters; blank: none.
    #[serde(default)]
    #[schema(max_length = 254)]
    email: Option<String>,
    role: Role,
    /// Unread-message e-mails; absent means yes (API.md).
    #[serde(default)]
    notify_email: Option<bool>,
}

/// Create or replace a user's profile (it overrides what tokens say).
#[utoipa::path(put, path = "/admin/v1/users/{id}", tag = "admin: users",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "user id")), request_body = UserBody,
    responses((status = 200, body = UserProfile), OperatorErrors, JsonBody, (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `invalid_name`, `invalid_email`", body = ErrorBody)))]
async fn put_user(
    id: String,
    _op: (),
    body: UserBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let name = body.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::unprocessable(
                "invalid_name",
                "name must be 1 to 200 characters",
            ));
        }
        let email = body
            .email
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
        if let Some(e) = &email {
            let (local, domain) = e.split_once('@').unwrap_or(("", ""));
            if local.is_empty()
                || domain.is_empty()
                || e.len() > 254
                || e.chars().any(char::is_whitespace)
            {
                return Err(ApiError::unprocessable(
                    "invalid_email",
                    "email must be an address like name@example.com",
                ));
            }
        }
        let id = external_id(&id)?;
        let notify_email = match body.notify_email {
            Some(n) => n,
            None => engine
                .store
                .get_user(&id)
                .await?
                .is_none_or(|u| u.notify_email),
        };
        let user = UserProfile {
            id,
            name,
            email,
            role: body.role,
            notify_email,
        };
        engine.store.put_user(&user).await?;
        Ok(json(StatusCode::OK, &user))
    }
    .await
    .map_err(reject)
}

#[utoipa::path(get, path = "/admin/v1/users/{id}", tag = "admin: users",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "user id")),
    responses((status = 200, body = UserProfile), OperatorErrors, (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody)))]
async fn get_user(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let user = engine
            .store
            .get_user(&external_id(&id)?)
            .await?
            .ok_or_else(|| ApiError::not_found("user_not_found", "user not found"))?;
        Ok(json(StatusCode::OK, &user))
    }
    .await
    .map_err(reject)
}

/// The answer to a forced disconnect.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Disconnected {
    user_id: crate::domain::user::ExternalId,
    /// Whether the user had a socket open to close.
    was_connected: bool,
}

/// Close every socket of a user (close code 1008).
#[utoipa::path(post, path = "/admin/v1/users/{id}/disconnect", tag = "admin: users",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "user id")),
    responses((status = 200, body = Disconnected), OperatorErrors, (status = 400, description = "`invalid_id`", body = ErrorBody)))]
async fn disconnect(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let user = external_id(&id)?;
        let connected = match engine.registry.session(&user) {
            Some(s) => s
                .send_message(SessionMsg::Disconnect {
                    code: close_code::POLICY,
                    reason: "disconnected by an operator".into(),
                })
                .is_ok(),
            None => false,
        };
        Ok(json(
            StatusCode::OK,
            &Disconnected {
                user_id: user,
                was_connected: connected,
            },
        ))
    }
    .await
    .map_err(reject)
}

fn live(engine: &EngineRef, health: StoreHealth) -> Live {
    Live {
        online_users: engine.registry.online_users(),
        conversation_actors: engine.registry.conversation_actors(),
        session_actors: engine.registry.session_actors(),
        store_up: health != StoreHealth::Down,
        uptime_secs: engine.started.elapsed().as_secs(),
        search_dropped: engine.search.as_ref().map_or(0, |index| index.dropped()),
        analytics_dropped: engine.analytics.dropped(),
    }
}

/// Live figures: `connections`, `online_users`, `conversation_actors`, `session_actors`,
/// `messages_per_second`, `store` (`up`/`degraded`/`down`), `uptime_seconds`, `version`.
#[utoipa::path(get, path = "/admin/v1/stats", tag = "admin: operations",
    security(("admin_token" = [])),
    responses((status = 200, body = serde_json::Value), OperatorErrors))]
async fn stats(_op: (), engine: EngineRef) -> Result<Response, Rejection> {
    let health = engine.store.health().await;
    let l = live(&engine, health);
    let m = &engine.metrics;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "connections": m.connections.total(),
            "online_users": l.online_users,
            "conversation_actors": l.conversation_actors,
            "session_actors": l.session_actors,
            "messages_per_second": m.messages_per_second(),
            "store": health,
            "uptime_seconds": l.uptime_secs,
            "version": env!("CARGO_PKG_VERSION"),
        }),
    ))
}

/// Prometheus metrics, in the OpenMetrics text format (`prometheus-client`'s exposition).
#[utoipa::path(get, path = "/metrics", tag = "admin: operations",
    security(("admin_token" = [])),
    responses((status = 200, description = "OpenMetrics text, ending with `# EOF`", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        OperatorErrors))]
async fn metrics(_op: (), engine: EngineRef) -> Result<Response, Rejection> {
    let health = engine.store.health().await;
    match engine.metrics.render(&live(&engine, health)) {
        Ok(text) => {
            Ok(warp::reply::with_header(text, "content-type", CONTENT_TYPE).into_response())
        }
        Err(_) => {
            tracing::error!("the metrics exposition could not be written");
            Err(reject(ApiError::internal("metrics could not be rendered")))
        }
    }
}

/// Any conversation, with both participants' read state (`participants.customer`,
/// `participants.provider`: `unread_count`, `last_read_message_id`, `read_seq`,
/// `delivered_seq`, `archived`) instead of one caller's.
#[utoipa::path(get, path = "/admin/v1/conversations/{id}", tag = "admin: conversations",
    security(("admin_token" = [])), params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = serde_json::Value), OperatorErrors,
        (status = 404, description = "`conversation_not_found`", body = ErrorBody)))]
async fn conversation(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let doc = engine
            .store
            .get_conversation(conversation_id(&id)?)
            .await?
            .ok_or_else(ApiError::conversation_not_found)?;
        let side = |s: Side| {
            let p = doc.state.side(s);
            serde_json::json!({
                "unread_count": p.unread,
                "last_read_message_id": p.read_message_id,
                "read_seq": p.read_seq,
                "delivered_seq": p.delivered_seq,
                "archived": p.archived,
            })
        };
        let mut body = serde_json::to_value(doc.view(Side::Provider)).map_err(|e| ApiError::unavailable(e.to_string()))?;
        if let Some(obj) = body.as_object_mut() {
            for k in ["unread_count", "archived", "last_read_message_id"] {
                obj.remove(k);
            }
            obj.insert(
                "participants".into(),
                serde_json::json!({"customer": side(Side::Customer), "provider": side(Side::Provider)}),
            );
        }
        Ok(json(StatusCode::OK, &body))
    }
    .await
    .map_err(reject)
}

/// Any conversation's history, newest first, including what participants deleted for themselves.
#[utoipa::path(get, path = "/admin/v1/conversations/{id}/messages", tag = "admin: conversations",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "conversation id"),
        ("before" = Option<String>, Query, description = "message id: the page before it"),
        ("after" = Option<String>, Query, description = "message id: the page after it"),
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 30, at most 100 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = super::reply::Page<crate::domain::message::Message>), OperatorErrors,
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`, `message_not_found`", body = ErrorBody)))]
async fn messages(
    id: String,
    _op: (),
    q: Vec<(String, String)>,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let doc = engine
            .store
            .get_conversation(conversation_id(&id)?)
            .await?
            .ok_or_else(ApiError::conversation_not_found)?;
        Ok(json(
            StatusCode::OK,
            &history_page(&engine, &doc, &q, None).await?,
        ))
    }
    .await
    .map_err(reject)
}
