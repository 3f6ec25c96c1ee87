//! The optional external classifier: one HTTP call per message in the common moderation-API
//! shape, `POST url {"input": text[, "model"]}` → `{"results":[{"flagged", "categories"}]}`
//! (OpenAI's `/v1/moderations`, and self-hosted models behind the same contract).
//!
//! It never loses a message: whatever goes wrong (too slow, unreachable, an answer that is not
//! the contract) is an [`Outcome`] the caller turns into a flag for review, and a warning in the
//! log that never carries the text.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::config::{ClassifierConfig, OnFlagged};

/// Largest answer read; the contract's answer is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Categories kept from one answer, and the longest name kept: names end up in reasons that
/// are stored and shown, and come from a server we do not control.
const MAX_CATEGORIES: usize = 32;
const MAX_CATEGORY_CHARS: usize = 64;

/// What the classifier made of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Clean,
    /// Flagged, with the categories it marked `true` (sorted; possibly none).
    Flagged(Vec<String>),
    /// No full answer within the timeout.
    Timeout,
    /// No connection, or an answer that was not 2xx.
    Unavailable,
    /// A 2xx answer that is not the contract.
    BadAnswer,
}

pub(super) struct Classifier {
    /// Built once: it holds the connection pool and the TLS configuration.
    client: reqwest::Client,
    url: reqwest::Url,
    api_key: Option<String>,
    model: Option<String>,
    timeout: Duration,
    pub(super) on_flagged: OnFlagged,
}

#[derive(Deserialize)]
struct Answer {
    results: Vec<AnswerResult>,
}

#[derive(Deserialize)]
struct AnswerResult {
    flagged: bool,
    /// Values other than booleans (some servers put scores here) are ignored.
    #[serde(default)]
    categories: BTreeMap<String, serde_json::Value>,
}

impl Classifier {
    /// `None` when no URL is configured.
    pub(super) fn new(config: &ClassifierConfig) -> Result<Option<Classifier>, String> {
        if !config.enabled() {
            return Ok(None);
        }
        config.validate()?;
        let url = reqwest::Url::parse(config.url.trim())
            .map_err(|e| format!("moderation.classifier.url: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout())
            // A redirect would turn the POST into a GET elsewhere; a moderation endpoint has
            // no reason to send one, so it counts as unavailable.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("moderation.classifier: cannot build the HTTP client: {e}"))?;
        let set = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(Some(Classifier {
            client,
            url,
            api_key: set(&config.api_key),
            model: set(&config.model),
            timeout: config.timeout(),
            on_flagged: config.on_flagged,
        }))
    }

    /// Asks about `text`; returns within the timeout (plus scheduling), whatever the server does.
    pub(super) async fn classify(&self, text: &str) -> Outcome {
        let outcome = match tokio::time::timeout(self.timeout, self.ask(text)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Timeout,
        };
        if outcome == Outcome::Timeout {
            tracing::warn!(
                timeout_ms = self.timeout.as_millis() as u64,
                "moderation classifier did not answer in time; message flagged for review"
            );
        }
        outcome
    }

    async fn ask(&self, text: &str) -> Outcome {
        let mut body = serde_json::json!({ "input": text });
        if let Some(model) = &self.model {
            body["model"] = model.as_str().into();
        }
        let mut request = self.client.post(self.url.clone()).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        let status = response.status();
        if !status.is_success() {
            tracing::warn!(
                status = status.as_u16(),
                "moderation classifier answered an error; message flagged for review"
            );
            return Outcome::Unavailable;
        }
        let bytes = match read_capped(response).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                tracing::warn!(
                    limit = MAX_ANSWER_BYTES,
                    "moderation classifier answer too large; message flagged for review"
                );
                return Outcome::BadAnswer;
            }
            Err(e) => return failed(e),
        };
        match serde_json::from_slice::<Answer>(&bytes) {
            Ok(answer) if !answer.results.is_empty() => judge(answer),
            Ok(_) => {
                tracing::warn!(
                    "moderation classifier answered no results; message flagged for review"
                );
                Outcome::BadAnswer
            }
            Err(e) => {
                tracing::warn!(error = %e, "moderation classifier answer is not the moderation-API shape; message flagged for review");
                Outcome::BadAnswer
            }
        }
    }
}

/// A transport error: timeout or unavailable. Logged without the URL, which may carry a key.
fn failed(e: reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Timeout;
    }
    tracing::warn!(error = %e.without_url(), "moderation classifier unreachable; message flagged for review");
    Outcome::Unavailable
}

/// The body, or `None` past [`MAX_ANSWER_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Flagged if any result is; the categories marked `true` in any result.
fn judge(answer: Answer) -> Outcome {
    if !answer.results.iter().any(|r| r.flagged) {
        return Outcome::Clean;
    }
    let mut categories: Vec<String> = answer
        .results
        .iter()
        .flat_map(|r| r.categories.iter())
        .filter(|(_, v)| v.as_bool() == Some(true))
        .map(|(name, _)| name.chars().take(MAX_CATEGORY_CHARS).collect())
        .collect();
    categories.sort();
    categories.dedup();
    categories.truncate(MAX_CATEGORIES);
    Outcome::Flagged(categories)
}

#[cfg(test)]
mod tests;
