//! `switchboard`: the command line. Thin by design: parse, load configuration, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use switchboard::app::{self, StartError};
use switchboard::config::Config;
use switchboard::storage::open::OpenError;
use switchboard::storage::scylla::migrate::{migrate, MigrateError};

/// Realtime messaging engine: conversations as actors, durable history, WebSocket fan-out.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (public API and WebSocket, admin API).
    Serve {
        /// TOML configuration file; SWITCHBOARD_<SECTION>__<KEY> variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (defaults, file, environment) as TOML and exit.
    Config {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Create or update the ScyllaDB schema (`schema/`) in the `[scylla]` keyspace, and say what
    /// was done. Idempotent: running it again changes nothing.
    Migrate {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// EX_USAGE: the configuration cannot run.
const EXIT_CONFIG: u8 = 64;
/// EX_UNAVAILABLE: the store (a ScyllaDB cluster) cannot be reached.
const EXIT_UNAVAILABLE: u8 = 69;

fn main() -> ExitCode {
    let cli = Cli::parse();
    switchboard::telemetry::init();
    let (Command::Serve { config } | Command::Config { config } | Command::Migrate { config }) =
        &cli.command;
    let config = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Command::Config { .. } = cli.command {
        let mut shown = config.clone();
        for secret in [&mut shown.auth.jwt_secret, &mut shown.admin.token] {
            if !secret.is_empty() {
                *secret = "<set>".into();
            }
        }
        match toml::to_string_pretty(&shown) {
            Ok(t) => print!("{t}"),
            Err(e) => eprintln!("switchboard: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Migrate { .. } = cli.command {
        return match runtime.block_on(migrate(&config.scylla)) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchboard: {e}");
                match e {
                    MigrateError::Open(OpenError::Unreachable { .. }) => {
                        ExitCode::from(EXIT_UNAVAILABLE)
                    }
                    _ => ExitCode::FAILURE,
                }
            }
        };
    }
    match runtime.block_on(app::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            match e {
                StartError::Config(_) => ExitCode::from(EXIT_CONFIG),
                StartError::Store(OpenError::Unreachable { .. }) => {
                    ExitCode::from(EXIT_UNAVAILABLE)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}
