//! The `[storage]` keys that say where objects live, with their defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::ObjectStorageError;

/// Default size of the read cache on local disk.
pub const DEFAULT_READ_CACHE_BYTES: u64 = 10 << 30;

/// Where objects live. Deserializes from `[storage] object_store`,
/// `[storage.s3]` and `[storage.read_cache]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStorageConfig {
    /// `s3://bucket/prefix`; absent keeps objects on local disk.
    pub object_store: Option<String>,
    pub s3: S3Settings,
    pub read_cache: ReadCacheSettings,
}

/// How to reach an S3-compatible server. Every key falls back to the usual AWS
/// environment variable (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`), then to
/// AWS's own defaults (instance credentials, `us-east-1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL of a server other than AWS (`http://127.0.0.1:8333`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket/key` (local servers) instead of
    /// `bucket.endpoint/key` (AWS's virtual-hosted style).
    pub path_style: bool,
    /// Allow a plain `http://` endpoint (local servers only).
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Retries of one failed request (throttling, 5xx, connection errors), with
    /// exponential backoff.
    pub max_retries: usize,
    /// Give up retrying one request after this long.
    #[serde(rename = "retry_timeout_secs", deserialize_with = "seconds")]
    pub retry_timeout: Duration,
    /// Time limit of one request.
    #[serde(rename = "request_timeout_secs", deserialize_with = "seconds")]
    pub request_timeout: Duration,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            region: None,
            path_style: false,
            allow_http: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The local cache of remote segment bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadCacheSettings {
    /// Bytes of chunks kept on local disk; the least recently used go first.
    /// Zero turns the cache off (every read goes to the object store).
    pub max_bytes: u64,
    /// Directory of the cache (default `<data_dir>/cache`). It is emptied at start.
    pub dir: Option<PathBuf>,
}

impl Default for ReadCacheSettings {
    fn default() -> Self {
        ReadCacheSettings {
            max_bytes: DEFAULT_READ_CACHE_BYTES,
            dir: None,
        }
    }
}

impl ObjectStorageConfig {
    /// Checks what can be checked without reaching the store.
    pub fn validate(&self) -> Result<(), ObjectStorageError> {
        if let Some(url) = &self.object_store {
            crate::s3::parse_url(url)?;
        }
        if self.s3.retry_timeout.is_zero() || self.s3.request_timeout.is_zero() {
            return Err(ObjectStorageError::Config(
                "s3.retry_timeout_secs and s3.request_timeout_secs must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}
