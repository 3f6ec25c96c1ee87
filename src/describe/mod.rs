//! Machine-readable descriptions of the HTTP APIs and the socket, generated from the code so they
//! cannot drift from it:
//!
//! - `GET /api/v1/openapi.json`: OpenAPI 3.1 of the public API (no token needed);
//! - `GET /admin/v1/openapi.json`: OpenAPI 3.1 of the admin API (admin listener, operators only);
//! - `GET /api/v1/asyncapi.json`: AsyncAPI 3.0 of `/ws` (no token needed).
//!
//! Routes and status codes come from the `#[utoipa::path]` on each handler (`openapi`), bodies
//! from `#[derive(utoipa::ToSchema)]` on the serde types the handlers use; the socket's messages
//! from the same derives on `ClientFrame` and `ServerEvent` (`asyncapi`). Each document is built
//! once, on first request, and kept as its JSON text.

pub mod asyncapi;
pub mod errors;
pub mod openapi;
mod schema;

use std::sync::OnceLock;

use utoipa::OpenApi;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::http::admin::operator;
use crate::http::reply::reject;

/// A document as JSON text, or why it could not be written (never expected: a 500 then).
type Built = Result<String, String>;

fn cached(cell: &'static OnceLock<Built>, build: fn() -> Built) -> Result<Response, Rejection> {
    match cell.get_or_init(build) {
        Ok(text) => {
            let mut res = text.clone().into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            *res.status_mut() = StatusCode::OK;
            Ok(res)
        }
        Err(e) => {
            tracing::error!(error = %e, "an API description could not be written");
            Err(reject(ApiError::internal(
                "the API description could not be written",
            )))
        }
    }
}

/// The public API's OpenAPI document as JSON text.
pub fn public_document() -> Built {
    openapi::PublicApi::openapi()
        .to_pretty_json()
        .map_err(|e| e.to_string())
}

/// The admin API's OpenAPI document as JSON text.
pub fn admin_document() -> Built {
    openapi::AdminApi::openapi()
        .to_pretty_json()
        .map_err(|e| e.to_string())
}

/// The socket's AsyncAPI document as JSON text.
pub fn asyncapi_document() -> Built {
    asyncapi::document()
        .and_then(|d| serde_json::to_string_pretty(&d))
        .map_err(|e| e.to_string())
}

static PUBLIC: OnceLock<Built> = OnceLock::new();
static ADMIN: OnceLock<Built> = OnceLock::new();
static ASYNCAPI: OnceLock<Built> = OnceLock::new();

/// The public API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "describe",
    responses(
        (status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = serde_json::Value),
        (status = 500, description = "`internal`", body = ErrorBody)))]
async fn public_openapi() -> Result<Response, Rejection> {
    cached(&PUBLIC, public_document)
}

/// The socket's AsyncAPI 3.0 document.
#[utoipa::path(get, path = "/api/v1/asyncapi.json", tag = "describe",
    responses(
        (status = 200, description = "AsyncAPI 3.0", content_type = "application/json", body = serde_json::Value),
        (status = 500, description = "`internal`", body = ErrorBody)))]
async fn asyncapi() -> Result<Response, Rejection> {
    cached(&ASYNCAPI, asyncapi_document)
}

/// The admin API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/admin/v1/openapi.json", tag = "describe",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = serde_json::Value),
        errors::Operator,
        (status = 500, description = "`internal`", body = ErrorBody)))]
async fn admin_openapi(_op: ()) -> Result<Response, Rejection> {
    cached(&ADMIN, admin_document)
}

/// `GET /api/v1/openapi.json` and `GET /api/v1/asyncapi.json`, on the public listener.
pub fn public_routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let openapi = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .and_then(public_openapi);
    let asyncapi = warp::path!("api" / "v1" / "asyncapi.json")
        .and(warp::get())
        .and_then(asyncapi);
    openapi.or(asyncapi).unify()
}

/// `GET /admin/v1/openapi.json`, on the admin listener.
pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("admin" / "v1" / "openapi.json")
        .and(warp::get())
        .and(operator(engine))
        .and_then(admin_openapi)
}

#[cfg(test)]
mod tests;
