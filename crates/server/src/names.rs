//! Which dataset and environment names the API accepts.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::error::ApiError;

/// Longest accepted dataset or environment name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The dataset named by an (already URL-decoded) path segment: trimmed, non-empty,
/// at most [`MAX_NAME_BYTES`], without `/` or control characters.
pub fn dataset_name(raw: &str) -> Result<&str, ApiError> {
    validate("dataset", raw)
}

/// An environment name from the configuration, by the same rule as datasets.
pub fn environment_name(raw: &str) -> Result<&str, ApiError> {
    validate("environment", raw)
}

/// Extractor of the `{dataset}` path segment, validated by [`dataset_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for DatasetName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(DatasetName(dataset_name(&raw)?.to_owned()))
    }
}

fn validate<'a>(kind: &str, raw: &'a str) -> Result<&'a str, ApiError> {
    let name = raw.trim();
    let problem = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_NAME_BYTES {
        "is longer than 255 bytes"
    } else if name.contains('/') {
        "must not contain '/'"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(name);
    };
    Err(ApiError::BadRequest(format!(
        "{kind} name {raw:?} {problem}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(dataset_name("  my service ").unwrap(), "my service");
        assert_eq!(dataset_name("ünïcode.ok-1").unwrap(), "ünïcode.ok-1");
        assert!(dataset_name("").is_err());
        assert!(dataset_name("   ").is_err());
        assert!(dataset_name("a/b").is_err());
        assert!(dataset_name("tab\there").is_err());
        assert!(dataset_name("nul\0").is_err());
        assert!(dataset_name(&"x".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(dataset_name(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn errors_are_bad_requests_naming_the_problem() {
        let error = dataset_name("a/b").unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        assert_eq!(
            error.to_string(),
            r#"dataset name "a/b" must not contain '/'"#
        );
    }
}
