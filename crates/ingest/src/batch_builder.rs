//! Accepted events -> one Arrow `RecordBatch`, with the dataset's typing rules.
//!
//! Each event is placed in three steps, and only the last one writes:
//! 1. *homes*: each field name (after [`user_field_name`]) is looked up or added as
//!    a tentative column; a name repeated in one event keeps its last value.
//! 2. *placement*: each value goes to its home column, coerced, or to a sibling
//!    column per [`placement`]; a new column takes the type of its first value.
//! 3. the column budget is checked; a rejected event rolls back the columns it
//!    added, so it leaves no trace. Otherwise the row is appended.
//!
//! Columns are padded with nulls lazily: a column catches up to the current row
//! when it next receives a value, and at [`BatchBuilder::finish`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Array, Int64Builder, RecordBatch,
    StringBuilder, TimestampNanosecondArray, TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use quarry_schema::{
    DatasetSchema, FieldType, Placement, SAMPLE_RATE, TIMESTAMP, TIMESTAMP_TZ, TRUNCATED_FIELDS,
    placement, sibling_name, timestamp_data_type, user_field_name,
};

use crate::IngestError;
use crate::flat_event::{FlatEvent, Scalar};

/// Marks a field whose value was overwritten by a later field of the same name.
const NO_COLUMN: usize = usize::MAX;
/// Separator of the names in `meta.truncated_fields`.
const TRUNCATED_SEPARATOR: char = ',';

/// The Arrow builder of one column.
enum Values {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    Time(TimestampNanosecondBuilder),
}

impl Values {
    fn new(field_type: FieldType) -> Self {
        match field_type {
            FieldType::Bool => Values::Bool(BooleanBuilder::new()),
            FieldType::Int => Values::Int(Int64Builder::new()),
            FieldType::Float => Values::Float(Float64Builder::new()),
            FieldType::String => Values::Str(StringBuilder::new()),
            FieldType::Timestamp => {
                Values::Time(TimestampNanosecondBuilder::new().with_timezone(TIMESTAMP_TZ))
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::Bool(b) => b.len(),
            Values::Int(b) => b.len(),
            Values::Float(b) => b.len(),
            Values::Str(b) => b.len(),
            Values::Time(b) => b.len(),
        }
    }

    /// Appends nulls until the column has `rows` rows.
    fn pad_to(&mut self, rows: usize) {
        let missing = rows.saturating_sub(self.len());
        if missing == 0 {
            return;
        }
        match self {
            Values::Bool(b) => b.append_nulls(missing),
            Values::Int(b) => b.append_nulls(missing),
            Values::Float(b) => b.append_nulls(missing),
            Values::Str(b) => b.append_nulls(missing),
            Values::Time(b) => b.append_nulls(missing),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Values::Bool(b) => Arc::new(b.finish()),
            Values::Int(b) => Arc::new(b.finish()),
            Values::Float(b) => Arc::new(b.finish()),
            Values::Str(b) => Arc::new(b.finish()),
            Values::Time(b) => Arc::new(b.finish()),
        }
    }
}

/// One output column and its per-event bookkeeping.
struct Column {
    name: String,
    /// `None` only between creation and the first value placed in it.
    field_type: Option<FieldType>,
    values: Option<Values>,
    /// Non-null values written; columns with none are left out of the batch.
    value_count: usize,
    /// The event (sequence number) and field that last named this column as home.
    home_event: u64,
    home_field: usize,
    /// The event and placement slot that last put a value in this column.
    target_event: u64,
    target_slot: usize,
}

/// Builds the batch of one request from its accepted events.
pub(crate) struct BatchBuilder<'a> {
    schema: Option<&'a DatasetSchema>,
    max_columns: usize,
    schema_columns: usize,
    timestamps: Vec<i64>,
    sample_rates: Vec<i64>,
    truncated: Option<StringBuilder>,
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    /// Columns of this batch that the dataset schema does not have yet.
    new_columns: usize,
    event_seq: u64,
    /// Home column of each field of the current event (`NO_COLUMN` if overwritten).
    homes: Vec<usize>,
    /// Homes of the previous accepted event: events of one batch usually share their
    /// field order, so field `i` is tried against it before hashing its name.
    previous_homes: Vec<usize>,
    /// (column, field) for each value of the current event.
    placements: Vec<(usize, usize)>,
    truncated_list: String,
    text: String,
    json: Vec<u8>,
}

impl<'a> BatchBuilder<'a> {
    /// An empty builder for a dataset whose current schema is `schema`.
    pub(crate) fn new(schema: Option<&'a DatasetSchema>, max_columns: usize) -> Self {
        BatchBuilder {
            schema,
            max_columns,
            schema_columns: schema.map_or(0, DatasetSchema::len),
            timestamps: Vec::new(),
            sample_rates: Vec::new(),
            truncated: None,
            columns: Vec::new(),
            index: HashMap::new(),
            new_columns: 0,
            event_seq: 0,
            homes: Vec::new(),
            previous_homes: Vec::new(),
            placements: Vec::new(),
            truncated_list: String::new(),
            text: String::new(),
            json: Vec::new(),
        }
    }

    /// Rows appended so far.
    pub(crate) fn rows(&self) -> usize {
        self.timestamps.len()
    }

    /// Appends `event` as one row, or rejects it (changing nothing) when its new
    /// columns would exceed the column budget.
    pub(crate) fn append(
        &mut self,
        event: &FlatEvent,
        time_ns: i64,
        sample_rate: i64,
    ) -> Result<(), IngestError> {
        self.event_seq += 1;
        let columns_before = self.columns.len();
        let new_before = self.new_columns;
        self.find_homes(event);
        self.place_values(event);
        if self.schema_columns + self.new_columns > self.max_columns {
            for column in self.columns.drain(columns_before..) {
                self.index.remove(&column.name);
            }
            self.new_columns = new_before;
            return Err(IngestError::ColumnBudgetExceeded {
                limit: self.max_columns,
            });
        }
        self.write_row(event, time_ns, sample_rate);
        std::mem::swap(&mut self.homes, &mut self.previous_homes);
        Ok(())
    }

    /// Step 1: the home column of every field; later duplicates win.
    fn find_homes(&mut self, event: &FlatEvent) {
        self.homes.clear();
        for (position, field) in event.fields().iter().enumerate() {
            let name = if field.own {
                Cow::Borrowed(event.name(field))
            } else {
                user_field_name(event.name(field))
            };
            let predicted = self
                .previous_homes
                .get(position)
                .copied()
                .filter(|&column| self.columns.get(column).is_some_and(|c| c.name == *name));
            let home = match predicted {
                Some(column) => column,
                None => self.column_index(&name),
            };
            let column = &mut self.columns[home];
            if column.home_event == self.event_seq {
                self.homes[column.home_field] = NO_COLUMN;
            }
            column.home_event = self.event_seq;
            column.home_field = position;
            self.homes.push(home);
        }
    }

    /// Step 2: the column each value lands in (home, or a sibling).
    fn place_values(&mut self, event: &FlatEvent) {
        self.placements.clear();
        for position in 0..self.homes.len() {
            let home = self.homes[position];
            if home == NO_COLUMN {
                continue;
            }
            let value = event.fields()[position].value;
            let value_type = value.field_type();
            let mut target = home;
            loop {
                let column = &mut self.columns[target];
                match column.field_type {
                    None => {
                        column.field_type = Some(value_type);
                        column.values = Some(Values::new(value_type));
                        break;
                    }
                    Some(column_type) => {
                        match placement(value_type, column_type, value.int_value()) {
                            Placement::Same | Placement::Coerce => break,
                            // Each step adds a suffix, so the walk ends at a new name at
                            // the latest.
                            Placement::Sibling => {
                                let sibling = sibling_name(&column.name, value_type);
                                target = self.column_index(&sibling);
                            }
                        }
                    }
                }
            }
            let column = &mut self.columns[target];
            if column.target_event == self.event_seq {
                // Two fields landed in one column (`x` conflicting into `x#float`
                // next to a literal `x#float` field): the later one wins.
                self.placements[column.target_slot] = (target, position);
            } else {
                column.target_event = self.event_seq;
                column.target_slot = self.placements.len();
                self.placements.push((target, position));
            }
        }
    }

    /// The index of column `name`, adding it (typed from the schema, if there) when new.
    fn column_index(&mut self, name: &str) -> usize {
        if let Some(&index) = self.index.get(name) {
            return index;
        }
        let field_type = self.schema.and_then(|schema| schema.get(name));
        // Columns the dataset already has cost no budget.
        if field_type.is_none() {
            self.new_columns += 1;
        }
        let index = self.columns.len();
        self.columns.push(Column {
            name: name.to_owned(),
            field_type,
            values: field_type.map(Values::new),
            value_count: 0,
            home_event: 0,
            home_field: 0,
            target_event: 0,
            target_slot: 0,
        });
        self.index.insert(name.to_owned(), index);
        index
    }

    /// Step 3: appends the placed values as row `self.rows()`.
    fn write_row(&mut self, event: &FlatEvent, time_ns: i64, sample_rate: i64) {
        let row = self.timestamps.len();
        self.truncated_list.clear();
        for &(target, position) in &self.placements {
            let field = &event.fields()[position];
            let column = &mut self.columns[target];
            let Some(values) = column.values.as_mut() else {
                continue;
            };
            values.pad_to(row);
            if append_value(values, field.value, event, &mut self.text, &mut self.json) {
                column.value_count += 1;
            }
            if field.truncated {
                if !self.truncated_list.is_empty() {
                    self.truncated_list.push(TRUNCATED_SEPARATOR);
                }
                self.truncated_list.push_str(&column.name);
            }
        }
        if !self.truncated_list.is_empty() {
            let truncated = self.truncated.get_or_insert_with(StringBuilder::new);
            truncated.append_nulls(row - truncated.len());
            truncated.append_value(&self.truncated_list);
        }
        self.timestamps.push(time_ns);
        self.sample_rates.push(sample_rate);
    }

    /// The batch: `timestamp`, `meta.sample_rate`, `meta.truncated_fields` (if any
    /// value was cut), then user columns in order of first appearance.
    pub(crate) fn finish(mut self) -> Result<RecordBatch, IngestError> {
        let rows = self.timestamps.len();
        let mut fields = vec![
            Field::new(TIMESTAMP, timestamp_data_type(), false),
            Field::new(SAMPLE_RATE, DataType::Int64, true),
        ];
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from(std::mem::take(&mut self.timestamps))
                    .with_timezone(TIMESTAMP_TZ),
            ),
            Arc::new(Int64Array::from(std::mem::take(&mut self.sample_rates))),
        ];
        if let Some(mut truncated) = self.truncated.take() {
            truncated.append_nulls(rows - truncated.len());
            fields.push(Field::new(TRUNCATED_FIELDS, DataType::Utf8, true));
            arrays.push(Arc::new(truncated.finish()));
        }
        for column in &mut self.columns {
            let (Some(field_type), Some(values)) = (column.field_type, column.values.as_mut())
            else {
                continue;
            };
            if column.value_count == 0 {
                continue;
            }
            values.pad_to(rows);
            fields.push(Field::new(
                column.name.as_str(),
                field_type.data_type(),
                true,
            ));
            arrays.push(values.finish());
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }
}

/// Appends `value` to a column of compatible type (as placement decided); returns
/// false (appending a null) if the pair was not one placement allows.
fn append_value(
    values: &mut Values,
    value: Scalar,
    event: &FlatEvent,
    text: &mut String,
    json: &mut Vec<u8>,
) -> bool {
    match (values, value) {
        (Values::Bool(b), Scalar::Bool(v)) => b.append_value(v),
        (Values::Int(b), Scalar::Int(v)) => b.append_value(v),
        (Values::Float(b), Scalar::Float(v)) => b.append_value(v),
        // Placement only coerces ints a float64 holds exactly (|v| <= 2^53).
        (Values::Float(b), Scalar::Int(v)) => b.append_value(v as f64),
        (Values::Str(b), Scalar::Str { start, end }) => b.append_value(event.text(start, end)),
        (Values::Str(b), Scalar::Bool(v)) => b.append_value(if v { "true" } else { "false" }),
        (Values::Str(b), Scalar::Int(v)) => {
            text.clear();
            let _ = write!(text, "{v}");
            b.append_value(&*text);
        }
        (Values::Str(b), Scalar::Float(v)) => b.append_value(float_text(v, text, json)),
        (other, _) => {
            other.pad_to(other.len() + 1);
            return false;
        }
    }
    true
}

/// A float as JSON writes it (`1.5`, `2.0`, `1e300`); NaN and infinities as Rust does.
fn float_text<'t>(value: f64, text: &'t mut String, json: &mut Vec<u8>) -> &'t str {
    text.clear();
    json.clear();
    match serde_json::to_writer(&mut *json, &value) {
        Ok(()) if value.is_finite() => text.push_str(std::str::from_utf8(json).unwrap_or_default()),
        _ => {
            let _ = write!(text, "{value}");
        }
    }
    text
}
