//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`). Spans carry
//! `conversation_id`, `user_id` and `socket_id` so one conversation's story can be followed.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
