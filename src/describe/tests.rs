//! The documents build, and hold every route the source declares.

use super::*;

/// The authz matrix's scanner of `warp::path!` under `src/`, shared rather than copied.
#[path = "../../tests/integration/authz/source_routes.rs"]
#[allow(dead_code)]
mod source_routes;

fn parsed(doc: Built) -> serde_json::Value {
    let text = doc.unwrap_or_else(|e| panic!("the document is written: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the document is JSON: {e}"))
}

#[test]
fn documents_build_and_hold_every_declared_route() {
    let public = parsed(public_document());
    let admin = parsed(admin_document());
    let asyncapi = parsed(asyncapi_document());
    assert_eq!(public["openapi"], "3.1.0");
    assert_eq!(admin["openapi"], "3.1.0");
    assert_eq!(asyncapi["asyncapi"], "3.0.0");
    let documented = |doc: &serde_json::Value| -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                out.push((
                    source_routes::template_segments(path),
                    method.to_uppercase(),
                ));
            }
        }
        out
    };
    let all: Vec<_> = documented(&public)
        .into_iter()
        .chain(documented(&admin))
        .collect();
    for doc in [&public, &admin] {
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for (status, r) in op["responses"].as_object().into_iter().flatten() {
                    assert!(
                        r["description"].as_str().is_some_and(|d| !d.is_empty()),
                        "{method} {path} {status}: every response needs a description"
                    );
                }
            }
        }
    }
    let declared = source_routes::declared();
    assert!(declared.len() >= 40, "{declared:?}");
    for d in &declared {
        assert!(
            all.iter()
                .any(|(segments, method)| segments.ends_with(&d.segments)
                    && d.method.is_none_or(|m| m == method)),
            "{} {:?} ({}) is in neither document",
            d.method.unwrap_or("*"),
            d.segments,
            d.at
        );
    }
}

#[test]
fn socket_messages_come_from_the_event_types() {
    let doc = parsed(asyncapi_document());
    for t in crate::domain::events::CLIENT_FRAME_TYPES {
        let name = format!("client.{t}");
        assert!(doc["components"]["messages"][&name].is_object(), "{name}");
    }
    for t in ["ack", "chat_message", "error", "synced", "presence"] {
        let name = format!("server.{t}");
        assert!(doc["components"]["messages"][&name].is_object(), "{name}");
    }
}
