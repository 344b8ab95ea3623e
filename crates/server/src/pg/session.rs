//! One connection's SQL session: the engine's session for the connection's
//! environment (the same functions, catalog and memory pool as SQL over HTTP),
//! plus the `pg_catalog` schema and functions Postgres clients introspect with.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use quarry_engine::{CATALOG_NAME, QueryEngine, QueryError};

use super::guard::Guardrails;

/// The Postgres version clients are told (`version()`, `server_version`):
/// psql and SQLAlchemy pick their catalog queries by it.
pub(crate) const POSTGRES_VERSION: &str = "16.6";

/// The session of one authenticated connection, kept in its session extensions.
pub(crate) struct ConnectionSession(pub(crate) Arc<DfSessionService>);

/// A session over `environment`'s datasets for one connection.
pub(crate) fn connection_session(
    engine: &QueryEngine,
    environment: &str,
) -> Result<ConnectionSession, QueryError> {
    let context = engine.session(environment)?;
    setup_pg_catalog(&context, CATALOG_NAME, EmptyContextProvider)
        .map_err(|error| QueryError::from(*error))?;
    context.register_udf(version_udf());
    context.register_udf(to_regtype_udf());
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(Guardrails),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    Ok(ConnectionSession(Arc::new(
        DfSessionService::new_with_hooks(Arc::new(context), hooks),
    )))
}

/// `version()` in Postgres's shape: clients (SQLAlchemy) parse
/// "PostgreSQL <major>.<minor>" out of it.
fn version_udf() -> ScalarUDF {
    let version = format!(
        "PostgreSQL {POSTGRES_VERSION} (Quarry {}, Apache DataFusion)",
        env!("CARGO_PKG_VERSION")
    );
    let answer = move |_: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            version.clone(),
        ))))
    };
    create_udf(
        "version",
        Vec::new(),
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(answer),
    )
}

/// `to_regtype(name)`: NULL, as Postgres answers for a type it does not have.
/// SQLAlchemy's psycopg dialect looks `hstore` up with it on connect; Quarry's
/// column types are the built-in ones, so no extension type is ever found.
fn to_regtype_udf() -> ScalarUDF {
    let answer = |_: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)))
    };
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(answer),
    )
}
