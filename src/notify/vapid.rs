//! The server's VAPID key (RFC 8292): browsers subscribe with its public half, and every push is
//! signed with it, so a push service delivers only what this server sent.
//!
//! From `push.vapid_private_key`, or generated once and kept in the store: a key that changed would
//! make every existing subscription useless (browsers bind a subscription to the key).

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;

use super::config::PushConfig;
use crate::config::ConfigError;
use crate::storage::items::{Item, ItemKind};
use crate::storage::Store;

/// The item the generated key is kept in.
const KEPT: &[u8] = b"vapid";

pub struct Vapid {
    key: ES256KeyPair,
    /// The uncompressed public point, base64url: what `pushManager.subscribe` takes as
    /// `applicationServerKey`, and the `k=` of every `Authorization` header.
    pub public_key: String,
    subject: String,
}

impl Vapid {
    fn new(key: ES256KeyPair, subject: &str) -> Vapid {
        let public_key = Base64UrlUnpadded::encode_string(
            &key.public_key().public_key().to_bytes_uncompressed(),
        );
        Vapid {
            key,
            public_key,
            subject: subject.to_string(),
        }
    }

    /// The configured key, the one kept in the store, or a new one (kept, with a warning).
    pub async fn load(config: &PushConfig, store: &dyn Store) -> Result<Vapid, ConfigError> {
        let configured = config.vapid_private_key.trim();
        if !configured.is_empty() {
            return parse(configured)
                .map(|k| Vapid::new(k, &config.subject))
                .ok_or_else(|| {
                    ConfigError(
                        "push.vapid_private_key is neither a PEM EC key nor a base64url P-256 scalar"
                            .into(),
                    )
                });
        }
        let kept = store
            .get_item(ItemKind::VapidKey, "", KEPT)
            .await
            .map_err(|e| ConfigError(format!("the stored VAPID key could not be read: {e}")))?;
        if let Some(raw) = kept {
            let key = ES256KeyPair::from_bytes(&raw)
                .map_err(|e| ConfigError(format!("the stored VAPID key is not a key: {e}")))?;
            return Ok(Vapid::new(key, &config.subject));
        }
        let key = ES256KeyPair::generate();
        store
            .put_item(&Item {
                kind: ItemKind::VapidKey,
                partition: String::new(),
                key: KEPT.to_vec(),
                value: key.to_bytes(),
            })
            .await
            .map_err(|e| ConfigError(format!("a new VAPID key could not be kept: {e}")))?;
        tracing::warn!("generated a VAPID key and kept it in the store; set push.vapid_private_key so that every node and every future store signs with the same key (subscriptions are bound to it)");
        Ok(Vapid::new(key, &config.subject))
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` for a push to `origin`
    /// (`scheme://host[:port]` of the endpoint), valid for `valid` (at most 24 h by RFC 8292;
    /// we use 12 h).
    pub fn authorization(&self, origin: &str, valid: Duration) -> Result<String, String> {
        let claims = Claims::create(valid.into())
            .with_audience(origin)
            .with_subject(&self.subject);
        let token = self.key.sign(claims).map_err(|e| e.to_string())?;
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }
}

fn parse(raw: &str) -> Option<ES256KeyPair> {
    if raw.starts_with("-----BEGIN") {
        return ES256KeyPair::from_pem(raw).ok();
    }
    let bytes = Base64UrlUnpadded::decode_vec(raw.trim_end_matches('=')).ok()?;
    ES256KeyPair::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use web_push_native::jwt_simple::algorithms::ES256PublicKey;
    use web_push_native::jwt_simple::prelude::VerificationOptions;

    #[test]
    fn a_configured_key_signs_tokens_its_published_key_verifies() {
        let key = ES256KeyPair::generate();
        let raw = Base64UrlUnpadded::encode_string(&key.to_bytes());
        let v = Vapid::new(parse(&raw).unwrap(), "mailto:ops@market.example");
        assert_eq!(
            parse(&key.to_pem().unwrap()).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert!(parse("not a key").is_none());
        let header = v
            .authorization("https://push.example:8443", Duration::from_secs(3600))
            .unwrap();
        let (t, k) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .unwrap();
        assert_eq!(k, v.public_key);
        let public =
            ES256PublicKey::from_bytes(&Base64UrlUnpadded::decode_vec(k).unwrap()).unwrap();
        let claims = public
            .verify_token::<web_push_native::jwt_simple::claims::NoCustomClaims>(
                t,
                Some(VerificationOptions::default()),
            )
            .unwrap();
        assert_eq!(claims.subject.as_deref(), Some("mailto:ops@market.example"));
        assert!(claims
            .audiences
            .is_some_and(|a| a.contains(&std::collections::HashSet::from([
                "https://push.example:8443".to_string()
            ]))));
    }
}
