//! Runs a compiled query and assembles its [`QueryResult`].

use std::time::Instant;

use arrow::array::RecordBatch;
use serde_json::{Map, Value};

use super::json::{json_values, seconds};
use super::model::QuerySpec;
use super::ops::CalcOp;
use super::plan::{Plan, ROWS, TIME, compile, key, value};
use super::result::{CalculationInfo, Group, QueryResult, SeriesPoint, Stats};
use super::validate::ValidSpec;
use crate::{QueryEngine, QueryError};

/// Runs `spec` over `dataset` (or `__all__`) of environment `env`; `now_ns` is
/// the time a spec without start or end ends at.
pub async fn run_query(
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    spec: &QuerySpec,
    now_ns: i64,
) -> Result<QueryResult, QueryError> {
    let started = Instant::now();
    let valid = ValidSpec::new(spec, now_ns)?;
    let context = engine.session(env)?;
    // Rollup hook (docs/rollups.md): a rollup that fits answers with the same kind
    // of plan; otherwise the raw one.
    let rollup = crate::rollup::spec_plan::rollup_plan(
        engine,
        &context,
        env,
        dataset,
        &valid,
        spec.source.as_deref(),
    )
    .await?;
    let (plan, source) = match rollup {
        Some(found) => found,
        None => (compile(&context, dataset, valid).await?, "raw".to_owned()),
    };

    let totals = plan.totals()?.collect().await?;
    let groups = plan.groups()?.collect().await?;
    let series = plan.series(&context, &groups)?.collect().await?;

    let totals_rows = Rows::new(&totals)?;
    let rows_matched = totals_rows
        .column(ROWS)
        .and_then(|values| values.first())
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let spec = &plan.spec;
    Ok(QueryResult {
        source,
        start_time: seconds(spec.start_ns),
        end_time: seconds(spec.end_ns),
        granularity: spec.granularity_secs,
        calculations: spec
            .calculations
            .iter()
            .map(|c| CalculationInfo {
                name: c.name.clone(),
                op: c.op.name().to_owned(),
                column: c.column.clone(),
            })
            .collect(),
        breakdowns: spec.breakdowns.clone(),
        groups: group_list(&plan, &groups)?,
        series: series_list(&plan, &series)?,
        totals: totals_rows.values(&plan, 0),
        heatmaps: Vec::new(),
        stats: Stats {
            rows_matched,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        },
    })
}

/// Collected batches as JSON columns by name.
struct Rows {
    names: Vec<String>,
    columns: Vec<Vec<Value>>,
    len: usize,
}

impl Rows {
    fn new(batches: &[RecordBatch]) -> Result<Rows, QueryError> {
        let mut rows = Rows {
            names: Vec::new(),
            columns: Vec::new(),
            len: 0,
        };
        let Some(first) = batches.first() else {
            return Ok(rows);
        };
        rows.names = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        rows.columns = vec![Vec::new(); rows.names.len()];
        for batch in batches {
            for (index, array) in batch.columns().iter().enumerate() {
                rows.columns[index].extend(json_values(array)?);
            }
            rows.len += batch.num_rows();
        }
        Ok(rows)
    }

    fn column(&self, name: &str) -> Option<&[Value]> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|index| self.columns[index].as_slice())
    }

    fn get(&self, name: &str, row: usize) -> Value {
        self.column(name)
            .and_then(|values| values.get(row))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Calculation name -> value of `row`.
    fn values(&self, plan: &Plan, row: usize) -> Map<String, Value> {
        plan.spec
            .calculations
            .iter()
            .enumerate()
            .filter(|(_, c)| c.op != CalcOp::Heatmap)
            .map(|(index, c)| (c.name.clone(), self.get(&value(index), row)))
            .collect()
    }

    /// Breakdown column -> value of `row`.
    fn key(&self, plan: &Plan, row: usize) -> Map<String, Value> {
        plan.spec
            .breakdowns
            .iter()
            .enumerate()
            .map(|(index, name)| (name.clone(), self.get(&key(index), row)))
            .collect()
    }
}

fn group_list(plan: &Plan, batches: &[RecordBatch]) -> Result<Vec<Group>, QueryError> {
    let rows = Rows::new(batches)?;
    Ok((0..rows.len)
        .map(|row| Group {
            key: rows.key(plan, row),
            values: rows.values(plan, row),
            exemplars: Vec::new(),
        })
        .collect())
}

fn series_list(plan: &Plan, batches: &[RecordBatch]) -> Result<Vec<SeriesPoint>, QueryError> {
    let rows = Rows::new(batches)?;
    Ok((0..rows.len)
        .map(|row| SeriesPoint {
            time: rows
                .get(TIME, row)
                .as_i64()
                .map(seconds)
                .unwrap_or(Value::Null),
            key: rows.key(plan, row),
            values: rows.values(plan, row),
        })
        .collect())
}
