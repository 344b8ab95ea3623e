//! The Events API entry points: one event, or a batch with a status per event.

use arrow::array::RecordBatch;
use quarry_schema::DatasetSchema;

use crate::batch_builder::BatchBuilder;
use crate::content_type::{BodyFormat, body_format};
use crate::flat_event::FlatEvent;
use crate::sample_rate::{DEFAULT_SAMPLE_RATE, sample_rate_from_u64};
use crate::{IngestError, Limits, json, msgpack};

/// Event time and sample rate a request's headers give its events
/// (`X-Honeycomb-Event-Time`, `X-Honeycomb-Samplerate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventDefaults {
    /// Event time in ns since the epoch; `None` means "now".
    pub time_ns: Option<i64>,
    /// Sample rate; `None` means 1.
    pub sample_rate: Option<u64>,
}

/// What decoding needs to know about the destination dataset and the server.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// The dataset's current schema (column types to follow), if it exists yet.
    pub schema: Option<&'a DatasetSchema>,
    /// The limits to enforce.
    pub limits: &'a Limits,
    /// The time given to events that state none, in ns since the epoch.
    pub now_ns: i64,
}

/// The outcome of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStatus {
    /// The event is in the batch.
    Accepted,
    /// The event was refused; its neighbours are unaffected.
    Rejected {
        /// Why, for the client.
        error: String,
    },
}

/// A decoded batch request.
#[derive(Debug)]
pub struct BatchDecode {
    /// The accepted events in input order; `None` when no event was accepted.
    pub batch: Option<RecordBatch>,
    /// One status per input item, in input order.
    pub statuses: Vec<EventStatus>,
}

/// What a batch item says besides its data.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ItemMeta {
    /// The item's `time`, if it had one.
    pub(crate) time_ns: Option<i64>,
    /// The item's `samplerate`, if it had one.
    pub(crate) sample_rate: Option<i64>,
}

/// Decodes `POST /1/events/{dataset}`: the body is one object of event fields.
///
/// Any problem with the event fails the whole request.
pub fn decode_single_event(
    body: &[u8],
    content_type: Option<&str>,
    defaults: &EventDefaults,
    ctx: &DecodeContext,
) -> Result<RecordBatch, IngestError> {
    let format = body_format(content_type)?;
    check_not_empty(body, format)?;
    let limit = ctx.limits.max_event_bytes;
    if body.len() > limit {
        return Err(IngestError::EventTooLarge {
            size: body.len(),
            limit,
        });
    }
    let sample_rate = defaults
        .sample_rate
        .map(sample_rate_from_u64)
        .transpose()?
        .unwrap_or(DEFAULT_SAMPLE_RATE);
    let time_ns = defaults.time_ns.unwrap_or(ctx.now_ns);
    let mut event = FlatEvent::new(ctx.limits);
    match format {
        BodyFormat::Json => json::flatten_event(body, &mut event)?,
        BodyFormat::Msgpack => msgpack::flatten_event(body, &mut event)?,
    }
    if let Some(error) = event.too_many_fields() {
        return Err(error);
    }
    let mut builder = BatchBuilder::new(ctx.schema, ctx.limits.max_columns_per_dataset);
    builder.append(&event, time_ns, sample_rate)?;
    builder.finish()
}

/// Decodes `POST /1/batch/{dataset}`: an array of `{"data", "time", "samplerate"}`.
///
/// A body that is not an array fails the request; a bad item only fails itself.
pub fn decode_batch(
    body: &[u8],
    content_type: Option<&str>,
    ctx: &DecodeContext,
) -> Result<BatchDecode, IngestError> {
    let format = body_format(content_type)?;
    check_not_empty(body, format)?;
    let mut builder = BatchBuilder::new(ctx.schema, ctx.limits.max_columns_per_dataset);
    let mut statuses = Vec::new();
    let mut on_item = |event: &mut FlatEvent, item: Result<ItemMeta, IngestError>| {
        let status = match accept_item(&mut builder, event, item, ctx.now_ns) {
            Ok(()) => EventStatus::Accepted,
            Err(error) => EventStatus::Rejected {
                error: error.to_string(),
            },
        };
        statuses.push(status);
    };
    let mut event = FlatEvent::new(ctx.limits);
    let max_event_bytes = ctx.limits.max_event_bytes;
    match format {
        BodyFormat::Json => json::for_each_item(body, max_event_bytes, &mut event, &mut on_item)?,
        BodyFormat::Msgpack => {
            msgpack::for_each_item(body, max_event_bytes, &mut event, &mut on_item)?
        }
    }
    let batch = if builder.rows() > 0 {
        Some(builder.finish()?)
    } else {
        None
    };
    Ok(BatchDecode { batch, statuses })
}

/// Validates one read batch item and appends it.
fn accept_item(
    builder: &mut BatchBuilder<'_>,
    event: &FlatEvent,
    item: Result<ItemMeta, IngestError>,
    now_ns: i64,
) -> Result<(), IngestError> {
    let meta = item?;
    if let Some(error) = event.too_many_fields() {
        return Err(error);
    }
    builder.append(
        event,
        meta.time_ns.unwrap_or(now_ns),
        meta.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE),
    )
}

/// Refuses an empty body (for JSON, also one of only whitespace).
fn check_not_empty(body: &[u8], format: BodyFormat) -> Result<(), IngestError> {
    let empty = match format {
        BodyFormat::Json => body.trim_ascii().is_empty(),
        // Every byte is meaningful in msgpack (0x20 is the integer 32).
        BodyFormat::Msgpack => body.is_empty(),
    };
    if empty {
        Err(IngestError::EmptyBody)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Array, BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
    };
    use quarry_schema::{FieldType, SAMPLE_RATE, TIMESTAMP, TRUNCATED_FIELDS, conform_batch};
    use rmpv::Value as Mp;

    const NOW: i64 = 1_700_000_000_000_000_000;
    /// 2024-05-01T12:00:00Z in ns.
    const NOON: i64 = 1_714_564_800_000_000_000;

    fn ctx<'a>(schema: Option<&'a DatasetSchema>, limits: &'a Limits) -> DecodeContext<'a> {
        DecodeContext {
            schema,
            limits,
            now_ns: NOW,
        }
    }

    fn single(body: &str) -> RecordBatch {
        let limits = Limits::default();
        decode_single_event(
            body.as_bytes(),
            None,
            &EventDefaults::default(),
            &ctx(None, &limits),
        )
        .unwrap()
    }

    fn batch_with(body: &str, schema: Option<&DatasetSchema>, limits: &Limits) -> BatchDecode {
        decode_batch(
            body.as_bytes(),
            Some("application/json"),
            &ctx(schema, limits),
        )
        .unwrap()
    }

    fn names(batch: &RecordBatch) -> Vec<String> {
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn column<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> &'b T {
        batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", names(batch)))
            .as_any()
            .downcast_ref::<T>()
            .unwrap_or_else(|| panic!("column {name} has another type"))
    }

    fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        column::<StringArray>(batch, name)
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    fn ints(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        column::<Int64Array>(batch, name).iter().collect()
    }

    fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        column::<Float64Array>(batch, name).iter().collect()
    }

    fn times(batch: &RecordBatch) -> Vec<i64> {
        column::<TimestampNanosecondArray>(batch, TIMESTAMP)
            .values()
            .to_vec()
    }

    fn rejected(status: &EventStatus) -> &str {
        match status {
            EventStatus::Rejected { error } => error,
            EventStatus::Accepted => panic!("accepted, expected a rejection"),
        }
    }

    fn assert_conforms(batch: &RecordBatch, schema: Option<&DatasetSchema>) {
        let mut schema = schema.cloned().unwrap_or_default();
        let conformed = conform_batch(batch.clone(), &mut schema).unwrap();
        assert_eq!(&conformed, batch);
    }

    #[test]
    fn single_event_layout_flattening_and_defaults() {
        let batch = single(
            r#"{"service":"api","duration_ms":12.5,"ok":true,"status":200,"gone":null,
                "a":{"b":{"c":{"d":{"e":{"f":1},"e2":2}}}},"tags":["x",1,{"y":null}],"m":[[1],[2]],"empty":{}}"#,
        );
        assert_eq!(
            names(&batch),
            [
                TIMESTAMP,
                SAMPLE_RATE,
                "service",
                "duration_ms",
                "ok",
                "status",
                "a.b.c.d.e",
                "a.b.c.d.e2",
                "tags",
                "m"
            ]
        );
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(times(&batch), [NOW]);
        assert_eq!(ints(&batch, SAMPLE_RATE), [Some(1)]);
        assert_eq!(strings(&batch, "service"), [Some("api".to_owned())]);
        assert_eq!(floats(&batch, "duration_ms"), [Some(12.5)]);
        assert!(column::<BooleanArray>(&batch, "ok").value(0));
        assert_eq!(ints(&batch, "status"), [Some(200)]);
        // Depth 5 holds the deeper object as compact JSON; arrays are JSON at any depth.
        assert_eq!(
            strings(&batch, "a.b.c.d.e"),
            [Some(r#"{"f":1}"#.to_owned())]
        );
        assert_eq!(ints(&batch, "a.b.c.d.e2"), [Some(2)]);
        assert_eq!(
            strings(&batch, "tags"),
            [Some(r#"["x",1,{"y":null}]"#.to_owned())]
        );
        assert_eq!(strings(&batch, "m"), [Some("[[1],[2]]".to_owned())]);
        assert!(!batch.schema().field(0).is_nullable());
        assert!(
            batch
                .schema()
                .fields()
                .iter()
                .skip(1)
                .all(|f| f.is_nullable())
        );
        assert_conforms(&batch, None);
    }

    #[test]
    fn header_defaults_apply_to_single_events() {
        let limits = Limits::default();
        let defaults = EventDefaults {
            time_ns: Some(NOON),
            sample_rate: Some(20),
        };
        let batch =
            decode_single_event(b"{\"a\":1}", None, &defaults, &ctx(None, &limits)).unwrap();
        assert_eq!(times(&batch), [NOON]);
        assert_eq!(ints(&batch, SAMPLE_RATE), [Some(20)]);
        let zero = EventDefaults {
            time_ns: None,
            sample_rate: Some(0),
        };
        assert!(matches!(
            decode_single_event(b"{\"a\":1}", None, &zero, &ctx(None, &limits)),
            Err(IngestError::InvalidSampleRate(_))
        ));
    }

    #[test]
    fn reserved_names_are_renamed() {
        let batch =
            single(r#"{"timestamp":"yesterday","meta":{"sample_rate":5,"x":true},"metadata":1}"#);
        assert_eq!(
            names(&batch),
            [
                TIMESTAMP,
                SAMPLE_RATE,
                "timestamp#user",
                "meta.sample_rate#user",
                "meta.x#user",
                "metadata"
            ]
        );
        assert_eq!(
            strings(&batch, "timestamp#user"),
            [Some("yesterday".to_owned())]
        );
        assert_eq!(ints(&batch, "meta.sample_rate#user"), [Some(5)]);
        assert_eq!(ints(&batch, SAMPLE_RATE), [Some(1)]);
        assert_conforms(&batch, None);
    }

    #[test]
    fn repeated_names_keep_the_last_value() {
        let batch = single(r#"{"a.b":1,"a":{"b":"two"},"c":1,"c":2}"#);
        assert_eq!(names(&batch), [TIMESTAMP, SAMPLE_RATE, "a.b", "c"]);
        assert_eq!(strings(&batch, "a.b"), [Some("two".to_owned())]);
        assert_eq!(ints(&batch, "c"), [Some(2)]);
    }

    #[test]
    fn type_conflicts_coerce_or_go_to_siblings() {
        let limits = Limits::default();
        let decoded = batch_with(
            r#"[{"data":{"f":1.5,"i":1,"s":"a"}},
                {"data":{"f":2,"i":2.5,"s":7}},
                {"data":{"f":9007199254740993,"i":"x","s":true}},
                {"data":{"f":0.5,"i":3,"s":1.5}}]"#,
            None,
            &limits,
        );
        assert!(decoded.statuses.iter().all(|s| *s == EventStatus::Accepted));
        let batch = decoded.batch.unwrap();
        // Int into a float column is coerced; an int beyond 2^53 keeps its digits in f#int.
        assert_eq!(floats(&batch, "f"), [Some(1.5), Some(2.0), None, Some(0.5)]);
        assert_eq!(
            ints(&batch, "f#int"),
            [None, None, Some(9_007_199_254_740_993), None]
        );
        // Float and string into an int column go to siblings; the column keeps its type.
        assert_eq!(ints(&batch, "i"), [Some(1), None, None, Some(3)]);
        assert_eq!(floats(&batch, "i#float"), [None, Some(2.5), None, None]);
        assert_eq!(
            strings(&batch, "i#string"),
            [None, None, Some("x".to_owned()), None]
        );
        // Numbers and bools into a string column become their text.
        let s: Vec<Option<String>> = ["a", "7", "true", "1.5"]
            .iter()
            .map(|v| Some((*v).to_owned()))
            .collect();
        assert_eq!(strings(&batch, "s"), s);
        assert_eq!(
            names(&batch),
            [
                TIMESTAMP,
                SAMPLE_RATE,
                "f",
                "i",
                "s",
                "i#float",
                "f#int",
                "i#string"
            ]
        );
        assert_conforms(&batch, None);
    }

    #[test]
    fn the_dataset_schema_wins_over_the_first_value() {
        let mut schema = DatasetSchema::default();
        schema.insert("n", FieldType::Float);
        schema.insert("code", FieldType::String);
        schema.insert("flag", FieldType::Int);
        schema.insert("flag#bool", FieldType::String);
        let limits = Limits::default();
        let decoded = batch_with(
            r#"[{"data":{"n":3,"code":404,"flag":true}}]"#,
            Some(&schema),
            &limits,
        );
        let batch = decoded.batch.unwrap();
        assert_eq!(floats(&batch, "n"), [Some(3.0)]);
        assert_eq!(strings(&batch, "code"), [Some("404".to_owned())]);
        // flag (int) -> flag#bool, which the schema has as string: the bool is coerced there.
        assert_eq!(strings(&batch, "flag#bool"), [Some("true".to_owned())]);
        assert!(
            batch.column_by_name("flag").is_none(),
            "no all-null column for flag"
        );
        assert_conforms(&batch, Some(&schema));
    }

    #[test]
    fn a_batch_with_bad_items_keeps_the_good_ones_in_order() {
        let limits = Limits::default();
        let decoded = batch_with(
            r#"[{"data":{"a":1},"time":"2024-05-01T14:00:00+02:00","samplerate":10},
                 5,
                 {"data":[1,2]},
                 {"time":"2024-05-01T12:00:00Z"},
                 {"data":{"a":2,"only_bad":1},"time":"someday"},
                 {"data":{"a":3},"samplerate":0},
                 {"data":{"a":4},"samplerate":-2},
                 {"data":{"a":5},"samplerate":2.5},
                 {"data":{"a":6},"time":1714564800000,"samplerate":4.0,"extra":[1]},
                 {"data":{"b":"x"},"time":null,"samplerate":null}]"#,
            None,
            &limits,
        );
        let statuses = &decoded.statuses;
        assert_eq!(statuses.len(), 10);
        assert_eq!(statuses[0], EventStatus::Accepted);
        assert!(
            rejected(&statuses[1]).contains("invalid batch item"),
            "{:?}",
            statuses[1]
        );
        assert!(
            rejected(&statuses[2]).contains("event fields"),
            "{:?}",
            statuses[2]
        );
        assert!(
            rejected(&statuses[3]).contains("no \"data\""),
            "{:?}",
            statuses[3]
        );
        assert!(
            rejected(&statuses[4]).contains("invalid event time \"someday\""),
            "{:?}",
            statuses[4]
        );
        for bad_rate in &statuses[5..8] {
            assert!(
                rejected(bad_rate).contains("invalid sample rate"),
                "{bad_rate:?}"
            );
        }
        assert_eq!(statuses[8], EventStatus::Accepted);
        assert_eq!(statuses[9], EventStatus::Accepted);
        let batch = decoded.batch.unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(ints(&batch, "a"), [Some(1), Some(6), None]);
        assert_eq!(strings(&batch, "b"), [None, None, Some("x".to_owned())]);
        assert_eq!(times(&batch), [NOON, NOON, NOW]);
        assert_eq!(ints(&batch, SAMPLE_RATE), [Some(10), Some(4), Some(1)]);
        // The rejected event's own field left no column behind.
        assert!(batch.column_by_name("only_bad").is_none());
        assert_conforms(&batch, None);
    }

    #[test]
    fn item_times_in_every_accepted_form() {
        let limits = Limits::default();
        let decoded = batch_with(
            r#"[{"data":{},"time":1714564800},
                {"data":{},"time":1714564800.5},
                {"data":{},"time":1714564800000000},
                {"data":{},"time":1714564800000000000},
                {"data":{},"time":"1714564800123"},
                {"data":{},"time":"2024-05-01 12:00:00.25Z"},
                {"data":{},"time":true}]"#,
            None,
            &limits,
        );
        assert!(rejected(&decoded.statuses[6]).contains("time"));
        let batch = decoded.batch.unwrap();
        assert_eq!(
            times(&batch),
            [
                NOON,
                NOON + 500_000_000,
                NOON,
                NOON,
                NOON + 123_000_000,
                NOON + 250_000_000
            ]
        );
        assert_eq!(names(&batch), [TIMESTAMP, SAMPLE_RATE]);
    }

    #[test]
    fn too_many_fields_rejects_only_that_event() {
        let limits = Limits {
            max_fields_per_event: 3,
            ..Limits::default()
        };
        let decoded = batch_with(
            r#"[{"data":{"a":1,"b":{"c":2,"d":3},"e":null}},
                {"data":{"a":1,"b":{"c":2,"d":3},"x":4}}]"#,
            None,
            &limits,
        );
        assert_eq!(decoded.statuses[0], EventStatus::Accepted);
        assert_eq!(
            rejected(&decoded.statuses[1]),
            IngestError::TooManyFields { count: 4, limit: 3 }.to_string()
        );
        let batch = decoded.batch.unwrap();
        assert!(batch.column_by_name("x").is_none());
        let single_err = decode_single_event(
            br#"{"a":1,"b":2,"c":3,"d":4}"#,
            None,
            &EventDefaults::default(),
            &ctx(None, &limits),
        );
        assert!(matches!(
            single_err,
            Err(IngestError::TooManyFields { count: 4, limit: 3 })
        ));
    }

    #[test]
    fn long_strings_are_truncated_and_marked() {
        let limits = Limits {
            max_string_bytes: 4,
            ..Limits::default()
        };
        let decoded = batch_with(
            r#"[{"data":{"short":"abc","long":"abcdefgh"}},
                {"data":{"short":"ok"}},
                {"data":{"n":1,"long":"éééé","short":"12345","arr":[1,2,3]}}]"#,
            None,
            &limits,
        );
        let batch = decoded.batch.unwrap();
        assert_eq!(
            names(&batch)[..3],
            [TIMESTAMP, SAMPLE_RATE, TRUNCATED_FIELDS]
        );
        assert_eq!(
            strings(&batch, TRUNCATED_FIELDS),
            [
                Some("long".to_owned()),
                None,
                Some("long,short,arr".to_owned())
            ]
        );
        assert_eq!(
            strings(&batch, "long"),
            [Some("abcd".to_owned()), None, Some("éé".to_owned())]
        );
        assert_eq!(
            strings(&batch, "arr"),
            [None, None, Some("[1,2".to_owned())]
        );
        assert_conforms(&batch, None);

        let untouched = batch_with(r#"[{"data":{"s":"abc"}}]"#, None, &limits)
            .batch
            .unwrap();
        assert!(untouched.column_by_name(TRUNCATED_FIELDS).is_none());
    }

    #[test]
    fn events_over_the_size_limit_are_refused() {
        let limits = Limits {
            max_event_bytes: 30,
            ..Limits::default()
        };
        let big = format!(r#"{{"data":{{"s":"{}"}}}}"#, "x".repeat(40));
        let decoded = batch_with(&format!(r#"[{{"data":{{"a":1}}}}, {big}]"#), None, &limits);
        assert_eq!(decoded.statuses[0], EventStatus::Accepted);
        assert_eq!(
            rejected(&decoded.statuses[1]),
            IngestError::EventTooLarge {
                size: big.len(),
                limit: 30
            }
            .to_string()
        );
        let single_err = decode_single_event(
            format!(r#"{{"s":"{}"}}"#, "x".repeat(40)).as_bytes(),
            None,
            &EventDefaults::default(),
            &ctx(None, &limits),
        );
        assert!(matches!(
            single_err,
            Err(IngestError::EventTooLarge {
                size: 48,
                limit: 30
            })
        ));
    }

    #[test]
    fn the_column_budget_rejects_events_that_would_exceed_it() {
        let mut schema = DatasetSchema::default();
        schema.insert(SAMPLE_RATE, FieldType::Int);
        schema.insert("a", FieldType::Int);
        // 3 columns exist; 2 more fit.
        let limits = Limits {
            max_columns_per_dataset: 5,
            ..Limits::default()
        };
        let decoded = batch_with(
            r#"[{"data":{"a":1,"b":1}},
                {"data":{"c":1,"d":1}},
                {"data":{"a":2,"c":2}},
                {"data":{"a":"conflict"}},
                {"data":{"a":3,"b":3}}]"#,
            Some(&schema),
            &limits,
        );
        let statuses = &decoded.statuses;
        assert_eq!(statuses[0], EventStatus::Accepted);
        assert_eq!(
            rejected(&statuses[1]),
            IngestError::ColumnBudgetExceeded { limit: 5 }.to_string()
        );
        assert_eq!(statuses[2], EventStatus::Accepted);
        // A sibling column counts as a new column too.
        assert!(rejected(&statuses[3]).contains("budget"));
        assert_eq!(statuses[4], EventStatus::Accepted);
        let batch = decoded.batch.unwrap();
        assert_eq!(names(&batch), [TIMESTAMP, SAMPLE_RATE, "a", "b", "c"]);
        assert_eq!(ints(&batch, "c"), [None, Some(2), None]);
        assert_conforms(&batch, Some(&schema));
    }

    #[test]
    fn empty_and_malformed_bodies() {
        let limits = Limits::default();
        let ctx = ctx(None, &limits);
        let defaults = EventDefaults::default();
        assert!(matches!(
            decode_single_event(b"", None, &defaults, &ctx),
            Err(IngestError::EmptyBody)
        ));
        assert!(matches!(
            decode_batch(b"  \n", None, &ctx),
            Err(IngestError::EmptyBody)
        ));
        assert!(matches!(
            decode_batch(b"", Some("application/msgpack"), &ctx),
            Err(IngestError::EmptyBody)
        ));
        for bad in [
            &b"{\"a\":"[..],
            b"[1,2]",
            b"\"text\"",
            b"{\"a\":1} trailing",
            b"\xff",
        ] {
            assert!(
                matches!(
                    decode_single_event(bad, None, &defaults, &ctx),
                    Err(IngestError::MalformedBody(_))
                ),
                "{bad:?}"
            );
        }
        for bad in [
            &b"{\"data\":{}}"[..],
            b"[{\"data\":{}}",
            b"[{\"data\":{}},]",
            b"nope",
        ] {
            assert!(
                matches!(
                    decode_batch(bad, None, &ctx),
                    Err(IngestError::MalformedBody(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            decode_batch(b"[]", Some("text/xml"), &ctx),
            Err(IngestError::UnsupportedContentType(_))
        ));
        let empty = decode_batch(b"[]", None, &ctx).unwrap();
        assert!(empty.batch.is_none());
        assert!(empty.statuses.is_empty());
    }

    fn msgpack(value: &Mp) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    fn map(entries: Vec<(&str, Mp)>) -> Mp {
        Mp::Map(entries.into_iter().map(|(k, v)| (Mp::from(k), v)).collect())
    }

    #[test]
    fn msgpack_batches_decode_like_json() {
        let seconds = NOON / 1_000_000_000;
        let mut ts96 = 5u32.to_be_bytes().to_vec();
        ts96.extend_from_slice(&seconds.to_be_bytes());
        let items = Mp::Array(vec![
            map(vec![
                ("time", Mp::Ext(-1, ts96.clone())),
                ("samplerate", Mp::from(3u64)),
                (
                    "data",
                    map(vec![
                        ("name", Mp::from("GET /")),
                        ("dur", Mp::F64(1.5)),
                        ("f32", Mp::F32(1.1)),
                        ("big", Mp::from(u64::MAX)),
                        ("nested", map(vec![("k", Mp::from(true)), ("nil", Mp::Nil)])),
                        ("list", Mp::Array(vec![Mp::from(1), Mp::from("x")])),
                        ("bin", Mp::Binary(b"raw".to_vec())),
                        ("when", Mp::Ext(-1, ts96)),
                    ]),
                ),
            ]),
            map(vec![
                ("time", Mp::from("2024-05-01T12:00:00Z")),
                ("data", map(vec![("name", Mp::from(7))])),
            ]),
            map(vec![("data", Mp::from(1))]),
            map(vec![("samplerate", Mp::from(0)), ("data", map(vec![]))]),
        ]);
        let limits = Limits::default();
        let decoded = decode_batch(
            &msgpack(&items),
            Some("application/x-msgpack"),
            &ctx(None, &limits),
        )
        .unwrap();
        assert_eq!(
            decoded.statuses[..2],
            [EventStatus::Accepted, EventStatus::Accepted]
        );
        assert!(rejected(&decoded.statuses[2]).contains("\"data\" must be a map"));
        assert!(rejected(&decoded.statuses[3]).contains("sample rate"));
        let batch = decoded.batch.unwrap();
        assert_eq!(times(&batch), [NOON + 5, NOON]);
        assert_eq!(ints(&batch, SAMPLE_RATE), [Some(3), Some(1)]);
        assert_eq!(
            strings(&batch, "name"),
            [Some("GET /".to_owned()), Some("7".to_owned())]
        );
        assert_eq!(floats(&batch, "dur"), [Some(1.5), None]);
        assert_eq!(floats(&batch, "f32"), [Some(1.1), None]);
        assert_eq!(floats(&batch, "big"), [Some(u64::MAX as f64), None]);
        assert!(column::<BooleanArray>(&batch, "nested.k").value(0));
        assert!(batch.column_by_name("nested.nil").is_none());
        assert_eq!(
            strings(&batch, "list"),
            [Some(r#"[1,"x"]"#.to_owned()), None]
        );
        assert_eq!(strings(&batch, "bin"), [Some("raw".to_owned()), None]);
        assert_eq!(
            strings(&batch, "when"),
            [Some("2024-05-01T12:00:00.000000005Z".to_owned()), None]
        );
        assert_conforms(&batch, None);
    }

    #[test]
    fn msgpack_single_events_and_malformed_msgpack() {
        let limits = Limits::default();
        let ctx = ctx(None, &limits);
        let body = msgpack(&map(vec![
            ("a", Mp::from(1)),
            ("b", map(vec![("c", Mp::from("x"))])),
        ]));
        let batch = decode_single_event(
            &body,
            Some("application/msgpack"),
            &EventDefaults::default(),
            &ctx,
        )
        .unwrap();
        assert_eq!(names(&batch), [TIMESTAMP, SAMPLE_RATE, "a", "b.c"]);
        let not_map = msgpack(&Mp::from(3));
        assert!(matches!(
            decode_single_event(
                &not_map,
                Some("application/msgpack"),
                &EventDefaults::default(),
                &ctx
            ),
            Err(IngestError::MalformedBody(_))
        ));
        // An array header promising more items than the body holds.
        assert!(matches!(
            decode_batch(&[0x93, 0x80], Some("application/msgpack"), &ctx),
            Err(IngestError::MalformedBody(_))
        ));
        assert!(matches!(
            decode_batch(&msgpack(&map(vec![])), Some("application/msgpack"), &ctx),
            Err(IngestError::MalformedBody(_))
        ));
    }
}
