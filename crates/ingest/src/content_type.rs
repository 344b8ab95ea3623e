//! Which wire format a body is in, from its `Content-Type`.

use crate::IngestError;

/// The wire format of an events body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    /// JSON (the default).
    Json,
    /// MessagePack, as libhoney-go and libhoney-js batch senders use.
    Msgpack,
}

/// Picks the body format from a `Content-Type` header value.
///
/// Missing or JSON-ish types are JSON. So are `text/plain` and
/// `application/x-www-form-urlencoded`: `curl -d '{...}'` sends the latter, and
/// Honeycomb's own examples are written that way. Any other explicit type (XML,
/// protobuf, ...) is refused rather than guessed at.
pub(crate) fn body_format(content_type: Option<&str>) -> Result<BodyFormat, IngestError> {
    let Some(raw) = content_type else {
        return Ok(BodyFormat::Json);
    };
    // Parameters such as `; charset=utf-8` do not change the format.
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        ""
        | "*/*"
        | "application/json"
        | "text/json"
        | "application/x-json"
        | "text/plain"
        | "application/x-www-form-urlencoded" => Ok(BodyFormat::Json),
        "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
            Ok(BodyFormat::Msgpack)
        }
        other if other.ends_with("+json") => Ok(BodyFormat::Json),
        _ => Err(IngestError::UnsupportedContentType(raw.trim().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_msgpack_and_refusals() {
        assert_eq!(body_format(None).unwrap(), BodyFormat::Json);
        assert_eq!(
            body_format(Some("application/json; charset=utf-8")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some("Application/JSON")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some("application/x-www-form-urlencoded")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some("application/vnd.api+json")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some("application/msgpack")).unwrap(),
            BodyFormat::Msgpack
        );
        assert_eq!(
            body_format(Some("application/x-msgpack")).unwrap(),
            BodyFormat::Msgpack
        );
        assert!(matches!(
            body_format(Some("text/xml")),
            Err(IngestError::UnsupportedContentType(t)) if t == "text/xml"
        ));
        assert!(body_format(Some("application/x-protobuf")).is_err());
    }
}
