//! Command-line interface of the `quarry` binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::DurabilityMode;

/// Quarry: a columnar wide-event analytics database with a Honeycomb-compatible API.
#[derive(Debug, Parser)]
#[command(name = "quarry", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `quarry`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: events API, OTLP/HTTP, SQL API, schema API and web UI on one
    /// HTTP port, and the OTLP/gRPC and OTLP/HTTP receivers on their own ports.
    Serve(ServeArgs),
}

/// Flags of `quarry serve`. Each overrides the config file, which overrides the
/// built-in default; that is why none of them has a clap default.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Directory of the write-ahead log (`wal/`) and segment files (`objects/`)
    /// [default: ./quarry-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP server; port 0 picks a free port and logs it
    /// [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// TOML configuration file (see quarry.example.toml); flags override it
    /// [default: none]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// When a write is acknowledged: `fsync` (survives power loss) or `relaxed`
    /// (survives a process crash; fsync every 200 ms) [default: fsync]
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityMode>,
    /// Address of the OTLP/gRPC receiver (traces, logs, metrics); port 0 picks a
    /// free port and logs it; `off` disables it [default: 127.0.0.1:4317]
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc: Option<String>,
    /// Address of the OTLP/HTTP receiver (`/v1/traces`, `/v1/logs`, `/v1/metrics`,
    /// also served on the --http port); port 0 picks a free port and logs it; `off`
    /// disables this port [default: 127.0.0.1:4318]
    #[arg(long, value_name = "ADDR")]
    pub otlp_http: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "quarry",
            "serve",
            "--data-dir",
            "/tmp/q",
            "--http",
            "127.0.0.1:0",
            "--durability",
            "relaxed",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "off",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command;
        assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/q")));
        assert_eq!(args.http.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.durability, Some(DurabilityMode::Relaxed));
        assert_eq!(args.config, None);
        assert_eq!(args.otlp_grpc.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.otlp_http.as_deref(), Some("off"));
    }

    #[test]
    fn help_documents_every_default() {
        Cli::command().debug_assert();
        let mut command = Cli::command();
        let serve = command.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        for default in [
            "./quarry-data",
            "127.0.0.1:8080",
            "[default: fsync]",
            "[default: none]",
            "[default: 127.0.0.1:4317]",
            "[default: 127.0.0.1:4318]",
        ] {
            assert!(help.contains(default), "{default} missing from:\n{help}");
        }
    }

    #[test]
    fn bad_durability_is_refused() {
        assert!(Cli::try_parse_from(["quarry", "serve", "--durability", "sometimes"]).is_err());
    }
}
