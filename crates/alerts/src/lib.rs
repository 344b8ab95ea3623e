//! Alerts that page: markers, triggers on query specs, SLOs with burn alerts,
//! and notifications to webhooks, Slack, PagerDuty and Alertmanager — evaluated
//! inside Quarry (docs/alerts.md).
//!
//! ```text
//!  HTTP API ──► Alerts (api) ──► Document ──persist──► alerts/state.json
//!                    ▲                │ triggers, SLO counts, outbox
//!  evaluator ────────┘ (queries) ─────┤
//!  deliverer ◄──── outbox ◄───────────┘ ──► webhook / Slack / PagerDuty / Alertmanager
//! ```
//!
//! One server per deployment evaluates (the maintenance lease holder); time is
//! the server's injectable clock, or a manual one tests move.

mod api;
pub mod burn;
mod deliver;
pub mod document;
pub mod error;
mod evaluator;
mod fields;
pub mod markers;
pub mod notify;
pub mod recipients;
mod service;
mod sli_counts;
pub mod slo;
pub mod triggers;

pub use deliver::{FIRST_BACKOFF, MAX_BACKOFF, backoff};
pub use error::AlertError;
pub use evaluator::{PassReport, query_url};
pub use service::{Alerts, AlertsConfig};
