//! The event schema vocabulary shared by every Quarry crate.
//!
//! A dataset's schema is the union of every field ever seen. Each column has exactly
//! one [`FieldType`] for its whole life: the first value decides it. A later value of
//! another type never changes the column and never drops its event; [`placement`]
//! says where it goes instead (see the module docs of [`conform`] for the batch-level
//! rule and [`sibling_name`] for the naming rule).
//!
//! Naming rules (documented for users in the README):
//! - `timestamp` is the event time (nanoseconds, UTC); `meta.` columns are Quarry's.
//! - Every reserved name and every Honeycomb/OpenTelemetry field name Quarry maps
//!   to is a constant of [`fields`]; other crates spell them only through it.
//! - A user field that collides with a reserved name is stored as `<name>#user`.
//! - A value whose type conflicts with its column, and that cannot be coerced without
//!   loss, is stored in the sibling column `<name>#<type>` (e.g. `status#string`).
//!
//! It also owns the one [`Clock`] every crate reads wall time from. quarry-schema
//! is the bottom of the workspace: it depends on no other Quarry crate (arrow for
//! types only), and every other crate may depend on it.

pub mod clock;
pub mod conform;
mod dataset_schema;
mod field_type;
pub mod fields;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock, system_clock};
pub use conform::{ConformError, conform_batch};
pub use dataset_schema::DatasetSchema;
pub use field_type::{FieldType, Placement, placement};
pub use fields::{META_PREFIX, SAMPLE_RATE, TIMESTAMP, TRACE_ID, TRUNCATED_FIELDS};

use std::borrow::Cow;

/// Separator of Quarry-made column name variants (`name#user`, `name#string`).
pub const VARIANT_SEPARATOR: char = '#';
/// Time zone of the [`TIMESTAMP`] column.
pub const TIMESTAMP_TZ: &str = "UTC";

/// Whether `name` is reserved for Quarry (the event time or a `meta.` column).
pub fn is_reserved(name: &str) -> bool {
    name == TIMESTAMP || name.starts_with(META_PREFIX)
}

/// The column a user-supplied field named `name` is stored under.
///
/// Reserved names are renamed to `<name>#user` so the user's value is kept, never
/// dropped, and never mistaken for Quarry's own column.
pub fn user_field_name(name: &str) -> Cow<'_, str> {
    if is_reserved(name) {
        Cow::Owned(format!("{name}{VARIANT_SEPARATOR}user"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The sibling column that keeps values of type `value_type` which conflict with
/// the type of column `name`: `<name>#<type>`.
pub fn sibling_name(name: &str, value_type: FieldType) -> String {
    format!("{name}{VARIANT_SEPARATOR}{}", value_type.suffix())
}

/// The Arrow type of the `timestamp` column.
pub fn timestamp_data_type() -> arrow::datatypes::DataType {
    arrow::datatypes::DataType::Timestamp(
        arrow::datatypes::TimeUnit::Nanosecond,
        Some(TIMESTAMP_TZ.into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_renamed_and_others_kept() {
        assert_eq!(user_field_name("timestamp"), "timestamp#user");
        assert_eq!(user_field_name("meta.sample_rate"), "meta.sample_rate#user");
        assert_eq!(user_field_name("metadata"), "metadata");
        assert_eq!(user_field_name("duration_ms"), "duration_ms");
    }

    #[test]
    fn sibling_names_carry_the_value_type() {
        assert_eq!(sibling_name("status", FieldType::String), "status#string");
        assert_eq!(sibling_name("a.b", FieldType::Float), "a.b#float");
    }
}
