//! [`Alerts`]: alerting's state, shared by the HTTP handlers, the evaluator and
//! the deliverer of one server.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use quarry_engine::{QueryEngine, QueryError};
use quarry_query::spec::{QueryResult, QuerySpec, run_query};
use quarry_rollup::RollupRewrite;
use quarry_schema::{ManualClock, SharedClock};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::document::{Document, Persistence};
use crate::error::{AlertError, Result};

/// How long one notification request may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `[alerts]` of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Evaluate triggers and burn alerts on this node (one node per deployment:
    /// the maintenance lease holder).
    pub enabled: bool,
    /// Base URL of the web UI in notifications' query links (default: the
    /// server's own HTTP address).
    pub public_url: String,
    /// Seconds between evaluation passes (each trigger still runs at its own
    /// frequency).
    pub evaluate_every_secs: u64,
    /// Alert time moves only by `POST /api/v1/admin/alerts/evaluate` (tests).
    pub manual_clock: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            public_url: String::new(),
            evaluate_every_secs: 15,
            manual_clock: false,
        }
    }
}

/// Alerting's state and machinery.
pub struct Alerts {
    pub(crate) config: AlertsConfig,
    pub(crate) document: Mutex<Document>,
    persistence: Persistence,
    engine: Arc<QueryEngine>,
    clock: SharedClock,
    manual: Option<Arc<ManualClock>>,
    pub(crate) http: reqwest::Client,
    /// One delivery pass at a time.
    pub(crate) delivering: Mutex<()>,
    /// One evaluation pass at a time.
    pub(crate) evaluating: Mutex<()>,
}

impl Alerts {
    /// Loads the persisted state from `store`. `clock` is the server's; with
    /// `manual_clock` alert time starts there and moves only when told.
    pub async fn open(
        config: AlertsConfig,
        store: Arc<dyn ObjectStore>,
        engine: Arc<QueryEngine>,
        clock: SharedClock,
    ) -> Result<Alerts> {
        let persistence = Persistence::new(store);
        let document = persistence.load().await?;
        let (clock, manual) = if config.manual_clock {
            let manual = ManualClock::new(clock.now_ns());
            (Arc::clone(&manual) as SharedClock, Some(manual))
        } else {
            (clock, None)
        };
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .map_err(|error| {
                AlertError::Storage(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(Alerts {
            config,
            document: Mutex::new(document),
            persistence,
            engine,
            clock,
            manual,
            http,
            delivering: Mutex::new(()),
            evaluating: Mutex::new(()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// Alert time, ns.
    pub fn now_ns(&self) -> i64 {
        self.clock.now_ns()
    }

    /// Moves a manual alert clock; refused otherwise.
    pub fn set_now_ns(&self, now_ns: i64) -> Result<()> {
        match &self.manual {
            Some(clock) => {
                clock.set_ns(now_ns);
                Ok(())
            }
            None => Err(AlertError::invalid(
                "now",
                "alert time is the system clock here; set [alerts] manual_clock = true to move it",
            )),
        }
    }

    /// Changes the document with `change` and persists it; on any error neither
    /// memory nor storage changes.
    pub(crate) async fn mutate<R>(
        &self,
        change: impl FnOnce(&mut Document) -> Result<R>,
    ) -> Result<R> {
        let mut document = self.document.lock().await;
        let mut next = document.clone();
        let result = change(&mut next)?;
        self.persistence.save(&next).await?;
        *document = next;
        Ok(result)
    }

    /// Runs a spec as the query API does (rollups answer what they can).
    pub(crate) async fn query(
        &self,
        environment: &str,
        dataset: &str,
        spec: &QuerySpec,
        now_ns: i64,
    ) -> Result<QueryResult> {
        run_query(
            &self.engine,
            environment,
            dataset,
            spec,
            now_ns,
            Some(&RollupRewrite),
        )
        .await
        .map_err(|error| match error {
            QueryError::DatasetNotFound(_) => AlertError::NotFound(error.to_string()),
            QueryError::InvalidSpec(_)
            | QueryError::InvalidQuery(_)
            | QueryError::TooComplex(_) => AlertError::Invalid(error.to_string()),
            other => AlertError::Query(other.to_string()),
        })
    }
}

/// A new object id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// RFC 3339 of `ns`.
pub(crate) fn rfc3339(ns: i64) -> String {
    quarry_query::spec::rfc3339(ns)
}
