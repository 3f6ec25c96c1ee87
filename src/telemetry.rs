//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`). Spans carry
//! `conversation_id`, `user_id` and `socket_id` so one conversation's story can be followed.
//!
//! Tokens are never logged, at any level: requests name how they authenticated
//! (`auth="cookie"`), never with what, and no log line holds a URL's query string. A dependency
//! that would log a frame's payload is capped below that level whatever `RUST_LOG` asks
//! ([`CAPPED`]).

use std::io::IsTerminal;

use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

/// Directives that override `RUST_LOG`. tungstenite at `trace` writes every WebSocket frame it
/// reads or writes in full: the token of an `auth` frame, and every message's text.
const CAPPED: &[&str] = &["tungstenite=debug"];

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let filter = CAPPED
        .iter()
        .filter_map(|d| d.parse::<Directive>().ok())
        .fold(filter, EnvFilter::add_directive);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or collector gets plain text
        // that grep and parsers read as written.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
