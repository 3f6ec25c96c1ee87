//! Web Push for the frontend: the server's VAPID public key for `pushManager.subscribe`, and the
//! caller's own subscriptions. Pushes themselves go out through the notification outbox
//! (`notify/`) when a message waits for a recipient who is offline.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::reply::{json, json_body, no_content, principal, reject, with_engine};
use crate::domain::clock::{format_ms, now_ms};
use crate::domain::user::Principal;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorKind};
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
#[derive(Deserialize)]
struct SubscriptionBody {
    endpoint: String,
    keys: Keys,
}

#[derive(Deserialize)]
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

fn view(s: &Subscription) -> serde_json::Value {
    serde_json::json!({"id": s.id, "endpoint": s.endpoint, "created_at": format_ms(s.created_at)})
}

async fn vapid_key(engine: EngineRef) -> Result<Response, Rejection> {
    match engine.notifier.vapid.get() {
        Some(v) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({"key": v.public_key}),
        )),
        None => Err(reject(disabled())),
    }
}

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

async fn list(p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let items: Vec<_> = push::list(&*engine.store, &p.user_id)
            .await?
            .iter()
            .map(view)
            .collect();
        Ok(json(StatusCode::OK, &serde_json::json!({"items": items})))
    }
    .await
    .map_err(reject)
}

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
