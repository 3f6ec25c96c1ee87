//! `GET /api/v1/conversations`: the caller's conversations by latest activity, filtered by
//! `archived`, `unread`, `service_id` and `q`, with the store's cursor paging.
//!
//! The filters other than `archived` are applied here, to the store's pages, rather than by the
//! store: they would need an index per filter in both stores, and a user has tens or hundreds of
//! conversations, not millions. To keep the store's cursor exact, each page asked of the store is
//! no larger than the room left in the answer, so every conversation a store page held is either
//! in the answer or filtered out, and that page's cursor is where the next request starts. A
//! request scans at most `MAX_SCANNED` conversations: a selective filter over a long history
//! answers fewer than `limit` items (even none) with a `next_cursor`, and the client pages on.

use warp::http::StatusCode;
use warp::reply::Response;
use warp::Rejection;

use super::reply::{json, limit_param, param, reject, Page};
use crate::describe::errors::Authed;
use crate::domain::conversation::Conversation;
use crate::domain::conversation::{ConversationDoc, Side};
use crate::domain::user::{ExternalId, Principal};
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};

/// Conversations one request looks at, at most, whatever the filters.
const MAX_SCANNED: usize = 500;

/// Longest `q`, in characters.
const MAX_QUERY_CHARS: usize = 100;

/// What the list keeps, besides the store's own `archived` filter.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ListFilter {
    /// Only conversations with messages the caller has not read.
    pub unread: bool,
    pub service_id: Option<ExternalId>,
    /// Lowercased; matched within the other participant's name or the service's title.
    pub q: Option<String>,
}

impl ListFilter {
    fn is_empty(&self) -> bool {
        !self.unread && self.service_id.is_none() && self.q.is_none()
    }

    /// Whether `doc`, seen from `side`, is kept.
    pub fn matches(&self, doc: &ConversationDoc, side: Side) -> bool {
        if self.unread && doc.state.side(side).unread == 0 {
            return false;
        }
        if self
            .service_id
            .as_ref()
            .is_some_and(|s| *s != doc.record.service_id)
        {
            return false;
        }
        if let Some(q) = &self.q {
            let other = match side {
                Side::Customer => &doc.record.provider_name,
                Side::Provider => &doc.record.customer_name,
            };
            if !other.to_lowercase().contains(q.as_str())
                && !doc.record.service_title.to_lowercase().contains(q.as_str())
            {
                return false;
            }
        }
        true
    }
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// The query's `archived` (None: all) and the other filters.
fn parse(q: &[(String, String)]) -> Result<(Option<bool>, ListFilter), ApiError> {
    let archived = match param(q, "archived") {
        None | Some("false") => Some(false),
        Some("true") => Some(true),
        Some("all") => None,
        Some(_) => return Err(bad("archived must be true, false or all")),
    };
    let unread = match param(q, "unread") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad("unread must be true or false")),
    };
    let service_id = match param(q, "service_id") {
        None | Some("") => None,
        Some(s) => Some(ExternalId::parse(s).map_err(|_| bad("service_id is not a valid id"))?),
    };
    let text = param(q, "q").map(str::trim).filter(|s| !s.is_empty());
    if text.is_some_and(|t| t.chars().count() > MAX_QUERY_CHARS) {
        return Err(bad("q is at most 100 characters"));
    }
    let filter = ListFilter {
        unread,
        service_id,
        q: text.map(str::to_lowercase),
    };
    Ok((archived, filter))
}

/// The caller's conversations, most recent activity first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations",
    security(("bearer" = [])),
    params(
        ("archived" = Option<String>, Query, pattern = "^(true|false|all)$", description = "`false` (default), `true` or `all`"),
        ("unread" = Option<bool>, Query, description = "only conversations with unread messages"),
        ("service_id" = Option<String>, Query, max_length = 64, description = "only this service's"),
        ("q" = Option<String>, Query, max_length = 100, description = "within the other participant's name or the service title"),
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 20, at most 100 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = Page<Conversation>), Authed,
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody)))]
pub async fn list(
    p: Principal,
    q: Vec<(String, String)>,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let (archived, filter) = parse(&q)?;
        let limit = limit_param(&q, 20, 100)?;
        let mut cursor = param(&q, "cursor").map(str::to_string);
        let mut items = Vec::with_capacity(limit);
        let mut scanned = 0;
        loop {
            // Never more than the room left: see the module doc.
            let ask = if filter.is_empty() {
                limit - items.len()
            } else {
                (limit - items.len()).min(MAX_SCANNED - scanned)
            };
            let page = engine
                .store
                .list_conversations(&p.user_id, archived, cursor.as_deref(), ask)
                .await?
                .map_err(|e| ApiError::bad_request("invalid_cursor", e.to_string()))?;
            scanned += page.items.len();
            for doc in &page.items {
                if let Some(side) = doc.record.side_of(&p.user_id) {
                    if filter.matches(doc, side) {
                        items.push(doc.view(side));
                    }
                }
            }
            cursor = page.next_cursor;
            if cursor.is_none() || items.len() == limit || scanned >= MAX_SCANNED {
                break;
            }
        }
        Ok(json(
            StatusCode::OK,
            &Page {
                items,
                next_cursor: cursor,
            },
        ))
    }
    .await
    .map_err(reject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversation::{ConversationRecord, ConversationState};
    use crate::domain::Id;

    fn doc(unread_for_provider: u64) -> ConversationDoc {
        let ext = |s: &str| ExternalId::parse(s).unwrap();
        let mut state = ConversationState::default();
        state.provider.unread = unread_for_provider;
        ConversationDoc {
            record: ConversationRecord {
                id: Id(1),
                service_id: ext("svc-plumbing"),
                service_title: "Emergency Plumbing".into(),
                provider_id: ext("prov"),
                provider_name: "Bob's Pipes".into(),
                customer_id: ext("cust"),
                customer_name: "Álvaro Núñez".into(),
                created_at: 0,
            },
            state,
        }
    }

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_filter_keeps_what_it_names() {
        let f = |q: &[(&str, &str)]| parse(&pairs(q)).unwrap().1;
        let (read, unread) = (doc(0), doc(2));
        assert!(f(&[]).matches(&read, Side::Provider));
        assert!(!f(&[("unread", "true")]).matches(&read, Side::Provider));
        assert!(f(&[("unread", "true")]).matches(&unread, Side::Provider));
        // Unread is the caller's own count: the customer has read everything here.
        assert!(!f(&[("unread", "true")]).matches(&unread, Side::Customer));
        assert!(f(&[("service_id", "svc-plumbing")]).matches(&read, Side::Provider));
        assert!(!f(&[("service_id", "svc-other")]).matches(&read, Side::Provider));
        // q: the other participant's name (case and accents as typed, any case) or the title.
        assert!(f(&[("q", "ÁLVARO")]).matches(&read, Side::Provider));
        assert!(
            !f(&[("q", "álvaro")]).matches(&read, Side::Customer),
            "one's own name is not searched"
        );
        assert!(f(&[("q", "pipes")]).matches(&read, Side::Customer));
        assert!(f(&[("q", " plumbing ")]).matches(&read, Side::Customer));
        assert!(!f(&[("q", "electric")]).matches(&read, Side::Provider));
    }

    #[test]
    fn bad_values_are_refused() {
        for q in [
            [("unread", "yes")],
            [("archived", "maybe")],
            [("service_id", "bad\u{1}id")],
        ] {
            assert!(parse(&pairs(&q)).is_err(), "{q:?}");
        }
        let long = "x".repeat(101);
        assert!(parse(&pairs(&[("q", &long)])).is_err());
        assert_eq!(
            parse(&pairs(&[("q", "  ")])).unwrap().1,
            ListFilter::default()
        );
    }
}
