//! `quarry`: the command line over `quarry-server`. It parses flags, sets up
//! logging and the runtime, and runs a server built from the configuration; the
//! server itself lives in the library.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use quarry_server::Config;

use crate::cli::{Cli, Command};

/// mimalloc instead of glibc's malloc: ingest and query allocate many short-lived
/// buffers of very different sizes from several threads, where glibc spent over
/// half of the server's CPU in its own bookkeeping (see benches/results/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log filter when `RUST_LOG` is not set.
const DEFAULT_LOG_FILTER: &str = "info";

/// Stack of every runtime thread (workers and blocking threads): 16 MiB, where
/// tokio's default is 2 MiB.
///
/// Why: planning and running a query recurse once per level of its expressions
/// and plan, in DataFusion and arrow code that has no depth guard (`Drop`,
/// `Clone`, expression evaluation, some optimizer passes); a stack overflow
/// aborts the whole process. The query limits (`quarry_engine::query_limits`)
/// keep every statement several times below what this stack holds. Measured on
/// a debug build (larger frames than release): with 2 MiB, `SELECT 1+1+…`
/// overflowed at about 1,560 terms (a release build at about 1,900); with
/// 16 MiB, at about 13,000 `+` or `||` terms, 8,100 `AND` terms in a `WHERE`
/// and 3,500 `UNION ALL`s, against limits of 1,000 levels and 500 set operations
/// (the full table is in `crates/query/src/query_limits.rs`). The memory is
/// reserved address space; only the pages a deep query touches become resident.
const WORKER_STACK_BYTES: usize = 16 << 20;

fn main() -> ExitCode {
    // Size overflows in arrow kernels become "resources exhausted" answers rather
    // than crash reports (see `quarry_engine::panic_guard`).
    quarry_server::install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("quarry: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve())
}

/// Parses the command line, loads the configuration and runs the server.
async fn serve() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Demo(args) => args.into_demo(),
    };
    let result = match Config::load(&args.overrides()) {
        Ok(config) => quarry_server::run(config, args.demo_config()).await,
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
