//! The two wire formats of the WebSocket: JSON in text frames, MessagePack (with field names, so
//! both formats read the same) in binary frames. One place encodes and decodes both.

use bytes::Bytes;
use serde::Serialize;

use crate::domain::events::{ClientFrame, FrameHeader, CLIENT_FRAME_TYPES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    Json,
    MessagePack,
}

/// Encodes a server event. Our event types always serialize; should one ever not, the client
/// gets an `error` frame instead of a broken one.
pub fn encode<T: Serialize>(format: WireFormat, value: &T) -> Bytes {
    let encoded = match format {
        WireFormat::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        WireFormat::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
    };
    match encoded {
        Ok(v) => Bytes::from(v),
        Err(e) => {
            tracing::error!(error = %e, "event failed to encode");
            let fallback = serde_json::json!({"type": "error", "code": "internal", "message": "event could not be encoded"});
            match format {
                WireFormat::Json => Bytes::from(fallback.to_string()),
                WireFormat::MessagePack => {
                    Bytes::from(rmp_serde::to_vec_named(&fallback).unwrap_or_default())
                }
            }
        }
    }
}

/// Why a client frame was refused; the socket answers with an `error` frame and stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    pub reference: Option<String>,
}

/// Decodes a client frame, or explains what is wrong with it (echoing its `ref` when readable).
pub fn decode(format: WireFormat, bytes: &[u8]) -> Result<ClientFrame, FrameError> {
    let parsed = match format {
        WireFormat::Json => serde_json::from_slice::<ClientFrame>(bytes).map_err(|e| e.to_string()),
        WireFormat::MessagePack => {
            rmp_serde::from_slice::<ClientFrame>(bytes).map_err(|e| e.to_string())
        }
    };
    let detail = match parsed {
        Ok(frame) => return Ok(frame),
        Err(detail) => detail,
    };
    let header = match format {
        WireFormat::Json => serde_json::from_slice::<FrameHeader>(bytes).ok(),
        WireFormat::MessagePack => rmp_serde::from_slice::<FrameHeader>(bytes).ok(),
    };
    let Some(header) = header else {
        let what = match format {
            WireFormat::Json => "JSON object",
            WireFormat::MessagePack => "MessagePack map",
        };
        return Err(FrameError {
            code: "malformed_frame",
            message: format!("the frame is not a valid {what}"),
            reference: None,
        });
    };
    let (code, message) = match header.kind.as_deref() {
        None => ("invalid_frame", "the frame has no `type`".to_string()),
        Some(t) if !CLIENT_FRAME_TYPES.contains(&t) => (
            "unknown_type",
            format!(
                "unknown frame type `{t}`; expected one of {}",
                CLIENT_FRAME_TYPES.join(", ")
            ),
        ),
        Some(t) => ("invalid_frame", format!("invalid `{t}` frame: {detail}")),
    };
    Err(FrameError {
        code,
        message,
        reference: header.reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_unknown_and_invalid_frames_are_told_apart() {
        let e = decode(WireFormat::Json, b"{not json").unwrap_err();
        assert_eq!(e.code, "malformed_frame");
        let e = decode(WireFormat::Json, br#"{"type":"dance","ref":"r"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.reference.as_deref()),
            ("unknown_type", Some("r"))
        );
        let e = decode(
            WireFormat::Json,
            br#"{"type":"typing_status","conversation_id":"1","is_typing":"yes","ref":"q"}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.reference.as_deref()),
            ("invalid_frame", Some("q"))
        );
        let e = decode(WireFormat::MessagePack, &[0xc1, 0x00]).unwrap_err();
        assert_eq!(e.code, "malformed_frame");
    }

    #[test]
    fn messagepack_frames_decode_like_json() {
        let v = serde_json::json!({"type": "ping", "ref": "a"});
        let bytes = rmp_serde::to_vec_named(&v).unwrap();
        assert!(
            matches!(decode(WireFormat::MessagePack, &bytes), Ok(ClientFrame::Ping { reference: Some(r) }) if r == "a")
        );
    }
}
