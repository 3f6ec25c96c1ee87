//! `switchboard`: the command line. Thin by design: parse, load configuration, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use switchboard::app::{self, StartError};
use switchboard::config::Config;
use switchboard::copy::{self, CopyOptions, Outcome};
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
    /// Rebuild the message search index from the store (every live message). Stop the server
    /// first: the index has a single writer.
    Reindex {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Copy every record of one store into another (e.g. embedded to ScyllaDB), resumably, then
    /// compare the counts of both. Stop the source's server first.
    CopyStore(CopyArgs),
}

#[derive(clap::Args)]
struct CopyArgs {
    /// Configuration naming the store to copy from. SWITCHBOARD_* variables apply to it too.
    #[arg(long)]
    from: PathBuf,
    /// Configuration naming the (empty) store to copy into. SWITCHBOARD_* variables apply to it too.
    #[arg(long)]
    to: PathBuf,
    /// Progress file: resumed from when it exists, removed once the copy is complete and checked.
    #[arg(long, default_value = copy::DEFAULT_STATE_FILE)]
    state: PathBuf,
    /// Records per page scanned from the source and imported into the target.
    #[arg(long, default_value_t = copy::DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// Stop after this many pages, as an interruption would (for tests of resuming).
    #[arg(long, hide = true)]
    stop_after_pages: Option<u64>,
}

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// EX_USAGE: the configuration cannot run.
const EXIT_CONFIG: u8 = 64;
/// EX_UNAVAILABLE: the store (a ScyllaDB cluster) cannot be reached.
const EXIT_UNAVAILABLE: u8 = 69;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.command {
        Command::Serve { config }
        | Command::Config { config }
        | Command::Migrate { config }
        | Command::Reindex { config } => config,
        Command::CopyStore(args) => {
            switchboard::telemetry::init(Default::default());
            return copy_store(args);
        }
    };
    let config = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // After the configuration, which says how to write the log; a configuration error is one
    // line on stderr either way.
    switchboard::telemetry::init(config.log.format);
    if let Command::Config { .. } = cli.command {
        let mut shown = config.clone();
        for secret in [
            &mut shown.auth.jwt_secret,
            &mut shown.admin.token,
            &mut shown.moderation.classifier.api_key,
            &mut shown.email.brevo_api_key,
            &mut shown.webhooks.secret,
            &mut shown.push.vapid_private_key,
            &mut shown.attachments.encryption_key,
        ] {
            if !secret.is_empty() {
                *secret = "<set>".into();
            }
        }
        for old in &mut shown.attachments.previous_encryption_keys {
            *old = "<set>".into();
        }
        match toml::to_string_pretty(&shown) {
            Ok(t) => print!("{t}"),
            Err(e) => eprintln!("switchboard: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
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
    if let Command::Reindex { .. } = cli.command {
        return runtime.block_on(reindex(&config));
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

/// `reindex`: 0 with the count printed, 69 when the store cannot be opened, 1 otherwise.
async fn reindex(config: &Config) -> ExitCode {
    let store = match switchboard::storage::open::open(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return match e {
                OpenError::Unreachable { .. } => ExitCode::from(EXIT_UNAVAILABLE),
                _ => ExitCode::FAILURE,
            };
        }
    };
    let dir = config.search.dir(config);
    match switchboard::search::feed::reindex(&*store, dir.clone()).await {
        Ok(n) => {
            println!("reindexed {n} messages into {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: reindex: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("switchboard: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// `copy-store`: exit codes are `copy::EXIT_*` (64 usage, 65 counts differ, 69 a store cannot be
/// opened, 75 stopped on purpose), 1 for any other failure.
fn copy_store(args: &CopyArgs) -> ExitCode {
    let load = |flag: &str, path: &PathBuf| {
        Config::load(Some(path)).map_err(|e| {
            eprintln!("switchboard: {flag} {}: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        })
    };
    let (from, to) = match (load("--from", &args.from), load("--to", &args.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let options = CopyOptions {
        state_file: args.state.clone(),
        batch: usize::try_from(args.batch).unwrap_or(copy::DEFAULT_BATCH),
        stop_after_pages: args.stop_after_pages,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(copy::run(&from, &to, &options)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Stopped { .. }) => ExitCode::from(copy::EXIT_STOPPED),
        Err(e) => {
            eprintln!("switchboard: copy-store: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
