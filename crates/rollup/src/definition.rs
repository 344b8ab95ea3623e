//! Checking a rollup definition against a dataset, and the default trace rollup.

use std::collections::HashSet;

use quarry_schema::fields::{
    DURATION_MS, ERROR, HTTP_ROUTE, NAME, ROLLUP_PREFIX, SERVICE_NAME, SPAN_ID,
};
use quarry_schema::{DatasetSchema, FieldType, TIMESTAMP};
use quarry_segment_store::{MeasureOp, RollupDefinition, RollupMeasure};

use super::filters::valid_filters;
use quarry_engine::QueryError;

/// Longest rollup name.
pub const MAX_NAME_CHARS: usize = 64;
/// Coarsest bucket: one day, in seconds.
pub const MAX_GRANULARITY_SECS: u64 = 86_400;
/// Most dimensions a rollup may have (each one multiplies its rows).
pub const MAX_DIMENSIONS: usize = 16;
/// Name of the default rollup of trace datasets.
pub const TRACE_DEFAULT_NAME: &str = "requests";
/// Bucket of the default trace rollup: one minute.
pub const TRACE_DEFAULT_GRANULARITY_SECS: u64 = 60;
/// Columns whose presence marks a dataset as holding spans.
const TRACE_MARKER_COLUMNS: [&str; 2] = [SPAN_ID, DURATION_MS];
/// The default trace rollup's dimensions.
const TRACE_DEFAULT_DIMENSIONS: [&str; 4] = [SERVICE_NAME, NAME, ERROR, HTTP_ROUTE];
/// The default trace rollup's measured column.
const TRACE_DEFAULT_DURATION: &str = DURATION_MS;

fn invalid(message: String) -> QueryError {
    QueryError::InvalidSpec(message)
}

/// Checks what does not depend on data: name, granularity, shapes. Errors name the
/// field at fault (`measures[1].column: ...`).
pub fn check_shape(definition: &RollupDefinition) -> Result<(), QueryError> {
    let name = &definition.name;
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(invalid(format!(
            "name: {name:?} must be 1-{MAX_NAME_CHARS} characters of A-Z a-z 0-9 _ . -"
        )));
    }
    if definition.granularity == 0 || definition.granularity > MAX_GRANULARITY_SECS {
        return Err(invalid(format!(
            "granularity: {} must be between 1 and {MAX_GRANULARITY_SECS} seconds",
            definition.granularity
        )));
    }
    if definition.dimensions.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "dimensions: {} given, at most {MAX_DIMENSIONS} allowed",
            definition.dimensions.len()
        )));
    }
    let mut seen = HashSet::new();
    for (index, dimension) in definition.dimensions.iter().enumerate() {
        if dimension.is_empty() || dimension == TIMESTAMP || dimension.starts_with(ROLLUP_PREFIX) {
            return Err(invalid(format!(
                "dimensions[{index}]: {dimension:?} cannot be a dimension"
            )));
        }
        if !seen.insert(dimension) {
            return Err(invalid(format!(
                "dimensions[{index}]: {dimension:?} is listed twice"
            )));
        }
    }
    let mut measures = HashSet::new();
    for (index, measure) in definition.measures.iter().enumerate() {
        match (measure.op, &measure.column) {
            (MeasureOp::Count, Some(_)) => {
                return Err(invalid(format!(
                    "measures[{index}].column: COUNT takes no column"
                )));
            }
            (MeasureOp::Count, None) => {}
            (op, None) => {
                return Err(invalid(format!(
                    "measures[{index}].column: {op:?} needs a column"
                )));
            }
            (_, Some(column)) if column.is_empty() || column == TIMESTAMP => {
                return Err(invalid(format!(
                    "measures[{index}].column: {column:?} cannot be measured"
                )));
            }
            _ => {}
        }
        if !measures.insert(measure) {
            return Err(invalid(format!("measures[{index}]: listed twice")));
        }
    }
    valid_filters(&definition.filters)?;
    Ok(())
}

/// Checks a definition against the dataset: measured columns must be numeric where
/// the dataset has them (a column not seen yet is accepted), and percentiles need
/// the sketch functions (`has_sketch`).
pub fn check(
    definition: &RollupDefinition,
    schema: &DatasetSchema,
    has_sketch: bool,
) -> Result<(), QueryError> {
    check_shape(definition)?;
    for (index, measure) in definition.measures.iter().enumerate() {
        let Some(column) = &measure.column else {
            continue;
        };
        if measure.op == MeasureOp::Percentiles && !has_sketch {
            return Err(invalid(format!(
                "measures[{index}].op: PERCENTILES needs the quarry_sketch functions, which this build lacks"
            )));
        }
        match schema.get(column) {
            None | Some(FieldType::Int | FieldType::Float) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "measures[{index}].column: {column:?} is a {} column; {:?} needs a numeric one",
                    other.honeycomb_name(),
                    measure.op
                )));
            }
        }
    }
    Ok(())
}

/// Whether a dataset holds spans (and so gets the default trace rollup).
pub fn is_trace_dataset(schema: &DatasetSchema) -> bool {
    TRACE_MARKER_COLUMNS
        .iter()
        .all(|column| schema.get(column).is_some())
}

/// The default rollup of a trace dataset: request count, errors (the `error`
/// dimension) and the duration's sum, extremes and percentiles by service, span
/// name, error and HTTP route, per minute.
pub fn trace_default(has_sketch: bool) -> RollupDefinition {
    let measure = |op, column: Option<&str>| RollupMeasure {
        op,
        column: column.map(str::to_owned),
    };
    let duration = Some(TRACE_DEFAULT_DURATION);
    let mut measures = vec![
        measure(MeasureOp::Count, None),
        measure(MeasureOp::Sum, duration),
        measure(MeasureOp::Min, duration),
        measure(MeasureOp::Max, duration),
    ];
    if has_sketch {
        measures.push(measure(MeasureOp::Percentiles, duration));
    }
    RollupDefinition {
        name: TRACE_DEFAULT_NAME.to_owned(),
        granularity: TRACE_DEFAULT_GRANULARITY_SECS,
        dimensions: TRACE_DEFAULT_DIMENSIONS
            .iter()
            .map(|d| (*d).to_owned())
            .collect(),
        measures,
        filters: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_segment_store::RollupFilter;

    fn error_of(definition: &RollupDefinition, schema: &DatasetSchema) -> String {
        check(definition, schema, true).unwrap_err().to_string()
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let mut schema = DatasetSchema::default();
        schema.insert("route", FieldType::String);
        schema.insert("ms", FieldType::Float);
        let good = RollupDefinition {
            name: "r1".into(),
            granularity: 60,
            dimensions: vec!["route".into()],
            measures: vec![RollupMeasure {
                op: MeasureOp::Sum,
                column: Some("ms".into()),
            }],
            filters: vec![],
        };
        assert!(check(&good, &schema, true).is_ok());

        let mut bad = good.clone();
        bad.name = "no spaces".into();
        assert!(error_of(&bad, &schema).contains("name:"));
        let mut bad = good.clone();
        bad.granularity = 0;
        assert!(error_of(&bad, &schema).contains("granularity:"));
        let mut bad = good.clone();
        bad.dimensions.push("route".into());
        assert!(error_of(&bad, &schema).contains("dimensions[1]"));
        let mut bad = good.clone();
        bad.measures[0].column = Some("route".into());
        let message = error_of(&bad, &schema);
        assert!(
            message.contains("measures[0].column") && message.contains("string"),
            "{message}"
        );
        let mut bad = good.clone();
        bad.measures[0].column = None;
        assert!(error_of(&bad, &schema).contains("measures[0].column"));
        let mut bad = good.clone();
        bad.filters.push(RollupFilter {
            column: "route".into(),
            op: "like".into(),
            value: None,
        });
        assert!(error_of(&bad, &schema).contains("filters[0].op"));
        let mut bad = good.clone();
        bad.measures.push(RollupMeasure {
            op: MeasureOp::Percentiles,
            column: Some("ms".into()),
        });
        let message = check(&bad, &schema, false).unwrap_err().to_string();
        assert!(message.contains("measures[1].op"), "{message}");
    }

    #[test]
    fn trace_datasets_are_recognized() {
        let mut schema = DatasetSchema::default();
        schema.insert("duration_ms", FieldType::Float);
        assert!(!is_trace_dataset(&schema));
        schema.insert("trace.span_id", FieldType::String);
        assert!(is_trace_dataset(&schema));
        assert!(check(&trace_default(true), &schema, true).is_ok());
    }
}
