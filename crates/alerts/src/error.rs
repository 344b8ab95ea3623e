//! The crate's one error type; the server maps it to HTTP statuses.

/// What can go wrong in alerting.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Invalid input; the message starts with the bad field's name (400).
    #[error("{0}")]
    Invalid(String),
    /// No such marker, trigger, recipient, SLO or burn alert (404).
    #[error("{0}")]
    NotFound(String),
    /// A limit on how many objects are kept was reached (409).
    #[error("{0}")]
    TooMany(String),
    /// Reading or writing the persisted alert state failed (500).
    #[error("alert state storage: {0}")]
    Storage(String),
    /// A query behind a trigger or SLO failed (the message is the engine's).
    #[error("{0}")]
    Query(String),
}

impl AlertError {
    /// An invalid-input error naming `field`.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> AlertError {
        AlertError::Invalid(format!("{field}: {message}"))
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, AlertError>;
