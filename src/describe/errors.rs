//! The error answers routes share, as OpenAPI responses. Every error has the one body
//! [`crate::error::ErrorBody`]; what differs is the status and the `code`s it may carry. A route
//! lists these groups beside its own answers in `#[utoipa::path(responses(..))]`, so each status a
//! route can return is named once, next to the handler that returns it.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::IntoResponses;

/// An error answer with the contract's body; `codes` are the `error.code`s it may carry.
pub fn error(codes: &[&str]) -> RefOr<Response> {
    let codes = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    error_response(format!("error; `error.code` is one of {codes}")).into()
}

fn error_response(description: String) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// An error answer that carries `Retry-After` (seconds).
fn retry_after(codes: &[&str]) -> RefOr<Response> {
    let codes = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    error_response(format!(
        "error; `error.code` is one of {codes}; try again after `Retry-After` seconds"
    ))
    .header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some("seconds to wait before trying again"))
            .build(),
    )
    .into()
}

fn map(entries: Vec<(&str, RefOr<Response>)>) -> BTreeMap<String, RefOr<Response>> {
    entries
        .into_iter()
        .map(|(status, r)| (status.to_string(), r))
        .collect()
}

/// What any route behind a user's token may answer besides its own: a missing, bad or expired
/// token, a cookie-authenticated write from a foreign origin, too many failed tokens from one
/// address, and a store that is down or shedding load.
pub struct Authed;

impl IntoResponses for Authed {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![
            (
                "401",
                error(&["missing_token", "invalid_token", "token_expired"]),
            ),
            ("429", retry_after(&["rate_limited"])),
            ("503", retry_after(&["store_unavailable", "overloaded"])),
        ])
    }
}

/// What any admin route may answer besides its own: no operator token, a user token that is not
/// an operator's, and a store that is down or shedding load.
pub struct Operator;

impl IntoResponses for Operator {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![
            (
                "401",
                error(&["missing_token", "invalid_token", "token_expired"]),
            ),
            ("403", error(&["forbidden_role"])),
            ("503", retry_after(&["store_unavailable", "overloaded"])),
        ])
    }
}

/// What reading a JSON body may answer: broken JSON or a chunked body of unknown size (400), a
/// body over `limits.max_body_bytes` (413). A body of the wrong shape is 422 `invalid_request`,
/// listed by each route with its own 422 codes.
pub struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![
            ("400", error(&["malformed_json", "length_required"])),
            ("413", error(&["payload_too_large"])),
        ])
    }
}
