//! Errors of opening object storage.

/// Why object storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStorageError {
    #[error("storage: {0}")]
    Config(String),
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}
