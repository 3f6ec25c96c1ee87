//! One webhook delivery: the event's fixed body POSTed to `webhooks.url`, signed so the receiver
//! knows it came from us and is recent.
//!
//! `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the scheme
//! Stripe made familiar. The timestamp is inside the signed bytes, so a captured request cannot be
//! replayed later with a fresh `t`; receivers reject old ones (docs/API-NOTES.md shows how).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::storage::codec::hex;

/// The signature header's value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
}

/// Why a delivery did not count: retried unless it was the last attempt.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the receiver answered {0}")]
    Status(u16),
    /// An answer that says when to try again (`Retry-After`, seconds).
    #[error("the receiver answered {0}, retry after {1} s")]
    RetryAfter(u16, u64),
    #[error("{0}")]
    Network(String),
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        // The URL is ours (configuration), so it may be logged; reqwest's text names it.
        let what = if e.is_timeout() {
            "no answer in time"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "request failed"
        };
        SendError::Network(format!("{what}: {e}"))
    }
}

/// POSTs one event. A 2xx is delivered; anything else is an error to retry.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    delivery: &str,
    event: &str,
    body: &str,
    now_secs: i64,
) -> Result<(), SendError> {
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("switchboard/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-switchboard-event", event)
        .header("x-switchboard-delivery", delivery)
        .header("x-switchboard-signature", signature(secret, now_secs, body))
        .body(body.to_string())
        .send()
        .await?;
    accepted(answer.status())
}

/// A 2xx is delivered; any other status is a failure to retry.
pub fn accepted(status: reqwest::StatusCode) -> Result<(), SendError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(SendError::Status(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // The same value `python3 -c "import hmac,hashlib; print(hmac.new(b'secret',
        // b'1700000000.{}', hashlib.sha256).hexdigest())"` prints.
        assert_eq!(
            signature("secret", 1_700_000_000, "{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
