//! The WebSocket gateway: the upgrade routes, the per-socket task, and the compatibility socket.
//!
//! Socket tasks stay thin: they read a frame, decode it, and hand it to the user's session actor;
//! they write whatever the actors queue for them. No conversation state lives here.

pub mod compat;
pub mod handshake;
pub mod socket;

pub use handshake::routes;
