//! The web UI: the files of `web/dist` (built by `npm run build` and committed),
//! compiled into the binary so that `cargo build` alone gives a working UI.
//!
//! `/` and any page path a browser asks for (an HTML request outside the API)
//! get `index.html`, whose script routes on the client (permalinks, reloads of
//! `/trace/<id>`); `/assets/*` are content-hashed files, cached for good.

use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};

use crate::error::ApiError;

/// The built UI (see build.rs: cargo rebuilds when it changes).
static WEB_DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web/dist");

/// Content-hashed build output: never changes under the same name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` names the current hashed assets: always revalidate it.
const NO_CACHE: &str = "no-cache";
/// Path prefixes of the API, which never fall back to the UI.
const API_PREFIXES: [&str; 3] = ["/api/", "/1/", "/metrics"];

/// Content type by file extension. Vite emits only these kinds of files; a table
/// this small does not justify a MIME database dependency.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A file of the build, with its content type and caching.
fn file_response(path: &str) -> Option<Response> {
    let file = WEB_DIST.get_file(path)?;
    let cache = if path.starts_with("assets/") {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    Some(
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(path)),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            file.contents(),
        )
            .into_response(),
    )
}

fn index() -> Response {
    file_response("index.html").unwrap_or_else(|| {
        ApiError::NotFound("this build has no web UI (web/dist/index.html was missing)".into())
            .into_response()
    })
}

/// `GET /`: the UI.
pub async fn root() -> Response {
    index()
}

/// Every request no route took: a file of the build, the UI for a page a browser
/// asks for, otherwise the API's JSON 404 / 405.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if method != Method::GET && method != Method::HEAD {
        return no_such_route();
    }
    if let Some(response) = file_response(path.trim_start_matches('/')) {
        return response;
    }
    let is_api = API_PREFIXES.iter().any(|prefix| path.starts_with(prefix));
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && !is_api && !path.starts_with("/assets/") {
        return index();
    }
    no_such_route()
}

fn no_such_route() -> Response {
    ApiError::NotFound("no such route".into()).into_response()
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::json;

    #[tokio::test]
    async fn the_ui_and_its_assets_are_served_with_their_types() {
        let app = TestApp::start(|_| {}).await;
        let index = app.get("/").await;
        assert_eq!(index.status, StatusCode::OK);
        assert_eq!(index.headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(index.headers["cache-control"], "no-cache");
        let html = index.text();
        assert!(html.contains("<div id=\"app\">"), "{html}");

        // Every asset index.html names is served with its type, cached for good.
        let mut assets = 0;
        for part in html.split('"').filter(|part| part.starts_with("/assets/")) {
            let asset = app.get(part).await;
            assert_eq!(asset.status, StatusCode::OK, "{part}");
            let expected = if part.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(asset.headers["content-type"], expected, "{part}");
            assert!(
                asset.headers["cache-control"]
                    .to_str()
                    .unwrap()
                    .contains("immutable")
            );
            assets += 1;
        }
        assert!(
            assets >= 2,
            "index.html names its script and stylesheet: {html}"
        );
    }

    #[tokio::test]
    async fn pages_fall_back_to_the_ui_but_api_paths_do_not() {
        let app = TestApp::start(|_| {}).await;
        let browser = |path: &str| {
            Request::get(path)
                .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
                .body(Body::empty())
                .unwrap()
        };
        for page in ["/trace/abc123", "/sql", "/some/page"] {
            let reply = app.send(browser(page)).await;
            assert_eq!(reply.status, StatusCode::OK, "{page}");
            assert!(reply.text().contains("<div id=\"app\">"), "{page}");
        }
        for api in ["/api/v1/nope", "/1/nope", "/assets/missing.js"] {
            let reply = app.send(browser(api)).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{api}");
            assert_eq!(reply.json(), json!({"error": "no such route"}), "{api}");
        }
        let reply = app.get("/nope").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.json(), json!({"error": "no such route"}));
    }
}
