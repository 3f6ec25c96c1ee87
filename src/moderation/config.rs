//! The `[moderation]` section: what each rule does with a match, the operator's word and domain
//! lists, and the optional external classifier. Checked once at startup; `Moderator::new`
//! compiles it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a rule does with a message it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The rule is off.
    Allow,
    /// Stored and delivered as typed, marked for review.
    Flag,
    /// Stored and delivered with each matched span replaced by [`super::MASK`]; counts as a flag.
    Mask,
    /// Not stored: the sender gets 422 `message_rejected`.
    Reject,
}

/// What a message the classifier calls flagged gets. Masking is not offered: the classifier
/// judges the whole text and names no span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFlagged {
    Flag,
    Reject,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModerationConfig {
    /// Phone numbers: runs of at least 8 digits with spaces, dashes, dots, slashes or parentheses
    /// between them, optionally after `+`; dates, year and time ranges and prices are not.
    pub phone_numbers: Action,
    /// E-mail addresses, also lightly disguised (`john at gmail dot com`, `john(at)gmail.com`).
    pub email_addresses: Action,
    /// Links: `http(s)://...`, `www....`, and bare domains with a common top-level domain.
    pub urls: Action,
    /// `@handles`, messenger links (`wa.me/...`, `t.me/...`) and invitations to move to a
    /// messenger (`whatsapp me`, `add me on skype`, `my insta is ...`).
    pub messenger_handles: Action,
    /// Words and phrases matched whole, case-insensitively, as plain text (never as a regex).
    /// In the environment a comma-separated string.
    #[serde(deserialize_with = "crate::config::fields::list_or_comma_separated")]
    pub blocked_words: Vec<String>,
    pub blocked_words_action: Action,
    /// Domains whose links and e-mail addresses (their subdomains too) pass the `urls` and
    /// `email_addresses` rules: the marketplace's own. In the environment a comma-separated string.
    #[serde(deserialize_with = "crate::config::fields::list_or_comma_separated")]
    pub allowed_domains: Vec<String>,
    pub classifier: ClassifierConfig,
}

/// An external moderation model behind the common moderation-API shape:
/// `POST url {"input": text}` → `{"results":[{"flagged": bool, "categories": {...}}]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// `http(s)://...` of the endpoint. Empty: no classifier.
    pub url: String,
    /// Sent as `Authorization: Bearer <api_key>` when set.
    pub api_key: String,
    /// Sent as `"model"` when set (OpenAI's moderation API wants one).
    pub model: String,
    /// The whole request, connect to last byte. Past it the message goes through, flagged.
    pub timeout_ms: u64,
    pub on_flagged: OnFlagged,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            phone_numbers: Action::Flag,
            email_addresses: Action::Flag,
            urls: Action::Flag,
            messenger_handles: Action::Flag,
            blocked_words: Vec::new(),
            blocked_words_action: Action::Reject,
            allowed_domains: Vec::new(),
            classifier: ClassifierConfig::default(),
        }
    }
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            url: String::new(),
            api_key: String::new(),
            model: String::new(),
            timeout_ms: 1500,
            on_flagged: OnFlagged::Flag,
        }
    }
}

/// Longest classifier timeout accepted: every message waits for the answer, so a long one stalls
/// every send while the classifier is down.
pub const MAX_CLASSIFIER_TIMEOUT_MS: u64 = 30_000;

impl ModerationConfig {
    /// Everything an operator can get wrong, as one line naming the key; cheap enough for
    /// `Config::validate` (the fixed contact-detail patterns are only compiled by
    /// `Moderator::new`).
    pub fn validate(&self) -> Result<(), String> {
        for word in &self.blocked_words {
            if word.trim().is_empty() {
                return Err("moderation.blocked_words must not hold an empty word".into());
            }
        }
        // The one pattern whose size the operator decides; the fixed ones are tested.
        if !self.blocked_words.is_empty() {
            super::rules::blocked_words_regex(&self.blocked_words)?;
        }
        for domain in &self.allowed_domains {
            check_domain(domain).map_err(|why| {
                format!(
                    "moderation.allowed_domains (SWITCHBOARD_MODERATION__ALLOWED_DOMAINS): \
                     `{domain}` {why}"
                )
            })?;
        }
        self.classifier.validate()
    }
}

impl ClassifierConfig {
    /// Whether a classifier is configured at all.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let url = reqwest::Url::parse(self.url.trim()).map_err(|e| {
            format!(
                "moderation.classifier.url `{}` is not a URL ({e}); leave it empty to turn the \
                 classifier off",
                self.url
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "moderation.classifier.url `{}` must be http://host/... or https://host/...",
                self.url
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_CLASSIFIER_TIMEOUT_MS {
            return Err(format!(
                "moderation.classifier.timeout_ms must be between 1 and \
                 {MAX_CLASSIFIER_TIMEOUT_MS} (every message waits for the classifier)"
            ));
        }
        if !self.api_key.is_empty()
            && http::HeaderValue::from_str(&format!("Bearer {}", self.api_key)).is_err()
        {
            return Err(
                "moderation.classifier.api_key holds characters a header cannot carry".into(),
            );
        }
        Ok(())
    }
}

/// An allowed domain is a bare host name (`example.com`), as the rules compare it with the host
/// of a link: no scheme, path, port or wildcard, which would silently match nothing.
fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.contains("://") || domain.contains(['/', ':', '*', '@']) {
        return Err("must be a bare domain like example.com (no scheme, path, port or *)");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err("must be a domain like example.com");
    }
    if domain.chars().any(char::is_uppercase) {
        return Err("must be lowercase");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Serialized, Toml};
    use figment::Figment;

    const EXAMPLE: &str = r#"
phone_numbers = "mask"
email_addresses = "flag"
urls = "allow"
messenger_handles = "reject"
blocked_words = ["scam", "pay cash"]
blocked_words_action = "reject"
allowed_domains = ["marketplace.example"]
[classifier]
url = "https://moderation.example/v1/moderations"
api_key = "sk-test"
model = "omni-moderation-latest"
timeout_ms = 800
on_flagged = "reject"
"#;

    #[test]
    fn defaults_flag_contact_details_and_have_no_classifier() {
        let c = ModerationConfig::default();
        assert_eq!(c.phone_numbers, Action::Flag);
        assert_eq!(c.email_addresses, Action::Flag);
        assert_eq!(c.urls, Action::Flag);
        assert_eq!(c.messenger_handles, Action::Flag);
        assert_eq!(c.blocked_words_action, Action::Reject);
        assert!(c.blocked_words.is_empty() && c.allowed_domains.is_empty());
        assert!(!c.classifier.enabled());
        assert_eq!(c.classifier.timeout_ms, 1500);
        c.validate().unwrap();
    }

    #[test]
    fn the_documented_block_parses() {
        let c: ModerationConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(c.phone_numbers, Action::Mask);
        assert_eq!(c.urls, Action::Allow);
        assert_eq!(c.messenger_handles, Action::Reject);
        assert_eq!(c.blocked_words, ["scam", "pay cash"]);
        assert_eq!(c.allowed_domains, ["marketplace.example"]);
        assert_eq!(c.classifier.model, "omni-moderation-latest");
        assert_eq!(c.classifier.timeout(), Duration::from_millis(800));
        assert_eq!(c.classifier.on_flagged, OnFlagged::Reject);
        c.validate().unwrap();
    }

    #[test]
    fn missing_keys_take_their_defaults_and_unknown_keys_are_refused() {
        let c: ModerationConfig = toml::from_str("urls = \"mask\"").unwrap();
        assert_eq!(c.urls, Action::Mask);
        assert_eq!(c.phone_numbers, Action::Flag);
        assert_eq!(c.classifier.timeout_ms, 1500);
        let err = toml::from_str::<ModerationConfig>("url = \"flag\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = toml::from_str::<ModerationConfig>("urls = \"block\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn lists_come_as_a_list_or_a_comma_separated_string() {
        let with = |key: &str, v: figment::value::Value| -> ModerationConfig {
            Figment::from(Serialized::defaults(ModerationConfig::default()))
                .merge(Serialized::default(key, v))
                .extract()
                .unwrap()
        };
        let c = with("blocked_words", "scam, pay cash".into());
        assert_eq!(c.blocked_words, ["scam", "pay cash"]);
        let c = with("allowed_domains", vec!["a.example", "b.example"].into());
        assert_eq!(c.allowed_domains, ["a.example", "b.example"]);
        assert!(with("blocked_words", "".into()).blocked_words.is_empty());
        // And through TOML on top of the defaults, as Config::load merges a file.
        let c: ModerationConfig = Figment::from(Serialized::defaults(ModerationConfig::default()))
            .merge(Toml::string(EXAMPLE))
            .extract()
            .unwrap();
        assert_eq!(c.blocked_words, ["scam", "pay cash"]);
    }

    #[test]
    fn bad_values_are_one_line_naming_the_key() {
        let check = |c: &ModerationConfig, key: &str| {
            let err = c.validate().expect_err(key);
            assert!(err.contains(key) && !err.contains('\n'), "{key}: {err}");
        };
        let c = ModerationConfig {
            blocked_words: vec!["ok".into(), " ".into()],
            ..Default::default()
        };
        check(&c, "moderation.blocked_words");

        let mut c = ModerationConfig::default();
        for bad in [
            "https://marketplace.example",
            "marketplace.example/",
            "*.marketplace.example",
            "localhost",
            "Marketplace.example",
            "a..example",
            "a.-b.example",
        ] {
            c.allowed_domains = vec![bad.into()];
            check(&c, "moderation.allowed_domains");
        }
        c.allowed_domains = vec!["marketplace.example".into(), "über.example".into()];
        c.validate().unwrap();

        let mut c = ModerationConfig::default();
        for bad in [
            "not a url",
            "ftp://x.example/",
            "unix:/run/x.sock",
            "http://",
        ] {
            c.classifier.url = bad.into();
            check(&c, "moderation.classifier.url");
        }
        c.classifier.url = "http://127.0.0.1:8000/moderate".into();
        c.validate().unwrap();
        for bad in [0, MAX_CLASSIFIER_TIMEOUT_MS + 1] {
            c.classifier.timeout_ms = bad;
            check(&c, "moderation.classifier.timeout_ms");
        }
        c.classifier.timeout_ms = 1500;
        c.classifier.api_key = "sk\nInjected: 1".into();
        check(&c, "moderation.classifier.api_key");
    }

    #[test]
    fn the_whole_configuration_reports_moderation_errors() {
        let mut c = crate::config::Config::default();
        c.auth.jwt_secret = "test-secret-0123456789abcdef-0123".into();
        c.validate().unwrap();
        c.moderation.classifier.url = "nope".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid configuration: moderation.classifier.url"),
            "{err}"
        );
        // And the section is optional in a file.
        let c: crate::config::Config =
            Figment::from(Serialized::defaults(crate::config::Config::default()))
                .merge(Toml::string("[moderation]\nurls = \"reject\"\n"))
                .extract()
                .unwrap();
        assert_eq!(c.moderation.urls, Action::Reject);
        assert_eq!(c.moderation.phone_numbers, Action::Flag);
    }

    #[test]
    fn an_empty_url_turns_the_classifier_off_whatever_else_is_set() {
        let mut c = ModerationConfig::default();
        c.classifier.timeout_ms = 0;
        c.classifier.api_key = "sk".into();
        c.validate().unwrap();
        assert!(!c.classifier.enabled());
    }
}
