//! The served API descriptions (`src/describe/`) against the code and the running server:
//!
//! - every route the source declares (`warp::path!`, read by the authz scanner) is in the right
//!   OpenAPI document with its method, and every documented route is one the source declares
//!   and one the server answers (with made-up ids, never the router's "no such route" or 405);
//! - both documents look like OpenAPI 3.1 and every `$ref` resolves;
//! - the admin document is for operators only;
//! - the AsyncAPI document names every socket frame and event type, with resolvable payloads.
//!
//! The WebSocket rule: both sockets are in the public OpenAPI document as `GET` with 101
//! (a WebSocket upgrade), and their frames are in the AsyncAPI document, whose channel addresses
//! are those same two paths.

use std::collections::BTreeSet;

use serde_json::Value;

use super::authz::source_routes::{self, Declared};
use super::harness::{Server, ADMIN_TOKEN};

/// Routes built without `warp::path!`, so the source scan cannot see them; each is still called.
const NOT_MACRO: [&str; 2] = ["/ws", "/demo/{file}"];

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// Every (path, METHOD) of a document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.push((path.clone(), m.to_uppercase()));
            }
        }
    }
    out
}

/// Which document a declared route belongs in: admin paths and `/metrics` in the admin one,
/// health in both, everything else in the public one.
fn belongs(d: &Declared) -> (bool, bool) {
    match d.segments.first().map(String::as_str) {
        Some("healthz" | "readyz") => (true, true),
        Some("admin" | "metrics") => (false, true),
        _ => (true, false),
    }
}

fn documents_route(ops: &[(String, String)], d: &Declared) -> bool {
    ops.iter().any(|(path, method)| {
        source_routes::template_segments(path).ends_with(&d.segments)
            && d.method.is_none_or(|m| m == method)
    })
}

fn declares(declared: &[Declared], path: &str, method: &str) -> bool {
    let segments = source_routes::template_segments(path);
    NOT_MACRO.contains(&path)
        || declared
            .iter()
            .any(|d| segments.ends_with(&d.segments) && d.method.is_none_or(|m| m == method))
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                }
                refs(x, out);
            }
        }
        Value::Array(xs) => xs.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

fn unresolved(doc: &Value) -> Vec<String> {
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(!all.is_empty(), "a document without a single $ref");
    all.into_iter()
        .filter(|r| {
            r.strip_prefix('#')
                .is_none_or(|pointer| doc.pointer(pointer).is_none())
        })
        .collect()
}

/// The path with made-up values for its parameters (a real file for the demo's).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| match s {
            "{file}" => "index.html",
            s if s.starts_with('{') => "7412983412383748096",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_route_miss(status: u16, body: &Value) -> bool {
    status == 405 || (status == 404 && body["error"]["message"] == "no such route")
}

#[tokio::test]
async fn openapi_documents_cover_every_route_and_only_real_ones() {
    // Clock control on, so `PUT /admin/v1/clock` exists like every other documented route.
    let server = Server::start_with(&[("SWITCHBOARD_ADMIN__CLOCK_CONTROL", "true")]).await;
    let admin_url = |path: &str| format!("http://{}{}", server.admin, path);
    let (status, public) = server
        .call("GET", &server.url("/api/v1/openapi.json"), None, None)
        .await;
    assert_eq!(status, 200, "public document without a token: {public}");
    let (status, admin) = server
        .admin_call("GET", "/admin/v1/openapi.json", None)
        .await;
    assert_eq!(status, 200, "admin document with the admin token: {admin}");

    for (name, doc) in [("public", &public), ("admin", &admin)] {
        let version = doc["openapi"].as_str().unwrap_or_default();
        assert!(version.starts_with("3.1"), "{name}: openapi is {version:?}");
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        assert_eq!(
            unresolved(doc),
            Vec::<String>::new(),
            "{name}: $refs that resolve to nothing"
        );
        let ids: Vec<&str> = operations(doc)
            .iter()
            .filter_map(|(p, m)| doc["paths"][p][m.to_lowercase()]["operationId"].as_str())
            .collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(
            ids.len(),
            unique.len(),
            "{name}: operationIds repeat: {ids:?}"
        );
    }

    // (1) Every declared route is in the right document, with its method.
    let declared = source_routes::declared();
    assert!(
        declared.len() >= 40,
        "the scan found only {}",
        declared.len()
    );
    let (public_ops, admin_ops) = (operations(&public), operations(&admin));
    let mut missing = Vec::new();
    for d in &declared {
        let (in_public, in_admin) = belongs(d);
        if in_public && !documents_route(&public_ops, d) {
            missing.push(format!(
                "public: {} {:?} ({})",
                d.method.unwrap_or("*"),
                d.segments,
                d.at
            ));
        }
        if in_admin && !documents_route(&admin_ops, d) {
            missing.push(format!(
                "admin: {} {:?} ({})",
                d.method.unwrap_or("*"),
                d.segments,
                d.at
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "declared but not documented:\n  {}",
        missing.join("\n  ")
    );

    // (2) Every documented route is declared, and the server answers it.
    let token = server.token("openapi-reader", "customer").await;
    let mut wrong = Vec::new();
    for (listener, ops) in [("public", &public_ops), ("admin", &admin_ops)] {
        for (path, method) in ops.iter() {
            if !declares(&declared, path, method) {
                wrong.push(format!(
                    "{listener}: {method} {path} is not declared in src/"
                ));
                continue;
            }
            let (url, token) = if listener == "admin" {
                (admin_url(&concrete(path)), ADMIN_TOKEN)
            } else {
                (server.url(&concrete(path)), token.as_str())
            };
            let (status, body) = server.call(method, &url, Some(token), None).await;
            if is_route_miss(status, &body) {
                wrong.push(format!(
                    "{listener}: {method} {path} answered {status} {body}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "documented but not served:\n  {}",
        wrong.join("\n  ")
    );

    // The sockets: GET with 101 in OpenAPI, and the channels of the AsyncAPI document.
    for path in ["/ws", "/ws/chat/{conversation_id}/"] {
        assert!(
            public["paths"][path]["get"]["responses"]["101"].is_object(),
            "{path} is documented as a WebSocket upgrade"
        );
    }
}

#[tokio::test]
async fn openapi_admin_document_is_for_operators_only() {
    let server = Server::start().await;
    let url = format!("http://{}/admin/v1/openapi.json", server.admin);
    let (status, body) = server.call("GET", &url, None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "missing_token", "{body}");
    let user = server.token("openapi-customer", "customer").await;
    let (status, body) = server.call("GET", &url, Some(&user), None).await;
    assert_eq!(status, 403, "{body}");
    // Not on the public listener at all.
    let (status, _) = server
        .call(
            "GET",
            &server.url("/admin/v1/openapi.json"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // The admin document lists its routes with the admin token scheme, the public one with the
    // bearer JWT.
    let (_, admin) = server
        .admin_call("GET", "/admin/v1/openapi.json", None)
        .await;
    let stats = &admin["paths"]["/admin/v1/stats"]["get"]["security"][0];
    assert!(stats.get("admin_token").is_some(), "{stats}");
    assert!(admin["components"]["securitySchemes"]["admin_token"].is_object());
    let (_, public) = server
        .call("GET", &server.url("/api/v1/openapi.json"), None, None)
        .await;
    let unread = &public["paths"]["/api/v1/unread"]["get"]["security"][0];
    assert!(unread.get("bearer").is_some(), "{unread}");
    assert_eq!(
        public["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );
}

#[tokio::test]
async fn openapi_asyncapi_names_every_frame_and_event() {
    let server = Server::start().await;
    let (status, doc) = server
        .call("GET", &server.url("/api/v1/asyncapi.json"), None, None)
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(
        unresolved(&doc),
        Vec::<String>::new(),
        "$refs that resolve to nothing"
    );
    let messages = doc["components"]["messages"].as_object().expect("messages");
    let names: BTreeSet<&str> = messages.keys().map(String::as_str).collect();
    let server_events = [
        "ready",
        "ack",
        "chat_message",
        "typing_status",
        "receipt",
        "unread",
        "presence",
        "conversation",
        "message_deleted",
        "synced",
        "pong",
        "error",
    ];
    let expected = switchboard::domain::events::CLIENT_FRAME_TYPES
        .iter()
        .map(|t| format!("client.{t}"))
        .chain(server_events.iter().map(|t| format!("server.{t}")));
    for name in expected {
        assert!(
            names.contains(name.as_str()),
            "{name} missing from {names:?}"
        );
    }
    for (name, message) in messages {
        let target = message["payload"]["$ref"].as_str().expect("payload $ref");
        let schema = doc
            .pointer(target.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{name}: {target} does not resolve"));
        // The payload is the serde type's own: its `type` tag is the message's name.
        let tag = name.split_once('.').map(|(_, t)| t).unwrap_or_default();
        assert_eq!(
            schema["properties"]["type"]["enum"][0], tag,
            "{name}: {schema}"
        );
        assert!(schema["required"]
            .as_array()
            .is_some_and(|r| r.contains(&Value::from("type"))));
    }
    // Fields follow serde's renames: `ref`, not the Rust field's name.
    let chat = &doc["components"]["schemas"]["client.chat_message"]["properties"];
    assert!(
        chat.get("ref").is_some() && chat.get("reference").is_none(),
        "{chat}"
    );
    let addresses: BTreeSet<&str> = doc["channels"]
        .as_object()
        .expect("channels")
        .values()
        .filter_map(|c| c["address"].as_str())
        .collect();
    assert_eq!(
        addresses,
        BTreeSet::from(["/ws", "/ws/chat/{conversation_id}/"])
    );
}
