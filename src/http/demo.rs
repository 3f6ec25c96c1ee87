//! `/demo/`: the Contact Provider demo (`clients/demo`, built into `clients/demo/dist` and embedded
//! in the binary at compile time), on the same origin as the API it calls. With `http.demo` off
//! (the default) the routes do not exist.

use include_dir::{include_dir, Dir};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

static DIST: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/clients/demo/dist");

/// Scripts and styles from this origin only; API calls and the socket to it; attachment
/// previews are `blob:` URLs.
const POLICY: &str =
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; \
                      frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn routes(enabled: bool) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let on = warp::any()
        .and_then(move || async move {
            if enabled {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    let files = warp::path("demo")
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .and_then(
            |full: warp::path::FullPath, tail: warp::path::Tail| async move {
                // The page loads `./app.js`: it must be addressed with its trailing slash.
                if full.as_str() == "/demo" {
                    let mut res = StatusCode::MOVED_PERMANENTLY.into_response();
                    res.headers_mut()
                        .insert(header::LOCATION, HeaderValue::from_static("/demo/"));
                    return Ok(res);
                }
                serve(tail.as_str())
            },
        );
    on.and(files)
}

/// A file of the Contact Provider demo (`/demo` redirects to `/demo/`; empty is `index.html`).
/// Exists only with `http.demo` on.
#[utoipa::path(get, path = "/demo/{file}", tag = "demo",
    params(("file" = String, Path, description = "`index.html`, `app.js`, `style.css`, ...")),
    responses(
        (status = 200, description = "the file", content(
            (String = "text/html"), (String = "text/javascript"), (String = "text/css"))),
        (status = 404, description = "`not_found`: no such file, or the demo is off", body = crate::error::ErrorBody)))]
fn serve(path: &str) -> Result<Response, Rejection> {
    let path = if path.is_empty() { "index.html" } else { path };
    let file = DIST.get_file(path).ok_or_else(warp::reject::not_found)?;
    let mut res = file.contents().to_vec().into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_demo_is_embedded() {
        for f in ["index.html", "app.js", "style.css"] {
            assert!(super::DIST.get_file(f).is_some(), "{f}");
        }
        assert_eq!(
            super::content_type("app.js"),
            "text/javascript; charset=utf-8"
        );
    }
}
