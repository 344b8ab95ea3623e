//! What can go wrong with a PromQL request, in the Prometheus API's terms.

use quarry_engine::QueryError;

/// A PromQL request's failure; [`PromError::error_type`] is the `errorType` of
/// the Prometheus API's error body.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The query does not parse, or a parameter is malformed.
    #[error("{0}")]
    BadData(String),
    /// The query parses but uses PromQL that Quarry does not evaluate.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Evaluation failed (for example many-to-many matching).
    #[error("{0}")]
    Execution(String),
    /// Reading the samples failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl PromError {
    /// The Prometheus API's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromError::BadData(_) | PromError::Unsupported(_) => "bad_data",
            PromError::Execution(_) => "execution",
            PromError::Query(QueryError::ResourcesExhausted(_)) => "unavailable",
            PromError::Query(_) => "internal",
        }
    }

    /// Whether the caller is at fault (a 400 rather than a 422 or 5xx).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, PromError::BadData(_) | PromError::Unsupported(_))
    }
}

impl From<datafusion::error::DataFusionError> for PromError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        PromError::Query(QueryError::from(error))
    }
}
