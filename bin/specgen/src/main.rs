//! `specgen`: the composition root. It parses the command line, loads the
//! configuration, picks the concrete adapters and hands them to the
//! application and HTTP layers. Nothing else in the workspace names an adapter.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use specgen::config::{Config, ConnectionUrl};

/// jemalloc returns freed memory to the system within seconds: with glibc,
/// a burst of 20 registrations (argon2 takes 19 MiB per hash, on the
/// blocking threads) left the process at 410 MiB for good; with jemalloc it
/// stays at 25 MiB. (mimalloc: 105 MiB, and 45 MiB idle.) It serves
/// SQLite's C allocations too (the workspace enables its unprefixed
/// `malloc`): with glibc's, every read that found the database changed freed
/// its connection's page cache and glibc gave the pages back at once, ~200
/// `madvise` calls a second at 50 streams, each a TLB flush on the other CPU
/// (measured: 17 a second with jemalloc, page faults 1,873 -> 505 a second).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use specgen::wiring;

#[derive(Debug, Parser)]
#[command(name = "specgen", version, about = "Spec Gen: a self-hostable, AI-first chat server")]
struct Cli {
    /// A TOML file of settings (keys are the environment variables in lower case).
    #[arg(long, global = true, env = "SPECGEN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// Open the web client in a browser once the server is ready.
        #[arg(long)]
        open: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Print the OpenAPI document.
    Openapi,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("specgen: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let telemetry = match specgen::telemetry::init(
        &config.rust_log,
        config.otel_exporter_otlp_endpoint.as_ref().map(ConnectionUrl::expose),
    ) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("specgen: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("specgen: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve { open: false }) {
            Command::Serve { open } => wiring::serve(config, open).await,
            Command::Migrate => wiring::migrate(config).await,
            Command::Config => {
                print_out(&serde_json::to_string_pretty(&config)?);
                Ok(())
            }
            Command::Openapi => {
                print_out(&specgen_http::openapi().to_pretty_json()?);
                Ok(())
            }
        }
    });
    drop(runtime);
    telemetry.shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "specgen stopped");
            eprintln!("specgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a reader that went away (`specgen config | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
