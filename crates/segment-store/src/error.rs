//! The store's error type.

/// Errors of the segment store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Too much data is waiting to be made durable or sealed; retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The batch does not fit the dataset (no timestamp column, unsupported type).
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] quarry_schema::ConformError),
    /// A dataset or environment name that cannot be stored.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("write-ahead log {path}: {source}")]
    Wal {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt write-ahead log {path} at byte {offset}: {reason}")]
    WalCorrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("manifest: {0}")]
    Manifest(String),
    /// Segments could not be merged (nothing was committed).
    #[error("compaction: {0}")]
    Compaction(String),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The store is shutting down or its writer task has stopped.
    #[error("the store is shut down")]
    ShutDown,
    /// Maintenance was asked of a process that does not hold the maintenance lease.
    #[error(
        "another process holds the maintenance lease of this object store; maintenance runs there"
    )]
    NotLeaseHolder,
}

/// Result alias of the segment store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
