//! An S3 bucket (and key prefix) as an object store, through object_store's S3
//! backend: request signing, retries with exponential backoff, conditional puts.

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::{ObjectStorageError, S3Settings};

/// The bucket and key prefix of `s3://bucket/prefix`.
pub(crate) fn parse_url(url: &str) -> Result<(String, String), ObjectStorageError> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        ObjectStorageError::Config(format!(
            "object_store {url:?}: expected s3://bucket or s3://bucket/prefix"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(ObjectStorageError::Config(format!(
            "object_store {url:?}: the bucket name is missing"
        )));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Opens `s3://bucket/prefix` with `settings` over the AWS environment variables.
pub(crate) fn open(
    url: &str,
    settings: &S3Settings,
) -> Result<Arc<dyn ObjectStore>, ObjectStorageError> {
    let (bucket, prefix) = parse_url(url)?;
    let retry = RetryConfig {
        max_retries: settings.max_retries,
        retry_timeout: settings.retry_timeout,
        backoff: BackoffConfig::default(),
    };
    let client = ClientOptions::new()
        .with_timeout(settings.request_timeout)
        .with_allow_http(settings.allow_http);
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry)
        .with_client_options(client)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if settings.allow_http {
        builder = builder.with_allow_http(true);
    }
    if settings.path_style {
        builder = builder.with_virtual_hosted_style_request(false);
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &settings.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &settings.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &settings.session_token {
        builder = builder.with_token(token);
    }
    let store: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(
            parse_url("s3://telemetry").unwrap(),
            ("telemetry".into(), String::new())
        );
        assert_eq!(
            parse_url("s3://telemetry/prod/quarry/").unwrap(),
            ("telemetry".into(), "prod/quarry".into())
        );
        for bad in ["telemetry", "s3://", "s3:///x", "gs://bucket"] {
            let error = parse_url(bad).unwrap_err().to_string();
            assert!(error.contains("object_store"), "{bad}: {error}");
        }
    }
}
