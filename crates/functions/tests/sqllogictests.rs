//! Quarry's SQL functions as sqllogictest files: every `.slt` file under
//! `tests/slt/` runs against a plain DataFusion session with the functions
//! registered ([`quarry_functions::register`]), over data made with `VALUES`.
//!
//! The files are the functions' contract (docs/functions.md); any record that
//! answers differently fails this test and `cargo test`.
//!
//! ```sh
//! cargo test --workspace --test sqllogictests                  # run them all
//! QUARRY_SLT_FILTER=value_bin cargo test --workspace --test sqllogictests
//! QUARRY_SLT_COMPLETE=1 cargo test --workspace --test sqllogictests  # rewrite expected output
//! ```
//!
//! Completing rewrites every file's expected results with what the functions
//! answer now: review the diff before committing it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use sqllogictest::{DBOutput, DefaultColumnType, Runner};

/// Partitions of every plan: more than one, so aggregates merge partial states.
const TARGET_PARTITIONS: usize = 4;
/// Where the files are, relative to the crate.
const SLT_DIR: &str = "tests/slt";

/// One session per file, as DataFusion's own sqllogictest runner keeps one.
struct Quarry {
    context: SessionContext,
}

impl Quarry {
    fn new() -> Result<Quarry, DataFusionError> {
        let config = SessionConfig::new()
            .with_target_partitions(TARGET_PARTITIONS)
            // Small batches split even short VALUES lists across updates and merges.
            .with_batch_size(2);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        quarry_functions::register(&mut state)?;
        Ok(Quarry {
            context: SessionContext::new_with_state(state),
        })
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Quarry {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let frame = self.context.sql(sql).await?;
        let is_query = !frame.schema().fields().is_empty();
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        if !is_query {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|field| column_type(field.data_type()))
            .collect();
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(text_rows(batch)?);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "quarry"
    }

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// `I` for integers, `R` for floats, `T` for everything else.
fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

/// Each cell as arrow displays it, `NULL` for null, `(empty)` for an empty string
/// (a blank cell would not survive the file's whitespace).
fn text_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>, DataFusionError> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|formatter| {
                    let text = formatter.value(row).to_string();
                    if text.is_empty() {
                        "(empty)".to_owned()
                    } else {
                        text
                    }
                })
                .collect()
        })
        .collect())
}

fn slt_files() -> Vec<PathBuf> {
    // The run-time value first: a binary built from another checkout into a
    // shared target directory must read this checkout.
    let dir = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join(SLT_DIR);
    let filter = std::env::var("QUARRY_SLT_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "slt"))
        .filter(|path| path.to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_slt_file_answers_as_written() {
    let complete = std::env::var_os("QUARRY_SLT_COMPLETE").is_some();
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files under {SLT_DIR}");
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = Runner::new(|| async { Quarry::new() });
        let outcome = if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::strict_column_validator,
                )
                .await
                .map_err(|error| error.to_string())
        } else {
            runner.with_column_validator(sqllogictest::strict_column_validator);
            runner
                .run_file_async(file)
                .await
                .map_err(|error| error.display(false).to_string())
        };
        if let Err(error) = outcome {
            failures.push(format!("{}:\n{error}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} .slt files failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
