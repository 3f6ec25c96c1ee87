//! `POST /api/v1/dev/tokens`: signed tokens for local runs and load tests, only when
//! `auth.dev_tokens` is on. Anyone who can reach this route can act as any user, which is why it
//! is off by default and the server warns loudly at startup when it is on.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::reply::{json, json_body, reject, with_engine};
use crate::describe::errors::JsonBody;
use crate::domain::user::{ExternalId, Principal, Role};
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};

/// A signed access token for the user asked for.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct DevToken {
    token: String,
}

pub fn routes(engine: EngineRef) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "dev" / "tokens")
        .and(warp::post())
        .and(json_body::<TokenBody>(engine.config.limits.max_body_bytes))
        .and(with_engine(engine))
        .and_then(mint)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    user_id: ExternalId,
    role: Role,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// Mint a token for any user (local runs and load tests only). With `auth.dev_tokens` off the
/// route answers exactly as a route that does not exist.
#[utoipa::path(post, path = "/api/v1/dev/tokens", tag = "dev", request_body = TokenBody,
    responses((status = 200, body = DevToken), JsonBody,
        (status = 404, description = "`not_found` (dev tokens are off)", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn mint(body: TokenBody, engine: EngineRef) -> Result<Response, Rejection> {
    let principal = Principal {
        name: body.name.unwrap_or_else(|| body.user_id.to_string()),
        user_id: body.user_id,
        role: body.role,
        email: body.email,
    };
    match engine.auth.mint_dev_token(&principal) {
        None => Err(reject(ApiError::not_found("not_found", "no such route"))),
        Some(Err(e)) => Err(reject(e.into())),
        Some(Ok(token)) => Ok(json(StatusCode::OK, &DevToken { token })),
    }
}
