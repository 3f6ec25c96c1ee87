//! The two OpenAPI 3.1 documents, assembled by `utoipa` from the `#[utoipa::path]` on each
//! handler and the `ToSchema` derives on the serde types the handlers read and write. A route
//! without its `#[utoipa::path]` listed here fails `tests/integration/openapi.rs`.

use std::collections::HashMap;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::gateway::handshake;
use crate::http::{
    admin, analytics, attachments, audit, conversation_list, conversations, demo, dev, messages,
    moderation, privacy, push, search, services, templates, webhooks,
};

/// The public API (`/api/v1`, `/ws`, health, the demo): `GET /api/v1/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard public API",
        description = "Conversations, messages, attachments and notifications for marketplace users. \
            Every route that needs a token takes the marketplace's JWT as `Authorization: Bearer` \
            (or the configured cookie). Errors always have the body `ErrorBody`. \
            The WebSocket's frames are described by the AsyncAPI document at `/api/v1/asyncapi.json`.",
    ),
    paths(
        crate::http::healthz, crate::http::readyz,
        handshake::ws, handshake::ws_compat,
        conversations::create, conversation_list::list, conversations::get, conversations::patch,
        conversations::mark_read, conversations::typing, conversations::unread,
        messages::list, messages::send, messages::delete, moderation::flag,
        attachments::upload, attachments::fetch,
        push::vapid_key, push::add, push::list, push::remove,
        templates::list, templates::add, templates::update, templates::remove,
        analytics::my_report, search::search, services::contact,
        demo::serve, dev::mint,
        super::public_openapi, super::asyncapi,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer, &UniqueOperationIds, &Described),
)]
pub struct PublicApi;

/// The admin API, on the admin listener: `GET /admin/v1/openapi.json` (operators only).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard admin API",
        description = "The operators' API, served on the admin listener only: the services \
            directory, users, moderation, dead letters, privacy, analytics, audit and metrics. \
            Every route but the health checks needs the admin token (`admin.token`) or a JWT with \
            role `admin`, as `Authorization: Bearer`. Every call that changes something is audited.",
    ),
    paths(
        crate::http::healthz, crate::http::readyz,
        services::put, services::get, services::delete,
        admin::put_user, admin::get_user, admin::disconnect, privacy::export_user,
        privacy::erase_user, privacy::run_retention,
        admin::stats, admin::conversation, admin::messages, admin::metrics,
        moderation::queue, moderation::decide, webhooks::list, webhooks::retry,
        attachments::unscanned, attachments::reviewed, audit::list,
        analytics::admin_report, analytics::outcome, analytics::set_clock,
        super::admin_openapi,
    ),
    components(schemas(ErrorBody)),
    modifiers(&AdminToken, &UniqueOperationIds, &Described),
)]
pub struct AdminApi;

/// `bearer`: the marketplace's JWT.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        http.description = Some(
            "The marketplace's JWT (HS256, RS256 or EdDSA as configured). `role` is \
             `customer`, `provider` or `admin`. With `auth.cookie_name` set, the cookie of that \
             name is accepted too (writes then need an allowed `Origin`)."
                .into(),
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// `admin_token`: the configured operator token, or a JWT with role `admin`.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "`admin.token` from the configuration, or a marketplace JWT with role `admin`.".into(),
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("admin_token", SecurityScheme::Http(http));
    }
}

/// Operation ids are the handlers' names, which repeat across modules (`list`, `add`): a name
/// used more than once gets its tag in front (`templates_list`), so every id is unique, as
/// OpenAPI requires and code generators rely on.
struct UniqueOperationIds;

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                if let Some(id) = &op.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                let Some(id) = op.operation_id.clone() else {
                    continue;
                };
                if seen.get(&id).copied().unwrap_or(0) > 1 {
                    let tag = op
                        .tags
                        .as_ref()
                        .and_then(|t| t.first())
                        .map(|t| {
                            t.chars()
                                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                                .collect::<String>()
                                .replace("__", "_")
                        })
                        .unwrap_or_default();
                    op.operation_id = Some(format!("{tag}_{id}"));
                }
            }
        }
    }
}

/// OpenAPI requires a description on every response; a success answer whose body says it all
/// (`(status = 200, body = Conversation)`) gets its status's reason phrase.
struct Described;

impl Modify for Described {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                for (status, response) in op.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(r) = response {
                        if r.description.is_empty() {
                            let reason = status
                                .parse::<u16>()
                                .ok()
                                .and_then(|s| warp::http::StatusCode::from_u16(s).ok())
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("answer");
                            r.description = reason.to_string();
                        }
                    }
                }
            }
        }
    }
}
