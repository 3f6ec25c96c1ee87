//! HTTP: the public API (`/api/v1`, `/ws`) and the admin API, each a warp filter tree ending in
//! the one `recover` that writes the contract's error body. The public tree is wrapped in CORS
//! (`cors`); both send `X-Content-Type-Options: nosniff` on every answer.

pub mod address;
pub mod admin;
pub mod analytics;
pub mod attachments;
pub mod audit;
pub mod conversation_list;
pub mod conversations;
pub mod cors;
pub mod credentials;
pub mod demo;
pub mod dev;
pub mod listener;
pub mod messages;
pub mod moderation;
pub mod privacy;
pub mod push;
pub mod reply;
pub mod search;
pub mod serial;
pub mod services;
pub mod templates;
pub mod tls;
pub mod webhooks;

use tokio::sync::watch;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::engine::EngineRef;
use crate::storage::StoreHealth;
use reply::{json, with_engine};

/// `GET /healthz` (alive) and `GET /readyz` (store reachable): no token, on both listeners.
fn health(engine: EngineRef) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let healthz = warp::path!("healthz").and(warp::get()).map(healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_engine(engine))
        .then(readyz);
    healthz.or(readyz).unify()
}

/// `{"status": "ok"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Alive {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// Whether the store can be reached.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, or `unavailable` (with 503) when the store is down.
    #[schema(value_type = String, pattern = "^(ready|unavailable)$")]
    status: &'static str,
    store: StoreHealth,
}

/// The process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "alive", body = Alive)))]
pub fn healthz() -> Response {
    json(StatusCode::OK, &Alive { status: "ok" })
}

/// Ready for traffic: the store answers. 503 while it is down.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "ready (the store may be `degraded`)", body = Readiness),
        (status = 503, description = "the store is down", body = Readiness)))]
pub async fn readyz(engine: EngineRef) -> Response {
    let store = engine.store.health().await;
    let (status, word) = if store == StoreHealth::Down {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else {
        (StatusCode::OK, "ready")
    };
    json(
        status,
        &Readiness {
            status: word,
            store,
        },
    )
}

/// Everything on the public listener.
pub fn public(
    engine: EngineRef,
    shutdown: watch::Receiver<bool>,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let origins = engine.config.http.allowed_origins.clone();
    let credentials = engine.config.auth.cookie_name.is_some();
    // Two groups are boxed: each `.or` nests the whole tree's type one level deeper, and past
    // about twenty levels the release build's layout computation overflows rustc's query depth
    // (debug builds still compiled). A boxed group is one allocation per request that reaches it.
    let chat = conversations::routes(engine.clone())
        .or(messages::routes(engine.clone()))
        .unify()
        .or(attachments::routes(engine.clone()))
        .unify()
        .or(moderation::public_routes(engine.clone()))
        .unify()
        .boxed();
    let tools = push::public_routes(engine.clone())
        .or(templates::public_routes(engine.clone()))
        .unify()
        .or(analytics::public_routes(engine.clone()))
        .unify()
        .or(search::routes(engine.clone()))
        .unify()
        .or(services::public_routes(engine.clone()))
        .unify()
        .boxed();
    let routes = health(engine.clone())
        .or(crate::gateway::routes(engine.clone(), shutdown))
        .unify()
        .or(chat)
        .unify()
        .or(tools)
        .unify()
        .or(demo::routes(engine.config.http.demo))
        .unify()
        .or(dev::routes(engine))
        .unify()
        .or(crate::describe::public_routes())
        .unify()
        .recover(reply::recover)
        .unify();
    cors::wrap(routes, &origins, credentials).map(reply::nosniff)
}

/// Everything on the admin listener.
pub fn admin(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    // Boxed for the same reason as the public tree's groups.
    let operations = audit::admin_routes(engine.clone())
        .or(analytics::admin_routes(engine.clone()))
        .unify()
        .or(services::admin_routes(engine.clone()))
        .unify()
        .or(moderation::admin_routes(engine.clone()))
        .unify()
        .or(webhooks::admin_routes(engine.clone()))
        .unify()
        .or(attachments::admin_routes(engine.clone()))
        .unify()
        .or(privacy::admin_routes(engine.clone()))
        .unify()
        .boxed();
    let routes = health(engine.clone())
        .or(operations)
        .unify()
        .or(admin::routes(engine.clone()))
        .unify()
        .or(crate::describe::admin_routes(engine.clone()))
        .unify()
        .recover(reply::recover)
        .unify();
    audit::audited(engine, routes).map(reply::nosniff)
}
