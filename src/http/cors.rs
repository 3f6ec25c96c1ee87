//! Cross-origin access to the public listener, for a frontend served from another origin (the
//! marketplace on one host, the engine on another).
//!
//! The decisions are warp's `cors` filter's: whether the `Origin` is in `http.allowed_origins`,
//! whether a preflight asks for a method and headers we allow, and which `Access-Control-*`
//! headers answer it. The allowed origin is echoed, never `*`, so credentials can be allowed; they
//! are allowed only when cookie authentication is on (`auth.cookie_name`), since a bearer token
//! needs no credentialed request. This module adds only what warp leaves to its caller:
//!
//! - A request from an origin that is not allowed is served as if there were no CORS at all (no
//!   allow headers, so the browser keeps the answer from the page) instead of warp's blanket 403:
//!   same-origin pages and bearer-token clients send `Origin` too, and whether a *cookie* may act
//!   from that origin is `credentials`' question, not this one's.
//! - A preflight answers 204 No Content (warp answers 200 with an empty body).
//! - Every answer carries `Vary: Origin`, since its allow headers depend on it.

use std::convert::Infallible;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

/// How long a browser may cache a preflight answer, seconds (Chromium caps it at 7,200).
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// Methods a cross-origin page may use on the public API.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Request headers a cross-origin page may send besides the CORS-safelisted ones.
const HEADERS: [&str; 2] = ["authorization", "content-type"];

/// Wraps the public routes (already recovered, so they never reject) in CORS.
pub fn wrap<F>(
    routes: F,
    allowed_origins: &[String],
    credentials: bool,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    // Origins were checked against what `allow_origins` accepts when the configuration loaded.
    let cors = warp::cors()
        .allow_origins(allowed_origins.iter().map(String::as_str))
        .allow_methods(METHODS)
        .allow_headers(HEADERS)
        .expose_headers([header::RETRY_AFTER])
        .allow_credentials(credentials)
        .max_age(PREFLIGHT_MAX_AGE_SECS)
        .build();
    // `routes` never rejects, so the wrapped filter rejects only with warp's `CorsForbidden`,
    // before `routes` ran: the request is then served by `routes` alone.
    let with_cors = routes.clone().with(cors).map(preflight_no_content);
    with_cors.or(routes).unify().map(vary_origin)
}

/// warp's preflight answer is the only one with `Access-Control-Allow-Methods`.
fn preflight_no_content(reply: impl Reply) -> Response {
    let mut res = reply.into_response();
    if res
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_METHODS)
    {
        *res.status_mut() = StatusCode::NO_CONTENT;
    }
    res
}

fn vary_origin(mut res: Response) -> Response {
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    res
}
