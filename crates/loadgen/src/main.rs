//! `specgen-loadgen`: drives a running Spec Gen server and reports medians
//! and tails. Every run is bounded in time and talks only to the address it
//! is given (loopback in our recipes).

mod auth;
mod scenario;
mod stats;
mod stream;
mod ws;

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
    /// A fake Anthropic upstream with a fixed time to first byte (prints its URL).
    FakeUpstream {
        #[arg(long, default_value_t = 50)]
        first_byte_ms: u64,
        #[arg(long, default_value_t = 50)]
        chunks: usize,
        /// Pause before each chunk after the first, in milliseconds: 0 sends
        /// them all at once (the stress case), 20 is a model writing 50
        /// tokens a second.
        #[arg(long, default_value_t = 0)]
        chunk_ms: u64,
        /// Seconds to stay up.
        #[arg(long, default_value_t = 120)]
        seconds: u64,
    },
    /// Added time to first token and server CPU per streamed reply.
    Stream {
        /// An access token of a registered user.
        #[arg(long)]
        token: String,
        /// Concurrent streams per level, comma-separated.
        #[arg(long, default_value = "1,50,200", value_delimiter = ',')]
        levels: Vec<usize>,
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// The fake upstream's first-byte delay, subtracted from each measurement.
        #[arg(long, default_value_t = 50)]
        first_byte_ms: u64,
        /// Spread the streams' first requests over this many milliseconds
        /// (about one reply's length), so that they do not run in lockstep.
        #[arg(long, default_value_t = 0)]
        stagger_ms: u64,
        /// Each stream pauses this long after a reply, as a person would.
        #[arg(long, default_value_t = 0)]
        think_ms: u64,
        /// The server's process id, for its CPU time.
        #[arg(long)]
        server_pid: u32,
        /// Write every reply's timings here (CSV, microseconds), to see how
        /// the streams' requests fall in time.
        #[arg(long)]
        timeline: Option<std::path::PathBuf>,
    },
    /// The seed's k6 scenario: ramping VUs, each logging in and creating a
    /// session in a loop; checks login < 500 ms and session < 1,000 ms.
    #[command(alias = "scenario")]
    K6(scenario::Args),
    /// Server memory per idle WebSocket, connect rate, and fan-out latency.
    Ws {
        #[arg(long, default_value_t = 15_000)]
        connections: usize,
        /// Accounts the connections are spread over.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Sessions the connections are spread over (the first one's
        /// members take part in the fan-out measurement).
        #[arg(long, default_value_t = 15)]
        sessions: usize,
        /// Connections opened at once.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
        /// Local addresses to connect from, comma-separated.
        #[arg(long, default_value = "127.0.0.1", value_delimiter = ',')]
        sources: Vec<std::net::IpAddr>,
        /// Milliseconds between fan-out messages.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Seconds of fan-out.
        #[arg(long, default_value_t = 20)]
        fanout_seconds: u64,
        #[arg(long)]
        server_pid: u32,
        /// Seconds of idleness before measuring memory.
        #[arg(long, default_value_t = 12)]
        settle_seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Auth { concurrency, seconds } => auth::run(&cli.base, concurrency, seconds).await,
        Command::FakeUpstream { first_byte_ms, chunks, chunk_ms, seconds } => {
            stream::fake_upstream(first_byte_ms, chunks, chunk_ms, seconds).await
        }
        Command::Stream { token, levels, seconds, first_byte_ms, stagger_ms, think_ms, server_pid, timeline } => {
            let plan = stream::Plan {
                levels,
                seconds,
                upstream_delay: std::time::Duration::from_millis(first_byte_ms),
                stagger: std::time::Duration::from_millis(stagger_ms),
                think: std::time::Duration::from_millis(think_ms),
                server_pid,
                timeline,
            };
            stream::run(&cli.base, &token, &plan).await
        }
        Command::K6(args) => scenario::run(&cli.base, args).await,
        Command::Ws {
            connections,
            users,
            sessions,
            parallel,
            sources,
            interval_ms,
            fanout_seconds,
            server_pid,
            settle_seconds,
        } => {
            let plan = ws::Plan {
                connections,
                users,
                sessions,
                parallel,
                sources,
                interval: std::time::Duration::from_millis(interval_ms),
                fanout_seconds,
                server_pid,
                settle: std::time::Duration::from_secs(settle_seconds),
            };
            ws::run(&cli.base, plan).await
        }
    }
}
