//! The documents build, and hold every route the source declares.

use super::*;

#[test]
fn documents_build() {
    for (name, doc) in [
        ("public", public_document()),
        ("admin", admin_document()),
        ("asyncapi", asyncapi_document()),
    ] {
        assert!(doc.is_ok(), "{name}: {doc:?}");
    }
}

#[test]
fn dump_for_review() {
    if let Ok(dir) = std::env::var("DESCRIBE_DUMP") {
        std::fs::write(format!("{dir}/public.json"), public_document().unwrap()).unwrap();
        std::fs::write(format!("{dir}/admin.json"), admin_document().unwrap()).unwrap();
        std::fs::write(format!("{dir}/asyncapi.json"), asyncapi_document().unwrap()).unwrap();
    }
}
