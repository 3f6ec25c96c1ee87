//! Who is speaking: marketplace users, their roles, and the services they offer.
//!
//! Users and services belong to the marketplace backend; Switchboard keeps only what it needs to
//! route and label messages. Their ids are opaque strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest external id the contract allows.
pub const MAX_EXTERNAL_ID_LEN: usize = 64;

/// An id owned by the marketplace (`user_id`, `service_id`, `provider_id`): an opaque string of at
/// most 64 characters. A JSON number is accepted on input and answered as a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ExternalId(String);

impl ExternalId {
    /// Validates an id taken from a path, a token claim or a body.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("an id cannot be empty".into());
        }
        if s.chars().count() > MAX_EXTERNAL_ID_LEN {
            return Err(format!(
                "an id has at most {MAX_EXTERNAL_ID_LEN} characters"
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("an id cannot contain control characters".into());
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ExternalId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            U(u64),
            I(i64),
        }
        let s = match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("an id must be a string or an integer"))?
        {
            Raw::S(s) => s,
            Raw::U(n) => n.to_string(),
            Raw::I(n) => n.to_string(),
        };
        ExternalId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Provider,
    Admin,
}

/// An authenticated caller, from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: ExternalId,
    pub role: Role,
    pub name: String,
    pub email: Option<String>,
}

/// A service in the directory: which provider answers for it. Kept in sync by the marketplace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Service {
    pub id: ExternalId,
    pub provider_id: ExternalId,
    pub title: String,
    #[serde(default)]
    pub provider_name: Option<String>,
    /// A WhatsApp number (digits, optionally with `+`), for the contact card's link.
    #[serde(default)]
    pub whatsapp: Option<String>,
    /// Starter texts for this service's contact card; `None`: `chat.quick_messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick_messages: Option<Vec<String>>,
}

/// Profile fields set by the marketplace through the admin API. Users need no registration:
/// a profile only overrides what tokens say.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UserProfile {
    pub id: ExternalId,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub role: Role,
    /// `false`: no unread-message e-mails to this user.
    #[serde(default = "yes")]
    pub notify_email: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_accept_numbers_and_reject_long_or_empty() {
        let a: ExternalId = serde_json::from_str("123").unwrap();
        assert_eq!(a.as_str(), "123");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"123\"");
        assert!(serde_json::from_str::<ExternalId>("\"\"").is_err());
        let long = format!("\"{}\"", "x".repeat(65));
        assert!(serde_json::from_str::<ExternalId>(&long).is_err());
        assert!(serde_json::from_str::<ExternalId>("true").is_err());
    }
}
