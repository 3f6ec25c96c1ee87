//! `switchboard-load`: drives a running Switchboard with the same scenarios as the k6 scripts in
//! `load-tests/`, at rates k6 cannot reach on a 2-core machine (FACTS.md: k6 saturates near
//! 10,000 echoed frames/s). Only ever point it at loopback.
//!
//! Each scenario prints a human summary and one final line `RESULT {json}` for scripts.

mod probe;
mod report;
mod scenarios;
mod setup;
mod socket;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "switchboard-load",
    about = "Load scenarios for Switchboard (loopback only)"
)]
struct Cli {
    /// Public listener of the server.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    http: String,
    /// Admin listener of the server.
    #[arg(long, default_value = "127.0.0.1:9090", global = true)]
    admin: String,
    #[arg(long, default_value = "dev-admin-token", global = true)]
    admin_token: String,
    /// The server's HS256 secret (`auth.jwt_secret`): sign tokens here instead of asking the
    /// server for dev tokens, so the server can run with dev tokens off.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    jwt_secret: Option<String>,
    /// The server's process id, to sample its CPU and memory from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N conversations; each customer sends every I ms to its provider over WebSocket.
    Pairs(scenarios::pairs::Args),
    /// Open N authenticated sockets and hold them.
    Idle(scenarios::idle::Args),
    /// Providers go offline, customers send, providers reconnect at once and `sync`.
    ReconnectStorm(scenarios::storm::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    for host in [&cli.http, &cli.admin] {
        if !setup::is_loopback(host) {
            eprintln!(
                "switchboard-load: {host} is not a loopback address; refusing to send load there"
            );
            return std::process::ExitCode::from(64);
        }
    }
    probe::raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let target = setup::Target::new(
        &cli.http,
        &cli.admin,
        &cli.admin_token,
        cli.server_pid,
        cli.jwt_secret.filter(|s| !s.is_empty()),
    );
    let outcome = runtime.block_on(async move {
        match cli.scenario {
            Scenario::Pairs(a) => scenarios::pairs::run(&target, a).await,
            Scenario::Idle(a) => scenarios::idle::run(&target, a).await,
            Scenario::ReconnectStorm(a) => scenarios::storm::run(&target, a).await,
        }
    });
    match outcome {
        Ok(result) => {
            println!("RESULT {result}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
