//! Simple and extended queries: datafusion-postgres's handlers, run on the
//! connection's own session after Quarry's checks.
//!
//! Each query's first row is computed before the query's reply starts, so an
//! error of execution (the memory pool, a failed scan) is an `ErrorResponse`
//! rather than a cut-off result, and a cancel request, which pgwire honours
//! while the reply is being prepared, stops the bulk of an aggregation's work.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, Type};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, StreamExt, stream};

use super::errors;
use super::guard::check_text;
use super::session::ConnectionSession;

/// A prepared statement: its text and, unless it is empty, its parsed form and plan.
type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// The session of an authenticated connection.
fn session_of<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<DfSessionService>> {
    client
        .session_extensions()
        .get::<ConnectionSession>()
        .map(|session| Arc::clone(&session.0))
        .ok_or_else(errors::no_session)
}

/// Computes a query reply's first row now (see the module comment).
async fn first_row_now(response: Response) -> PgWireResult<Response> {
    let Response::Query(mut query) = response else {
        return Ok(response);
    };
    let rows = std::mem::replace(&mut query.data_rows, Box::pin(stream::empty()));
    let (first, rest) = rows.into_future().await;
    let first = first.transpose()?;
    query.data_rows = Box::pin(stream::iter(first.map(Ok)).chain(rest));
    Ok(Response::Query(query))
}

/// Runs the queries of every connection, each on the connection's session.
pub(crate) struct Queries {
    parser: Arc<StatementParser>,
}

impl Queries {
    pub(crate) fn new() -> Self {
        // Describing a parsed statement needs only its plan, not a session.
        let describer = DfSessionService::new(Arc::new(SessionContext::new()));
        Queries {
            parser: Arc::new(StatementParser {
                describer: describer.query_parser(),
            }),
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_text(query)?;
        let session = session_of(client)?;
        let responses = SimpleQueryHandler::do_query(session.as_ref(), client, query).await?;
        let mut ready = Vec::with_capacity(responses.len());
        for response in responses {
            ready.push(first_row_now(response).await?);
        }
        Ok(ready)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Statement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        let response =
            ExtendedQueryHandler::do_query(session.as_ref(), client, portal, max_rows).await?;
        first_row_now(response).await
    }
}

/// Parses a statement of the extended protocol on the connection's session,
/// after the shape check of its text.
pub(crate) struct StatementParser {
    describer: Arc<Parser>,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        check_text(sql)?;
        let session = session_of(client)?;
        session.query_parser().parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, statement: &Statement) -> PgWireResult<Vec<Type>> {
        self.describer.get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.describer.get_result_schema(statement, column_format)
    }
}
