//! Integration tests: each starts the real server binary on ephemeral ports with its own store
//! and speaks real HTTP and WebSocket to it.

mod bad_input;
mod durability;
mod exactness;
mod harness;
mod realtime;
mod replay;
mod security;
mod spine;
mod websocket;
