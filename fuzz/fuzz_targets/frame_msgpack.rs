//! A WebSocket binary frame: MessagePack, decoded as the socket decodes it (see `switchboard_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::wire::WireFormat;

fuzz_target!(|data: &[u8]| switchboard_fuzz::check_frame(WireFormat::MessagePack, data));
