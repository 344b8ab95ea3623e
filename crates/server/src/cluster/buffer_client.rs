//! The query node's side: asks every ingest node for its unsealed rows.

use std::time::Duration;

use arrow::array::{Array, RecordBatch, UInt64Array};
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Criteria, Ticket};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use quarry_engine::{NodeBuffer, QueryError, RemoteBuffers};
use quarry_segment_store::{BufferGroup, BufferSnapshot};
use tonic::transport::{Channel, Endpoint};
use url::Url;

use super::wire::{BufferHeader, BufferTicket, GROUP_SEQ_COLUMN};

/// How long connecting to an ingest node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one node's answer may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest message an answer may hold (one batch part; the encoder splits
/// batches at 2 MiB, but one row may be larger).
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The ingest nodes of a cluster, asked over Arrow Flight.
pub struct FlightBuffers {
    nodes: Vec<(Url, Channel)>,
    /// This node's id: when it is an ingest node too, its rows are local.
    own_node: String,
}

impl FlightBuffers {
    /// Clients of `nodes` (their cluster ports, `http://host:port`); connections
    /// open when first used.
    pub fn new(nodes: &[Url], own_node: Option<&str>) -> Result<Self, String> {
        let nodes = nodes
            .iter()
            .map(|url| {
                let endpoint = Endpoint::from_shared(url.to_string())
                    .map_err(|error| format!("{url}: {error}"))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(REQUEST_TIMEOUT)
                    .tcp_nodelay(true);
                Ok((url.clone(), endpoint.connect_lazy()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(FlightBuffers {
            nodes,
            own_node: own_node.unwrap_or_default().to_owned(),
        })
    }

    fn client(channel: &Channel) -> FlightServiceClient<Channel> {
        FlightServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn unavailable(url: &Url, error: impl std::fmt::Display) -> QueryError {
    QueryError::IngestUnavailable(format!("ingest node {url}: {error}"))
}

/// One node's answer for one dataset: its header and its rows, grouped.
async fn fetch_one(
    url: &Url,
    channel: &Channel,
    ticket: &BufferTicket,
) -> Result<NodeBuffer, QueryError> {
    let ticket = serde_json::to_vec(ticket).map_err(|error| unavailable(url, error))?;
    let response = FlightBuffers::client(channel)
        .do_get(Ticket::new(ticket))
        .await
        .map_err(|status| unavailable(url, status.message()))?;
    let mut decoder = FlightDataDecoder::new(response.into_inner().map_err(FlightError::from));
    let mut header: Option<BufferHeader> = None;
    let mut groups: Vec<BufferGroup> = Vec::new();
    while let Some(message) = decoder.next().await {
        let message = message.map_err(|error| unavailable(url, error))?;
        match message.payload {
            DecodedPayload::Schema(_) => {
                let mut read: BufferHeader = serde_json::from_slice(&message.inner.app_metadata)
                    .map_err(|error| unavailable(url, format!("bad header: {error}")))?;
                read.schema.reindex();
                header = Some(read);
            }
            DecodedPayload::RecordBatch(batch) => {
                let (max_seq, rows) = untagged(batch).map_err(|error| unavailable(url, error))?;
                match groups.last_mut() {
                    Some(group) if group.max_seq == max_seq => group.batches.push(rows),
                    _ => groups.push(BufferGroup {
                        max_seq,
                        batches: vec![rows],
                    }),
                }
            }
            DecodedPayload::None => {}
        }
    }
    let header = header.ok_or_else(|| unavailable(url, "the answer had no header"))?;
    Ok(NodeBuffer {
        node: header.node,
        buffer: BufferSnapshot {
            schema: header.schema,
            sealed_seq: header.sealed_seq,
            groups,
        },
    })
}

/// A batch without its group column, and the group's highest sequence.
fn untagged(batch: RecordBatch) -> Result<(u64, RecordBatch), String> {
    let index = batch
        .schema()
        .index_of(GROUP_SEQ_COLUMN)
        .map_err(|_| format!("a batch without {GROUP_SEQ_COLUMN}"))?;
    let seq = batch
        .column(index)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .filter(|seqs| !seqs.is_empty() && seqs.null_count() == 0)
        .map(|seqs| seqs.value(0))
        .ok_or_else(|| format!("a batch with a bad {GROUP_SEQ_COLUMN}"))?;
    let mut batch = batch;
    batch.remove_column(index);
    Ok((seq, batch))
}

#[async_trait]
impl RemoteBuffers for FlightBuffers {
    async fn fetch(&self, env: &str, dataset: &str) -> Result<Vec<NodeBuffer>, QueryError> {
        let ticket = BufferTicket {
            env: env.to_owned(),
            dataset: dataset.to_owned(),
        };
        let answers = futures::future::try_join_all(
            self.nodes
                .iter()
                .map(|(url, channel)| fetch_one(url, channel, &ticket)),
        )
        .await?;
        Ok(answers
            .into_iter()
            .filter(|answer| answer.node != self.own_node)
            .collect())
    }

    async fn datasets(&self, env: &str) -> Result<Vec<String>, QueryError> {
        let lists = self.nodes.iter().map(|(url, channel)| async move {
            let response = FlightBuffers::client(channel)
                .list_flights(Criteria {
                    expression: env.as_bytes().to_vec().into(),
                })
                .await
                .map_err(|status| unavailable(url, status.message()))?;
            let flights: Vec<_> = response
                .into_inner()
                .try_collect()
                .await
                .map_err(|status| unavailable(url, status.message()))?;
            Ok::<_, QueryError>(
                flights
                    .into_iter()
                    .filter_map(|flight| flight.flight_descriptor?.path.get(1).cloned())
                    .collect::<Vec<String>>(),
            )
        });
        let lists = futures::future::try_join_all(lists).await?;
        Ok(lists.into_iter().flatten().collect())
    }
}
