//! The ingest node's side: its unsealed rows as Arrow Flight streams.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use quarry_engine::scan::pad_to_schema;
use quarry_segment_store::{BufferSnapshot, Store};
use tonic::{Request, Response, Status, Streaming};

use super::wire::{BufferHeader, BufferTicket, GROUP_SEQ_COLUMN};

type FlightStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Serves this node's unsealed rows: `DoGet` streams one dataset's,
/// `ListFlights` names the datasets of an environment that have any.
#[derive(Clone)]
pub struct BufferFlight {
    store: Arc<Store>,
}

impl BufferFlight {
    /// The service over `store`'s buffers.
    pub fn new(store: Arc<Store>) -> Self {
        BufferFlight { store }
    }

    /// The gRPC service to mount on the cluster port.
    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
    }
}

/// `buffer`'s groups as batches of one schema: the dataset's columns (absent
/// ones null) and the group's highest sequence.
fn tagged_batches(buffer: &BufferSnapshot) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    let columns = buffer.schema.arrow_schema();
    let mut fields: Vec<Arc<Field>> = columns.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        GROUP_SEQ_COLUMN,
        DataType::UInt64,
        false,
    )));
    let tagged = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for group in &buffer.groups {
        for batch in &group.batches {
            let padded = pad_to_schema(batch, &columns)
                .map_err(|error| Status::internal(format!("cannot read a buffer: {error}")))?;
            let mut arrays: Vec<ArrayRef> = padded.columns().to_vec();
            arrays.push(Arc::new(UInt64Array::from_value(
                group.max_seq,
                batch.num_rows(),
            )));
            let batch = RecordBatch::try_new(Arc::clone(&tagged), arrays)
                .map_err(|error| Status::internal(format!("cannot read a buffer: {error}")))?;
            batches.push(batch);
        }
    }
    Ok((tagged, batches))
}

#[tonic::async_trait]
impl FlightService for BufferFlight {
    type HandshakeStream = FlightStream<HandshakeResponse>;
    type ListFlightsStream = FlightStream<FlightInfo>;
    type DoGetStream = FlightStream<FlightData>;
    type DoPutStream = FlightStream<PutResult>;
    type DoExchangeStream = FlightStream<FlightData>;
    type DoActionStream = FlightStream<arrow_flight::Result>;
    type ListActionsStream = FlightStream<ActionType>;

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket: BufferTicket = serde_json::from_slice(&request.into_inner().ticket)
            .map_err(|error| Status::invalid_argument(format!("bad buffer ticket: {error}")))?;
        // One snapshot: the sealed sequence and the groups are consistent.
        let buffer = self
            .store
            .buffer_snapshot(&ticket.env, &ticket.dataset)
            .unwrap_or_default();
        let header = BufferHeader {
            node: self.store.node_id().to_owned(),
            sealed_seq: buffer.sealed_seq,
            schema: buffer.schema.clone(),
        };
        let header = serde_json::to_vec(&header)
            .map_err(|error| Status::internal(format!("cannot encode a header: {error}")))?;
        let (schema, batches) = tagged_batches(&buffer)?;
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_metadata(header.into())
            .build(stream::iter(batches.into_iter().map(Ok)))
            .map_err(Status::from);
        Ok(Response::new(encoded.boxed()))
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let criteria = request.into_inner();
        let env = std::str::from_utf8(&criteria.expression)
            .map_err(|_| Status::invalid_argument("the criteria must name an environment"))?
            .to_owned();
        let flights: Vec<Result<FlightInfo, Status>> = self
            .store
            .datasets(&env)
            .into_iter()
            .filter(|info| {
                self.store
                    .buffer_snapshot(&env, &info.name)
                    .is_some_and(|buffer| !buffer.groups.is_empty())
            })
            .map(|info| {
                Ok(FlightInfo::new()
                    .with_descriptor(FlightDescriptor::new_path(vec![env.clone(), info.name])))
            })
            .collect();
        Ok(Response::new(stream::iter(flights).boxed()))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "the buffer service needs no handshake",
        ))
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("ask DoGet with a buffer ticket"))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("ask DoGet with a buffer ticket"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("the schema comes with DoGet"))
    }

    async fn do_put(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented("the buffer service is read-only"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("the buffer service is read-only"))
    }

    async fn do_action(
        &self,
        _request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("the buffer service has no actions"))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(stream::empty().boxed()))
    }
}
