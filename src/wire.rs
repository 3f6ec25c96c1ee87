//! The two wire formats of the WebSocket: JSON in text frames, MessagePack (with field names, so
//! both formats read the same) in binary frames. One place encodes and decodes both.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::events::{ClientFrame, FrameHeader, CLIENT_FRAME_TYPES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    Json,
    MessagePack,
}

/// The starting size of an encoded event's buffer.
const EVENT_CAPACITY: usize = 512;

/// Encodes a server event. Our event types always serialize; should one ever not, the client
/// gets an `error` frame instead of a broken one.
pub fn encode<T: Serialize>(format: WireFormat, value: &T) -> Bytes {
    // Sized for a chat_message event up front: grown from empty, the buffer was reallocated
    // six or seven times per event.
    let mut buf = Vec::with_capacity(EVENT_CAPACITY);
    let encoded = match format {
        WireFormat::Json => serde_json::to_writer(&mut buf, value).map_err(|e| e.to_string()),
        WireFormat::MessagePack => {
            rmp_serde::encode::write_named(&mut buf, value).map_err(|e| e.to_string())
        }
    }
    .map(|()| buf);
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

/// How deeply a MessagePack frame may nest: serde_json's fixed limit, so both formats refuse the
/// same documents. rmp-serde's own default (1024) overflows a 2 MiB tokio worker stack in debug
/// builds (about 3 KiB per level), and a 1 KiB frame nests that deep; no client frame needs more
/// than three levels.
pub const MAX_MSGPACK_DEPTH: usize = 128;

/// A MessagePack frame as the JSON document it spells, or `None` if it is not one: only string
/// keys, no binary or extension values, nothing after the value, at most `MAX_MSGPACK_DEPTH` deep.
///
/// Frames are read from this document rather than from the bytes because rmp-serde alone also
/// accepts integers for names (variant and field indices: `[1, 0]` decoded as a `chat_message`),
/// which no JSON frame can say. Read this way, a MessagePack frame means what the same JSON does.
fn msgpack_document(bytes: &[u8]) -> Option<Value> {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    de.set_max_depth(MAX_MSGPACK_DEPTH);
    let doc = Value::deserialize(&mut de).ok()?;
    (de.position() == bytes.len() as u64).then_some(doc)
}

/// Decodes a client frame, or explains what is wrong with it (echoing its `ref` when readable).
pub fn decode(format: WireFormat, bytes: &[u8]) -> Result<ClientFrame, FrameError> {
    let (detail, header) = match format {
        WireFormat::Json => match serde_json::from_slice::<ClientFrame>(bytes) {
            Ok(frame) => return Ok(frame),
            Err(e) => (e, serde_json::from_slice::<FrameHeader>(bytes).ok()),
        },
        WireFormat::MessagePack => {
            let Some(doc) = msgpack_document(bytes) else {
                return Err(malformed(format));
            };
            match ClientFrame::deserialize(&doc) {
                Ok(frame) => return Ok(frame),
                Err(e) => (e, FrameHeader::deserialize(&doc).ok()),
            }
        }
    };
    let Some(header) = header else {
        return Err(malformed(format));
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

fn malformed(format: WireFormat) -> FrameError {
    let what = match format {
        WireFormat::Json => "JSON object",
        WireFormat::MessagePack => "MessagePack map",
    };
    FrameError {
        code: "malformed_frame",
        message: format!("the frame is not a valid {what}"),
        reference: None,
    }
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

    /// A `ping` frame with an unknown field `x` holding arrays nested `depth` deep, in both formats.
    fn nested(depth: usize) -> (Vec<u8>, Vec<u8>) {
        let mut json = br#"{"type":"ping","x":"#.to_vec();
        json.extend(std::iter::repeat_n(b'[', depth));
        json.extend(std::iter::repeat_n(b']', depth));
        json.push(b'}');
        let mut msgpack = vec![0x82, 0xa4]; // a map of two, a string of four
        msgpack.extend_from_slice(b"type\xa4ping\xa1x");
        msgpack.extend(std::iter::repeat_n(0x91, depth - 1)); // an array of one element
        msgpack.push(0x90); // an empty array
        (json, msgpack)
    }

    /// Sockets decode on tokio worker threads (2 MiB stacks). With rmp-serde's default depth
    /// (1024) a 1 KiB MessagePack frame of nested arrays overflowed that stack in debug builds
    /// and aborted the whole process.
    #[test]
    fn deeply_nested_frames_are_refused_on_a_worker_sized_stack() {
        let (json, msgpack) = nested(1000);
        let (json, msgpack) = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                (
                    decode(WireFormat::Json, &json),
                    decode(WireFormat::MessagePack, &msgpack),
                )
            })
            .unwrap()
            .join()
            .expect("decoding must not overflow the stack");
        assert!(json.is_err(), "{json:?}");
        assert!(msgpack.is_err(), "{msgpack:?}");
    }

    /// Unknown fields are ignored, however deep, up to the same limit in both formats.
    #[test]
    fn both_formats_accept_the_same_nesting() {
        for (depth, accepted) in [(1, true), (126, true), (127, false), (200, false)] {
            let (json, msgpack) = nested(depth);
            let json = decode(WireFormat::Json, &json);
            let msgpack = decode(WireFormat::MessagePack, &msgpack);
            assert_eq!(json.is_ok(), accepted, "JSON nested {depth} deep: {json:?}");
            assert_eq!(
                msgpack.is_ok(),
                accepted,
                "MessagePack {depth} deep: {msgpack:?}"
            );
        }
    }

    /// rmp-serde reads integers as variant and field names; a frame must spell them as JSON does.
    #[test]
    fn messagepack_frames_name_types_and_fields_as_json_does() {
        // [1, 0]: variant 1 (`chat_message`) with field 0 (`conversation_id`) = 0.
        let by_index = [0x92, 0x01, 0x00];
        assert_eq!(
            decode(WireFormat::MessagePack, &by_index).map_err(|e| e.code),
            Err("malformed_frame")
        );
        assert!(decode(WireFormat::Json, b"[1,0]").is_err());
        // {"type": "ping", 0: "r"}: field 0 of `ping` is `ref`.
        let mut key_by_index = vec![0x82, 0xa4];
        key_by_index.extend_from_slice(b"type\xa4ping\x00\xa1r");
        assert_eq!(
            decode(WireFormat::MessagePack, &key_by_index).map_err(|e| e.code),
            Err("malformed_frame")
        );
        // {"type": 6}: variant 6 is `ping`.
        let mut tag_by_index = vec![0x81, 0xa4];
        tag_by_index.extend_from_slice(b"type\x06");
        assert_eq!(
            decode(WireFormat::MessagePack, &tag_by_index).map_err(|e| e.code),
            decode(WireFormat::Json, br#"{"type":6}"#).map_err(|e| e.code),
        );
    }

    #[test]
    fn bytes_after_a_messagepack_frame_are_refused_like_after_json() {
        let mut bytes = rmp_serde::to_vec_named(&serde_json::json!({"type": "ping"})).unwrap();
        assert!(decode(WireFormat::MessagePack, &bytes).is_ok());
        bytes.push(0xc0);
        assert_eq!(
            decode(WireFormat::MessagePack, &bytes).map_err(|e| e.code),
            Err("malformed_frame")
        );
        assert!(decode(WireFormat::Json, br#"{"type":"ping"} null"#).is_err());
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
