//! The WebSocket upgrade, done by hand on hyper's upgrade handle rather than with `warp::ws()`.
//!
//! Why: warp's `Ws` cannot set tungstenite's read buffer, whose 128 KiB default (zero-filled
//! before each read) costs ~134 KiB per idle socket; with a 4 KiB buffer an idle socket costs
//! ~6 KiB (FACTS.md). The buffer still grows for a large frame, up to the frame limit.
//!
//! The token is checked before the upgrade and before anything else is looked up: a token in the
//! URL, header or auth cookie that is invalid, expired, not yet valid or not an access token gets
//! HTTP 401 with the error body and no upgrade, whatever the path names; one from the cookie, from
//! an origin not in `http.allowed_origins`, gets 403 (`http::credentials`). Without one, the
//! socket is upgraded and must send an `auth` frame within the configured time.
//!
//! The compatibility socket keeps that first-frame option (the contract gives it to every
//! socket), so it must not tell an unauthenticated client which conversation ids exist: with a
//! token, a stranger and a made-up id both get 404 `conversation_not_found`; without one, every
//! id is upgraded alike and checked only after the `auth` frame (`socket::Route::CompatPending`).

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use warp::reply::Response as WarpResponse;
use warp::{Filter, Rejection, Reply};

use super::socket::{self, Route};
use crate::auth::Verified;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::http::address::client_ip;
use crate::http::credentials;
use crate::http::reply::error_response;
use crate::wire::WireFormat;

/// Read buffer per socket: chat frames are small (see the module doc). A typical frame (a
/// `chat_message` of a few hundred bytes) fits in one read; a larger one takes more reads, and
/// every idle socket keeps this much allocated (512 instead of 1,024 saves ~0.5 KiB of ~10).
const READ_BUFFER: usize = 512;
/// Write buffer flushed as soon as it holds this much.
const WRITE_BUFFER: usize = 4 * 1024;

/// `GET /ws` and `GET /ws/chat/{conversation_id}/`.
pub fn routes(
    engine: EngineRef,
    shutdown: watch::Receiver<bool>,
) -> impl Filter<Extract = (WarpResponse,), Error = Rejection> + Clone {
    let common = warp::get()
        .and(warp::header::headers_cloned())
        .and(crate::http::listener::peer())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::any().map(move || engine.clone()))
        .and(warp::any().map(move || shutdown.clone()));
    let main = warp::path("ws")
        .and(warp::path::end())
        .and(common.clone())
        .and_then(ws);
    let compat = warp::path!("ws" / "chat" / String)
        .and(warp::path::end().or(warp::path!()).unify())
        .and(common)
        .and_then(ws_compat);
    main.or(compat).unify()
}

/// The socket's messages are described by the AsyncAPI document (`/api/v1/asyncapi.json`).
#[utoipa::path(get, path = "/ws", tag = "websocket",
    description = "WebSocket upgrade. The token comes as `?access_token=`, the `Authorization` \
        header, the cookie, or an `auth` frame within 5 s. `?format=msgpack` for MessagePack \
        binary frames. The frames are described in `/api/v1/asyncapi.json`.",
    params(
        ("access_token" = Option<String>, Query, description = "the JWT, if not sent otherwise"),
        ("format" = Option<String>, Query, pattern = "^(json|msgpack)$", description = "`json` (default) or `msgpack`"),
    ),
    responses(
        (status = 101, description = "switching protocols: the socket is open"),
        (status = 400, description = "`websocket_upgrade_required` and the other handshake errors", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`overloaded` or shutting down", body = ErrorBody)))]
async fn ws(
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    query: String,
    on_upgrade: Option<OnUpgrade>,
    engine: EngineRef,
    shutdown: watch::Receiver<bool>,
) -> Result<WarpResponse, Infallible> {
    upgrade(headers, peer, query, on_upgrade, engine, shutdown, None).await
}

/// The earlier one-conversation socket, kept for old clients.
#[utoipa::path(get, path = "/ws/chat/{conversation_id}/", tag = "websocket",
    description = "WebSocket upgrade for the one-conversation compatibility socket (the \
        trailing slash is optional). Tokens as for `/ws`; frames in `/api/v1/asyncapi.json`.",
    params(
        ("conversation_id" = String, Path, description = "conversation id"),
        ("access_token" = Option<String>, Query, description = "the JWT, if not sent otherwise"),
    ),
    responses(
        (status = 101, description = "switching protocols: the socket is open"),
        (status = 400, description = "`websocket_upgrade_required` and the other handshake errors", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`overloaded` or shutting down", body = ErrorBody)))]
async fn ws_compat(
    conversation: String,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    query: String,
    on_upgrade: Option<OnUpgrade>,
    engine: EngineRef,
    shutdown: watch::Receiver<bool>,
) -> Result<WarpResponse, Infallible> {
    upgrade(
        headers,
        peer,
        query,
        on_upgrade,
        engine,
        shutdown,
        Some(conversation),
    )
    .await
}

fn socket_config(engine: &EngineRef) -> WebSocketConfig {
    let max = engine.config.limits.max_frame_bytes;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER.max(max) * 4)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

async fn upgrade(
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    query: String,
    on_upgrade: Option<OnUpgrade>,
    engine: EngineRef,
    shutdown: watch::Receiver<bool>,
    compat: Option<String>,
) -> Result<WarpResponse, Infallible> {
    Ok(
        match prepare(&headers, peer, &query, on_upgrade, &engine, compat).await {
            Ok((key, on_upgrade, route, auth)) => {
                let config = socket_config(&engine);
                tokio::spawn(async move {
                    match on_upgrade.await {
                        Ok(upgraded) => {
                            let ws = WebSocketStream::from_raw_socket(
                                TokioIo::new(upgraded),
                                Role::Server,
                                Some(config),
                            )
                            .await;
                            socket::run(ws, engine, route, auth, shutdown).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "websocket upgrade did not complete"),
                    }
                });
                let mut res = Response::new(warp::hyper::body::Bytes::new().into());
                *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let h = res.headers_mut();
                h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                    h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
                }
                res
            }
            Err(e) => error_response(&e).into_response(),
        },
    )
}

type Prepared = (String, OnUpgrade, Route, Option<Verified>);

async fn prepare(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    query: &str,
    on_upgrade: Option<OnUpgrade>,
    engine: &EngineRef,
    compat: Option<String>,
) -> Result<Prepared, ApiError> {
    let not_ws = || {
        ApiError::bad_request(
            "websocket_upgrade_required",
            "this route needs a WebSocket upgrade request",
        )
    };
    let ip = client_ip(peer, headers, &engine.config.http.client_ip_header);
    if let Some(ip) = ip {
        engine.connects.check(&ip).map_err(|retry| {
            ApiError::rate_limited_because(retry, "too many connection attempts from this address")
        })?;
    }
    if !header_has(headers, header::CONNECTION, "upgrade")
        || !header_has(headers, header::UPGRADE, "websocket")
    {
        return Err(not_ws());
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err(ApiError::bad_request(
            "unsupported_websocket_version",
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(not_ws)?
        .to_string();
    let on_upgrade = on_upgrade.ok_or_else(not_ws)?;

    let params: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let format = match param("format") {
        None | Some("json") => WireFormat::Json,
        Some("msgpack") => WireFormat::MessagePack,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format must be json or msgpack, not `{other}`"),
            ))
        }
    };
    let presented = credentials::from_upgrade(
        param("access_token"),
        headers,
        engine.config.auth.cookie_name.as_deref(),
    );
    tracing::debug!(
        socket = if compat.is_some() { "compat" } else { "ws" },
        auth = presented.as_ref().map_or("frame", |p| p.via.as_str()),
        "websocket upgrade"
    );
    // Authentication first: nothing below may answer differently for a caller it does not know.
    let auth = match presented {
        Some(p) => {
            p.check_origin(headers, &engine.config.http.allowed_origins)?;
            Some(engine.authenticate_from(ip, |auth| auth.verify_with_expiry(&p.token))?)
        }
        None => None,
    };
    let route = match (compat, &auth) {
        (None, _) => Route::Standard(format),
        // With a token already, refuse a stranger before upgrading.
        (Some(raw), Some(v)) => {
            let id: Id = raw
                .parse()
                .map_err(|_| ApiError::conversation_not_found())?;
            socket::compat_member(engine, id, &v.principal.user_id).await?;
            Route::Compat(id)
        }
        // With a first-frame token, the socket task checks once it knows who is speaking.
        (Some(raw), None) => Route::CompatPending(raw),
    };
    Ok((key, on_upgrade, route, auth))
}
