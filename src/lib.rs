//! Switchboard: a realtime messaging engine.
//!
//! The message path, top to bottom: `gateway` (a socket task) → `actors::user_session` (the
//! user's actor) → `actors::conversation` (the conversation's actor, which assigns `seq`) →
//! `storage` (group-committed to disk) → back through `actors::outbox` to every socket of both
//! participants. `http` offers the same operations over HTTP. `domain` holds the pure types every
//! layer shares. See docs/ARCHITECTURE.md.

pub mod actors;
pub mod analytics;
pub mod app;
pub mod attachments;
pub mod auth;
pub mod config;
pub mod copy;
pub mod describe;
pub mod domain;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod html;
pub mod http;
pub mod metrics;
pub mod moderation;
pub mod notify;
pub mod privacy;
pub mod ratelimit;
pub mod search;
pub mod storage;
pub mod telemetry;
pub mod templates;
pub mod wire;
