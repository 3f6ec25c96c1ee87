//! CORS on the public listener, and the headers every answer carries: a preflight from an
//! allowed origin is 204 with the allow headers, answers to an allowed origin carry them too, a
//! disallowed or missing origin gets none, credentials are allowed only with cookie auth, and
//! every answer is `nosniff` (JSON ones `no-store`).

use reqwest::header::HeaderMap;
use serde_json::json;

use crate::harness::Server;

const SITE: &str = "http://127.0.0.1:3000";
const OTHER_SITE: &str = "http://app.test";
const EVIL: &str = "http://evil.test";

/// A server that lets SITE and OTHER_SITE in (given as the comma-separated environment string).
async fn with_origins(cookie: bool) -> Server {
    let origins = format!("{SITE}, {OTHER_SITE}");
    let mut env = vec![("SWITCHBOARD_HTTP__ALLOWED_ORIGINS", origins.as_str())];
    if cookie {
        env.push(("SWITCHBOARD_AUTH__COOKIE_NAME", "access_token"));
    }
    Server::start_with(&env).await
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The comma-separated items of a header, lowercased.
fn items(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

fn assert_no_allow_headers(h: &HeaderMap, what: &str) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert!(
            h.get(name).is_none(),
            "{what}: expected no {name}, got {:?}",
            h.get(name)
        );
    }
}

async fn preflight(server: &Server, path: &str, origin: &str, method: &str) -> (u16, HeaderMap) {
    let (status, headers, _) = server
        .call_with_headers(
            "OPTIONS",
            path,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
            None,
        )
        .await;
    (status, headers)
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_204_with_the_allow_headers() {
    let server = with_origins(true).await;
    for (origin, path, method) in [
        (SITE, "/api/v1/conversations", "POST"),
        (OTHER_SITE, "/api/v1/conversations/1", "PATCH"),
        (SITE, "/api/v1/messages/1", "DELETE"),
        (SITE, "/api/v1/unread", "GET"),
    ] {
        let (status, h) = preflight(&server, path, origin, method).await;
        let what = format!("preflight {method} {path} from {origin}");
        assert_eq!(status, 204, "{what}: {h:?}");
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some(origin),
            "{what}: the origin itself, never *"
        );
        let methods = items(&h, "access-control-allow-methods");
        for m in ["get", "post", "patch", "delete"] {
            assert!(methods.contains(&m.to_string()), "{what}: {methods:?}");
        }
        let allowed = items(&h, "access-control-allow-headers");
        for name in ["authorization", "content-type"] {
            assert!(allowed.contains(&name.to_string()), "{what}: {allowed:?}");
        }
        let max_age: u64 = get(&h, "access-control-max-age")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: a numeric max-age: {h:?}"));
        assert!(max_age > 0, "{what}");
        assert!(
            items(&h, "vary").contains(&"origin".into()),
            "{what}: {h:?}"
        );
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
    }
}

#[tokio::test]
async fn a_disallowed_or_missing_origin_gets_no_allow_headers() {
    let server = with_origins(true).await;
    let (status, h) = preflight(&server, "/api/v1/conversations", EVIL, "POST").await;
    assert_ne!(status, 204, "a disallowed preflight must not look granted");
    assert_no_allow_headers(&h, "preflight from a disallowed origin");
    // An origin that differs only in port or scheme is another origin.
    for near in [
        "http://127.0.0.1:3001",
        "https://127.0.0.1:3000",
        "http://app.test.evil.test",
    ] {
        let (_, h) = preflight(&server, "/api/v1/conversations", near, "POST").await;
        assert_no_allow_headers(&h, near);
    }
    // A method or header outside the allowed ones is not granted either.
    let (_, h, _) = server
        .call_with_headers(
            "OPTIONS",
            "/api/v1/conversations",
            &[
                ("origin", SITE),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-not-allowed"),
            ],
            None,
        )
        .await;
    assert_no_allow_headers(&h, "a preflight asking for a header not allowed");

    // Actual requests: answered as usual (a bearer token is a bearer token), just not readable
    // by a page of that origin.
    let (c, _, _) = server.conversation("cors-evil").await;
    let auth = format!("Bearer {c}");
    for origin in [Some(EVIL), None] {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let (status, h, body) = server
            .call_with_headers("GET", "/api/v1/conversations", &headers, None)
            .await;
        assert_eq!(status, 200, "origin {origin:?}: {body}");
        assert_no_allow_headers(&h, &format!("GET with origin {origin:?}"));
    }
}

#[tokio::test]
async fn answers_to_an_allowed_origin_carry_the_allow_headers_errors_included() {
    let server = with_origins(true).await;
    let (c, _, id) = server.conversation("cors-ok").await;
    let auth = format!("Bearer {c}");
    let (status, h, body) = server
        .call_with_headers(
            "POST",
            &format!("/api/v1/conversations/{id}/messages"),
            &[("origin", SITE), ("authorization", &auth)],
            Some(json!({"text": "from another origin"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(get(&h, "access-control-allow-origin"), Some(SITE));
    assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
    assert!(items(&h, "vary").contains(&"origin".into()), "{h:?}");
    assert!(
        items(&h, "access-control-expose-headers").contains(&"retry-after".into()),
        "a page must be able to read Retry-After: {h:?}"
    );
    // An error must be readable too, or the page only sees "network error".
    let (status, h, body) = server
        .call_with_headers("GET", "/api/v1/unread", &[("origin", OTHER_SITE)], None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );
    assert_eq!(get(&h, "access-control-allow-origin"), Some(OTHER_SITE));
}

#[tokio::test]
async fn credentials_are_allowed_only_with_cookie_auth_and_no_origins_means_no_cors() {
    let bearer_only = with_origins(false).await;
    let (status, h) = preflight(&bearer_only, "/api/v1/conversations", SITE, "POST").await;
    assert_eq!(status, 204);
    assert_eq!(get(&h, "access-control-allow-origin"), Some(SITE));
    assert!(
        h.get("access-control-allow-credentials").is_none(),
        "no cookie auth, so no credentialed requests: {h:?}"
    );

    let default = Server::start().await;
    for origin in [SITE, EVIL] {
        let (status, h) = preflight(&default, "/api/v1/conversations", origin, "POST").await;
        assert_ne!(status, 204);
        assert_no_allow_headers(&h, "no allowed origins configured");
    }
}

#[tokio::test]
async fn every_answer_is_nosniff_and_json_is_no_store() {
    let server = with_origins(false).await;
    let (c, _, id) = server.conversation("headers").await;
    let auth = format!("Bearer {c}");
    let public = [
        ("GET", "/healthz".to_string(), vec![]),
        (
            "GET",
            "/api/v1/conversations".into(),
            vec![("authorization", auth.as_str())],
        ),
        (
            "GET",
            format!("/api/v1/conversations/{id}/messages"),
            vec![("authorization", auth.as_str())],
        ),
        ("GET", "/api/v1/unread".into(), vec![]),
        ("GET", "/no/such/route".into(), vec![]),
        (
            "OPTIONS",
            "/api/v1/unread".into(),
            vec![("origin", SITE), ("access-control-request-method", "GET")],
        ),
    ];
    for (method, path, headers) in &public {
        let (status, h, _) = server.call_with_headers(method, path, headers, None).await;
        assert_eq!(
            get(&h, "x-content-type-options"),
            Some("nosniff"),
            "{method} {path} ({status})"
        );
        if get(&h, "content-type") == Some("application/json") {
            assert_eq!(
                get(&h, "cache-control"),
                Some("no-store"),
                "{method} {path}"
            );
        }
    }
    let (status, h, _) = server
        .call_with_headers(
            "GET",
            "/api/v1/conversations",
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(
        (status, get(&h, "cache-control")),
        (200, Some("no-store")),
        "authenticated JSON must never be cached"
    );
    let admin = reqwest::get(format!("http://{}/admin/v1/stats", server.admin))
        .await
        .expect("admin answers");
    assert_eq!(
        get(admin.headers(), "x-content-type-options"),
        Some("nosniff"),
        "admin answers too"
    );
}
