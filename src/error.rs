//! The one error type that reaches the edge, and its mapping to the contract's body:
//! `{"error": {"code": "snake_case_code", "message": "..."}}`.
//!
//! Inner layers have their own typed errors (`StoreError`, `AuthError`, `TextError`); each is
//! turned into an [`ApiError`] here, once, so every route and every socket answers alike.

use serde::Serialize;

use crate::attachments::AttachmentError;
use crate::auth::AuthError;
use crate::domain::message::TextError;
use crate::storage::StoreError;

/// The HTTP status classes the contract uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    RateLimited,
    /// A fault of the server's own (a file it cannot decrypt): 500, logged where it happens.
    Internal,
    Unavailable,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Unprocessable => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }

    /// What a non-participant gets for any conversation: the same answer as for one that does not
    /// exist, so nobody learns which ids are real.
    pub fn conversation_not_found() -> Self {
        Self::not_found("conversation_not_found", "conversation not found")
    }

    pub fn message_not_found() -> Self {
        Self::not_found("message_not_found", "message not found")
    }

    pub fn invalid_client_msg_id() -> Self {
        Self::unprocessable(
            "invalid_request",
            format!(
                "client_msg_id must be 1 to {} bytes",
                crate::domain::message::MAX_CLIENT_MSG_ID
            ),
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self::rate_limited_because(retry_after, "too many messages")
    }

    /// 429 `rate_limited` with `Retry-After`; `what` says which budget ran out.
    pub fn rate_limited_because(retry_after: u64, what: &str) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                ErrorKind::RateLimited,
                "rate_limited",
                format!("{what}; try again in {retry_after} s"),
            )
        }
    }

    /// Something that cannot happen did (a store refusing its own cursor): 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "store_unavailable", message)
    }

    /// A bounded queue is full: 503 `overloaded`, with `Retry-After`.
    pub fn overloaded(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(ErrorKind::Unavailable, "overloaded", message)
        }
    }

    /// The contract's error body.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorFields {
                code: self.code,
                message: &self.message,
            },
        }
    }

    /// Answers a JSON body that could not be used: broken syntax is 400, valid JSON of the wrong
    /// shape (missing fields, wrong types) is 422.
    pub fn from_json(e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Self::unprocessable("invalid_request", e.to_string()),
            _ => Self::bad_request("malformed_json", format!("malformed JSON: {e}")),
        }
    }
}

/// The one error body of every HTTP route: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorFields<'a> {
    /// What went wrong, for a program: a `snake_case` word.
    #[schema(pattern = "^[a-z0-9_]+$", example = "conversation_not_found")]
    code: &'static str,
    /// What went wrong, for a person.
    message: &'a str,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded => {
                tracing::warn!("store write queue full; shedding a request");
                ApiError::overloaded("the server is busy; try again shortly")
            }
            e => {
                tracing::error!(error = %e, "store error");
                ApiError::unavailable("the message store is unavailable; try again")
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Missing => "missing_token",
            AuthError::Expired => "token_expired",
            AuthError::Invalid(_) | AuthError::BadClaim(_) => "invalid_token",
        };
        ApiError::new(ErrorKind::Unauthorized, code, e.to_string())
    }
}

impl From<TextError> for ApiError {
    fn from(e: TextError) -> Self {
        let code = match e {
            TextError::Empty => "text_required",
            TextError::TooLong(_) => "text_too_long",
            TextError::ControlCharacter => "text_invalid",
        };
        ApiError::unprocessable(code, e.to_string())
    }
}

impl From<AttachmentError> for ApiError {
    fn from(e: AttachmentError) -> Self {
        let message = e.to_string();
        match e {
            AttachmentError::TooLarge(_) => {
                ApiError::new(ErrorKind::PayloadTooLarge, "attachment_too_large", message)
            }
            AttachmentError::Unsupported | AttachmentError::Malformed(_) => ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                message,
            ),
            AttachmentError::NotMultipart => ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                message,
            ),
            AttachmentError::BadForm(_) => ApiError::unprocessable("invalid_request", message),
            AttachmentError::NotYours(_) => ApiError::unprocessable("invalid_attachment", message),
            AttachmentError::TooMany(_) => ApiError::unprocessable("too_many_attachments", message),
            AttachmentError::NotFound => ApiError::not_found("attachment_not_found", message),
            AttachmentError::Busy => ApiError::overloaded(message),
            AttachmentError::Objects(detail) => {
                tracing::error!(error = %detail, "attachment storage failed");
                ApiError::unavailable("attachment storage is unavailable; try again")
            }
            AttachmentError::Infected(_) | AttachmentError::Unscannable(_) => {
                ApiError::unprocessable("attachment_rejected", message)
            }
            AttachmentError::ScannerDown => ApiError {
                retry_after: Some(5),
                ..ApiError::new(ErrorKind::Unavailable, "scanner_unavailable", message)
            },
            AttachmentError::Unreadable { id, source } => {
                tracing::error!(attachment_id = %id, error = %source, "attachment cannot be decrypted");
                ApiError::new(
                    ErrorKind::Internal,
                    "attachment_unreadable",
                    "this attachment cannot be read on this server; its operators are told",
                )
            }
            AttachmentError::Store(e) => e.into(),
        }
    }
}

impl warp::reject::Reject for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_contract_shape() {
        let e = ApiError::conversation_not_found();
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "conversation_not_found", "message": "conversation not found"}})
        );
        assert_eq!(e.kind.status(), 404);
    }

    #[test]
    fn json_syntax_is_400_and_shape_is_422() {
        let syntax = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(ApiError::from_json(&syntax).kind.status(), 400);
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let shape = serde_json::from_str::<T>(r#"{"a":"x"}"#).unwrap_err();
        assert_eq!(ApiError::from_json(&shape).kind.status(), 422);
    }
}
