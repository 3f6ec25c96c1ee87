//! What every scenario needs first: services in the directory, tokens, conversations.
//! Everything goes over the server's real HTTP API, with bounded concurrency.

use std::net::{SocketAddr, ToSocketAddrs};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

pub fn is_loopback(host: &str) -> bool {
    host.to_socket_addrs()
        .map(|mut addrs| addrs.all(|a: SocketAddr| a.ip().is_loopback()))
        .unwrap_or(false)
}

#[derive(Clone)]
pub struct Target {
    pub http: String,
    pub admin: String,
    pub admin_token: String,
    pub server_pid: Option<u32>,
    /// The server's HS256 secret: tokens are then signed here, as the marketplace backend would
    /// sign them, and the server needs no dev tokens.
    pub jwt_secret: Option<String>,
    pub client: reqwest::Client,
}

/// Lifetime of tokens signed here: long enough for any bounded load run.
const TOKEN_TTL_S: u64 = 6 * 3600;

/// Concurrent setup requests.
const SETUP_CONCURRENCY: usize = 64;

/// One customer/provider pair and their conversation.
#[derive(Clone)]
pub struct Pair {
    pub index: usize,
    pub customer_token: String,
    pub provider_token: String,
    pub conversation: String,
}

impl Target {
    pub fn new(
        http: &str,
        admin: &str,
        admin_token: &str,
        server_pid: Option<u32>,
        jwt_secret: Option<String>,
    ) -> Self {
        Target {
            http: http.to_string(),
            admin: admin.to_string(),
            admin_token: admin_token.to_string(),
            server_pid,
            jwt_secret,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(SETUP_CONCURRENCY)
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/ws?access_token={token}", self.http)
    }

    async fn json(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
        let res = req.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{what}: HTTP {status}: {body}"));
        }
        Ok(body)
    }

    pub async fn put_service(&self, service: &str, provider: &str) -> Result<(), String> {
        let req = self
            .client
            .put(format!("http://{}/admin/v1/services/{service}", self.admin))
            .bearer_auth(&self.admin_token)
            .json(&json!({"provider_id": provider, "title": format!("Service {service}"), "provider_name": format!("Provider {provider}")}));
        self.json(req, "register service").await.map(|_| ())
    }

    /// A token for `user`: signed here with the server's secret if we have it, else a dev
    /// token from the server.
    pub async fn token(&self, user: &str, role: &str) -> Result<String, String> {
        if let Some(secret) = &self.jwt_secret {
            return sign(secret, user, role);
        }
        let req = self
            .client
            .post(format!("http://{}/api/v1/dev/tokens", self.http))
            .json(&json!({"user_id": user, "role": role, "name": user}));
        let body = self.json(req, "dev token").await?;
        body["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("dev token: no token in {body}"))
    }

    pub async fn open_conversation(
        &self,
        customer_token: &str,
        service: &str,
        text: &str,
    ) -> Result<String, String> {
        let req = self
            .client
            .post(format!("http://{}/api/v1/conversations", self.http))
            .bearer_auth(customer_token)
            .json(&json!({"service_id": service, "initial_message": text}));
        let body = self.json(req, "create conversation").await?;
        body["conversation"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("create conversation: no id in {body}"))
    }

    pub async fn send_http(
        &self,
        token: &str,
        conversation: &str,
        text: &str,
        client_msg_id: &str,
    ) -> Result<u64, String> {
        let req = self
            .client
            .post(format!(
                "http://{}/api/v1/conversations/{conversation}/messages",
                self.http
            ))
            .bearer_auth(token)
            .json(&json!({"text": text, "client_msg_id": client_msg_id}));
        let body = self.json(req, "send message").await?;
        body["seq"]
            .as_u64()
            .ok_or_else(|| format!("send: no seq in {body}"))
    }

    /// `n` pairs, each with its own service, provider and customer (names carry `run` so runs
    /// against the same store do not collide), and a conversation opened with a first message.
    pub async fn pairs(&self, run: &str, n: usize) -> Result<Vec<Pair>, String> {
        let results: Vec<Result<Pair, String>> = stream::iter(0..n)
            .map(|i| async move {
                let (svc, prov, cust) = (
                    format!("{run}-s{i}"),
                    format!("{run}-p{i}"),
                    format!("{run}-c{i}"),
                );
                self.put_service(&svc, &prov).await?;
                let customer_token = self.token(&cust, "customer").await?;
                let provider_token = self.token(&prov, "provider").await?;
                let conversation = self
                    .open_conversation(&customer_token, &svc, "hello")
                    .await?;
                Ok(Pair {
                    index: i,
                    customer_token,
                    provider_token,
                    conversation,
                })
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect()
            .await;
        let mut pairs = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        pairs.sort_by_key(|p| p.index);
        Ok(pairs)
    }

    /// `n` tokens for distinct users.
    pub async fn tokens(&self, run: &str, n: usize) -> Result<Vec<String>, String> {
        stream::iter(0..n)
            .map(|i| async move {
                self.token(
                    &format!("{run}-u{i}"),
                    if i % 2 == 0 { "customer" } else { "provider" },
                )
                .await
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}

/// A name for this run, so repeated runs against one store use fresh users.
pub fn run_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("r{}", ms % 100_000_000)
}

/// An HS256 JWT with the claims Switchboard reads (`sub`, `role`, `name`, `exp`).
fn sign(secret: &str, user: &str, role: &str) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("clock: {e}"))?
        .as_secs();
    let claims = json!({"sub": user, "role": role, "name": user, "exp": now + TOKEN_TTL_S});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("signing a token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_a_target() {
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("[::1]:8080"));
        assert!(!is_loopback("10.0.0.1:8080"));
        assert!(!is_loopback("192.168.1.1:80"));
    }

    #[test]
    fn signed_tokens_carry_the_claims_the_server_reads() {
        let token = sign("s3cret", "cust-1", "customer").unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "cust-1");
        assert_eq!(data.claims["role"], "customer");
        let other = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"other"),
            &validation,
        );
        assert!(
            other.is_err(),
            "a token must not verify with another secret"
        );
    }
}
