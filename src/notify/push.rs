//! Web Push subscriptions (a browser's `PushSubscription`, per user) and one push to one of them.
//!
//! A subscription is an item in the user's partition (at most [`MAX_PER_USER`], so a partition
//! stays tiny). A push is the payload encrypted for that browser (RFC 8291, by
//! `web-push-native`), POSTed to its endpoint with our VAPID signature; the push service answers
//! 201, or 404/410 when the browser dropped the subscription (then we drop it too).

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Serialize};
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

use super::vapid::Vapid;
use super::webhook::SendError;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::storage::codec::{decode, encode};
use crate::storage::items::{Item, ItemKind};
use crate::storage::{Store, StoreResult};

pub const MAX_PER_USER: usize = 10;
/// Longest endpoint URL accepted (push services' are about 200 characters).
pub const MAX_ENDPOINT: usize = 2048;
/// How long a VAPID signature is valid (RFC 8292 allows up to 24 h).
const VAPID_VALID: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: Id,
    pub user: ExternalId,
    pub endpoint: String,
    /// The browser's P-256 public key, base64url (uncompressed point).
    pub p256dh: String,
    /// The browser's 16-byte auth secret, base64url.
    pub auth: String,
    pub created_at: i64,
}

/// Why a subscription body is refused (422 `invalid_subscription`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// Checks a browser's subscription: an `https:` endpoint (or `http:` when allowed), a P-256
/// point and a 16-byte secret.
pub fn check(endpoint: &str, p256dh: &str, auth: &str, allow_http: bool) -> Result<(), Invalid> {
    if endpoint.len() > MAX_ENDPOINT {
        return Err(Invalid("endpoint is too long"));
    }
    let url = reqwest::Url::parse(endpoint).map_err(|_| Invalid("endpoint is not a URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(Invalid("endpoint must be an https: URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Invalid("endpoint has no host"));
    }
    public_key(p256dh).ok_or(Invalid("keys.p256dh is not a P-256 public key"))?;
    auth_secret(auth).ok_or(Invalid("keys.auth is not a 16-byte secret"))?;
    Ok(())
}

fn b64(s: &str) -> Option<Vec<u8>> {
    Base64UrlUnpadded::decode_vec(s.trim_end_matches('=')).ok()
}

fn public_key(p256dh: &str) -> Option<PublicKey> {
    PublicKey::from_sec1_bytes(&b64(p256dh)?).ok()
}

fn auth_secret(auth: &str) -> Option<Auth> {
    let raw: [u8; 16] = b64(auth)?.try_into().ok()?;
    Some(Auth::from(raw))
}

fn item(s: &Subscription) -> Item {
    Item {
        kind: ItemKind::PushSubscription,
        partition: s.user.as_str().to_string(),
        key: s.id.0.to_be_bytes().to_vec(),
        value: encode(s),
    }
}

/// The user's subscriptions, oldest first.
pub async fn list(store: &dyn Store, user: &ExternalId) -> StoreResult<Vec<Subscription>> {
    store
        .list_items(
            ItemKind::PushSubscription,
            user.as_str(),
            None,
            MAX_PER_USER + 1,
        )
        .await?
        .iter()
        .map(|i| decode(&i.value))
        .collect()
}

pub async fn get(
    store: &dyn Store,
    user: &ExternalId,
    id: Id,
) -> StoreResult<Option<Subscription>> {
    match store
        .get_item(
            ItemKind::PushSubscription,
            user.as_str(),
            &id.0.to_be_bytes(),
        )
        .await?
    {
        Some(v) => decode(&v).map(Some),
        None => Ok(None),
    }
}

pub async fn put(store: &dyn Store, s: &Subscription) -> StoreResult<()> {
    store.put_item(&item(s)).await
}

pub async fn remove(store: &dyn Store, user: &ExternalId, id: Id) -> StoreResult<()> {
    store
        .delete_item(
            ItemKind::PushSubscription,
            user.as_str(),
            &id.0.to_be_bytes(),
        )
        .await
}

/// What a push service said about one push.
pub enum Answer {
    Accepted,
    /// 404/410: the browser dropped this subscription.
    Gone,
}

/// Encrypts `payload` for `s` and POSTs it. `topic` lets the push service replace an undelivered
/// push of the same topic (a burst shows as one notification).
pub async fn send(
    client: &reqwest::Client,
    vapid: &Vapid,
    s: &Subscription,
    payload: &[u8],
    topic: &str,
    ttl: Duration,
) -> Result<Answer, SendError> {
    let bad = |why: &str| SendError::Network(format!("subscription {}: {why}", s.id));
    let endpoint: warp::http::Uri = s.endpoint.parse().map_err(|_| bad("endpoint"))?;
    let key = public_key(&s.p256dh).ok_or_else(|| bad("p256dh"))?;
    let auth = auth_secret(&s.auth).ok_or_else(|| bad("auth"))?;
    let origin = reqwest::Url::parse(&s.endpoint)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| bad("endpoint"))?;
    let request = WebPushBuilder::new(endpoint, key, auth)
        .with_valid_duration(ttl)
        .build(payload.to_vec())
        .map_err(|e| bad(&e.to_string()))?;
    let authorization = vapid
        .authorization(&origin, VAPID_VALID)
        .map_err(|e| bad(&e))?;
    let (parts, body) = request.into_parts();
    let mut builder = client.post(&s.endpoint).body(body);
    // TTL, Content-Encoding and Content-Type from the crate; reqwest sets Content-Length itself.
    for (name, value) in &parts.headers {
        if name != warp::http::header::CONTENT_LENGTH {
            builder = builder.header(name, value);
        }
    }
    let answer = builder
        .header("authorization", authorization)
        .header("urgency", "high")
        .header("topic", topic)
        .send()
        .await?;
    let status = answer.status().as_u16();
    match status {
        200..=299 => Ok(Answer::Accepted),
        404 | 410 => Ok(Answer::Gone),
        _ => {
            let retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            Err(match retry_after {
                Some(secs) => SendError::RetryAfter(status, secs),
                None => SendError::Status(status),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256DH: &str =
        "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
    const AUTH: &str = "_ordMnz7uTCmrpBTeUV4Bw";

    #[test]
    fn subscriptions_need_https_a_point_and_a_secret() {
        assert!(check("https://fcm.googleapis.com/fcm/send/x", P256DH, AUTH, false).is_ok());
        assert!(check("http://127.0.0.1:9/push", P256DH, AUTH, false).is_err());
        assert!(check("http://127.0.0.1:9/push", P256DH, AUTH, true).is_ok());
        assert!(check("javascript:alert(1)", P256DH, AUTH, true).is_err());
        assert!(check("https://x.example/", "AAAA", AUTH, false).is_err());
        assert!(check("https://x.example/", P256DH, "c2hvcnQ", false).is_err());
        let long = format!("https://x.example/{}", "a".repeat(MAX_ENDPOINT));
        assert!(check(&long, P256DH, AUTH, false).is_err());
    }
}
