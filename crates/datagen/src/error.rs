//! Errors of the generator and of `quarry-load`.

/// Everything that can go wrong generating or sending events.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    /// A generator setting or command-line value makes no sense.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Writing output (NDJSON, a summary file) failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The server could not be reached or answered with an HTTP error.
    #[error("http error: {0}")]
    Http(String),
    /// The server answered, but not as the Events API does.
    #[error("unexpected response: {0}")]
    Response(String),
}
