#!/usr/bin/env python3
"""Writes the seed corpora of frame_json and frame_msgpack: every client frame of API.md's
WebSocket section (ids as strings and as numbers, optional fields present and absent), a few
refusals (unknown type, missing type, wrong field type with a ref), and server events sent back
by mistake. The same documents in both formats, so the two targets start from the same places.

Run from fuzz/: `python3 seed_corpus.py`, then `cargo fuzz cmin <target>` keeps what adds
coverage. Standard library only (a minimal MessagePack writer is below)."""

import json
import os
import struct

FRAMES = [
    {"type": "auth", "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln"},
    {"type": "chat_message", "conversation_id": "7193453829230592", "text": "Hi! Is this service available next week?"},
    {"type": "chat_message", "conversation_id": 7193453829230592, "text": "héllo 👋\nline\ttab",
     "client_msg_id": "c-1", "ref": "r1"},
    {"type": "chat_message", "conversation_id": "12", "text": "", "attachment_ids": ["34", 35],
     "ref": "r2"},
    {"type": "chat_message", "conversation_id": 18446744073709551615, "text": None, "client_msg_id": None},
    {"type": "typing_status", "conversation_id": "12", "is_typing": True},
    {"type": "typing_status", "conversation_id": 12, "is_typing": False},
    {"type": "mark_read", "conversation_id": "12"},
    {"type": "mark_read", "conversation_id": 12, "up_to": "40", "ref": "m"},
    {"type": "delivered", "conversation_id": "12", "up_to": 40},
    {"type": "delivered", "conversation_id": 12, "up_to": "40", "ref": "d"},
    {"type": "sync", "conversation_id": "12", "after_seq": 0},
    {"type": "sync", "conversation_id": 12, "after_seq": -9223372036854775808, "ref": "s"},
    {"type": "ping"},
    {"type": "ping", "ref": "p"},
    # Refused: each answer is an `error` frame.
    {"type": "dance", "ref": "x"},
    {"ref": "no-type"},
    {"type": "typing_status", "conversation_id": "1", "is_typing": "yes", "ref": "q"},
    {"type": "chat_message", "conversation_id": -1},
    {"type": "mark_read", "conversation_id": "abc", "ref": 5},
    # Server events a confused client might echo back.
    {"type": "ack", "ref": "r1", "message": {"id": "1", "seq": 1, "status": "sent"}},
    {"type": "error", "code": "rate_limited", "message": "slow down", "retry_after": 3},
]


def mp(v):
    """MessagePack of a JSON-like value, in the smallest encodings (as rmp-serde writes them)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 0x80:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            for tag, fmt, top in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16),
                                  (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):
                if v < top:
                    return bytes([tag]) + struct.pack(fmt, v)
        for tag, fmt, low in ((0xD0, ">b", -(1 << 7)), (0xD1, ">h", -(1 << 15)),
                              (0xD2, ">i", -(1 << 31)), (0xD3, ">q", -(1 << 63))):
            if v >= low:
                return bytes([tag]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return bytes([0xD9, len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, list):
        assert len(v) < 16
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        assert len(v) < 16
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def main():
    for target in ("frame_json", "frame_msgpack"):
        os.makedirs(f"corpus/{target}", exist_ok=True)
    for i, frame in enumerate(FRAMES):
        name = f"seed-{i:02}-{frame.get('type', 'untyped')}"
        with open(f"corpus/frame_json/{name}", "wb") as f:
            f.write(json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode())
        with open(f"corpus/frame_msgpack/{name}", "wb") as f:
            f.write(mp(frame))
    # Not a document at all: one malformed input per format.
    with open("corpus/frame_json/seed-malformed", "wb") as f:
        f.write(b'{"type":"ping",')
    with open("corpus/frame_msgpack/seed-malformed", "wb") as f:
        f.write(b"\xc1\x00")


if __name__ == "__main__":
    main()
