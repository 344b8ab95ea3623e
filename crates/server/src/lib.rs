//! The Quarry server as a library: configuration, the state every handler shares,
//! the HTTP API and its routes, the OTLP/gRPC and OTLP/HTTP receivers, Arrow
//! Flight SQL (on the OTLP/gRPC port) and the Postgres wire protocol, auth,
//! `/metrics`, the demo writer, and the server's life ([`Server::start`] →
//! [`RunningServer::stop`]).
//!
//! It owns wiring only: decoding lives in `quarry-ingest`, storage in
//! `quarry-segment-store`, queries in `quarry-query`. It must not depend on a
//! command-line parser or a process-wide logger: the `quarry` binary owns those,
//! so tests and the coming node roles build servers in-process from a [`Config`].
//!
//! Modules depend one way: `routes`/`otlp` → `state` → `ingest_service`,
//! `config`, `auth`, `metrics`, `error`; `router` → `routes`; `server` → `router`. A test
//! (`tests/module_order.rs`) keeps it so.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod error;
mod flight_sql;
pub mod ingest_service;
pub mod metrics;
mod names;
mod otlp;
mod pg;
pub mod pipeline;
pub mod router;
mod routes;
mod saved_queries;
pub mod server;
pub mod sources;
pub mod state;
#[cfg(test)]
mod testing;

pub use config::{Config, Overrides, Role};
pub use demo::{DEFAULT_BACKFILL_EVENTS, DemoConfig};
pub use error::ApiError;
pub use quarry_segment_store::Durability;
pub use server::{RunningServer, Server, run, shutdown_signal};
pub use state::AppState;

/// Turns size overflows in arrow kernels into "resources exhausted" answers
/// instead of crash reports; the binary installs it before serving.
pub use quarry_engine::panic_guard::install_panic_hook;
