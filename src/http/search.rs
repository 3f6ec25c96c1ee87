//! `GET /api/v1/search?q=&conversation_id=&cursor=&limit=`: the caller's own messages by the words
//! in them (`search/`), best match first, then newest.

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::reply::{
    conversation_id, json, param, principal, query_pairs, reject, with_engine, Page,
};
use crate::describe::errors::Authed;
use crate::domain::clock::rfc3339;
use crate::domain::user::Principal;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::search::{Query, SearchError};

pub fn routes(engine: EngineRef) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "search")
        .and(warp::get())
        .and(principal(engine.clone()))
        .and(query_pairs())
        .and(with_engine(engine))
        .and_then(search)
}

/// One message that matched, with the matching words in `snippet`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Item {
    message_id: Id,
    conversation_id: Id,
    seq: u64,
    snippet: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created_at: i64,
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::EmptyQuery | SearchError::QueryTooLong => {
                ApiError::bad_request("invalid_query", e.to_string())
            }
            SearchError::BadCursor => ApiError::bad_request(
                "invalid_cursor",
                "the cursor is not one this server gave out",
            ),
            other => {
                tracing::error!(error = %other, "search failed");
                ApiError::new(
                    ErrorKind::Unavailable,
                    "search_unavailable",
                    "search is not available right now",
                )
            }
        }
    }
}

/// Search the caller's own messages by their words: best match first, then newest.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", security(("bearer" = [])),
    params(
        ("q" = String, Query, min_length = 1, description = "the words to find (not blank)"),
        ("conversation_id" = Option<String>, Query, description = "only within this conversation"),
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 20 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = Page<Item>), Authed,
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 503, description = "`search_unavailable`, `store_unavailable`", body = ErrorBody)))]
async fn search(
    p: Principal,
    pairs: Vec<(String, String)>,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let Some(index) = engine.search.clone() else {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "search_unavailable",
                "search is off on this server (search.enabled)",
            ));
        };
        let conversation = match param(&pairs, "conversation_id") {
            Some(raw) => {
                // Someone else's conversation is as unknown as a missing one.
                let id = conversation_id(raw)?;
                match engine.store.get_conversation(id).await? {
                    Some(doc) if doc.record.side_of(&p.user_id).is_some() => Some(id),
                    _ => return Err(ApiError::conversation_not_found()),
                }
            }
            None => None,
        };
        let limit = super::reply::limit_param(&pairs, 20, crate::search::MAX_LIMIT)?;
        let query = Query {
            user_id: p.user_id.to_string(),
            text: param(&pairs, "q").unwrap_or("").to_string(),
            conversation_id: conversation.map(|c| c.to_string()),
            cursor: param(&pairs, "cursor").map(str::to_string),
            limit,
        };
        // Searching reads segments and scores on the CPU: not on an async worker.
        let page = tokio::task::spawn_blocking(move || index.search(&query))
            .await
            .map_err(|_| ApiError::unavailable("search stopped"))??;
        let mut items = Vec::with_capacity(page.items.len());
        for hit in page.items {
            let (Ok(message_id), Ok(conversation_id)) = (
                hit.message_id.parse::<Id>(),
                hit.conversation_id.parse::<Id>(),
            ) else {
                continue;
            };
            // The index may lag a deletion by a commit: the store has the last word.
            match engine.store.find_message(message_id).await? {
                Some(m) if !m.deleted => items.push(Item {
                    message_id,
                    conversation_id,
                    seq: hit.seq,
                    snippet: hit.snippet,
                    created_at: hit.created_at_ms,
                }),
                _ => {}
            }
        }
        Ok(json(
            StatusCode::OK,
            &Page {
                items,
                next_cursor: page.next_cursor,
            },
        ))
    }
    .await
    .map_err(reject)
}
