//! The fixture the whole matrix shares ([`World`]: one server, one conversation) and the running
//! of one cell: mint the caller's token, call the route, and turn what came back into an
//! [`Answer`].

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::cells::{Answer, Expect, Fresh, Listener, Row, Verb, Who};
use crate::harness::{now, signed, Server, Ws, ADMIN_TOKEN};

pub const SVC: &str = "svc-authz";
pub const CUSTOMER: &str = "cust-authz";
pub const PROVIDER: &str = "prov-authz";
const STRANGER: &str = "stranger-authz";
const ADMIN: &str = "admin-authz";
/// A user whose profile is stored, for the admin user routes.
const PROFILE: &str = "profile-authz";
/// The service a destructive row deletes, put back before each of its cells.
const FRESH_SVC: &str = "svc-authz-fresh";
const NOT_OUR_SECRET: &str = "not-the-server-secret-0123456789abcdef";

/// How long a socket answer may take before the cell counts it as missing.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// One server and the conversation every row addresses.
pub struct World {
    pub s: Server,
    pub conv: String,
    pub msg: String,
    /// An attachment the customer sent in `conv`.
    pub att: String,
    pub customer: String,
    pub provider: String,
    pub stranger: String,
    admin: String,
}

fn claims(user: &str, role: &str, exp: i64) -> Value {
    json!({"sub": user, "role": role, "name": format!("{user} name"), "exp": exp})
}

fn forged(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(NOT_OUR_SECRET.as_bytes()),
    )
    .expect("token signs")
}

impl World {
    pub async fn new() -> World {
        let s = Server::start().await;
        let (customer, provider, conv) = s.conversation("authz").await;
        let (status, page) = s
            .api(
                "GET",
                &format!("/api/v1/conversations/{conv}/messages"),
                &customer,
                None,
            )
            .await;
        assert_eq!(status, 200, "history: {page}");
        let msg = page["items"][0]["id"]
            .as_str()
            .expect("first message")
            .to_string();
        let (status, body) = s
            .admin_call(
                "PUT",
                &format!("/admin/v1/users/{PROFILE}"),
                Some(json!({"name": "Profile", "role": "customer"})),
            )
            .await;
        assert_eq!(status, 200, "put user: {body}");
        let att = crate::attachments::sent_gif(&s, &customer, &conv).await;
        let later = now() + 600;
        World {
            att,
            stranger: signed(claims(STRANGER, "customer", later)),
            admin: signed(claims(ADMIN, "admin", later)),
            s,
            conv,
            msg,
            customer,
            provider,
        }
    }

    /// The caller's token for a route on `on`, `None` for no token. The three broken tokens carry
    /// the claims of the route's rightful caller, so only their defect can be why they fail.
    fn token(&self, who: Who, on: Listener) -> Option<String> {
        let rightful = |exp| match on {
            Listener::Public => claims(CUSTOMER, "customer", exp),
            Listener::Admin => claims(ADMIN, "admin", exp),
        };
        let later = now() + 600;
        Some(match (who, on) {
            (Who::None, _) => return None,
            (Who::Expired, _) => signed(rightful(now() - 3600)),
            (Who::Forged, _) => forged(&rightful(later)),
            (Who::Refresh, _) => {
                let mut c = rightful(later);
                c["token_type"] = json!("refresh");
                signed(c)
            }
            // Public: the conversation's provider, who may not contact or delete for the sender.
            (Who::WrongRole, Listener::Public) => self.provider.clone(),
            (Who::WrongRole, Listener::Admin) => self.customer.clone(),
            (Who::Stranger, _) => self.stranger.clone(),
            (Who::Participant, Listener::Public) => self.customer.clone(),
            // On the admin API the participant is the provider, so both roles are tried there.
            (Who::Participant, Listener::Admin) => self.provider.clone(),
            (Who::Admin, _) => self.admin.clone(),
            (Who::AdminToken, _) => ADMIN_TOKEN.to_string(),
        })
    }

    /// A message the customer just sent in the conversation; its id.
    pub async fn fresh_message(&self) -> String {
        let (status, m) = self
            .s
            .api(
                "POST",
                &format!("/api/v1/conversations/{}/messages", self.conv),
                &self.customer,
                Some(json!({"text": "fresh fixture"})),
            )
            .await;
        assert_eq!(status, 201, "fresh message: {m}");
        m["id"].as_str().expect("message id").to_string()
    }

    async fn fresh(&self, fresh: Fresh) -> String {
        match fresh {
            Fresh::Nothing => String::new(),
            Fresh::Message => self.fresh_message().await,
            Fresh::Service => {
                self.s.service(FRESH_SVC, PROVIDER).await;
                FRESH_SVC.to_string()
            }
        }
    }

    /// A template with the fixture's ids in place.
    pub fn fill(&self, template: &str, fresh: &str) -> String {
        template
            .replace("{conv}", &self.conv)
            .replace("{msg}", &self.msg)
            .replace("{att}", &self.att)
            .replace("{svc}", SVC)
            .replace("{user}", PROFILE)
            .replace("{fresh}", fresh)
            // An id no dead letter has (this world configures no webhooks).
            .replace("{dead}", "1")
    }

    /// Runs one cell: the answer, and the body as text (empty for sockets) for the leak check.
    pub async fn call(&self, row: &Row, who: Who) -> (Answer, String) {
        let fresh = self.fresh(row.fresh).await;
        let path = self.fill(row.path, &fresh);
        let token = self.token(who, row.on);
        let Some(method) = row.verb.http() else {
            return (self.socket(row.verb, &path, token).await, String::new());
        };
        let body = (!row.body.is_empty()).then(|| {
            serde_json::from_str::<Value>(&self.fill(row.body, &fresh)).expect("row body is JSON")
        });
        let url = match row.on {
            Listener::Public => self.s.url(&path),
            Listener::Admin => format!("http://{}{path}", self.s.admin),
        };
        let (status, body) = self.s.call(method, &url, token.as_deref(), body).await;
        let answer = if status < 400 {
            Answer::Status(status)
        } else {
            let code = body["error"]["code"].as_str().unwrap_or("<no error body>");
            Answer::Error(status, code.to_string())
        };
        (answer, body.to_string())
    }

    async fn socket(&self, verb: Verb, path: &str, token: Option<String>) -> Answer {
        let mut url = self.s.ws_url(path);
        let mut headers = Vec::new();
        let bearer = token.as_ref().map(|t| format!("Bearer {t}"));
        match (verb, &token, &bearer) {
            (Verb::WsQuery, Some(t), _) => url = format!("{url}?access_token={t}"),
            (Verb::Ws, _, Some(b)) => headers.push(("authorization", b.as_str())),
            (Verb::WsRefresh, _, _) => url = format!("{url}?access_token={}", self.customer),
            _ => {}
        }
        let mut ws = match Ws::open_with(&url, &headers).await {
            Ok(ws) => ws,
            Err((status, body)) => {
                let code = body["error"]["code"].as_str().unwrap_or("<no error body>");
                return Answer::Error(status, code.to_string());
            }
        };
        let first = match (verb, &token) {
            (Verb::Ws | Verb::WsQuery, None) => return Answer::Status(101),
            (Verb::Ws | Verb::WsQuery, Some(_)) => {
                return match read_event(&mut ws, ANSWER_WITHIN).await {
                    Ok(ev) if ev["type"] == "ready" => Answer::Status(101),
                    Ok(ev) => Answer::Odd(format!("101, then {ev}")),
                    Err(e) => Answer::Odd(format!("101, then {e}")),
                };
            }
            (Verb::WsRefresh, t) => {
                match read_event(&mut ws, ANSWER_WITHIN).await {
                    Ok(ev) if ev["type"] == "ready" => {}
                    other => return Answer::Odd(format!("the participant's socket: {other:?}")),
                }
                json!({"type": "auth", "token": t.as_deref().unwrap_or_default()})
            }
            (_, Some(t)) => json!({"type": "auth", "token": t}),
            (_, None) => json!({"type": "ping", "ref": "before-auth"}),
        };
        ws.send(first).await;
        match read_event(&mut ws, ANSWER_WITHIN).await {
            Ok(ev) if ev["type"] == "ready" => Answer::Ready,
            Ok(ev) if ev["type"] == "error" => {
                let code = ev["code"].as_str().unwrap_or("<no code>").to_string();
                Answer::Closed(code, close_code(&mut ws, ANSWER_WITHIN).await)
            }
            Ok(ev) => Answer::Odd(format!("upgraded, then {ev}")),
            Err(e) => Answer::Odd(format!("upgraded, then {e}")),
        }
    }
}

/// The next JSON event, skipping WebSocket pings; `Err` says what came instead.
pub async fn read_event(ws: &mut Ws, within: Duration) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.stream.next()).await {
            Err(_) => return Err(format!("nothing within {within:?}")),
            Ok(None) => return Err("the socket ended".into()),
            Ok(Some(Err(e))) => return Err(format!("a socket error: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                return serde_json::from_str(&t).map_err(|e| format!("not JSON ({e}): {t}"))
            }
            Message::Close(c) => return Err(format!("close {c:?}")),
            _ => continue,
        }
    }
}

/// The close code the server sends next, `None` if it ends without one or not in time.
async fn close_code(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.stream.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return Some(f.code.into()),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                return None
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// What running rows found: one readable line per wrong cell, how many cells ran, and the cells
/// that do not apply with the reason the table gives.
#[derive(Default)]
pub struct Report {
    pub failures: Vec<String>,
    pub ran: usize,
    pub not_applicable: Vec<String>,
}

/// Runs every row as every caller.
pub async fn check(w: &World, rows: &[Row]) -> Report {
    let mut report = Report::default();
    for row in rows {
        for who in Who::ALL {
            let want = match row.cells.get(who) {
                Expect::Na(why) => {
                    report
                        .not_applicable
                        .push(format!("{} as {}: {why}", row.label(), who.name()));
                    continue;
                }
                e => e.answer(),
            };
            report.ran += 1;
            let (got, body) = w.call(row, who).await;
            if want.as_ref() != Some(&got) {
                let want = want.map_or_else(String::new, |a| a.to_string());
                report.failures.push(format!(
                    "{} as {}: expected {want}, got {got}",
                    row.label(),
                    who.name()
                ));
            }
            // Whatever a non-participant is answered, it must not name the conversation.
            let outsider = matches!(who, Who::Stranger | Who::Admin);
            if row.on == Listener::Public && outsider && body.contains(&w.conv) {
                report.failures.push(format!(
                    "{} as {}: the answer names the conversation: {body}",
                    row.label(),
                    who.name()
                ));
            }
        }
    }
    report
}
