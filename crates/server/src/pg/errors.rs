//! Errors in the Postgres protocol's own shape: an `ErrorResponse` with the
//! SQLSTATE a Postgres client (psycopg, JDBC, libpq) branches on.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::pgwire::api::{ClientInfo, ErrorHandler};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use quarry_engine::QueryError;

/// SQLSTATE `54001` statement_too_complex: a guardrail of `query_limits`.
const STATEMENT_TOO_COMPLEX: &str = "54001";
/// SQLSTATE `25006` read_only_sql_transaction: DDL, DML, `COPY`, `SET datafusion.*`.
const READ_ONLY: &str = "25006";
/// SQLSTATE `42601` syntax_error.
const SYNTAX_ERROR: &str = "42601";
/// SQLSTATE `42P01` undefined_table.
const UNDEFINED_TABLE: &str = "42P01";
/// SQLSTATE `53200` out_of_memory: the query memory pool is exhausted.
const OUT_OF_MEMORY: &str = "53200";
/// SQLSTATE `XX000` internal_error.
const INTERNAL: &str = "XX000";
/// SQLSTATE `08P01` protocol_violation.
const PROTOCOL_VIOLATION: &str = "08P01";

/// An `ERROR` with this SQLSTATE and message.
fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

/// A statement refused by Quarry's shape limits (or anything else the engine refuses).
pub(crate) fn query_error(query_error: QueryError) -> PgWireError {
    let code = match &query_error {
        QueryError::TooComplex(_) => STATEMENT_TOO_COMPLEX,
        QueryError::InvalidQuery(_) => SYNTAX_ERROR,
        QueryError::DatasetNotFound(_) => UNDEFINED_TABLE,
        QueryError::ResourcesExhausted(_) => OUT_OF_MEMORY,
        _ => INTERNAL,
    };
    error(code, query_error.to_string())
}

/// A statement that would write: the Postgres port reads only, as SQL over HTTP does.
pub(crate) fn read_only(what: &str) -> PgWireError {
    error(
        READ_ONLY,
        format!("{what} is not allowed: Quarry's Postgres port runs read-only queries"),
    )
}

/// A query on a connection that has no session (it never authenticated).
pub(crate) fn no_session() -> PgWireError {
    error(PROTOCOL_VIOLATION, "the connection has not authenticated")
}

/// DataFusion's errors (which datafusion-postgres passes on as internal errors,
/// `XX000`) classified as the engine classifies them for HTTP, with their SQLSTATE.
fn classify(error: PgWireError) -> PgWireError {
    let PgWireError::ApiError(inner) = error else {
        return error;
    };
    let inner = match inner.downcast::<DataFusionError>() {
        Ok(datafusion) => return query_error(QueryError::from(*datafusion)),
        Err(inner) => inner,
    };
    match inner.downcast::<ParserError>() {
        Ok(parser) => self::error(SYNTAX_ERROR, parser.to_string()),
        Err(inner) => PgWireError::ApiError(inner),
    }
}

/// Gives every error its SQLSTATE ([`classify`]) and logs it.
#[derive(Debug, Default)]
pub(crate) struct ErrorCodes;

impl ErrorHandler for ErrorCodes {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let taken = std::mem::replace(error, PgWireError::QueryCanceled);
        *error = classify(taken);
        tracing::debug!(%error, "Postgres error response");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: PgWireError) -> String {
        match error {
            PgWireError::UserError(info) => info.code,
            other => panic!("not a user error: {other:?}"),
        }
    }

    #[test]
    fn guardrails_and_missing_tables_have_their_sqlstate() {
        assert_eq!(
            code(query_error(QueryError::TooComplex("x".into()))),
            "54001"
        );
        assert_eq!(
            code(query_error(QueryError::DatasetNotFound("t".into()))),
            "42P01"
        );
        assert_eq!(code(read_only("INSERT")), "25006");
    }

    #[test]
    fn datafusion_errors_get_the_code_of_their_kind() {
        let exhausted =
            PgWireError::ApiError(Box::new(DataFusionError::ResourcesExhausted("pool".into())));
        assert_eq!(code(classify(exhausted)), "53200");
        let unknown = PgWireError::ApiError(Box::new(DataFusionError::Plan(
            "table 'quarry.public.nope' not found".into(),
        )));
        assert_eq!(code(classify(unknown)), "42P01");
        let syntax = PgWireError::ApiError(Box::new(ParserError::ParserError("SELEC".into())));
        assert_eq!(code(classify(syntax)), "42601");
    }
}
