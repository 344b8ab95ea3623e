//! The one error of a bad query spec: which field, and what is wrong with it.

use std::fmt;

/// A query spec that cannot run, naming the offending field by its JSON path
/// (`calculations[1].column`) so a client can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// JSON path of the bad field, e.g. `filters[0].value`; empty for the whole body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for SpecError {}

impl From<SpecError> for quarry_engine::QueryError {
    fn from(error: SpecError) -> Self {
        quarry_engine::QueryError::InvalidSpec(error.to_string())
    }
}
