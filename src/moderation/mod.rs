//! Moderation: what happens to a chat message before it is stored. Configured rules (contact
//! details that would take a deal off the platform, the operator's blocked words), each with an
//! action (allow, flag, mask, reject), then optionally an external classifier over HTTP.
//!
//! This module decides; it never stores, sends or answers anything. The send paths (HTTP,
//! WebSocket, conversation creation) call [`Moderator::review`], store [`Review::text`], mark a
//! [`Verdict::Flag`] for review and answer a [`Verdict::Reject`] with 422 `message_rejected`.

mod classifier;
mod config;
mod contact;
pub mod queue;
mod rules;

use serde::Serialize;

use classifier::{Classifier, Outcome};
pub use config::{Action, ClassifierConfig, ModerationConfig, OnFlagged};
pub use contact::{
    CHAT_APPS, COMMON_TLDS, CONTACT_VERBS, MESSENGER_LINK_HOSTS, MIN_PHONE_DIGITS, SOCIAL_APPS,
};
use rules::Rules;

/// What a masked span is replaced with. Fixed and short, so a reader sees something was removed
/// and the rest of the sentence still reads.
pub const MASK: &str = "***";

/// The compiled rules and the classifier's HTTP client. Built once at startup; share it behind
/// an `Arc` (it holds no per-message state).
pub struct Moderator {
    rules: Rules,
    classifier: Option<Classifier>,
}

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// What to store and deliver: the input, with masked spans replaced by [`MASK`].
    pub text: String,
    pub verdict: Verdict,
    /// Why, one entry per rule or classifier category that decided; empty when allowed.
    pub reasons: Vec<Reason>,
}

/// Ordered from weakest to strongest: the strongest that any rule or the classifier reaches wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    /// Store and deliver, mark for review.
    Flag,
    /// Do not store: 422 `message_rejected`.
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub source: ReasonSource,
    /// `phone_number`, `email_address`, `url`, `messenger_handle`, `blocked_word`; a classifier
    /// category (`harassment`, ...), `classifier_flagged` (flagged without a category),
    /// `classifier_timeout`, `classifier_unavailable`, `classifier_bad_answer`.
    pub rule: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonSource {
    Rule,
    Classifier,
}

/// The rules for `config`, compiled, or the last ones compiled if they were for the same
/// configuration. Compiling takes about 0.2 s in a debug build (a few ms in release); an engine
/// started again in the same process (the crash simulation restarts thousands) reuses them.
/// Regexes are cheap to clone (shared programs).
fn compiled(config: &ModerationConfig) -> Result<Rules, String> {
    static LAST: std::sync::Mutex<Option<(String, Rules)>> = std::sync::Mutex::new(None);
    let key = serde_json::to_string(config).map_err(|e| format!("moderation: {e}"))?;
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((k, rules)) = last.as_ref() {
        if *k == key {
            return Ok(rules.clone());
        }
    }
    let rules = Rules::new(config)?;
    *last = Some((key, rules.clone()));
    Ok(rules)
}

impl Moderator {
    /// Compiles the rules and builds the classifier's client. A bad configuration is one line
    /// naming the key.
    pub fn new(config: &ModerationConfig) -> Result<Moderator, String> {
        config.validate()?;
        Ok(Moderator {
            rules: compiled(config)?,
            classifier: Classifier::new(&config.classifier)?,
        })
    }

    /// The rules, then (when configured and the rules did not reject) the classifier, which is
    /// sent the text as it would be stored: masked details never leave the process. Never
    /// fails: a classifier that is slow, down or answers garbage adds a flag saying so.
    pub async fn review(&self, text: &str) -> Review {
        let mut review = self.review_rules(text);
        let Some(classifier) = &self.classifier else {
            return review;
        };
        if review.verdict == Verdict::Reject {
            return review;
        }
        let (verdict, rules): (Verdict, Vec<String>) = match classifier.classify(&review.text).await
        {
            Outcome::Clean => return review,
            Outcome::Flagged(categories) => {
                let verdict = match classifier.on_flagged {
                    OnFlagged::Flag => Verdict::Flag,
                    OnFlagged::Reject => Verdict::Reject,
                };
                if categories.is_empty() {
                    (verdict, vec!["classifier_flagged".into()])
                } else {
                    (verdict, categories)
                }
            }
            Outcome::Timeout => (Verdict::Flag, vec!["classifier_timeout".into()]),
            Outcome::Unavailable => (Verdict::Flag, vec!["classifier_unavailable".into()]),
            Outcome::BadAnswer => (Verdict::Flag, vec!["classifier_bad_answer".into()]),
        };
        review.verdict = review.verdict.max(verdict);
        review.reasons.extend(rules.into_iter().map(|rule| Reason {
            source: ReasonSource::Classifier,
            rule,
        }));
        review
    }

    /// The rules only: synchronous, pure, never panics whatever the input.
    pub fn review_rules(&self, text: &str) -> Review {
        self.rules.review(text)
    }

    /// Whether [`Moderator::review`] may make an HTTP call (and so take up to the timeout).
    pub fn has_classifier(&self) -> bool {
        self.classifier.is_some()
    }
}

#[cfg(test)]
mod tests;
