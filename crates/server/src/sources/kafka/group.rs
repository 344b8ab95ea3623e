//! Committing a source's durable offsets to its consumer group, so the lag
//! tools people already use (`kafka-consumer-groups`, Burrow, a Grafana
//! panel) see Quarry like any other consumer.
//!
//! The group's offsets are only ever written, never read: the store's
//! positions are the truth (see the partition consumer). Commits are a
//! "simple consumer" commit (generation -1, no member), which brokers accept
//! for a group with no active members. rskafka has no group API, so the two
//! requests are encoded by kafka-protocol over one plain connection.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetCommitRequest,
    OffsetCommitResponse, RequestHeader, ResponseHeader, TopicName,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The FindCoordinator API's key.
const FIND_COORDINATOR_KEY: i16 = 10;
/// The OffsetCommit API's key.
const OFFSET_COMMIT_KEY: i16 = 8;
/// FindCoordinator version used (every broker since 0.11 answers it).
const FIND_COORDINATOR_VERSION: i16 = 1;
/// OffsetCommit version used (the oldest Kafka 4 still accepts).
const OFFSET_COMMIT_VERSION: i16 = 2;
/// Largest response read.
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition's next offset, by (topic, partition).
pub type Offsets = BTreeMap<(String, i32), i64>;

/// A connection to a group's coordinator.
pub struct GroupCommitter {
    brokers: Vec<String>,
    group: String,
    coordinator: Option<TcpStream>,
    correlation_id: i32,
}

impl GroupCommitter {
    /// A committer for `group`, finding its coordinator through `brokers`.
    pub fn new(brokers: Vec<String>, group: String) -> GroupCommitter {
        GroupCommitter {
            brokers,
            group,
            coordinator: None,
            correlation_id: 0,
        }
    }

    /// Commits `offsets` to the group; on failure the next call starts over
    /// with a new coordinator lookup.
    pub async fn commit(&mut self, offsets: &Offsets) -> Result<(), String> {
        let committed = tokio::time::timeout(REQUEST_TIMEOUT * 3, self.try_commit(offsets))
            .await
            .unwrap_or_else(|_| Err("the group coordinator did not answer in time".into()));
        if committed.is_err() {
            self.coordinator = None;
        }
        committed
    }

    async fn try_commit(&mut self, offsets: &Offsets) -> Result<(), String> {
        if self.coordinator.is_none() {
            self.coordinator = Some(self.find_coordinator().await?);
        }
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), next) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*next),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_string(String::new()))
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let Some(stream) = self.coordinator.as_mut() else {
            return Err("no group coordinator".into());
        };
        let response: OffsetCommitResponse = call(
            stream,
            OFFSET_COMMIT_KEY,
            &request,
            OFFSET_COMMIT_VERSION,
            correlation_id,
        )
        .await?;
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error_code != 0 {
                    return Err(format!(
                        "committing {}/{}: Kafka error code {}",
                        topic.name.0.as_str(),
                        partition.partition_index,
                        partition.error_code
                    ));
                }
            }
        }
        Ok(())
    }

    /// Asks the brokers, in turn, where the group's coordinator is.
    async fn find_coordinator(&mut self) -> Result<TcpStream, String> {
        let mut last_error = "no brokers".to_owned();
        for broker in self.brokers.clone() {
            let mut stream = match connect(&broker).await {
                Ok(stream) => stream,
                Err(error) => {
                    last_error = error;
                    continue;
                }
            };
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(self.group.clone()))
                .with_key_type(0);
            self.correlation_id = self.correlation_id.wrapping_add(1);
            let response: FindCoordinatorResponse = match call(
                &mut stream,
                FIND_COORDINATOR_KEY,
                &request,
                FIND_COORDINATOR_VERSION,
                self.correlation_id,
            )
            .await
            {
                Ok(response) => response,
                Err(error) => {
                    last_error = error;
                    continue;
                }
            };
            if response.error_code != 0 {
                last_error = format!(
                    "finding the coordinator of group {:?}: Kafka error code {}",
                    self.group, response.error_code
                );
                continue;
            }
            let address = format!("{}:{}", response.host.as_str(), response.port);
            return connect(&address).await;
        }
        Err(last_error)
    }
}

async fn connect(address: &str) -> Result<TcpStream, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(format!("connecting to {address}: {error}")),
        Err(_) => Err(format!("connecting to {address}: timed out")),
    }
}

/// Sends one request (API `api_key`) and reads its response.
async fn call<Req, Resp>(
    stream: &mut TcpStream,
    api_key: i16,
    request: &Req,
    version: i16,
    correlation_id: i32,
) -> Result<Resp, String>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string("quarry".to_owned())));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, Req::header_version(version))
        .map_err(|error| format!("encoding a request header: {error}"))?;
    request
        .encode(&mut body, version)
        .map_err(|error| format!("encoding a request: {error}"))?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(body.len() as i32);
    frame.put(body);
    let io = async {
        stream.write_all(&frame).await?;
        let length = stream.read_i32().await?;
        let length = usize::try_from(length)
            .ok()
            .filter(|length| *length <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| std::io::Error::other(format!("a response of {length} bytes")))?;
        let mut response = vec![0; length];
        stream.read_exact(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, io)
        .await
        .map_err(|_| "the broker did not answer in time".to_owned())?
        .map_err(|error| format!("talking to the broker: {error}"))?;
    let mut response = Bytes::from(response);
    let header = ResponseHeader::decode(&mut response, Resp::header_version(version))
        .map_err(|error| format!("decoding a response header: {error}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "a response to request {} arrived for request {correlation_id}",
            header.correlation_id
        ));
    }
    let decoded = Resp::decode(&mut response, version)
        .map_err(|error| format!("decoding a response: {error}"))?;
    if response.has_remaining() {
        tracing::debug!(
            left = response.remaining(),
            "bytes left after a Kafka response"
        );
    }
    Ok(decoded)
}
