//! The query crate's error type and how DataFusion's errors map onto it.

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use crate::catalog::{CATALOG_NAME, SCHEMA_NAME};

/// Why a query failed. `quarry-server` maps each variant to one HTTP / gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL does not parse or does not plan (unknown column, type mismatch, ...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A query spec field is invalid; the message starts with the field's JSON path.
    #[error("{0}")]
    InvalidSpec(String),
    /// The query is beyond a shape limit of [`crate::query_limits`] (expression
    /// depth or size, set operations); the message names the limit.
    #[error("query too complex: {0}")]
    TooComplex(String),
    /// The query names a dataset the environment does not have.
    #[error("dataset not found: {0}")]
    DatasetNotFound(String),
    /// The query needs more memory than its share of the pool; retry later or narrow it.
    #[error("resources exhausted: {0}")]
    ResourcesExhausted(String),
    /// A worker this query's stages were sent to could not be reached or went
    /// away (a query node of the cluster is down); retrying may succeed.
    #[error(
        "a worker of this distributed query is unreachable (a query node may be down; retry): {0}"
    )]
    WorkerUnreachable(String),
    /// The unsealed rows of an ingest node could not be read (the node is down
    /// or its seals are not yet visible here): answering without them would
    /// miss acknowledged events, so the query fails; retrying may succeed.
    #[error("an ingest node's unsealed events cannot be read (retry): {0}")]
    IngestUnavailable(String),
    /// Anything else that went wrong while running the query.
    #[error("query execution failed: {0}")]
    Execution(String),
    /// No rollup of that name.
    #[error("rollup not found: {0}")]
    RollupNotFound(String),
    /// A rollup of that name exists already.
    #[error("rollup already exists: {0}")]
    RollupExists(String),
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        // A collection holds every error the planner found; the first one decides.
        let first = error.iter().next().unwrap_or(&error);
        // Wrappers (context, diagnostics, arrow external errors) say little about
        // the kind of failure: classify by the innermost DataFusion error.
        let root = first.find_root();
        let message = error.strip_backtrace();
        // Raised by the catalog while it fetched other nodes' rows: keep its kind.
        if let DataFusionError::External(inner) = root
            && let Some(QueryError::IngestUnavailable(text)) = inner.downcast_ref()
        {
            return QueryError::IngestUnavailable(text.clone());
        }
        match root {
            DataFusionError::Plan(text) => match missing_table(text) {
                Some(name) => QueryError::DatasetNotFound(name),
                None => QueryError::InvalidQuery(message),
            },
            DataFusionError::SQL(..)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => QueryError::InvalidQuery(message),
            DataFusionError::ArrowError(arrow_error, _) if is_user_error(arrow_error) => {
                QueryError::InvalidQuery(message)
            }
            DataFusionError::ResourcesExhausted(_) => QueryError::ResourcesExhausted(message),
            DataFusionError::Execution(text) if is_size_overflow(text) => {
                QueryError::ResourcesExhausted(message)
            }
            _ if is_worker_failure(&message) => QueryError::WorkerUnreachable(message),
            // DataFusion raises `Execution` for malformed input: a function's bad
            // argument (`arrow_cast(1, 'Nope')`, `date_trunc('fortnight', ..)`),
            // an index out of range, a placeholder without a value. Quarry's own
            // faults are `Internal` (panics), I/O or object-store errors.
            DataFusionError::Execution(_) => QueryError::InvalidQuery(message),
            // A pattern that does not parse (`regexp_like(s, '(')`): the
            // optimizer reports regex_syntax's error, evaluation regex's.
            DataFusionError::External(inner)
                if inner.is::<regex::Error>() || inner.is::<regex_syntax::Error>() =>
            {
                QueryError::InvalidQuery(message)
            }
            _ => QueryError::Execution(message),
        }
    }
}

impl From<ArrowError> for QueryError {
    fn from(error: ArrowError) -> Self {
        QueryError::from(DataFusionError::from(error))
    }
}

/// Arrow errors caused by what the query asks of the data (a bad cast, a division
/// by zero), not by the engine.
fn is_user_error(error: &ArrowError) -> bool {
    matches!(
        error,
        ArrowError::CastError(_)
            | ArrowError::ComputeError(_)
            | ArrowError::ParseError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::InvalidArgumentError(_)
    )
}

/// Execution errors that say a value outgrew what one arrow array can address
/// (`repeat` or `concat` past 2 GiB of strings): the query asked for too much.
fn is_size_overflow(message: &str) -> bool {
    SIZE_OVERFLOW_ERRORS
        .iter()
        .any(|needle| message.contains(needle))
}

/// Whether a failure is the network's between a coordinator and its workers
/// (datafusion-distributed reports them as execution errors carrying the
/// transport's error).
fn is_worker_failure(message: &str) -> bool {
    WORKER_FAILURES
        .iter()
        .any(|needle| message.contains(needle))
}

/// What datafusion-distributed and tonic say when a worker cannot be reached or
/// its stream breaks.
const WORKER_FAILURES: [&str; 3] = [
    "Error connecting to Distributed DataFusion worker",
    "tonic::transport::Error",
    "h2 protocol error",
];

/// What DataFusion's functions say when a result outgrows 32-bit offsets.
const SIZE_OVERFLOW_ERRORS: [&str; 2] = ["offset overflow", "size overflow"];

/// The dataset name of DataFusion's "table 'catalog.schema.name' not found" error.
fn missing_table(message: &str) -> Option<String> {
    let rest = message.strip_prefix("table '")?;
    let reference = rest.strip_suffix("' not found")?;
    let in_catalog = reference
        .strip_prefix(CATALOG_NAME)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(reference);
    let name = in_catalog
        .strip_prefix(SCHEMA_NAME)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(in_catalog);
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_errors_are_invalid_queries_except_missing_tables() {
        let missing = DataFusionError::Plan("table 'quarry.public.my-app.prod' not found".into());
        assert!(
            matches!(QueryError::from(missing), QueryError::DatasetNotFound(name) if name == "my-app.prod")
        );
        let other_schema = DataFusionError::Plan("table 'quarry.foo.bar' not found".into());
        assert!(
            matches!(QueryError::from(other_schema), QueryError::DatasetNotFound(name) if name == "foo.bar")
        );
        let plan = DataFusionError::Plan("No field named x".into());
        assert!(matches!(
            QueryError::from(plan),
            QueryError::InvalidQuery(_)
        ));
    }

    #[test]
    fn wrapped_resource_errors_are_found_at_the_root() {
        let inner = DataFusionError::ResourcesExhausted("pool is full".into());
        let wrapped = DataFusionError::ArrowError(
            Box::new(ArrowError::ExternalError(Box::new(
                inner.context("sorting"),
            ))),
            None,
        );
        assert!(matches!(
            QueryError::from(wrapped),
            QueryError::ResourcesExhausted(_)
        ));
    }

    #[test]
    fn results_outgrowing_an_array_are_resources_exhausted() {
        for text in [
            "byte array offset overflow",
            "string size overflow on repeat, max size is 2147483647, but got 2147483648",
        ] {
            let error = DataFusionError::Execution(text.into());
            assert!(matches!(
                QueryError::from(error),
                QueryError::ResourcesExhausted(_)
            ));
        }
    }

    #[test]
    fn malformed_input_is_an_invalid_query() {
        for text in [
            "Placeholder '$1' was not provided a value for execution.",
            "Unsupported date_trunc granularity: 'fortnight'",
            "array_element got invalid index: 9999999999",
        ] {
            let error = DataFusionError::Execution(text.into());
            assert!(matches!(
                QueryError::from(error),
                QueryError::InvalidQuery(message) if message.contains(text)
            ));
        }
        let compute = DataFusionError::ArrowError(
            Box::new(ArrowError::ComputeError(
                "cannot take square root of a negative number".into(),
            )),
            None,
        );
        assert!(matches!(
            QueryError::from(compute),
            QueryError::InvalidQuery(_)
        ));
        let pattern = regex_syntax::Parser::new()
            .parse("(")
            .map(|_| ())
            .unwrap_err();
        let regex = DataFusionError::External(Box::new(pattern)).context("simplify_expressions");
        assert!(matches!(
            QueryError::from(regex),
            QueryError::InvalidQuery(_)
        ));
    }

    #[test]
    fn engine_failures_are_execution_errors() {
        let io = DataFusionError::IoError(std::io::Error::other("disk unreachable"));
        assert!(matches!(QueryError::from(io), QueryError::Execution(_)));
        let panic = DataFusionError::Internal("the query panicked: kaboom".into());
        assert!(matches!(QueryError::from(panic), QueryError::Execution(_)));
        let cast = DataFusionError::ArrowError(Box::new(ArrowError::CastError("x".into())), None);
        assert!(matches!(
            QueryError::from(cast),
            QueryError::InvalidQuery(_)
        ));
    }
}
