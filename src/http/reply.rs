//! The pieces every route shares: who is calling, reading a JSON body, writing a JSON answer,
//! and the one `recover` that turns every rejection into the contract's error body.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::address::client_ip;
use super::credentials;
use crate::auth::{bearer, AuthError};
use crate::domain::user::{ExternalId, Principal};
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorKind};

pub fn with_engine(
    engine: EngineRef,
) -> impl Filter<Extract = (EngineRef,), Error = Infallible> + Clone {
    warp::any().map(move || engine.clone())
}

pub fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

/// The bearer token of the request, if any.
pub fn bearer_token() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
        .map(|h: Option<String>| h.as_deref().and_then(bearer).map(str::to_string))
}

/// The caller, from `Authorization: Bearer <jwt>` or, when `auth.cookie_name` is set, that
/// cookie. A cookie-authenticated request that changes state must come from an allowed origin
/// (`credentials`).
pub fn principal(
    engine: EngineRef,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(crate::http::listener::peer())
        .and_then(
            move |method: Method, headers: HeaderMap, peer: Option<SocketAddr>| {
                let engine = engine.clone();
                async move { authenticate(&engine, &method, &headers, peer).map_err(reject) }
            },
        )
}

fn authenticate(
    engine: &EngineRef,
    method: &Method,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Principal, ApiError> {
    let presented = credentials::from_http(headers, engine.config.auth.cookie_name.as_deref())
        .ok_or(AuthError::Missing)?;
    if !method.is_safe() {
        presented.check_origin(headers, &engine.config.http.allowed_origins)?;
    }
    let ip = client_ip(peer, headers, &engine.config.http.client_ip_header);
    let principal = engine.authenticate_from(ip, |auth| auth.verify(&presented.token))?;
    engine.saw(&principal);
    Ok(principal)
}

/// A JSON body of type `T`: broken JSON is 400, the wrong shape 422, too large 413. An empty body
/// reads as `{}`, so bodies whose fields are all optional may be left out.
pub fn json_body<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    body_size_check(limit)
        .and(warp::body::bytes())
        .and_then(|b: Bytes| async move {
            let b: &[u8] = if b.iter().all(u8::is_ascii_whitespace) {
                b"{}"
            } else {
                &b
            };
            serde_json::from_slice::<T>(b).map_err(|e| reject(ApiError::from_json(&e)))
        })
}

/// Refuses a body over `limit` before reading it. A request with neither Content-Length nor a
/// chunked body has an empty body (HTTP semantics), which is fine; a chunked body of unknown size
/// is refused, since its size could not be bounded up front.
fn body_size_check(limit: u64) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(move |len: Option<u64>, te: Option<String>| async move {
            match (len, te) {
                (Some(n), _) if n > limit => Err(reject(ApiError::new(
                    ErrorKind::PayloadTooLarge,
                    "payload_too_large",
                    format!("the request body is larger than {limit} bytes"),
                ))),
                (None, Some(_)) => Err(reject(ApiError::bad_request(
                    "length_required",
                    "send the body with a Content-Length header",
                ))),
                _ => Ok(()),
            }
        })
        .untuple_one()
}

/// Query parameters as pairs, with a clear error for a malformed query string.
pub fn query_pairs() -> impl Filter<Extract = (Vec<(String, String)>,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|q: String| async move {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&q).map_err(|_| {
                reject(ApiError::bad_request(
                    "invalid_query",
                    "the query string is malformed",
                ))
            })
        })
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `cursor` for lists keyed by id (the moderation queue, the dead letters): the id of the last
/// item of the previous page; absent is the first page.
pub fn id_cursor(pairs: &[(String, String)]) -> Result<Option<crate::domain::Id>, ApiError> {
    param(pairs, "cursor")
        .map(|c| {
            c.parse().map_err(|_| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "the cursor is not one this server gave out",
                )
            })
        })
        .transpose()
}

/// `limit`: the default when absent, clamped to `max`, at least 1.
pub fn limit_param(
    pairs: &[(String, String)],
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match param(pairs, "limit") {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map(|n| n.clamp(1, max)).map_err(|_| {
            ApiError::bad_request("invalid_query", "limit must be a positive integer")
        }),
    }
}

/// A conversation id from the path. One that cannot even be parsed cannot exist.
pub fn conversation_id(raw: &str) -> Result<Id, ApiError> {
    raw.parse().map_err(|_| ApiError::conversation_not_found())
}

pub fn external_id(raw: &str) -> Result<ExternalId, ApiError> {
    ExternalId::parse(raw).map_err(|m| ApiError::bad_request("invalid_id", m))
}

/// One page of a list (`{"items": [...], "next_cursor": "..." | null}`): pass `cursor=` with
/// `next_cursor` for the next page; `null` is the last page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A whole, short list: `{"items": [...]}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let mut res = warp::reply::with_status(warp::reply::json(value), status).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = json(status, &e.body());
    if let Some(secs) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    if e.kind == ErrorKind::Unauthorized {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// `X-Content-Type-Options: nosniff` on every answer, so no browser reads a JSON body (or anything
/// else) as a script or a page.
pub fn nosniff(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// Every rejection, ours or warp's, as the contract's error body.
pub async fn recover(r: Rejection) -> Result<Response, Infallible> {
    let e = if let Some(e) = r.find::<ApiError>() {
        e.clone()
    } else if r.is_not_found() {
        ApiError::not_found("not_found", "no such route")
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            "payload_too_large",
            "the request body is too large",
        )
    } else if r.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported_media_type",
            "unsupported content type",
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::bad_request("length_required", "a Content-Length header is required")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            "method not allowed on this route",
        )
    } else if let Some(h) = r.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request("invalid_header", format!("invalid header `{}`", h.name()))
    } else if let Some(h) = r.find::<warp::reject::MissingHeader>() {
        ApiError::bad_request("missing_header", format!("missing header `{}`", h.name()))
    } else {
        tracing::warn!(rejection = ?r, "unhandled rejection");
        ApiError::bad_request("bad_request", "the request could not be understood")
    };
    Ok(error_response(&e))
}
