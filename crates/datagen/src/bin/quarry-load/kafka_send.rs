//! `quarry-load --to kafka`: produces the Events API batch bodies as Kafka
//! records to `--kafka-topic` (created with `--kafka-partitions` partitions
//! when missing), spread round-robin over its partitions, each with a
//! `dataset` header, for a Quarry Kafka source with
//! `format = "honeycomb_events"` and `dataset_header = "dataset"`; then waits
//! until Quarry reports the rows stored, like `--to mqtt`.

use std::collections::BTreeMap;

use quarry_datagen::{DatagenError, Generator};
use rskafka::client::ClientBuilder;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;

use crate::args::Args;
use crate::stream_rows::StreamRun;
use crate::summary::Summary;

/// The header naming each record's dataset.
pub const DATASET_HEADER: &str = "dataset";
/// Records sent in one produce request.
const RECORDS_PER_PRODUCE: usize = 16;

fn kafka_error(error: impl std::fmt::Display) -> DatagenError {
    DatagenError::Http(format!("kafka: {error}"))
}

/// Produces every event of `generator` and waits until Quarry stored them.
pub async fn send_all(args: &Args, generator: Generator) -> Result<Summary, DatagenError> {
    let batch_size = args.batch_size();
    if args.kafka_partitions < 1 {
        return Err(DatagenError::InvalidConfig(
            "--kafka-partitions must be at least 1".into(),
        ));
    }
    let client = ClientBuilder::new(args.kafka_brokers.clone())
        .client_id("quarry-load")
        .build()
        .await
        .map_err(kafka_error)?;
    let topic = args.kafka_topic.clone();
    match client
        .controller_client()
        .map_err(kafka_error)?
        .create_topic(topic.clone(), args.kafka_partitions, 1, 10_000)
        .await
    {
        Ok(()) => {}
        Err(KafkaError::ServerError {
            protocol_error: ProtocolError::TopicAlreadyExists,
            ..
        }) => {}
        Err(error) => return Err(kafka_error(error)),
    }
    let mut partitions: Vec<PartitionClient> = Vec::new();
    for partition in 0..args.kafka_partitions {
        partitions.push(
            client
                .partition_client(topic.clone(), partition, UnknownTopicHandling::Retry)
                .await
                .map_err(kafka_error)?,
        );
    }
    let run = StreamRun::begin(args, &generator).await?;
    let mut bodies = Vec::new();
    let produced = crate::send::produce(generator, batch_size, false, |prepared| {
        bodies.push(prepared);
        true
    })?;
    let mut pending: Vec<Vec<Record>> = vec![Vec::new(); partitions.len()];
    for (index, prepared) in bodies.into_iter().enumerate() {
        run.sent(prepared.body.len());
        let partition = index % partitions.len();
        pending[partition].push(Record {
            key: None,
            value: Some(prepared.body.to_vec()),
            headers: BTreeMap::from([(
                DATASET_HEADER.to_owned(),
                prepared.dataset.as_bytes().to_vec(),
            )]),
            timestamp: chrono::Utc::now(),
        });
        if pending[partition].len() >= RECORDS_PER_PRODUCE {
            let records = std::mem::take(&mut pending[partition]);
            partitions[partition]
                .produce(records, Compression::NoCompression)
                .await
                .map_err(kafka_error)?;
        }
    }
    for (partition, records) in pending.into_iter().enumerate() {
        partitions[partition]
            .produce(records, Compression::NoCompression)
            .await
            .map_err(kafka_error)?;
    }
    let deadline = run.deadline();
    run.finish(produced, partitions.len(), deadline).await
}
