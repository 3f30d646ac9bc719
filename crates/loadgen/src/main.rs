//! `specgen-loadgen`: drives a running Spec Gen server and reports medians
//! and tails. Every run is bounded in time and talks only to the address it
//! is given (loopback in our recipes).

mod auth;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "specgen-loadgen", about = "Load generator for Spec Gen benchmarks")]
struct Cli {
    /// Base URL of the server, e.g. http://127.0.0.1:18080
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    base: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Login throughput, and /health/live latency while logins run flat out.
    Auth {
        /// Concurrent login loops (the issue asks for 2 x cores).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Auth { concurrency, seconds } => auth::run(&cli.base, concurrency, seconds).await,
    }
}
