//! Arrow Flight SQL on the gRPC port: ADBC, JDBC and other Flight SQL clients
//! run SQL over the datasets of their key's environment and get Arrow back,
//! streamed (docs/postgres-and-flight-sql.md).
//!
//! Catalog commands (`GetCatalogs`, `GetDbSchemas`, `GetTables`,
//! `GetTableTypes`) list the environment's datasets. Statements are stateless: a ticket or prepared-statement handle carries the
//! SQL text, and each call authenticates again, so a handle grants nothing a
//! key does not. Every statement runs through [`QueryEngine::sql`], the path of
//! SQL over HTTP, with its functions, guardrails and read-only check.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::common::TableReference;
use futures::{Stream, TryStreamExt, stream};
use prost::Message;
use quarry_engine::{CATALOG_NAME, QueryEngine, SCHEMA_NAME};
use quarry_segment_store::DEFAULT_ENVIRONMENT;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::auth::{Auth, TEAM_HEADER};
use crate::error::ApiError;
use crate::otlp::grpc::status_of;

/// The header Flight SQL clients put the key in (`Bearer <key>`); ADBC sets it
/// with `adbc.flight.sql.authorization_header`.
const AUTHORIZATION_HEADER: &str = "authorization";
/// The scheme of the authorization header's value.
const BEARER: &str = "Bearer ";

/// The type of every table (dataset) in `GetTables`.
const TABLE_TYPE: &str = "TABLE";

/// [`SQL_INFO`], or why it is missing.
fn sql_info() -> Result<&'static SqlInfoData, Status> {
    SQL_INFO
        .as_ref()
        .ok_or_else(|| Status::internal("the server's SQL info did not build"))
}

/// What `GetSqlInfo` answers: the server's name and version, read-only.
static SQL_INFO: LazyLock<Option<SqlInfoData>> = LazyLock::new(|| {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "Quarry");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    builder.build().ok()
});

/// The Flight SQL service.
pub struct QuarryFlightSql {
    auth: Arc<Auth>,
    engine: Arc<QueryEngine>,
}

impl QuarryFlightSql {
    /// The service over `engine`, authenticating with `auth`.
    pub fn new(auth: Arc<Auth>, engine: Arc<QueryEngine>) -> Self {
        QuarryFlightSql { auth, engine }
    }

    /// The service as a tonic server.
    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
    }

    /// The environment of a call: the key of its `authorization: Bearer <key>`
    /// header (or `x-honeycomb-team`, as on the other ports).
    fn environment(&self, metadata: &MetadataMap) -> Result<String, Status> {
        if !self.auth.requires_key() {
            return Ok(DEFAULT_ENVIRONMENT.to_owned());
        }
        let header = |name: &str| metadata.get(name).and_then(|value| value.to_str().ok());
        let key = header(AUTHORIZATION_HEADER)
            .map(|value| value.strip_prefix(BEARER).unwrap_or(value).trim())
            .or_else(|| header(TEAM_HEADER));
        key.and_then(|key| self.auth.environment_of_key(key))
            .map(str::to_owned)
            .ok_or_else(|| status_of(&ApiError::Unauthorized))
    }

    /// The result schema of `sql`, planned (not run) in `environment`.
    async fn schema_of(&self, environment: &str, sql: &str) -> Result<Arc<Schema>, Status> {
        let stream = self
            .engine
            .sql(environment, sql)
            .await
            .map_err(|error| status_of(&ApiError::from(error)))?;
        Ok(stream.schema())
    }

    /// A `FlightInfo` of `sql`'s result, read back with `ticket`.
    async fn flight_info(
        &self,
        metadata: &MetadataMap,
        sql: &str,
        ticket: Ticket,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let environment = self.environment(metadata)?;
        let schema = self.schema_of(&environment, sql).await?;
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|error| Status::internal(format!("cannot encode the schema: {error}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// Runs `sql` and streams its result as Flight data.
    async fn run(&self, metadata: &MetadataMap, sql: &str) -> Result<Response<DataStream>, Status> {
        let environment = self.environment(metadata)?;
        let batches = self
            .engine
            .sql(&environment, sql)
            .await
            .map_err(|error| status_of(&ApiError::from(error)))?;
        let schema = batches.schema();
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches.map_err(|error| FlightError::ExternalError(Box::new(error))))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(data)))
    }
}

/// What `DoGet` streams.
type DataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The `FlightInfo` of a metadata command: its result schema, and the command
/// itself as the ticket to `DoGet` it with.
fn metadata_info(
    command: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|error| Status::internal(format!("cannot encode the schema: {error}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// A metadata command's one-batch answer, as Flight data.
fn metadata_stream<E>(
    schema: Arc<Schema>,
    batch: Result<RecordBatch, E>,
) -> Result<Response<DataStream>, Status>
where
    FlightError: From<E>,
{
    let batch = batch.map_err(FlightError::from);
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::once(async { batch }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(data)))
}

/// The SQL text a ticket or handle carries.
fn sql_of(handle: &[u8]) -> Result<String, Status> {
    String::from_utf8(handle.to_vec())
        .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8 SQL text"))
}

#[tonic::async_trait]
impl FlightSqlService for QuarryFlightSql {
    type FlightService = QuarryFlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = TicketStatementQuery {
            statement_handle: query.query.clone().into(),
        };
        let ticket = Ticket::new(ticket.as_any().encode_to_vec());
        let (metadata, _, descriptor) = request.into_parts();
        self.flight_info(&metadata, &query.query, ticket, descriptor)
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        let sql = sql_of(&ticket.statement_handle)?;
        self.run(request.metadata(), &sql).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let environment = self.environment(request.metadata())?;
        let schema = self.schema_of(&environment, &query.query).await?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|error| Status::internal(format!("cannot encode the schema: {error}")))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles hold no server state.
        Ok(())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let sql = sql_of(&query.prepared_statement_handle)?;
        let ticket = Ticket::new(query.as_any().encode_to_vec());
        let (metadata, _, descriptor) = request.into_parts();
        self.flight_info(&metadata, &sql, ticket, descriptor).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        let sql = sql_of(&query.prepared_statement_handle)?;
        self.run(request.metadata(), &sql).await
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.environment(request.metadata())?;
        let schema = query.clone().into_builder(sql_info()?).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.environment(request.metadata())?;
        let builder = query.into_builder(sql_info()?);
        metadata_stream(builder.schema(), builder.build())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.environment(request.metadata())?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.environment(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG_NAME);
        metadata_stream(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.environment(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.environment(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG_NAME, SCHEMA_NAME);
        metadata_stream(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.environment(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        let environment = self.environment(request.metadata())?;
        let with_schemas = query.include_schema;
        let mut builder = query.into_builder();
        let session = self
            .engine
            .session(&environment)
            .map_err(|error| status_of(&ApiError::from(error)))?;
        let names = self
            .engine
            .dataset_names(&environment)
            .await
            .map_err(|error| status_of(&ApiError::from(error)))?;
        for name in names {
            // The schema is read only when asked for: it builds a snapshot.
            let schema = if with_schemas {
                match session
                    .table_provider(TableReference::bare(name.as_str()))
                    .await
                {
                    Ok(table) => table.schema(),
                    // Dropped since it was listed.
                    Err(_) => continue,
                }
            } else {
                Arc::new(Schema::empty())
            };
            builder
                .append(CATALOG_NAME, SCHEMA_NAME, &name, TABLE_TYPE, &schema)
                .map_err(|error| Status::internal(error.to_string()))?;
        }
        metadata_stream(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.environment(request.metadata())?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.environment(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(TABLE_TYPE);
        metadata_stream(builder.schema(), builder.build())
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DataStream>, Status> {
        Err(Status::unimplemented(format!(
            "Quarry's Flight SQL does not serve {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
