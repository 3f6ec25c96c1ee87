//! `/api/v1/templates`: a provider's own quick replies (`templates/`). Providers only; another
//! provider's template is 404, as if it did not exist.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::reply::{json, json_body, no_content, principal, reject, with_engine, Items};
use super::serial::per_user;
use crate::describe::errors::{Authed, JsonBody};
use crate::domain::user::{Principal, Role};
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::templates::{self, Template, TemplateError};

pub fn public_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let list = warp::path!("api" / "v1" / "templates")
        .and(warp::get())
        .and(principal(engine.clone()))
        .and(with_engine(engine.clone()))
        .and_then(list);
    let add = warp::path!("api" / "v1" / "templates")
        .and(warp::post())
        .and(principal(engine.clone()))
        .and(json_body::<AddBody>(limit))
        .and(with_engine(engine.clone()))
        .and_then(add);
    let update = warp::path!("api" / "v1" / "templates" / String)
        .and(warp::patch())
        .and(principal(engine.clone()))
        .and(json_body::<UpdateBody>(limit))
        .and(with_engine(engine.clone()))
        .and_then(update);
    let remove = warp::path!("api" / "v1" / "templates" / String)
        .and(warp::delete())
        .and(principal(engine.clone()))
        .and(with_engine(engine))
        .and_then(remove);
    list.or(add).unify().or(update).unify().or(remove).unify()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddBody {
    /// 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    text: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    text: Option<String>,
    #[serde(default)]
    position: Option<u32>,
}

impl From<TemplateError> for ApiError {
    fn from(e: TemplateError) -> Self {
        match e {
            TemplateError::BadText => ApiError::unprocessable("invalid_text", e.to_string()),
            TemplateError::TooMany => {
                ApiError::new(ErrorKind::Conflict, "too_many_templates", e.to_string())
            }
            TemplateError::NotFound => ApiError::not_found("template_not_found", e.to_string()),
            TemplateError::Store(s) => s.into(),
        }
    }
}

fn provider_only(p: &Principal) -> Result<(), ApiError> {
    if p.role == Role::Provider {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden_role",
            "quick-reply templates are for providers",
        ))
    }
}

fn template_id(raw: &str) -> Result<Id, ApiError> {
    raw.parse().map_err(|_| TemplateError::NotFound.into())
}

/// The provider's quick-reply templates, in their order.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    responses((status = 200, body = Items<Template>), Authed, (status = 403, description = "`forbidden_role` (providers only)", body = ErrorBody)))]
async fn list(p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        provider_only(&p)?;
        let items = templates::list(&*engine.store, &p.user_id).await?;
        Ok(json(StatusCode::OK, &Items { items }))
    }
    .await
    .map_err(reject)
}

#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    request_body = AddBody,
    responses((status = 201, body = Template), Authed, JsonBody, (status = 403, description = "`forbidden_role` (providers only)", body = ErrorBody),
        (status = 409, description = "`too_many_templates`", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `invalid_text`", body = ErrorBody)))]
async fn add(p: Principal, body: AddBody, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        provider_only(&p)?;
        let _one_at_a_time = per_user(p.user_id.as_str()).lock().await;
        let id = engine.ids.next_id();
        let t = templates::add(&*engine.store, &p.user_id, id, &body.text).await?;
        Ok(json(StatusCode::CREATED, &t))
    }
    .await
    .map_err(reject)
}

/// Change a template's text or move it to another position.
#[utoipa::path(patch, path = "/api/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(("id" = String, Path, description = "template id")), request_body = UpdateBody,
    responses((status = 200, body = Template), Authed, JsonBody, (status = 403, description = "`forbidden_role` (providers only)", body = ErrorBody), (status = 404, description = "`template_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `invalid_text`", body = ErrorBody)))]
async fn update(
    id: String,
    p: Principal,
    body: UpdateBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        provider_only(&p)?;
        let id = template_id(&id)?;
        let _one_at_a_time = per_user(p.user_id.as_str()).lock().await;
        let t = templates::update(
            &*engine.store,
            &p.user_id,
            id,
            body.text.as_deref(),
            body.position,
        )
        .await?;
        Ok(json(StatusCode::OK, &t))
    }
    .await
    .map_err(reject)
}

#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(("id" = String, Path, description = "template id")),
    responses((status = 204, description = "removed"), Authed, (status = 403, description = "`forbidden_role` (providers only)", body = ErrorBody), (status = 404, description = "`template_not_found`", body = ErrorBody)))]
async fn remove(id: String, p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        provider_only(&p)?;
        let id = template_id(&id)?;
        let _one_at_a_time = per_user(p.user_id.as_str()).lock().await;
        templates::remove(&*engine.store, &p.user_id, id).await?;
        Ok(no_content())
    }
    .await
    .map_err(reject)
}
