//! Honeycomb's schema API: `GET /1/datasets`, `GET /1/datasets/{dataset}`,
//! `GET /1/columns/{dataset}`, in Honeycomb's response shapes.
//!
//! `timestamp` is not listed as a column: Honeycomb treats the event time as
//! implicit, and its clients expect only event fields. The store keeps no
//! per-column times, so a column reports its dataset's creation and last write.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, SecondsFormat};
use quarry_schema::TIMESTAMP;
use quarry_segment_store::DatasetInfo;
use serde::Serialize;

use crate::auth::Environment;
use crate::error::ApiError;
use crate::names::DatasetName;
use crate::state::AppState;

/// A dataset as `GET /1/datasets` shows it.
#[derive(Debug, Serialize)]
pub struct DatasetView {
    name: String,
    slug: String,
    description: &'static str,
    created_at: String,
    last_written_at: String,
    regular_columns_count: usize,
}

/// A column as `GET /1/columns/{dataset}` shows it.
#[derive(Debug, Serialize)]
pub struct ColumnView {
    id: String,
    key_name: String,
    #[serde(rename = "type")]
    column_type: &'static str,
    description: &'static str,
    hidden: bool,
    created_at: String,
    updated_at: String,
    last_written: String,
}

/// `GET /1/datasets`: every dataset of the environment.
pub async fn list_datasets(
    State(state): State<AppState>,
    Environment(environment): Environment,
) -> Json<Vec<DatasetView>> {
    Json(
        state
            .store
            .datasets(&environment)
            .iter()
            .map(dataset_view)
            .collect(),
    )
}

/// `GET /1/datasets/{dataset}`: one dataset, by name or slug.
pub async fn get_dataset(
    State(state): State<AppState>,
    Environment(environment): Environment,
    DatasetName(dataset): DatasetName,
) -> Result<Json<DatasetView>, ApiError> {
    let info = find_dataset(&state, &environment, &dataset)?;
    Ok(Json(dataset_view(&info)))
}

/// `GET /1/columns/{dataset}`: the columns of a dataset, by name or slug.
pub async fn list_columns(
    State(state): State<AppState>,
    Environment(environment): Environment,
    DatasetName(dataset): DatasetName,
) -> Result<Json<Vec<ColumnView>>, ApiError> {
    let info = find_dataset(&state, &environment, &dataset)?;
    let created_at = rfc3339(info.created_at_ns);
    let last_written = rfc3339(info.last_written_ns);
    let columns = info
        .schema
        .columns()
        .filter(|(name, _)| *name != TIMESTAMP)
        .map(|(name, field_type)| ColumnView {
            id: name.to_owned(),
            key_name: name.to_owned(),
            column_type: field_type.honeycomb_name(),
            description: "",
            hidden: false,
            created_at: created_at.clone(),
            updated_at: created_at.clone(),
            last_written: last_written.clone(),
        })
        .collect();
    Ok(Json(columns))
}

/// The dataset named `dataset` (exactly, or else by slug), or 404.
fn find_dataset(
    state: &AppState,
    environment: &str,
    dataset: &str,
) -> Result<DatasetInfo, ApiError> {
    let mut datasets = state.store.datasets(environment);
    let position = datasets
        .iter()
        .position(|info| info.name == dataset)
        .or_else(|| datasets.iter().position(|info| slug(&info.name) == dataset));
    match position {
        Some(position) => Ok(datasets.swap_remove(position)),
        None => Err(ApiError::NotFound(format!("dataset {dataset:?} not found"))),
    }
}

fn dataset_view(info: &DatasetInfo) -> DatasetView {
    DatasetView {
        name: info.name.clone(),
        slug: slug(&info.name),
        description: "",
        created_at: rfc3339(info.created_at_ns),
        last_written_at: rfc3339(info.last_written_ns),
        regular_columns_count: info
            .schema
            .columns()
            .filter(|(name, _)| *name != TIMESTAMP)
            .count(),
    }
}

/// Honeycomb's dataset slug: lower case, every character but `[a-z0-9._-]` as `-`.
pub fn slug(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A time in nanoseconds since the epoch as RFC 3339 UTC, to the second (Honeycomb's form).
fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_honeycomb() {
        assert_eq!(slug("My Service"), "my-service");
        assert_eq!(slug("api.v2_prod-1"), "api.v2_prod-1");
        assert_eq!(slug("Ünï/x"), "-n--x");
        assert_eq!(slug("UPPER"), "upper");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123_456_789), "2023-11-14T22:13:20Z");
    }

    use crate::testing::TestApp;
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    #[tokio::test]
    async fn datasets_and_columns_in_honeycomb_shape() {
        let app = TestApp::start(|_| {}).await;
        let reply = app
            .post_json(
                "/1/events/My%20Service",
                r#"{"a":1,"b":"x","c":1.5,"d":true}"#,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

        let datasets = app.get("/1/datasets").await.json();
        let dataset = &datasets[0];
        assert_eq!(datasets.as_array().unwrap().len(), 1);
        assert_eq!(dataset["name"], "My Service");
        assert_eq!(dataset["slug"], "my-service");
        assert_eq!(dataset["description"], "");
        // a, b, c, d and meta.sample_rate; `timestamp` is implicit.
        assert_eq!(dataset["regular_columns_count"], 5);
        for key in ["created_at", "last_written_at"] {
            let time = dataset[key].as_str().unwrap();
            assert!(
                DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'),
                "{key}: {time}"
            );
        }
        assert_eq!(app.get("/1/datasets/my-service").await.json(), *dataset);
        assert_eq!(app.get("/1/datasets/My%20Service").await.json(), *dataset);
        assert_eq!(
            app.get("/1/datasets/nope").await.status,
            StatusCode::NOT_FOUND
        );

        let columns = app.get("/1/columns/my-service").await.json();
        let types: Vec<(&str, &str)> = columns
            .as_array()
            .unwrap()
            .iter()
            .map(|column| {
                (
                    column["key_name"].as_str().unwrap(),
                    column["type"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(!types.iter().any(|(name, _)| *name == "timestamp"));
        for expected in [
            ("a", "integer"),
            ("b", "string"),
            ("c", "float"),
            ("d", "boolean"),
        ] {
            assert!(types.contains(&expected), "{expected:?} not in {types:?}");
        }
        let a = columns
            .as_array()
            .unwrap()
            .iter()
            .find(|column| column["key_name"] == "a")
            .unwrap();
        assert_eq!(a["id"], "a");
        assert_eq!(
            (&a["hidden"], &a["description"]),
            (&json!(false), &json!(""))
        );
        assert_eq!(a["last_written"], dataset["last_written_at"]);
        let reply = app.get("/1/columns/nope").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(matches!(reply.json()["error"], Value::String(_)));
    }
}
