//! A fetch of Kafka records -> the parts of one store transaction: each
//! record's rows, or its dead letter when it cannot be decoded (a poison
//! message never blocks its partition).

use bytes::Bytes;
use rskafka::record::RecordAndOffset;

use crate::config::{DatasetRule, StreamFormat, StreamSignal};
use crate::error::ApiError;
use crate::ingest_service::{IngestService, Prepared};
use crate::sources::dead_letter::{DeadLetter, raw_cap};
use crate::sources::format;
use crate::sources::status::SourceReporter;

/// What shapes a Kafka source's records into requests.
#[derive(Clone)]
pub struct RecordShape {
    /// What the records hold.
    pub format: StreamFormat,
    /// The OTLP signal of the `otlp_*` formats.
    pub signal: StreamSignal,
    /// Where the rows go.
    pub rule: DatasetRule,
    /// The environment rows go to.
    pub environment: String,
    /// Where undecodable records go.
    pub dead_letter_dataset: String,
}

/// One record's share of a transaction.
pub struct RecordParts {
    /// The record's offset.
    pub offset: i64,
    /// Its rows (some may also be refused; see `dead_letter`).
    pub rows: Option<Prepared>,
    /// Its dead letter, when it (or part of it) cannot be stored.
    pub dead_letter: Option<Prepared>,
}

impl RecordParts {
    /// The record's prepared requests: its rows and its dead letter.
    pub fn prepared(&self) -> impl Iterator<Item = &Prepared> {
        self.rows.iter().chain(self.dead_letter.iter())
    }
}

/// Prepares `record` of `topic`/`partition`: its rows, its dead letter, or
/// both (a batch whose bad items were refused keeps the whole record beside
/// the good rows). An `Err` is the service's own failure, not the record's.
pub async fn prepare_record(
    ingest: &IngestService,
    shape: &RecordShape,
    reporter: &SourceReporter,
    topic: &str,
    partition: i32,
    record: &RecordAndOffset,
) -> Result<RecordParts, ApiError> {
    reporter.message();
    let body = Bytes::from(record.record.value.clone().unwrap_or_default());
    let mut parts = RecordParts {
        offset: record.offset,
        rows: None,
        dead_letter: None,
    };
    let refusal = match rows_of(ingest, shape, record, body.clone()).await? {
        Ok(prepared) => {
            let refusal = (prepared.rejected() > 0).then(|| {
                (
                    "decode",
                    format!(
                        "{} item(s) of the message were refused ({} rows stored): {}",
                        prepared.rejected(),
                        prepared.rows(),
                        prepared.first_error().unwrap_or_default()
                    ),
                )
            });
            parts.rows = Some(prepared);
            refusal
        }
        Err(refusal) => Some(refusal),
    };
    let Some((kind, error)) = refusal else {
        return Ok(parts);
    };
    reporter.error(kind, &error);
    tracing::warn!(
        source = reporter.name(),
        topic,
        partition,
        offset = record.offset,
        bytes = body.len(),
        %error,
        "a Kafka message cannot be stored; writing it to the dead-letter dataset {}",
        shape.dead_letter_dataset
    );
    let limits = ingest.limits();
    let letter = DeadLetter {
        source: reporter.name(),
        transport: "kafka",
        topic,
        partition: Some(partition),
        offset: Some(record.offset),
        error,
        raw: &body,
        raw_cap: raw_cap(limits.max_body_bytes, limits.max_event_bytes),
    };
    let request = letter.request(&shape.environment, &shape.dead_letter_dataset);
    match ingest.prepare(request).await {
        Ok(prepared) => parts.dead_letter = Some(prepared),
        Err(error) if is_internal(&error) => return Err(error),
        Err(error) => {
            tracing::error!(source = reporter.name(), %error, "the dead-letter row itself was refused; the message is dropped");
        }
    }
    Ok(parts)
}

/// The record's rows, `Ok(Err((kind, why)))` when the record cannot be stored.
async fn rows_of(
    ingest: &IngestService,
    shape: &RecordShape,
    record: &RecordAndOffset,
    body: Bytes,
) -> Result<Result<Prepared, (&'static str, String)>, ApiError> {
    let max_body_bytes = ingest.limits().max_body_bytes;
    if record.record.value.is_none() {
        return Ok(Err(("decode", "the message has no value".into())));
    }
    if body.len() > max_body_bytes {
        return Ok(Err((
            "oversize",
            format!(
                "the message has {} bytes, more than the {max_body_bytes} of limits.max_body_bytes",
                body.len()
            ),
        )));
    }
    let dataset = match dataset_of(shape, record) {
        Ok(dataset) => dataset,
        Err(why) => return Ok(Err(("decode", why))),
    };
    let request = match format::request(
        shape.format,
        shape.signal,
        &shape.environment,
        dataset,
        body,
    ) {
        Ok(request) => request,
        Err(error) => return Ok(Err(("decode", error.to_string()))),
    };
    match ingest.prepare(request).await {
        Ok(prepared) => Ok(Ok(prepared)),
        Err(error) if is_internal(&error) => Err(error),
        Err(error) => Ok(Err(("decode", error.to_string()))),
    }
}

/// The record's dataset by the source's rule (`None`: OTLP rows take their
/// service's).
fn dataset_of(shape: &RecordShape, record: &RecordAndOffset) -> Result<Option<String>, String> {
    match &shape.rule {
        DatasetRule::Fixed(dataset) => Ok(Some(dataset.clone())),
        DatasetRule::ServiceName | DatasetRule::TopicLevel(_) => Ok(None),
        DatasetRule::Header(header) => match record.record.headers.get(header) {
            Some(value) => String::from_utf8(value.clone())
                .map(Some)
                .map_err(|_| format!("the {header:?} header is not UTF-8")),
            None if shape.format.is_otlp() => Ok(None),
            None => Err(format!(
                "the message has no {header:?} header naming its dataset"
            )),
        },
    }
}

/// Whether an error is the service's (retry) rather than the message's.
fn is_internal(error: &ApiError) -> bool {
    matches!(error, ApiError::Internal(_) | ApiError::Unavailable(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::record::Record;
    use std::collections::BTreeMap;

    fn record(headers: &[(&str, &[u8])]) -> RecordAndOffset {
        RecordAndOffset {
            record: Record {
                key: None,
                value: Some(b"{}".to_vec()),
                headers: headers
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
                    .collect::<BTreeMap<_, _>>(),
                timestamp: chrono::Utc::now(),
            },
            offset: 4,
        }
    }

    fn shape(format: StreamFormat, rule: DatasetRule) -> RecordShape {
        RecordShape {
            format,
            signal: StreamSignal::Traces,
            rule,
            environment: "default".into(),
            dead_letter_dataset: "dead".into(),
        }
    }

    #[test]
    fn a_records_dataset_follows_the_sources_rule() {
        let header = DatasetRule::Header("dataset".into());
        let events = shape(StreamFormat::JsonLines, header.clone());
        assert_eq!(
            dataset_of(&events, &record(&[("dataset", b"orders")])),
            Ok(Some("orders".to_owned()))
        );
        let missing = dataset_of(&events, &record(&[])).unwrap_err();
        assert!(missing.contains("\"dataset\" header"), "{missing}");
        assert!(dataset_of(&events, &record(&[("dataset", b"\xff")])).is_err());
        // OTLP rows without the header take their service's dataset.
        let otlp = shape(StreamFormat::OtlpProto, header);
        assert_eq!(dataset_of(&otlp, &record(&[])), Ok(None));
        let fixed = shape(StreamFormat::JsonLines, DatasetRule::Fixed("all".into()));
        assert_eq!(
            dataset_of(&fixed, &record(&[("dataset", b"x")])),
            Ok(Some("all".to_owned()))
        );
    }
}
