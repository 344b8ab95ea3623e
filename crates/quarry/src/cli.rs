//! Command-line interface of the `quarry` binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use quarry_server::{DEFAULT_BACKFILL_EVENTS, DemoConfig, Durability, Overrides, Role};

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
    /// `serve --demo`: the server with generated telemetry to explore in the web UI
    /// (data in ./quarry-demo-data unless --data-dir says otherwise).
    Demo(ServeArgs),
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
    pub durability: Option<DurabilityArg>,
    /// Demo mode: fill the store with generated telemetry of a small shop (two hours
    /// back, then live, with an injected slowdown to find) [default: off]
    #[arg(long)]
    pub demo: bool,
    /// Events the demo writes for the last two hours (implies --demo); the live
    /// stream keeps their rate [default: 200000]
    #[arg(long, value_name = "N")]
    pub demo_events: Option<u64>,
    /// Address of the OTLP/gRPC receiver (traces, logs, metrics); port 0 picks a
    /// free port and logs it; `off` disables it [default: 127.0.0.1:4317]
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc: Option<String>,
    /// Address of the OTLP/HTTP receiver (`/v1/traces`, `/v1/logs`, `/v1/metrics`,
    /// also served on the --http port); port 0 picks a free port and logs it; `off`
    /// disables this port [default: 127.0.0.1:4318]
    #[arg(long, value_name = "ADDR")]
    pub otlp_http: Option<String>,
    /// Address of the Postgres wire protocol (psql, JDBC, Grafana; the API key is
    /// the password); port 0 picks a free port and logs it; `off` disables it
    /// [default: 127.0.0.1:5432]
    #[arg(long, value_name = "ADDR")]
    pub pg: Option<String>,
    /// Drop sealed data older than this (`30d`, `12h`, ... or `forever`); overrides
    /// `[retention] max_age` (per-dataset overrides stay) [default: forever]
    #[arg(long, value_name = "DURATION")]
    pub retention_max_age: Option<String>,
    /// What this node does when several share one object store (docs/deploy.md):
    /// `all` (everything, one node alone), `ingest` (takes writes, seals them to
    /// the object store), `query` (answers queries; no writes), `compactor`
    /// (compaction, retention, rollups; no writes) [default: all]
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// This node's name in the shared manifest, unique among the nodes writing to
    /// one object store [default: generated once, kept in <data-dir>/node-id]
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Address of this node's cluster port (gRPC, for other nodes only): on a
    /// query node the distributed-query worker, which runs the query stages
    /// other nodes send; on an ingest node the service that hands its unsealed
    /// events to query nodes [default: off]
    #[arg(long, value_name = "ADDR")]
    pub worker: Option<String>,
    /// Workers (`http://host:port`, comma-separated, this node's own included)
    /// that queries received here are distributed over [default: none: every
    /// query runs on this node alone]
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// The cluster ports (`http://host:port`, comma-separated) of the ingest
    /// nodes, whose unsealed events every query here includes [default: none]
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub ingest_peers: Option<Vec<String>>,
}

/// `--role`'s values (the config file's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Everything: ingest, queries and maintenance.
    All,
    /// Takes writes and seals them to the object store.
    Ingest,
    /// Answers queries; takes no writes.
    Query,
    /// Runs compaction, retention and rollup maintenance; takes no writes.
    Compactor,
}

impl From<RoleArg> for Role {
    fn from(arg: RoleArg) -> Self {
        match arg {
            RoleArg::All => Role::All,
            RoleArg::Ingest => Role::Ingest,
            RoleArg::Query => Role::Query,
            RoleArg::Compactor => Role::Compactor,
        }
    }
}

/// `--durability`'s values (the config file's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// After fsync of the write-ahead log.
    Fsync,
    /// After the write reaches the OS; fsync runs periodically.
    Relaxed,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Self {
        match arg {
            DurabilityArg::Fsync => Durability::Fsync,
            DurabilityArg::Relaxed => Durability::Relaxed,
        }
    }
}

/// Data directory of `quarry demo`: never the default one of `quarry serve`.
pub const DEMO_DATA_DIR: &str = "./quarry-demo-data";

impl ServeArgs {
    /// `quarry demo`'s arguments as those of `quarry serve --demo`.
    pub fn into_demo(mut self) -> ServeArgs {
        self.demo = true;
        self.data_dir = self.data_dir.or_else(|| Some(PathBuf::from(DEMO_DATA_DIR)));
        self
    }

    /// What the flags set over the configuration file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            http: self.http.clone(),
            durability: self.durability.map(Durability::from),
            otlp_grpc: self.otlp_grpc.clone(),
            otlp_http: self.otlp_http.clone(),
            pg: self.pg.clone(),
            retention_max_age: self.retention_max_age.clone(),
            role: self.role.map(Role::from),
            node_id: self.node_id.clone(),
            worker: self.worker.clone(),
            peers: self.peers.clone(),
            ingest_peers: self.ingest_peers.clone(),
        }
    }

    /// What demo mode generates, when it is on.
    pub fn demo_config(&self) -> Option<DemoConfig> {
        (self.demo || self.demo_events.is_some()).then(|| DemoConfig {
            backfill_events: self.demo_events.unwrap_or(DEFAULT_BACKFILL_EVENTS),
        })
    }
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
            "--pg",
            "127.0.0.1:0",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {:?}", cli.command)
        };
        assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/q")));
        assert_eq!(args.http.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.durability, Some(DurabilityArg::Relaxed));
        assert_eq!(args.overrides().durability, Some(Durability::Relaxed));
        assert_eq!(args.overrides().http.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.config, None);
        assert_eq!(args.otlp_grpc.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.otlp_http.as_deref(), Some("off"));
        assert_eq!(args.overrides().pg.as_deref(), Some("127.0.0.1:0"));
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
    fn demo_is_serve_with_demo_data_in_its_own_directory() {
        let cli = Cli::try_parse_from(["quarry", "demo", "--demo-events", "1000"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("not demo: {:?}", cli.command)
        };
        let args = args.into_demo();
        assert!(args.demo);
        assert_eq!(args.data_dir, Some(PathBuf::from(DEMO_DATA_DIR)));
        assert_eq!(args.demo_config().map(|d| d.backfill_events), Some(1000));
        let plain = Cli::try_parse_from(["quarry", "serve"]).unwrap();
        let Command::Serve(plain) = plain.command else {
            panic!("not serve")
        };
        assert_eq!(plain.demo_config(), None);
        let sized = Cli::try_parse_from(["quarry", "serve", "--demo-events", "5"]).unwrap();
        let Command::Serve(sized) = sized.command else {
            panic!("not serve")
        };
        assert_eq!(sized.demo_config().map(|d| d.backfill_events), Some(5));
    }

    #[test]
    fn bad_durability_is_refused() {
        assert!(Cli::try_parse_from(["quarry", "serve", "--durability", "sometimes"]).is_err());
    }
}
