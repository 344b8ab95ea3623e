//! `quarry`: the Quarry server binary.

mod auth;
mod cli;
mod config;
mod demo;
mod error;
mod metrics;
mod names;
mod otlp;
mod routes;
mod saved_queries;
mod server;
#[cfg(test)]
mod testing;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::config::Config;

/// mimalloc instead of glibc's malloc: ingest and query allocate many short-lived
/// buffers of very different sizes from several threads, where glibc spent over
/// half of the server's CPU in its own bookkeeping (see benches/results/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log filter when `RUST_LOG` is not set.
const DEFAULT_LOG_FILTER: &str = "info";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Demo(args) => args.into_demo(),
    };
    let result = match Config::load(&args) {
        Ok(config) => server::run(config, args.demo_config()).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Human-readable logs on stdout, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}
