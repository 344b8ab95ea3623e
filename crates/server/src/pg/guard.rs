//! The guardrails of SQL over HTTP, on the Postgres port: the shape limits of
//! `quarry_engine::query_limits` (before and after parsing) and read-only
//! statements. Memory is bounded by the engine's shared pool, which every
//! connection's session uses.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::PgWireResult;
use quarry_engine::query_limits;

use super::errors;

/// Settings a client may not change: `datafusion.*` reaches the session's
/// runtime (its memory limit among them), which the server's limits govern.
const SERVER_SETTINGS_PREFIX: &str = "datafusion.";

/// Refuses SQL text too long a chain to parse safely (before any parser sees it).
pub(crate) fn check_text(sql: &str) -> PgWireResult<()> {
    query_limits::check_sql_text(sql, &PostgreSqlDialect {}).map_err(errors::query_error)
}

/// Refuses a parsed statement beyond the shape limits, or one that would write.
fn check_statement(statement: &Statement) -> PgWireResult<()> {
    if let Some(what) = refused(statement) {
        return Err(errors::read_only(&what));
    }
    query_limits::check_statement(&DFStatement::Statement(Box::new(statement.clone())))
        .map_err(errors::query_error)
}

/// What makes `statement` one the Postgres port does not run, if anything.
///
/// An allow-list: queries, `EXPLAIN` of a query, and the session statements
/// clients send on connect (`SET`, `SHOW`, transactions, cursors), which
/// datafusion-postgres answers without touching data.
fn refused(statement: &Statement) -> Option<String> {
    match statement {
        Statement::Query(_)
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowSchemas { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Discard { .. }
        | Statement::Deallocate { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => None,
        Statement::Explain { statement, .. } => refused(statement),
        Statement::Set(set) => refused_setting(set),
        other => Some(statement_kind(other)),
    }
}

/// `SET datafusion.…` is refused; Postgres session settings are answered.
fn refused_setting(set: &Set) -> Option<String> {
    let Set::SingleAssignment { variable, .. } = set else {
        return None;
    };
    let name = variable.to_string();
    name.to_ascii_lowercase()
        .starts_with(SERVER_SETTINGS_PREFIX)
        .then(|| format!("SET {name}"))
}

/// The leading keywords of a statement (`INSERT`, `CREATE TABLE`), for messages.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second]
            if matches!(
                first.to_ascii_uppercase().as_str(),
                "CREATE" | "DROP" | "ALTER"
            ) =>
        {
            format!("{first} {second}")
        }
        [first, ..] => (*first).to_owned(),
        [] => "this statement".to_owned(),
    }
}

/// The command tag of a savepoint statement, which is answered without effect:
/// like `BEGIN`, it only shapes the transactions Quarry does not have (psycopg
/// and SQLAlchemy open savepoints around their type lookups).
fn savepoint_tag(statement: &Statement) -> Option<Tag> {
    match statement {
        Statement::Savepoint { .. } => Some(Tag::new("SAVEPOINT")),
        Statement::ReleaseSavepoint { .. } => Some(Tag::new("RELEASE")),
        _ => None,
    }
}

/// The first hook of every connection: refuses statements the guardrails stop
/// before datafusion-postgres's own hooks or its planner see them.
#[derive(Debug, Default)]
pub(crate) struct Guardrails;

#[async_trait]
impl QueryHook for Guardrails {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Err(error) = check_statement(statement) {
            return Some(Err(error));
        }
        savepoint_tag(statement).map(|tag| Ok(Response::Execution(tag)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if let Err(error) = check_statement(statement) {
            return Some(Err(error));
        }
        savepoint_tag(statement).map(|_| {
            Ok(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            }))
        })
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // The guardrails ran when the statement was parsed.
        savepoint_tag(statement).map(|tag| Ok(Response::Execution(tag)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion_postgres::pgwire::error::PgWireError;

    /// The SQLSTATE of a refusal.
    fn code_of(error: PgWireError) -> String {
        match error {
            PgWireError::UserError(info) => info.code,
            other => panic!("not a user error: {other:?}"),
        }
    }

    fn statement(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn queries_and_session_statements_pass() {
        for sql in [
            "SELECT 1",
            "EXPLAIN SELECT 1",
            "SET extra_float_digits = 3",
            "SET TIME ZONE 'UTC'",
            "SHOW transaction_isolation",
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT s1",
            "RELEASE SAVEPOINT s1",
        ] {
            assert!(check_statement(&statement(sql)).is_ok(), "{sql}");
        }
    }

    #[test]
    fn writes_and_server_settings_are_refused_naming_them() {
        for (sql, named) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("CREATE TABLE t (a int)", "CREATE TABLE"),
            ("DROP VIEW v", "DROP VIEW"),
            ("EXPLAIN DELETE FROM t", "DELETE"),
            (
                "SET datafusion.runtime.memory_limit = '1T'",
                "SET datafusion.runtime.memory_limit",
            ),
        ] {
            let Err(PgWireError::UserError(info)) = check_statement(&statement(sql)) else {
                panic!("{sql} passed");
            };
            assert_eq!(info.code, "25006", "{sql}");
            assert!(info.message.contains(named), "{sql}: {}", info.message);
        }
    }

    #[test]
    fn chains_beyond_the_limits_are_refused_as_too_complex() {
        let deep = format!(
            "SELECT {}",
            vec!["1"; query_limits::MAX_EXPRESSION_DEPTH + 1].join("+")
        );
        assert_eq!(
            code_of(check_statement(&statement(&deep)).unwrap_err()),
            "54001"
        );
        let long = format!(
            "SELECT {}",
            vec!["1"; query_limits::MAX_OPERATORS + 2].join("+")
        );
        assert_eq!(code_of(check_text(&long).unwrap_err()), "54001");
    }
}
