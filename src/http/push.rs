//! Web Push for the frontend: the server's VAPID public key for `pushManager.subscribe`, and the
//! caller's own subscriptions. Pushes themselves go out through the notification outbox
//! (`notify/`) when a message waits for a recipient who is offline.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::reply::{json, json_body, no_content, principal, reject, with_engine, Items};
use crate::describe::errors::{Authed, JsonBody};
use crate::domain::clock::{format_ms, now_ms};
use crate::domain::user::Principal;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::notify::push::{self, Subscription, MAX_PER_USER};

pub fn public_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let key = warp::path!("api" / "v1" / "push" / "vapid-public-key")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .and_then(vapid_key);
    let add = warp::path!("api" / "v1" / "push" / "subscriptions")
        .and(warp::post())
        .and(principal(engine.clone()))
        .and(json_body::<SubscriptionBody>(limit))
        .and(with_engine(engine.clone()))
        .and_then(add);
    let list = warp::path!("api" / "v1" / "push" / "subscriptions")
        .and(warp::get())
        .and(principal(engine.clone()))
        .and(with_engine(engine.clone()))
        .and_then(list);
    let remove = warp::path!("api" / "v1" / "push" / "subscriptions" / String)
        .and(warp::delete())
        .and(principal(engine.clone()))
        .and(with_engine(engine))
        .and_then(remove);
    key.or(add).unify().or(list).unify().or(remove).unify()
}

/// A browser's `PushSubscription.toJSON()`; `expirationTime` and anything else it adds is ignored.
#[derive(Deserialize, utoipa::ToSchema)]
struct SubscriptionBody {
    /// The push service's `https://` URL.
    endpoint: String,
    keys: Keys,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Keys {
    p256dh: String,
    auth: String,
}

fn disabled() -> ApiError {
    ApiError::not_found("push_disabled", "Web Push is not configured on this server")
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "subscription_not_found",
        "no subscription of yours has this id",
    )
}

/// A push subscription as its owner sees it (the keys are not shown again).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct SubscriptionView {
    id: Id,
    endpoint: String,
    #[schema(format = DateTime)]
    created_at: String,
}

fn view(s: &Subscription) -> SubscriptionView {
    SubscriptionView {
        id: s.id,
        endpoint: s.endpoint.clone(),
        created_at: format_ms(s.created_at),
    }
}

/// The VAPID public key browsers subscribe with.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct VapidKey<'a> {
    /// URL-safe base64, unpadded.
    key: &'a str,
}

/// The server's VAPID public key, for `PushManager.subscribe`. No token needed.
#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "push",
    responses((status = 200, body = VapidKey), (status = 404, description = "`push_disabled` (Web Push is not configured)", body = ErrorBody)))]
async fn vapid_key(engine: EngineRef) -> Result<Response, Rejection> {
    match engine.notifier.vapid.get() {
        Some(v) => Ok(json(StatusCode::OK, &VapidKey { key: &v.public_key })),
        None => Err(reject(disabled())),
    }
}

/// Subscribe this browser (its `PushSubscription.toJSON()`): 201, or 200 for an endpoint the
/// caller already has (its keys updated).
#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "push", security(("bearer" = [])),
    request_body = SubscriptionBody,
    responses((status = 201, body = SubscriptionView), (status = 200, description = "already subscribed", body = SubscriptionView),
        Authed, JsonBody, (status = 404, description = "`push_disabled` (Web Push is not configured)", body = ErrorBody),
        (status = 409, description = "`too_many_subscriptions`", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `invalid_subscription`", body = ErrorBody)))]
async fn add(
    p: Principal,
    body: SubscriptionBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        if engine.notifier.vapid.get().is_none() {
            return Err(disabled());
        }
        let cfg = &engine.notifier.push;
        let (endpoint, p256dh, auth) = (
            body.endpoint.trim().to_string(),
            body.keys.p256dh.trim().to_string(),
            body.keys.auth.trim().to_string(),
        );
        push::check(&endpoint, &p256dh, &auth, cfg.allow_insecure_endpoints)
            .map_err(|e| ApiError::unprocessable("invalid_subscription", e.to_string()))?;
        let _one_at_a_time = super::serial::per_user(p.user_id.as_str()).lock().await;
        let mine = push::list(&*engine.store, &p.user_id).await?;
        if let Some(existing) = mine.iter().find(|s| s.endpoint == endpoint) {
            // The same browser again (a page load re-subscribes): the one it has, with its
            // current keys.
            let mut s = existing.clone();
            if s.p256dh != p256dh || s.auth != auth {
                s.p256dh = p256dh;
                s.auth = auth;
                push::put(&*engine.store, &s).await?;
            }
            return Ok(json(StatusCode::OK, &view(&s)));
        }
        if mine.len() >= MAX_PER_USER {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "too_many_subscriptions",
                format!("at most {MAX_PER_USER} push subscriptions per user; delete one first"),
            ));
        }
        let s = Subscription {
            id: engine.ids.next_id(),
            user: p.user_id.clone(),
            endpoint,
            p256dh,
            auth,
            created_at: now_ms(),
        };
        push::put(&*engine.store, &s).await?;
        tracing::info!(user_id = %p.user_id, subscription = %s.id, "push subscription added");
        Ok(json(StatusCode::CREATED, &view(&s)))
    }
    .await
    .map_err(reject)
}

#[utoipa::path(get, path = "/api/v1/push/subscriptions", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = Items<SubscriptionView>), Authed))]
async fn list(p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let items: Vec<_> = push::list(&*engine.store, &p.user_id)
            .await?
            .iter()
            .map(view)
            .collect();
        Ok(json(StatusCode::OK, &Items { items }))
    }
    .await
    .map_err(reject)
}

#[utoipa::path(delete, path = "/api/v1/push/subscriptions/{id}", tag = "push", security(("bearer" = [])),
    params(("id" = String, Path, description = "subscription id")),
    responses((status = 204, description = "removed"), Authed,
        (status = 404, description = "`subscription_not_found`", body = ErrorBody)))]
async fn remove(id: String, p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let id: Id = id.parse().map_err(|_| not_found())?;
        let _one_at_a_time = super::serial::per_user(p.user_id.as_str()).lock().await;
        if push::get(&*engine.store, &p.user_id, id).await?.is_none() {
            return Err(not_found());
        }
        push::remove(&*engine.store, &p.user_id, id).await?;
        Ok(no_content())
    }
    .await
    .map_err(reject)
}
