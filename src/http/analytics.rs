//! The KPIs over HTTP (`analytics/`): `GET /admin/v1/analytics` for any provider or service,
//! `GET /api/v1/me/analytics` for a provider's own, `POST /admin/v1/conversations/{id}/outcome`
//! where the marketplace reports bookings, and, with `admin.clock_control`, `PUT /admin/v1/clock`.

use serde::Deserialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::admin::operator;
use super::reply::{
    conversation_id, external_id, json, json_body, param, principal, query_pairs, reject,
    with_engine,
};
use crate::analytics::report::{self, Period, Report, MAX_DAYS};
use crate::analytics::Dimension;
use crate::describe::errors::{Authed, JsonBody, Operator};
use crate::domain::clock::{day_of, format_ms, now_ms, parse_day, parse_rfc3339_ms, set_now_ms};
use crate::domain::user::{Principal, Role};
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};

pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let clock_control = engine.config.admin.clock_control;
    let op = operator(engine.clone());
    let e = with_engine(engine);
    let analytics = warp::path!("admin" / "v1" / "analytics")
        .and(warp::get())
        .and(op.clone())
        .and(query_pairs())
        .and(accept())
        .and(e.clone())
        .and_then(admin_report);
    let outcome = warp::path!("admin" / "v1" / "conversations" / String / "outcome")
        .and(warp::post())
        .and(op.clone())
        .and(json_body::<OutcomeBody>(limit))
        .and(e.clone())
        .and_then(outcome);
    let clock = warp::path!("admin" / "v1" / "clock")
        .and(warp::put())
        .and(warp::any().and_then(move || async move {
            if clock_control {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        }))
        .untuple_one()
        .and(op)
        .and(json_body::<ClockBody>(limit))
        .and_then(set_clock);
    analytics.or(outcome).unify().or(clock).unify()
}

pub fn public_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "me" / "analytics")
        .and(warp::get())
        .and(principal(engine.clone()))
        .and(query_pairs())
        .and(accept())
        .and(with_engine(engine))
        .and_then(my_report)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    booked: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    /// RFC 3339, like `2026-11-24T10:15:30.123Z`.
    #[schema(format = DateTime)]
    now: String,
}

/// The outcome recorded for a conversation.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Outcome {
    conversation_id: crate::domain::Id,
    booked: bool,
}

/// The engine's clock after setting it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Clock {
    #[schema(format = DateTime)]
    now: String,
}

/// Whether the caller asked for CSV.
fn accept() -> impl Filter<Extract = (bool,), Error = Rejection> + Clone {
    warp::header::optional::<String>("accept")
        .map(|a: Option<String>| a.is_some_and(|a| a.contains("text/csv")))
}

/// `from` / `to` as `YYYY-MM-DD` (UTC days, both included); the last 30 days by default.
fn period(pairs: &[(String, String)]) -> Result<Period, ApiError> {
    let day = |name: &str| {
        param(pairs, name)
            .map(|v| {
                parse_day(v).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("{name} must be a date like 2026-11-24"),
                    )
                })
            })
            .transpose()
    };
    let to = day("to")?.unwrap_or_else(|| day_of(now_ms()));
    let from = day("from")?.unwrap_or(to - 29);
    if from > to {
        return Err(ApiError::bad_request("invalid_query", "from is after to"));
    }
    if to - from >= MAX_DAYS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("a report covers at most {MAX_DAYS} days"),
        ));
    }
    Ok(Period { from, to })
}

async fn answer(
    engine: &EngineRef,
    dim: &Dimension,
    period: Period,
    csv: bool,
) -> Result<Response, ApiError> {
    // What was counted before this request is in the report.
    engine.analytics.flush().await;
    let days = report::read_days(engine.analytics.store(), dim, period).await?;
    let report = report::build(period, &days);
    if !csv {
        return Ok(json(StatusCode::OK, &report));
    }
    let mut res = report::csv(&report).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// KPIs over a period: all traffic, one service's or one provider's.
#[utoipa::path(get, path = "/admin/v1/analytics", tag = "admin: analytics",
    security(("admin_token" = [])),
    params(("from" = Option<String>, Query, format = Date, description = "first UTC day, `YYYY-MM-DD` (default: 29 days before `to`)"),
        ("to" = Option<String>, Query, format = Date, description = "last UTC day, `YYYY-MM-DD` (default: today); at most 731 days in all"),
        ("service_id" = Option<String>, Query, max_length = 64, description = "one service's figures"),
        ("provider_id" = Option<String>, Query, max_length = 64, description = "one provider's figures"),
    ),
    responses((status = 200, description = "the report; `Accept: text/csv` gets it as CSV", content(
            (Report = "application/json"), (String = "text/csv"))), Operator, (status = 400, description = "`invalid_query`, `invalid_id`", body = ErrorBody)))]
async fn admin_report(
    _op: (),
    pairs: Vec<(String, String)>,
    csv: bool,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let period = period(&pairs)?;
        let dim = match (param(&pairs, "service_id"), param(&pairs, "provider_id")) {
            (Some(s), _) => Dimension::Service(external_id(s)?),
            (None, Some(p)) => Dimension::Provider(external_id(p)?),
            (None, None) => Dimension::All,
        };
        answer(&engine, &dim, period, csv).await
    }
    .await
    .map_err(reject)
}

/// A provider's own figures; `service_id` narrows them to one of the provider's services.
#[utoipa::path(get, path = "/api/v1/me/analytics", tag = "analytics", security(("bearer" = [])),
    params(("from" = Option<String>, Query, format = Date, description = "first UTC day, `YYYY-MM-DD` (default: 29 days before `to`)"),
        ("to" = Option<String>, Query, format = Date, description = "last UTC day, `YYYY-MM-DD` (default: today); at most 731 days in all"),
        ("service_id" = Option<String>, Query, max_length = 64, description = "one of the caller's services"),
    ),
    responses((status = 200, description = "the report; `Accept: text/csv` gets it as CSV", content(
            (Report = "application/json"), (String = "text/csv"))), Authed, (status = 400, description = "`invalid_query`, `invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden_role` (providers only)", body = ErrorBody),
        (status = 404, description = "`service_not_found` (also another provider's)", body = ErrorBody)))]
async fn my_report(
    p: Principal,
    pairs: Vec<(String, String)>,
    csv: bool,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        if p.role != Role::Provider {
            return Err(ApiError::forbidden(
                "forbidden_role",
                "analytics are for providers",
            ));
        }
        let period = period(&pairs)?;
        let dim = match param(&pairs, "service_id") {
            Some(s) => {
                let id = external_id(s)?;
                // Another provider's service is as unknown as a missing one.
                match engine.store.get_service(&id).await? {
                    Some(service) if service.provider_id == p.user_id => Dimension::Service(id),
                    _ => {
                        return Err(ApiError::not_found(
                            "service_not_found",
                            "service not found",
                        ))
                    }
                }
            }
            None => Dimension::Provider(p.user_id.clone()),
        };
        answer(&engine, &dim, period, csv).await
    }
    .await
    .map_err(reject)
}

/// Record whether a conversation led to a booking (the marketplace tells).
#[utoipa::path(post, path = "/admin/v1/conversations/{id}/outcome", tag = "admin: analytics",
    security(("admin_token" = [])), params(("id" = String, Path, description = "conversation id")),
    request_body = OutcomeBody,
    responses((status = 200, body = Outcome), Operator, JsonBody,
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn outcome(
    id: String,
    _op: (),
    body: OutcomeBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let doc = engine
            .store
            .get_conversation(conversation_id(&id)?)
            .await?
            .ok_or_else(ApiError::conversation_not_found)?;
        engine.analytics.outcome(&doc.record, body.booked).await?;
        Ok(json(
            StatusCode::OK,
            &Outcome {
                conversation_id: doc.record.id,
                booked: body.booked,
            },
        ))
    }
    .await
    .map_err(reject)
}

/// Set the engine's clock (tests and demos): exists only with `admin.clock_control` on; 404
/// `not_found` otherwise.
#[utoipa::path(put, path = "/admin/v1/clock", tag = "admin: analytics",
    security(("admin_token" = [])), request_body = ClockBody,
    responses((status = 200, body = Clock), Operator, JsonBody,
        (status = 400, description = "`invalid_time`, `malformed_json`, `length_required`", body = ErrorBody),
        (status = 404, description = "`not_found` (clock control is off)", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody)))]
async fn set_clock(_op: (), body: ClockBody) -> Result<Response, Rejection> {
    let ms = parse_rfc3339_ms(&body.now).ok_or_else(|| {
        reject(ApiError::bad_request(
            "invalid_time",
            "now must be an RFC 3339 time like 2026-11-24T10:15:30.123Z",
        ))
    })?;
    set_now_ms(ms);
    Ok(json(
        StatusCode::OK,
        &Clock {
            now: format_ms(now_ms()),
        },
    ))
}
