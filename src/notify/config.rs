//! `[email]` and `[webhooks]`: where notifications go. Both are off until configured (an e-mail
//! API key, a webhook URL), and then nothing on the message path changes but one more record in
//! the write that already happens.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Brevo's public API, where `email.brevo_base_url` points unless told otherwise.
pub const BREVO_API: &str = "https://api.brevo.com";

/// E-mail to a recipient who stayed offline with unread messages, through Brevo's transactional
/// API (`POST {brevo_base_url}/v3/smtp/email`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// Brevo's `api-key`. Empty: no e-mail is sent (the startup log says so).
    pub brevo_api_key: String,
    pub brevo_base_url: String,
    pub sender_email: String,
    pub sender_name: String,
    /// How long a message may stay unread, its recipient offline, before the mail goes out.
    pub delay_secs: u64,
    /// The link back into the chat; `{conversation_id}` is replaced. Empty: no link.
    pub conversation_url: String,
    /// A Brevo template instead of our own text; it gets `params` (see API-NOTES.md).
    pub template_id: Option<u64>,
    /// Tries before a mail is given up (logged and counted); the same backoff as webhooks.
    pub max_attempts: u32,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            brevo_api_key: String::new(),
            brevo_base_url: BREVO_API.into(),
            sender_email: String::new(),
            sender_name: "Switchboard".into(),
            delay_secs: 300,
            conversation_url: String::new(),
            template_id: None,
            max_attempts: 12,
        }
    }
}

impl EmailConfig {
    pub fn enabled(&self) -> bool {
        !self.brevo_api_key.is_empty()
    }
}

/// Signed events to the marketplace backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Where events are POSTed. Empty: no events are recorded or sent.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Switchboard-Signature`.
    pub secret: String,
    /// Tries before an event goes to the dead letters (`GET /admin/v1/webhooks/dead`).
    pub max_attempts: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            url: String::new(),
            secret: String::new(),
            max_attempts: 12,
        }
    }
}

impl WebhooksConfig {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

/// Web Push to the browsers and phones of users who are offline (RFC 8030/8291/8292).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// The VAPID contact (`mailto:` or `https:`), sent to push services. Empty: push is off.
    pub subject: String,
    /// The VAPID private key: PEM, or the raw 32-byte scalar in base64url. Empty: one is
    /// generated on first start and kept in the store (with a startup warning).
    pub vapid_private_key: String,
    /// How long a message may stay unread, its recipient offline, before the push goes out; a
    /// burst within it is one push.
    pub delay_secs: u64,
    /// Whether the push carries the start of the message (encrypted end to end to the browser).
    pub preview: bool,
    /// How long a push service keeps a push for a device that is off (`TTL`).
    pub ttl_secs: u64,
    /// Tries before a push is given up (429 and 5xx are retried, honouring `Retry-After`).
    pub max_attempts: u32,
    /// Accept `http:` endpoints (tests on loopback only).
    pub allow_insecure_endpoints: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            subject: String::new(),
            vapid_private_key: String::new(),
            delay_secs: 2,
            preview: true,
            ttl_secs: 24 * 3600,
            max_attempts: 8,
            allow_insecure_endpoints: false,
        }
    }
}

impl PushConfig {
    pub fn enabled(&self) -> bool {
        !self.subject.is_empty()
    }
}

/// Shortest webhook secret accepted: the same bar as an HS256 token secret, for the same reason
/// (a receiver that trusts a guessable key trusts anyone).
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 32;

pub fn validate(
    email: &EmailConfig,
    webhooks: &WebhooksConfig,
    push: &PushConfig,
) -> Result<(), ConfigError> {
    if push.enabled() {
        if !(push.subject.starts_with("mailto:") || push.subject.starts_with("https://")) {
            return Err(ConfigError(
                "push.subject must be a mailto: or https: contact".into(),
            ));
        }
        if push.max_attempts == 0 {
            return Err(ConfigError("push.max_attempts must be at least 1".into()));
        }
    }
    if email.enabled() {
        if !email.sender_email.contains('@') {
            return Err(ConfigError(
                "email.sender_email must be an address when email.brevo_api_key is set".into(),
            ));
        }
        url_of("email.brevo_base_url", &email.brevo_base_url)?;
        if email.max_attempts == 0 {
            return Err(ConfigError("email.max_attempts must be at least 1".into()));
        }
    }
    if webhooks.enabled() {
        url_of("webhooks.url", &webhooks.url)?;
        if webhooks.secret.len() < MIN_WEBHOOK_SECRET_BYTES {
            return Err(ConfigError(format!(
                "webhooks.secret must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes when webhooks.url is set"
            )));
        }
        if webhooks.max_attempts == 0 {
            return Err(ConfigError(
                "webhooks.max_attempts must be at least 1".into(),
            ));
        }
    }
    Ok(())
}

fn url_of(key: &str, raw: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(ConfigError(format!(
            "{key} must be an http(s) URL, not {raw:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_are_off_by_default_and_checked_when_on() {
        let (mut e, mut w) = (EmailConfig::default(), WebhooksConfig::default());
        assert!(!e.enabled() && !w.enabled());
        let p = PushConfig::default();
        assert!(validate(&e, &w, &p).is_ok());
        e.brevo_api_key = "xkeysib-1".into();
        assert!(validate(&e, &w, &p).is_err(), "no sender");
        e.sender_email = "chat@marketplace.example".into();
        assert!(validate(&e, &w, &p).is_ok());
        w.url = "ftp://x".into();
        assert!(validate(&e, &w, &p).is_err());
        w.url = "http://127.0.0.1:9/hook".into();
        assert!(validate(&e, &w, &p).is_err(), "no secret");
        w.secret = "s".repeat(MIN_WEBHOOK_SECRET_BYTES);
        assert!(validate(&e, &w, &p).is_ok());
        let mut p = PushConfig {
            subject: "ops@market.example".into(),
            ..PushConfig::default()
        };
        assert!(validate(&e, &w, &p).is_err(), "not a mailto: contact");
        p.subject = "mailto:ops@market.example".into();
        assert!(p.enabled() && validate(&e, &w, &p).is_ok());
    }
}
