//! Builders of OTLP messages and readers of decoded batches, for the tests.

use arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{DatasetBatch, OtlpBatches, OtlpContext};
use crate::Limits;

/// The "now" of the tests: 2023-11-14T22:13:20Z.
pub(crate) const NOW: i64 = 1_700_000_000_000_000_000;

pub(crate) fn any(value: Value) -> AnyValue {
    AnyValue { value: Some(value) }
}

pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(any(value)),
        ..Default::default()
    }
}

pub(crate) fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

pub(crate) fn resource(service: Option<&str>, more: Vec<KeyValue>) -> Option<Resource> {
    let mut attributes: Vec<KeyValue> = service
        .map(|name| text("service.name", name))
        .into_iter()
        .collect();
    attributes.extend(more);
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

pub(crate) fn context(limits: &Limits) -> OtlpContext<'_> {
    OtlpContext {
        limits,
        now_ns: NOW,
        dataset_override: None,
    }
}

/// The batch of `dataset`; fails the test when there is none.
pub(crate) fn batch<'b>(decoded: &'b OtlpBatches, dataset: &str) -> &'b RecordBatch {
    decoded
        .batches
        .iter()
        .find(|batch| batch.dataset == dataset)
        .map(|DatasetBatch { batch, .. }| batch)
        .unwrap_or_else(|| {
            let names: Vec<&str> = decoded.batches.iter().map(|b| b.dataset.as_str()).collect();
            panic!("no batch for dataset {dataset}; there are {names:?}")
        })
}

fn column<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> &'b T {
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {names:?}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {}",
                batch
                    .column_by_name(name)
                    .map(|c| c.data_type().to_string())
                    .unwrap_or_default()
            )
        })
}

pub(crate) fn has_column(batch: &RecordBatch, name: &str) -> bool {
    batch.column_by_name(name).is_some()
}

pub(crate) fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    column::<StringArray>(batch, name)
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

pub(crate) fn ints(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    column::<Int64Array>(batch, name).iter().collect()
}

pub(crate) fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    column::<Float64Array>(batch, name).iter().collect()
}

pub(crate) fn bools(batch: &RecordBatch, name: &str) -> Vec<Option<bool>> {
    column::<BooleanArray>(batch, name).iter().collect()
}

pub(crate) fn times(batch: &RecordBatch) -> Vec<i64> {
    column::<TimestampNanosecondArray>(batch, quarry_schema::TIMESTAMP)
        .values()
        .to_vec()
}

/// `Some(text)` for each value, for comparing string columns.
pub(crate) fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some((*v).to_owned())).collect()
}
