//! `metric.series_id`: the time series a metric data point belongs to.
//!
//! In the OpenTelemetry data model a series is identified by its resource, its
//! instrumentation scope, the metric's name and the point's attributes. Rates over
//! cumulative counters must compare each point with the previous point *of the same
//! series*, and a query cannot know which of a row's hundreds of columns came from
//! which of those four, so the identity is fixed at ingest as one stable hash.
//!
//! Attributes are hashed in key order (the order an SDK sends them in is not part of
//! the identity), each as its protobuf encoding, with xxHash64: a fixed, documented
//! algorithm, so ids stay comparable across Quarry versions.

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use twox_hash::XxHash64;

/// Hash of a set of attributes, independent of their order.
pub(super) fn attributes_digest(attributes: &[KeyValue]) -> u64 {
    let mut encoded: Vec<Vec<u8>> = attributes.iter().map(Message::encode_to_vec).collect();
    encoded.sort_unstable();
    let mut bytes = Vec::with_capacity(encoded.iter().map(|e| e.len() + 4).sum());
    for attribute in &encoded {
        // Length-prefixed so that no two different sets share a byte string.
        bytes.extend_from_slice(&(attribute.len() as u32).to_le_bytes());
        bytes.extend_from_slice(attribute);
    }
    XxHash64::oneshot(0, &bytes)
}

/// Hash of a resource's attributes (0 without a resource).
pub(super) fn resource_digest(resource: Option<&Resource>) -> u64 {
    resource.map_or(0, |resource| attributes_digest(&resource.attributes))
}

/// Hash of an instrumentation scope: name, version and attributes.
pub(super) fn scope_digest(scope: Option<&InstrumentationScope>) -> u64 {
    let Some(scope) = scope else {
        return 0;
    };
    let mut bytes = Vec::new();
    for part in [scope.name.as_bytes(), scope.version.as_bytes()] {
        bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    bytes.extend_from_slice(&attributes_digest(&scope.attributes).to_le_bytes());
    XxHash64::oneshot(0, &bytes)
}

/// The series id: 16 lower-case hex digits.
pub(super) fn series_id(resource: u64, scope: u64, metric: &str, point: &[KeyValue]) -> String {
    let mut bytes = Vec::with_capacity(32 + metric.len());
    bytes.extend_from_slice(&resource.to_le_bytes());
    bytes.extend_from_slice(&scope.to_le_bytes());
    bytes.extend_from_slice(&attributes_digest(point).to_le_bytes());
    bytes.extend_from_slice(metric.as_bytes());
    format!("{:016x}", XxHash64::oneshot(0, &bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn attribute_order_does_not_matter_but_values_do() {
        let ab = [kv("a", "1"), kv("b", "2")];
        let ba = [kv("b", "2"), kv("a", "1")];
        assert_eq!(attributes_digest(&ab), attributes_digest(&ba));
        assert_ne!(
            attributes_digest(&ab),
            attributes_digest(&[kv("a", "1"), kv("b", "3")])
        );
        assert_ne!(attributes_digest(&ab), attributes_digest(&[kv("a", "1")]));
    }

    #[test]
    fn every_part_of_the_identity_counts() {
        let point = [kv("route", "/a")];
        let id = series_id(1, 2, "requests", &point);
        assert_eq!(id.len(), 16);
        assert_eq!(id, series_id(1, 2, "requests", &point));
        assert_ne!(id, series_id(9, 2, "requests", &point));
        assert_ne!(id, series_id(1, 9, "requests", &point));
        assert_ne!(id, series_id(1, 2, "errors", &point));
        assert_ne!(id, series_id(1, 2, "requests", &[kv("route", "/b")]));
    }

    #[test]
    fn the_hash_is_stable_across_versions() {
        // Stored ids must keep matching new points after an upgrade: pinned values
        // (computed independently with Python's xxhash package).
        assert_eq!(XxHash64::oneshot(0, b""), 0xef46_db37_51d8_e999);
        assert_eq!(series_id(0, 0, "requests", &[]), "8399b55b2020f31c");
    }
}
