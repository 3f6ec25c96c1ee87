//! A local HTTP server that plays the webhook receiver's and Brevo's part: it records every
//! request (path, headers, body) and answers what the test tells it to, failing on demand.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use warp::http::{HeaderMap, StatusCode};
use warp::Filter;

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// The body as sent (pushes are encrypted bytes).
    pub raw: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Default)]
struct State {
    seen: Vec<Request>,
    /// Statuses for the next requests, in order; when empty, `otherwise`.
    plan: VecDeque<u16>,
    otherwise: u16,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Listens on an ephemeral port; answers `otherwise` unless a plan says more.
    pub async fn start(otherwise: u16) -> Receiver {
        let state = Arc::new(Mutex::new(State {
            otherwise,
            ..State::default()
        }));
        let s = state.clone();
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |path: warp::path::FullPath, headers: HeaderMap, body: bytes::Bytes| {
                    let mut st = s.lock().unwrap();
                    let status = st.plan.pop_front().unwrap_or(st.otherwise);
                    st.seen.push(Request {
                        path: path.as_str().to_string(),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        raw: body.to_vec(),
                        status,
                    });
                    let code = StatusCode::from_u16(status).unwrap();
                    // A 429 says when to come back, as push services do.
                    let retry_after = if status == 429 { "1" } else { "0" };
                    warp::reply::with_header(
                        warp::reply::with_status(r#"{"messageId":"<test@brevo>"}"#, code),
                        "retry-after",
                        retry_after,
                    )
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The next `statuses` answers, then `otherwise` again.
    pub fn plan(&self, statuses: &[u16]) {
        self.state.lock().unwrap().plan.extend(statuses);
    }

    pub fn answer(&self, otherwise: u16) {
        self.state.lock().unwrap().otherwise = otherwise;
    }

    pub fn seen(&self) -> Vec<Request> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Waits until `done` holds for what was seen, at most `within`; answers what was seen.
    pub async fn until(&self, within: Duration, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let seen = self.seen();
            if done(&seen) || tokio::time::Instant::now() >= until {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
