//! The privacy routes of the admin API: `GET /admin/v1/users/{id}/export` (streamed JSON),
//! `DELETE /admin/v1/users/{id}` (erasure) and `POST /admin/v1/retention/run` (one retention
//! sweep now, as the background sweeper would run it). The work is in `privacy/`.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::admin::operator;
use super::reply::{external_id, json, reject, with_engine};
use crate::describe::errors::Operator;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::privacy::erase::Erasure;
use crate::privacy::retention::Sweep;
use crate::privacy::{erase, export, retention};

pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let op = operator(engine.clone());
    let e = with_engine(engine);
    let export = warp::path!("admin" / "v1" / "users" / String / "export")
        .and(warp::get())
        .and(op.clone())
        .and(e.clone())
        .and_then(export_user);
    let erase = warp::path!("admin" / "v1" / "users" / String)
        .and(warp::delete())
        .and(op.clone())
        .and(e.clone())
        .and_then(erase_user);
    let sweep = warp::path!("admin" / "v1" / "retention" / "run")
        .and(warp::post())
        .and(op)
        .and(e)
        .and_then(run_retention);
    export.or(erase).unify().or(sweep).unify()
}

/// Everything the store holds about a user, streamed as one JSON document (a download).
#[utoipa::path(get, path = "/admin/v1/users/{id}/export", tag = "admin: privacy",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "user id")),
    responses((status = 200, description = "the export, streamed (`Content-Disposition: attachment`)", body = serde_json::Value),
        Operator, (status = 400, description = "`invalid_id`", body = ErrorBody), (status = 404, description = "`user_not_found`", body = ErrorBody)))]
async fn export_user(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let user = external_id(&id)?;
        if !erase::known(&engine, &user).await? {
            return Err(ApiError::not_found("user_not_found", "user not found"));
        }
        let mut res = warp::reply::stream(export::stream(engine, user.clone())).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"switchboard-export-{}.json\"",
            user.as_str().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_"
            )
        )) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(res)
    }
    .await
    .map_err(reject)
}

/// Erase a user: their messages become tombstones, their attachments and profile are deleted.
#[utoipa::path(delete, path = "/admin/v1/users/{id}", tag = "admin: privacy",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "user id")),
    responses((status = 200, body = Erasure), Operator, (status = 400, description = "`invalid_id`", body = ErrorBody), (status = 404, description = "`user_not_found`", body = ErrorBody)))]
async fn erase_user(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let user = external_id(&id)?;
        let done = erase::erase(&engine, &user).await?;
        Ok(json(StatusCode::OK, &done))
    }
    .await
    .map_err(reject)
}

/// Run one retention sweep now (`privacy.retention_days`), as the background sweeper would.
#[utoipa::path(post, path = "/admin/v1/retention/run", tag = "admin: privacy",
    security(("admin_token" = [])), responses((status = 200, body = Sweep), Operator))]
async fn run_retention(_op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let done = retention::sweep(&engine).await?;
        Ok(json(StatusCode::OK, &done))
    }
    .await
    .map_err(reject)
}
