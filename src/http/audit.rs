//! The audit log: every admin action that changed something (a `PUT`, `POST`, `PATCH` or `DELETE`
//! on the admin API that succeeded) is appended to the store — who (the admin token, or the
//! admin user of the JWT), what (method and route), the target (the path names it), when — and
//! operators read it at `GET /admin/v1/audit?cursor=`.
//!
//! It wraps the whole admin tree rather than each handler, so a route added later is audited
//! without anyone remembering to. The entry is written after the action and before the answer: an
//! operator who got a 2xx can find it. A failed write is logged and does not undo the action.
//!
//! Entries are items partitioned by 30-day period, so no partition grows without bound; the log
//! lists oldest first from `AUDIT_LISTED_PERIODS` periods back (two years, the plan's retention).

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::admin::{identify, operator};
use super::reply::{bearer_token, id_cursor, json, limit_param, query_pairs, reject, with_engine};
use crate::describe::errors::Operator;
use crate::domain::clock::{format_ms, now_ms};
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::{ApiError, ErrorBody};
use crate::storage::items::{Item, ItemKind};
use crate::storage::{codec, keys};

const PERIOD_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Periods back the log is listed from: 25 × 30 days, a little over two years.
const AUDIT_LISTED_PERIODS: i64 = 25;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Id,
    /// `admin_token`, or `user:<id>`.
    pub actor: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub at: i64,
}

fn period(ms: i64) -> String {
    ms.div_euclid(PERIOD_MS).to_string()
}

impl AuditEntry {
    fn item(&self) -> Item {
        Item {
            kind: ItemKind::Audit,
            partition: period(self.at),
            key: keys::id(self.id).to_vec(),
            value: codec::encode(self),
        }
    }
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `routes`, with every successful admin action written to the log before it is answered.
pub fn audited<F>(
    engine: EngineRef,
    routes: F,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    warp::method()
        .and(warp::path::full())
        .and(bearer_token())
        .and(routes)
        .then(
            move |method: Method, path: FullPath, token: Option<String>, res: Response| {
                let engine = engine.clone();
                async move {
                    if changes_something(&method) && res.status().is_success() {
                        record(
                            &engine,
                            &method,
                            path.as_str(),
                            token.as_deref(),
                            res.status(),
                        )
                        .await;
                    }
                    res
                }
            },
        )
}

async fn record(
    engine: &EngineRef,
    method: &Method,
    path: &str,
    token: Option<&str>,
    status: StatusCode,
) {
    // The route let the request through, so the token names an operator.
    let actor = identify(engine, token)
        .map(|o| o.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let id = engine.ids.next_id();
    let entry = AuditEntry {
        id,
        actor,
        method: method.to_string(),
        path: path.to_string(),
        status: status.as_u16(),
        at: id.unix_ms(),
    };
    tracing::info!(actor = %entry.actor, method = %entry.method, path = %entry.path, "admin action");
    if let Err(e) = engine.store.put_item(&entry.item()).await {
        tracing::warn!(error = %e, path, "admin action not written to the audit log");
    }
}

/// `GET /admin/v1/audit?cursor=&limit=`.
pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("admin" / "v1" / "audit")
        .and(warp::get())
        .and(operator(engine.clone()))
        .and(query_pairs())
        .and(with_engine(engine))
        .and_then(list)
}

/// The audit log of the admin API's changes (every call but GET, HEAD and OPTIONS), oldest
/// first over about two years. Items: `id`, `actor` (`admin_token` or `user:<id>`), `method`,
/// `path`, `status`, `at`.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "admin: audit", security(("admin_token" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 50, at most 200 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = super::reply::Page<serde_json::Value>), Operator, (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody)))]
async fn list(_op: (), q: Vec<(String, String)>, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let limit = limit_param(&q, 50, 200)?;
        let after = id_cursor(&q)?;
        let now = period(now_ms()).parse::<i64>().unwrap_or(0);
        let (mut at, mut after_key) = match after {
            Some(id) => (id.unix_ms().div_euclid(PERIOD_MS), Some(keys::id(id))),
            None => (now - AUDIT_LISTED_PERIODS, None),
        };
        let mut entries: Vec<AuditEntry> = Vec::with_capacity(limit);
        let mut more = false;
        while at <= now {
            let items = engine
                .store
                .list_items(
                    ItemKind::Audit,
                    &at.to_string(),
                    after_key.as_ref().map(|k| k.as_slice()),
                    limit - entries.len() + 1,
                )
                .await?;
            for item in &items {
                if entries.len() == limit {
                    more = true;
                    break;
                }
                entries.push(codec::decode(&item.value)?);
            }
            if more {
                break;
            }
            at += 1;
            after_key = None;
        }
        let next = if more {
            entries.last().map(|e| e.id.to_string())
        } else {
            None
        };
        let items: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id, "actor": e.actor, "method": e.method, "path": e.path,
                    "status": e.status, "at": format_ms(e.at),
                })
            })
            .collect();
        Ok::<_, ApiError>(json(
            StatusCode::OK,
            &serde_json::json!({"items": items, "next_cursor": next}),
        ))
    }
    .await
    .map_err(reject)
}
