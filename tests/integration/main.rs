//! Integration tests: each starts the real server binary on ephemeral ports with its own store
//! and speaks real HTTP and WebSocket to it.

mod analytics;
mod at_rest;
mod attachments;
mod audit;
mod authz;
mod bad_input;
mod browser;
mod clamd;
mod conversation_filters;
mod cookie_auth;
mod cors;
mod durability;
mod exactness;
mod frontend_kit;
mod harness;
mod limits;
mod logs;
mod metrics;
mod moderation;
mod notifications;
mod openapi;
mod privacy;
mod push;
mod realtime;
mod receiver;
mod replay;
mod schemathesis;
mod search;
mod security;
mod shutdown;
mod spine;
mod templates;
mod tls;
mod virus_scan;
mod websocket;
