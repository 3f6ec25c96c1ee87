//! The services directory: the contact card for customers, and its upkeep by the marketplace
//! through the admin API.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::admin::operator;
use super::reply::{external_id, json, json_body, no_content, principal, reject, with_engine};
use crate::describe::errors::{Authed, JsonBody, Operator};
use crate::domain::clock::rfc3339;
use crate::domain::conversation::ServiceRef;
use crate::domain::user::{ExternalId, Principal, Service};
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};

/// `GET /api/v1/services/{id}/contact`.
pub fn public_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "services" / String / "contact")
        .and(warp::get())
        .and(principal(engine.clone()))
        .and(with_engine(engine))
        .and_then(contact)
}

/// `PUT|GET|DELETE /admin/v1/services/{id}`.
pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = engine.config.limits.max_body_bytes;
    let path = warp::path!("admin" / "v1" / "services" / String);
    let op = operator(engine.clone());
    let e = with_engine(engine);
    let put = path
        .and(warp::put())
        .and(op.clone())
        .and(json_body::<ServiceBody>(limit))
        .and(e.clone())
        .and_then(put);
    let get = path
        .and(warp::get())
        .and(op.clone())
        .and(e.clone())
        .and_then(get);
    let delete = path.and(warp::delete()).and(op).and(e).and_then(delete);
    put.or(get).unify().or(delete).unify()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ServiceBody {
    provider_id: ExternalId,
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[serde(default)]
    provider_name: Option<String>,
    /// A phone number of 7 to 15 digits (`+`, spaces, `-`, `(`, `)` and `.` allowed between).
    #[serde(default)]
    whatsapp: Option<String>,
    /// Replaces `chat.quick_messages` on this service's contact card; `null` or absent: those.
    #[serde(default)]
    #[schema(max_items = 10)]
    quick_messages: Option<Vec<String>>,
}

/// Starter texts one service may set, and how long each may be (what a customer may send).
const MAX_QUICK_MESSAGES: usize = 10;
const MAX_QUICK_MESSAGE_CHARS: usize = 500;

/// Trimmed starter texts, or why they are refused.
fn quick_messages(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::unprocessable(
            "invalid_quick_messages",
            format!(
                "quick_messages: at most {MAX_QUICK_MESSAGES} texts of 1 to \
                 {MAX_QUICK_MESSAGE_CHARS} characters, without control characters"
            ),
        )
    };
    if raw.len() > MAX_QUICK_MESSAGES {
        return Err(bad());
    }
    raw.into_iter()
        .map(|t| {
            let t = t.trim().to_string();
            let n = t.chars().count();
            if n == 0 || n > MAX_QUICK_MESSAGE_CHARS || t.chars().any(char::is_control) {
                Err(bad())
            } else {
                Ok(t)
            }
        })
        .collect()
}

/// Digits of a phone number for wa.me, or an error for something that is not one.
fn whatsapp_digits(raw: &str) -> Result<String, ApiError> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let allowed = raw
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if !allowed || !(7..=15).contains(&digits.len()) {
        return Err(ApiError::unprocessable(
            "invalid_whatsapp",
            "whatsapp must be a phone number of 7 to 15 digits",
        ));
    }
    Ok(digits)
}

/// Create or replace a service in the directory.
#[utoipa::path(put, path = "/admin/v1/services/{id}", tag = "admin: services",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "service id")), request_body = ServiceBody,
    responses((status = 200, body = Service), Operator, JsonBody, (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `invalid_title`, `invalid_whatsapp`, `invalid_quick_messages`", body = ErrorBody)))]
async fn put(
    id: String,
    _op: (),
    body: ServiceBody,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let title = body.title.trim().to_string();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(ApiError::unprocessable(
                "invalid_title",
                "title must be 1 to 200 characters",
            ));
        }
        let service = Service {
            id: external_id(&id)?,
            provider_id: body.provider_id,
            title,
            provider_name: body.provider_name.filter(|n| !n.trim().is_empty()),
            whatsapp: body.whatsapp.as_deref().map(whatsapp_digits).transpose()?,
            quick_messages: body.quick_messages.map(quick_messages).transpose()?,
        };
        engine.store.put_service(&service).await?;
        Ok(json(StatusCode::OK, &service))
    }
    .await
    .map_err(reject)
}

#[utoipa::path(get, path = "/admin/v1/services/{id}", tag = "admin: services",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "service id")),
    responses((status = 200, body = Service), Operator, (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`service_not_found`", body = ErrorBody)))]
async fn get(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let service = engine
            .store
            .get_service(&external_id(&id)?)
            .await?
            .ok_or_else(|| ApiError::not_found("service_not_found", "service not found"))?;
        Ok(json(StatusCode::OK, &service))
    }
    .await
    .map_err(reject)
}

#[utoipa::path(delete, path = "/admin/v1/services/{id}", tag = "admin: services",
    security(("admin_token" = [])), params(("id" = String, Path, max_length = 64, description = "service id")),
    responses((status = 204, description = "removed"), Operator, (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`service_not_found`", body = ErrorBody)))]
async fn delete(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        if engine.store.delete_service(&external_id(&id)?).await? {
            Ok(no_content())
        } else {
            Err(ApiError::not_found(
                "service_not_found",
                "service not found",
            ))
        }
    }
    .await
    .map_err(reject)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct ContactProvider {
    id: ExternalId,
    name: String,
    online: bool,
    /// `null` while online, or when never seen.
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_seen_at: Option<i64>,
    typical_response_minutes: Option<u64>,
}

/// What the "Contact Provider" button needs.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ContactCard<'a> {
    service: ServiceRef,
    provider: ContactProvider,
    /// `https://wa.me/<digits>?text=...`, when the service has a WhatsApp number.
    whatsapp_url: Option<String>,
    quick_messages: &'a [String],
}

/// Percent-encodes text for a URL query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The contact card of a service.
#[utoipa::path(get, path = "/api/v1/services/{id}/contact", tag = "services",
    security(("bearer" = [])), params(("id" = String, Path, max_length = 64, description = "service id")),
    responses((status = 200, body = ContactCard), Authed, (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`service_not_found`", body = ErrorBody)))]
async fn contact(id: String, _p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let service = engine
            .store
            .get_service(&external_id(&id)?)
            .await?
            .ok_or_else(|| ApiError::not_found("service_not_found", "service not found"))?;
        let profile = engine.store.get_user(&service.provider_id).await?;
        let name = service
            .provider_name
            .clone()
            .or(profile.map(|p| p.name))
            .unwrap_or_else(|| service.provider_id.to_string());
        engine.analytics.viewed(&service.id, &service.provider_id);
        // A figure for the card: if it cannot be read, the card goes out without it.
        let typical_response_minutes = engine
            .analytics
            .typical_response_minutes(&service.provider_id)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(user_id = %service.provider_id, error = %e, "typical response time unreadable");
                None
            });
        let online = engine.registry.is_online(&service.provider_id);
        let last_seen_at = if online {
            None
        } else {
            engine.store.last_seen(&service.provider_id).await?
        };
        let greeting = format!("Hi! I'm interested in your service \"{}\".", service.title);
        let whatsapp_url = service
            .whatsapp
            .as_ref()
            .map(|digits| format!("https://wa.me/{digits}?text={}", url_encode(&greeting)));
        let body = ContactCard {
            provider: ContactProvider {
                id: service.provider_id.clone(),
                name,
                online,
                last_seen_at,
                typical_response_minutes,
            },
            whatsapp_url,
            quick_messages: service
                .quick_messages
                .as_deref()
                .unwrap_or(&engine.config.chat.quick_messages),
            service: ServiceRef {
                id: service.id,
                title: service.title,
            },
        };
        Ok(json(StatusCode::OK, &body))
    }
    .await
    .map_err(reject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_numbers_are_digits_only() {
        assert_eq!(whatsapp_digits("+1 (555) 123-4567").unwrap(), "15551234567");
        assert!(whatsapp_digits("call me").is_err());
        assert!(whatsapp_digits("123").is_err());
    }

    #[test]
    fn url_encoding_of_greetings() {
        assert_eq!(url_encode("Hi! \"x\" é"), "Hi%21%20%22x%22%20%C3%A9");
    }
}
