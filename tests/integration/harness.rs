//! Starts the real `switchboard` binary on ephemeral ports with a temporary store, and talks to
//! it over real HTTP and WebSocket.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const ADMIN_TOKEN: &str = "dev-admin-token";
pub const SECRET: &str = "dev-secret-change-me-0123456789abcdef";

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The certificates of `root_pem`, as trust anchors.
pub fn roots(root_pem: &str) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(cert.expect("root PEM"))
            .expect("root certificate");
    }
    roots
}

/// A TLS client configuration that trusts `root_pem` (ring, as the server uses).
pub fn client_config(root_pem: &str) -> rustls::ClientConfig {
    let roots = roots(root_pem);
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// A token signed with the test server's secret, as the marketplace backend would sign it.
pub fn signed(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token signs")
}

pub struct Server {
    child: Option<Child>,
    pub http: String,
    pub admin: String,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    /// Where the server's log (stderr) goes; `None` inherits the test's stderr.
    pub log: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
    client: reqwest::Client,
    /// Set when both listeners speak TLS (`start_tls`): URLs are `https://` / `wss://` and
    /// clients trust this configuration's roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

fn spawn(dir: &Path, env: &[(String, String)], log: Option<&Path>) -> (Child, String, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.arg("serve")
        .arg("--config")
        .arg(format!("{root}/config/local.toml"))
        .env("SWITCHBOARD_HTTP__ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD_ADMIN__ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE__PATH", dir)
        .env("SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE", "0")
        .env("SWITCHBOARD_LIMITS__CONVERSATIONS_PER_HOUR", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("log file opens"),
            ),
            None => Stdio::inherit(),
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("switchboard binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server prints its listening line within 30 s");
    let mut http = String::new();
    let mut admin = String::new();
    for part in line.split_whitespace() {
        if let Some(a) = part.strip_prefix("http=") {
            http = a.to_string();
        }
        if let Some(a) = part.strip_prefix("admin=") {
            admin = a.to_string();
        }
    }
    assert!(
        !http.is_empty() && !admin.is_empty(),
        "unexpected first line: {line}"
    );
    (child, http, admin)
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    /// Starts with extra `SWITCHBOARD_*` settings.
    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        Self::launch(env, false)
    }

    /// Starts with extra settings, writing the server's log to `Server::log` (in the store's
    /// temporary directory) so a test can read it.
    pub async fn start_logged(env: &[(&str, &str)]) -> Server {
        Self::launch(env, true)
    }

    /// Starts with both listeners on TLS (`env` names the PEM files), trusting `root_pem`.
    pub async fn start_tls(env: &[(&str, &str)], root_pem: &str) -> Server {
        let mut server = Self::launch(env, false);
        let cert = reqwest::Certificate::from_pem(root_pem.as_bytes()).expect("root PEM");
        server.client = reqwest::Client::builder()
            .add_root_certificate(cert)
            .build()
            .expect("TLS client");
        server.tls = Some(std::sync::Arc::new(client_config(root_pem)));
        server
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn launch(env: &[(&str, &str)], logged: bool) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("store");
        let log = logged.then(|| tmp.path().join("server.log"));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, http, admin) = spawn(&dir, &env, log.as_deref());
        Server {
            child: Some(child),
            http,
            admin,
            dir,
            env,
            log,
            _tmp: Some(tmp),
            client: reqwest::Client::new(),
            tls: None,
        }
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and returns at once (the server drains while the test watches).
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Waits for the process to exit; answers its exit code (`None` if killed by a signal).
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        child.wait().ok().and_then(|s| s.code())
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same store directory (new ports).
    pub fn restart(&mut self) {
        self.stop();
        let (child, http, admin) = spawn(&self.dir, &self.env, self.log.as_deref());
        self.child = Some(child);
        self.http = http;
        self.admin = admin;
    }

    /// Starts the server again on the same store with these settings instead of the first ones.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.restart();
    }

    pub fn restart_after_kill(&mut self) {
        self.kill9();
        self.restart();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// The server process's resident memory, in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("server is running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme(), self.http, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        let ws = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{ws}://{}{}", self.http, path)
    }

    /// Any HTTP call: answers (status, JSON body or Null).
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request is answered");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Any HTTP call with the given request headers (and no others): answers (status, response
    /// headers, JSON body or Null).
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request is answered");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call(method, &self.url(path), Some(token), body).await
    }

    pub async fn admin_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}://{}{}", self.scheme(), self.admin, path);
        self.call(method, &url, Some(ADMIN_TOKEN), body).await
    }

    pub async fn token(&self, user: &str, role: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                &self.url("/api/v1/dev/tokens"),
                None,
                Some(json!({"user_id": user, "role": role, "name": format!("{user} name")})),
            )
            .await;
        assert_eq!(status, 200, "dev token for {user}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn service(&self, service: &str, provider: &str) {
        let (status, body) = self
            .admin_call(
                "PUT",
                &format!("/admin/v1/services/{service}"),
                Some(json!({"provider_id": provider, "title": format!("{service} title"), "provider_name": format!("{provider} name")})),
            )
            .await;
        assert_eq!(status, 200, "put service: {body}");
    }

    /// A service, a customer and its provider with tokens, and a conversation opened with a
    /// first message. Answers (customer token, provider token, conversation id).
    pub async fn conversation(&self, tag: &str) -> (String, String, String) {
        let (svc, customer, provider) = (
            format!("svc-{tag}"),
            format!("cust-{tag}"),
            format!("prov-{tag}"),
        );
        self.service(&svc, &provider).await;
        let c = self.token(&customer, "customer").await;
        let p = self.token(&provider, "provider").await;
        let (status, body) = self
            .api(
                "POST",
                "/api/v1/conversations",
                &c,
                Some(json!({"service_id": svc, "initial_message": "hello"})),
            )
            .await;
        assert_eq!(status, 201, "create conversation: {body}");
        let id = body["conversation"]["id"]
            .as_str()
            .expect("conversation id")
            .to_string();
        (c, p, id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub ready: Value,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Ws {
    /// Connects with the token in the URL and waits for `ready`.
    pub async fn connect(server: &Server, token: &str) -> Ws {
        let url = server.ws_url(&format!("/ws?access_token={token}"));
        match &server.tls {
            None => Self::connect_url(&url).await,
            Some(tls) => Self::connect_tls(&url, tls.clone()).await,
        }
    }

    pub async fn connect_url(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Self::ready(stream).await
    }

    /// `wss://`, trusting `tls`'s roots.
    pub async fn connect_tls(url: &str, tls: std::sync::Arc<rustls::ClientConfig>) -> Ws {
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (stream, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
                .await
                .expect("secure websocket connects");
        Self::ready(stream).await
    }

    async fn ready(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Ws {
        let mut ws = Ws {
            stream,
            ready: Value::Null,
        };
        let ready = ws.next().await;
        assert_eq!(ready["type"], "ready", "first event must be ready: {ready}");
        ws.ready = ready;
        ws
    }

    /// Opens a socket with extra request headers (`Origin`, `Cookie`, ...) without waiting for
    /// anything: `Ok` when upgraded, else the HTTP status and body of the refusal.
    pub async fn open_with(url: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, Value)> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let mut req = url.into_client_request().expect("websocket URL");
        for (k, v) in headers {
            req.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((stream, _)) => Ok(Ws {
                stream,
                ready: Value::Null,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let body = res
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((res.status().as_u16(), body))
            }
            Err(e) => panic!("{url}: neither an upgrade nor an HTTP answer: {e}"),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::text(v.to_string()))
            .await
            .expect("send frame");
    }

    /// The next JSON event (skipping pings), or panics after 10 s.
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("an event within 10 s")
                .expect("socket open")
                .expect("frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON event"),
                Message::Binary(b) => return rmp_serde::from_slice(&b).expect("MessagePack event"),
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Skips events until one of type `kind` arrives.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let ev = self.next().await;
            if ev["type"] == kind {
                return ev;
            }
        }
    }

    /// Whether an event of type `kind` arrives within `wait`.
    pub async fn sees_within(&mut self, kind: &str, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.next_of(kind)).await.ok()
    }

    /// Reads until the server closes the socket; answers the close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(Some(f))))) => return Some(f.code.into()),
                Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("socket not closed within 10 s"),
            }
        }
    }
}
