//! Rows of one OTLP request, sorted into one batch builder per dataset.
//!
//! The dataset of a row is its resource's: `x-honeycomb-dataset` if the request
//! named one, else the trimmed `service.name`. Every dataset's schema is looked up
//! once, before any row is built, so the builders type their columns the way the
//! Events API path does.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use quarry_schema::DatasetSchema;
use quarry_schema::fields::SERVICE_NAME;

use super::{DatasetBatch, OtlpBatches, OtlpContext};
use crate::IngestError;
use crate::batch_builder::BatchBuilder;
use crate::flat_event::FlatEvent;

/// Prefix OpenTelemetry SDKs give the service name when none was configured
/// (`unknown_service:python`); such data goes to one dataset, as in Honeycomb.
const UNKNOWN_SERVICE_PREFIX: &str = "unknown_service";
/// Dataset of spans and metrics whose resource names no service.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// Dataset of logs whose resource names no service.
pub const UNKNOWN_LOG_SOURCE: &str = "unknown_log_source";
/// Longest dataset name, in bytes (as the store allows).
const MAX_DATASET_BYTES: usize = 255;
/// Characters a dataset name cannot hold, replaced by this one.
const NAME_REPLACEMENT: char = '_';

/// The dataset a resource's rows go to.
pub(crate) fn dataset_of(resource: Option<&Resource>, ctx: &OtlpContext, missing: &str) -> String {
    if let Some(name) = ctx.dataset_override {
        return name.to_owned();
    }
    let service = resource
        .into_iter()
        .flat_map(|resource| &resource.attributes)
        .filter(|attribute| attribute.key == SERVICE_NAME)
        .find_map(
            |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                Value::StringValue(name) => Some(name.trim()),
                _ => None,
            },
        );
    match service {
        None | Some("") => missing.to_owned(),
        Some(name) if name.starts_with(UNKNOWN_SERVICE_PREFIX) => UNKNOWN_SERVICE.to_owned(),
        Some(name) => clean_name(name),
    }
}

/// A service name as a dataset name: `/` and control characters (which dataset
/// names cannot hold) become `_`, and it is cut to 255 bytes.
fn clean_name(name: &str) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c == '/' || c.is_control() {
                NAME_REPLACEMENT
            } else {
                c
            }
        })
        .collect();
    clean.truncate(clean.floor_char_boundary(MAX_DATASET_BYTES));
    clean
}

/// The distinct datasets of a request and their schemas.
pub(crate) struct Datasets {
    names: Vec<String>,
    schemas: Vec<Option<DatasetSchema>>,
}

impl Datasets {
    /// The datasets of `resources` (in order) and, for each resource, the index of
    /// its dataset.
    pub(crate) fn collect<'r>(
        resources: impl Iterator<Item = Option<&'r Resource>>,
        ctx: &OtlpContext,
        missing: &str,
        schema_of: &dyn Fn(&str) -> Option<DatasetSchema>,
    ) -> (Datasets, Vec<usize>) {
        let mut names: Vec<String> = Vec::new();
        let slots = resources
            .map(|resource| {
                let name = dataset_of(resource, ctx, missing);
                match names.iter().position(|known| *known == name) {
                    Some(slot) => slot,
                    None => {
                        names.push(name);
                        names.len() - 1
                    }
                }
            })
            .collect();
        let schemas = names.iter().map(|name| schema_of(name)).collect();
        (Datasets { names, schemas }, slots)
    }
}

/// The rows of one request being built, and what was refused.
pub(crate) struct Sink<'s> {
    datasets: &'s Datasets,
    builders: Vec<BatchBuilder<'s>>,
    max_event_bytes: usize,
    rejected: u64,
    first_error: Option<String>,
}

impl<'s> Sink<'s> {
    /// An empty builder per dataset.
    pub(crate) fn new(datasets: &'s Datasets, ctx: &OtlpContext) -> Self {
        let builders = datasets
            .schemas
            .iter()
            .map(|schema| BatchBuilder::new(schema.as_ref(), ctx.limits.max_columns_per_dataset))
            .collect();
        Sink {
            datasets,
            builders,
            max_event_bytes: ctx.limits.max_event_bytes,
            rejected: 0,
            first_error: None,
        }
    }

    /// Refuses an item larger than the per-event limit (its encoded protobuf size).
    pub(crate) fn check_size(&self, encoded_len: usize) -> Result<(), IngestError> {
        if encoded_len > self.max_event_bytes {
            Err(IngestError::EventTooLarge {
                size: encoded_len,
                limit: self.max_event_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Appends `event` as a row of dataset `slot`; false (and the error recorded)
    /// when it was refused.
    pub(crate) fn append(
        &mut self,
        slot: usize,
        event: &FlatEvent,
        time_ns: i64,
        sample_rate: i64,
    ) -> bool {
        let outcome = match event.too_many_fields() {
            Some(error) => Err(error),
            None => match self.builders.get_mut(slot) {
                Some(builder) => builder.append(event, time_ns, sample_rate),
                None => Err(IngestError::MalformedBody(format!(
                    "no dataset slot {slot} (a bug)"
                ))),
            },
        };
        match outcome {
            Ok(()) => true,
            Err(error) => {
                self.reject(&error);
                false
            }
        }
    }

    /// Counts one refused item of the request (a span, log record or data point).
    pub(crate) fn reject(&mut self, error: &IngestError) {
        self.rejected += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    /// Records an error about a row that is not itself an item of the request (a
    /// span event or link), without counting a rejected item.
    pub(crate) fn note(&mut self, error: &IngestError) {
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    /// The batches (datasets without rows left out) and the refusals.
    pub(crate) fn finish(self) -> Result<OtlpBatches, IngestError> {
        let mut batches = Vec::new();
        for (name, builder) in self.datasets.names.iter().zip(self.builders) {
            let rows = builder.rows();
            if rows > 0 {
                batches.push(DatasetBatch {
                    dataset: name.clone(),
                    rows,
                    batch: builder.finish()?,
                });
            }
        }
        Ok(OtlpBatches {
            batches,
            rejected: self.rejected,
            first_error: self.first_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::otlp::test_support::{context, resource, text};

    #[test]
    fn datasets_come_from_the_service_name_or_the_override() {
        let limits = Limits::default();
        let ctx = context(&limits);
        let of = |service: Option<&str>| dataset_of(resource(service, vec![]).as_ref(), &ctx, "x");
        assert_eq!(of(Some("  checkout ")), "checkout");
        assert_eq!(of(Some("")), "x");
        assert_eq!(of(None), "x");
        assert_eq!(
            dataset_of(None, &ctx, UNKNOWN_LOG_SOURCE),
            "unknown_log_source"
        );
        assert_eq!(of(Some("unknown_service:python")), "unknown_service");
        assert_eq!(of(Some("a/b\tc")), "a_b_c");
        assert_eq!(of(Some(&"é".repeat(200))).len(), 254);
        let numeric = resource(
            None,
            vec![crate::otlp::test_support::kv(
                "service.name",
                Value::IntValue(5),
            )],
        );
        assert_eq!(dataset_of(numeric.as_ref(), &ctx, "x"), "x");
        let ctx = OtlpContext {
            dataset_override: Some("forced"),
            ..ctx
        };
        let with_service = resource(Some("cart"), vec![text("k", "v")]);
        assert_eq!(dataset_of(with_service.as_ref(), &ctx, "x"), "forced");
    }

    #[test]
    fn each_dataset_is_looked_up_once() {
        let limits = Limits::default();
        let ctx = context(&limits);
        let resources = [
            resource(Some("a"), vec![]),
            resource(Some("b"), vec![]),
            resource(Some("a"), vec![]),
            None,
        ];
        let looked_up = std::cell::RefCell::new(Vec::new());
        let schema_of = |name: &str| {
            looked_up.borrow_mut().push(name.to_owned());
            None
        };
        let (datasets, slots) = Datasets::collect(
            resources.iter().map(Option::as_ref),
            &ctx,
            "none",
            &schema_of,
        );
        assert_eq!(slots, [0, 1, 0, 2]);
        assert_eq!(datasets.names, ["a", "b", "none"]);
        assert_eq!(*looked_up.borrow(), ["a", "b", "none"]);
    }
}
