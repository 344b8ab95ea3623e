//! Streaming a query result as bytes: JSON, NDJSON, CSV or Arrow IPC.
//!
//! Each batch is encoded as it arrives, so a large result never sits in memory
//! whole. Null fields are left out of JSON objects; timestamps are RFC 3339;
//! infinite and NaN floats are the strings `"Infinity"`, `"-Infinity"`, `"NaN"`.

use std::str::FromStr;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;
use arrow::json::WriterBuilder;
use arrow::json::writer::{JsonArray, JsonFormat, LineDelimited, Writer as JsonWriter};
use bytes::Bytes;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{Stream, StreamExt};

use crate::QueryError;
use crate::json_floats::non_finite_floats_as_names;

/// A result encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A header line, then one line per row.
    Csv,
    /// The Arrow IPC streaming format.
    Arrow,
}

impl OutputFormat {
    /// The HTTP `Content-Type` of this encoding.
    pub fn content_type(&self) -> &'static str {
        match self {
            OutputFormat::Json => "application/json",
            OutputFormat::Ndjson => "application/x-ndjson",
            OutputFormat::Csv => "text/csv",
            OutputFormat::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = QueryError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Ok(OutputFormat::Json),
            "ndjson" => Ok(OutputFormat::Ndjson),
            "csv" => Ok(OutputFormat::Csv),
            "arrow" => Ok(OutputFormat::Arrow),
            _ => Err(QueryError::InvalidQuery(format!(
                "unknown output format {name:?}; valid formats are json, ndjson, csv, arrow"
            ))),
        }
    }
}

/// Encodes `stream` in `format`, one chunk per non-empty encoded batch (plus the
/// opening and closing bytes of the format). An error of the query ends the stream
/// after being yielded.
pub fn encode_stream(
    stream: SendableRecordBatchStream,
    format: OutputFormat,
) -> impl Stream<Item = Result<Bytes, QueryError>> + Send + 'static {
    let encoder = Encoder::new(format, stream.schema());
    futures::stream::unfold(Some((stream, encoder)), |state| async move {
        let (mut stream, mut encoder) = state?;
        loop {
            let item = match stream.next().await {
                Some(Ok(batch)) => encoder.write(&batch),
                Some(Err(error)) => return Some((Err(QueryError::from(error)), None)),
                None => return Some((encoder.finish().map_err(QueryError::from), None)),
            };
            match item {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Some((Ok(bytes), Some((stream, encoder)))),
                Err(error) => return Some((Err(QueryError::from(error)), None)),
            }
        }
    })
}

/// The writer of one format, drained into a chunk after every batch.
enum Encoder {
    Json(JsonWriter<Vec<u8>, JsonArray>),
    Ndjson(JsonWriter<Vec<u8>, LineDelimited>),
    /// The CSV writer writes its header with the first batch it sees.
    Csv {
        schema: SchemaRef,
        wrote_header: bool,
    },
    /// Created with the result schema on first use (the IPC stream starts with it).
    Arrow {
        schema: SchemaRef,
        writer: Option<StreamWriter<Vec<u8>>>,
    },
}

impl Encoder {
    fn new(format: OutputFormat, schema: SchemaRef) -> Self {
        match format {
            OutputFormat::Json => Encoder::Json(json_writer()),
            OutputFormat::Ndjson => Encoder::Ndjson(json_writer()),
            OutputFormat::Csv => Encoder::Csv {
                schema,
                wrote_header: false,
            },
            OutputFormat::Arrow => Encoder::Arrow {
                schema,
                writer: None,
            },
        }
    }

    /// Encodes one batch; returns the bytes produced so far.
    fn write(&mut self, batch: &RecordBatch) -> Result<Bytes, ArrowError> {
        match self {
            Encoder::Json(writer) => {
                writer.write(batch)?;
                Ok(drain(writer.get_mut()))
            }
            Encoder::Ndjson(writer) => {
                writer.write(batch)?;
                Ok(drain(writer.get_mut()))
            }
            Encoder::Csv { wrote_header, .. } => {
                if batch.num_rows() == 0 {
                    return Ok(Bytes::new());
                }
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(!*wrote_header)
                    .build(Vec::new());
                writer.write(batch)?;
                *wrote_header = true;
                Ok(Bytes::from(writer.into_inner()))
            }
            Encoder::Arrow { schema, writer } => {
                let writer = match writer {
                    Some(writer) => writer,
                    None => writer.insert(StreamWriter::try_new(Vec::new(), schema)?),
                };
                writer.write(batch)?;
                Ok(drain(writer.get_mut()))
            }
        }
    }

    /// Closes the format (JSON's `]`, Arrow's end marker; a CSV header for an empty
    /// result); returns the remaining bytes.
    fn finish(&mut self) -> Result<Bytes, ArrowError> {
        match self {
            Encoder::Json(writer) => {
                writer.finish()?;
                Ok(drain(writer.get_mut()))
            }
            Encoder::Ndjson(writer) => {
                writer.finish()?;
                Ok(drain(writer.get_mut()))
            }
            Encoder::Csv {
                schema,
                wrote_header,
            } => {
                if *wrote_header {
                    return Ok(Bytes::new());
                }
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(Vec::new());
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
                *wrote_header = true;
                Ok(Bytes::from(writer.into_inner()))
            }
            Encoder::Arrow { schema, writer } => {
                let writer = match writer {
                    Some(writer) => writer,
                    None => writer.insert(StreamWriter::try_new(Vec::new(), schema)?),
                };
                writer.finish()?;
                Ok(drain(writer.get_mut()))
            }
        }
    }
}

/// A JSON writer that spells non-finite floats out (see [`crate::json_floats`]).
fn json_writer<F: JsonFormat>() -> JsonWriter<Vec<u8>, F> {
    WriterBuilder::new()
        .with_encoder_factory(non_finite_floats_as_names())
        .build(Vec::new())
}

/// Takes the bytes written so far, leaving the buffer empty for the next batch.
fn drain(buffer: &mut Vec<u8>) -> Bytes {
    Bytes::from(std::mem::take(buffer))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use arrow::array::AsArray;
    use arrow::compute::concat_batches;
    use arrow::datatypes::TimestampNanosecondType;
    use datafusion::error::DataFusionError;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;
    use crate::test_support::{batch, bools, ints, strings, times};

    /// 2023-11-14T22:00:00.000000001Z.
    const FIRST_NS: i64 = 1_699_999_200_000_000_001;

    fn batches() -> Vec<RecordBatch> {
        let first = batch(vec![
            ("timestamp", times(vec![FIRST_NS, FIRST_NS + 1])),
            ("n", ints(vec![Some(1), None])),
            ("s", strings(vec![Some("a,b"), Some("say \"hi\"")])),
            ("b", bools(vec![Some(true), Some(false)])),
        ]);
        let second = batch(vec![
            ("timestamp", times(vec![FIRST_NS + 2])),
            ("n", ints(vec![Some(3)])),
            ("s", strings(vec![None])),
            ("b", bools(vec![None])),
        ]);
        vec![first.clone(), first.slice(0, 0), second]
    }

    fn stream_of(
        items: Vec<datafusion::error::Result<RecordBatch>>,
        schema: SchemaRef,
    ) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(items),
        ))
    }

    async fn encode(batches: Vec<RecordBatch>, schema: SchemaRef, format: OutputFormat) -> Vec<u8> {
        let stream = stream_of(batches.into_iter().map(Ok).collect(), schema);
        let chunks: Vec<Bytes> = encode_stream(stream, format)
            .map(|chunk| chunk.unwrap())
            .collect()
            .await;
        chunks.concat()
    }

    #[tokio::test]
    async fn json_is_one_array_of_row_objects_without_nulls() {
        let input = batches();
        let bytes = encode(input.clone(), input[0].schema(), OutputFormat::Json).await;
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["s"], "a,b");
        assert_eq!(rows[1]["s"], "say \"hi\"");
        assert!(rows[1].get("n").is_none(), "null fields are omitted");
        assert_eq!(rows[2]["n"], 3);
        let time = rows[0]["timestamp"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert_eq!(parsed.timestamp_nanos_opt(), Some(FIRST_NS));

        let empty = encode(Vec::new(), input[0].schema(), OutputFormat::Json).await;
        assert_eq!(empty, b"[]");
    }

    #[tokio::test]
    async fn non_finite_floats_are_spelled_out_in_json() {
        let floats = Arc::new(arrow::array::Float64Array::from(vec![
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(f64::NAN),
            Some(2.5),
            None,
        ]));
        let narrow = Arc::new(arrow::array::Float32Array::from(vec![
            Some(f32::INFINITY),
            Some(1.0),
            None,
            Some(f32::NAN),
            Some(-0.5),
        ]));
        let input = RecordBatch::try_from_iter([
            ("f", floats as arrow::array::ArrayRef),
            ("g", narrow as arrow::array::ArrayRef),
        ])
        .unwrap();
        let json = encode(vec![input.clone()], input.schema(), OutputFormat::Json).await;
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"[{"f":"Infinity","g":"Infinity"},{"f":"-Infinity","g":1.0},{"f":"NaN"},{"f":2.5,"g":"NaN"},{"g":-0.5}]"#
        );
        let ndjson = encode(vec![input.clone()], input.schema(), OutputFormat::Ndjson).await;
        let first = String::from_utf8(ndjson).unwrap();
        assert_eq!(
            first.lines().next(),
            Some(r#"{"f":"Infinity","g":"Infinity"}"#)
        );
    }

    #[tokio::test]
    async fn ndjson_is_one_object_per_line() {
        let input = batches();
        let bytes = encode(input.clone(), input[0].schema(), OutputFormat::Ndjson).await;
        let text = String::from_utf8(bytes).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[2]["timestamp"]
                .as_str()
                .map(|t| t.starts_with("2023-11-14T22:00:00")),
            Some(true)
        );
        assert_eq!(rows[0]["b"], true);
        assert!(
            encode(Vec::new(), input[0].schema(), OutputFormat::Ndjson)
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn csv_has_one_header_and_reads_back_equal() {
        let input = batches();
        let schema = input[0].schema();
        let bytes = encode(input.clone(), Arc::clone(&schema), OutputFormat::Csv).await;
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().next(), Some("timestamp,n,s,b"));
        assert_eq!(text.lines().count(), 4);
        let reader = arrow::csv::ReaderBuilder::new(Arc::clone(&schema))
            .with_header(true)
            .build(Cursor::new(bytes))
            .unwrap();
        let read: Vec<RecordBatch> = reader.map(|batch| batch.unwrap()).collect();
        let read = concat_batches(&schema, &read).unwrap();
        let expected = concat_batches(&schema, &input).unwrap();
        assert_eq!(
            read.column(0)
                .as_primitive::<TimestampNanosecondType>()
                .values(),
            expected
                .column(0)
                .as_primitive::<TimestampNanosecondType>()
                .values()
        );
        assert_eq!(read.column(2).as_string::<i32>().value(1), "say \"hi\"");
        assert_eq!(read.column(1), expected.column(1));

        let empty = encode(Vec::new(), schema, OutputFormat::Csv).await;
        assert_eq!(empty, b"timestamp,n,s,b\n");
    }

    #[tokio::test]
    async fn arrow_is_an_ipc_stream_of_the_same_batches() {
        let input = batches();
        let schema = input[0].schema();
        let bytes = encode(input.clone(), Arc::clone(&schema), OutputFormat::Arrow).await;
        let reader = arrow::ipc::reader::StreamReader::try_new(Cursor::new(bytes), None).unwrap();
        let read: Vec<RecordBatch> = reader.map(|batch| batch.unwrap()).collect();
        assert_eq!(
            concat_batches(&schema, &read).unwrap(),
            concat_batches(&schema, &input).unwrap()
        );

        let empty = encode(Vec::new(), Arc::clone(&schema), OutputFormat::Arrow).await;
        let reader = arrow::ipc::reader::StreamReader::try_new(Cursor::new(empty), None).unwrap();
        assert_eq!(reader.schema(), schema);
        assert_eq!(reader.count(), 0);
    }

    #[tokio::test]
    async fn a_failing_query_ends_the_stream_with_its_error() {
        let input = batches();
        let items = vec![
            Ok(input[0].clone()),
            Err(DataFusionError::ResourcesExhausted("pool".into())),
            Ok(input[2].clone()),
        ];
        let stream = stream_of(items, input[0].schema());
        let chunks: Vec<Result<Bytes, QueryError>> =
            encode_stream(stream, OutputFormat::Ndjson).collect().await;
        assert_eq!(chunks.len(), 2);
        assert!(chunks[0].is_ok());
        assert!(matches!(chunks[1], Err(QueryError::ResourcesExhausted(_))));
    }

    #[test]
    fn formats_parse_by_name_and_name_their_content_type() {
        assert_eq!("json".parse::<OutputFormat>().unwrap(), OutputFormat::Json);
        assert_eq!(
            "NDJSON".parse::<OutputFormat>().unwrap().content_type(),
            "application/x-ndjson"
        );
        assert_eq!(
            "csv".parse::<OutputFormat>().unwrap().content_type(),
            "text/csv"
        );
        assert_eq!(
            "arrow".parse::<OutputFormat>().unwrap().content_type(),
            "application/vnd.apache.arrow.stream"
        );
        let error = "xml".parse::<OutputFormat>().unwrap_err().to_string();
        assert!(error.contains("json, ndjson, csv, arrow"), "{error}");
    }
}
