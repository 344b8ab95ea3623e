//! A rule that cannot be used, naming the field at fault: the one error of
//! every part of the pipeline's rules (redaction, quotas, sampling).

/// A rule that cannot be used: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidRule {
    /// Path of the bad field (`redaction[1].fields[0]`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// An [`InvalidRule`] of `field` for `problem`.
pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidRule {
    InvalidRule {
        field: field.into(),
        problem: problem.into(),
    }
}
