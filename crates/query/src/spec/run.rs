//! Runs a compiled query and assembles its [`QueryResult`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::compute::{filter_record_batch, is_not_null};
use serde_json::{Map, Value};

use super::exemplar_ids::fill_exemplar_ids;
use super::json::{json_values, seconds};
use super::model::QuerySpec;
use super::ops::CalcOp;
use super::plan::{
    BUCKET, CELL_COUNT, CELL_EXEMPLARS, CONCURRENCY, EXEMPLARS, Plan, ROWS, TIME, compile,
    heatmap_max, heatmap_min, key, value,
};
use super::result::{
    BucketTotal, CalculationInfo, Exemplar, Group, Heatmap, HeatmapBucket, HeatmapCell,
    QueryResult, SeriesPoint, Stats,
};
use super::rewrite::PlanRewrite;
use super::sketches::{HeatmapScheme, heatmap_scheme};
use super::states::{Pass, PassStates, RowSet};
use super::validate::NANOS_PER_SECOND;
use super::validate::ValidSpec;
use quarry_engine::panic_guard::catch_panics;
use quarry_engine::{QueryEngine, QueryError};

/// Most bytes of rewritten (rollup) rows [`materialized`] holds in memory; beyond
/// it the plan reads the rollup segments again for each aggregate, as raw plans do.
const MATERIALIZE_MAX_BYTES: usize = 64 << 20;

/// A rewritten plan (a rollup's) whose base rows are read once into memory: totals, groups and
/// series each aggregate the base, and a rollup's rows are few (buckets times
/// dimension values) while reading them means decoding sketch columns.
async fn materialized(context: &SessionContext, mut plan: Plan) -> Result<Plan, QueryError> {
    let schema = Arc::new(plan.base.schema().as_arrow().clone());
    let mut stream = plan.base.clone().execute_stream().await?;
    let mut batches = Vec::new();
    let mut bytes = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        bytes += batch.get_array_memory_size();
        if bytes > MATERIALIZE_MAX_BYTES {
            return Ok(plan);
        }
        batches.push(batch);
    }
    let table = MemTable::try_new(schema, vec![batches])?;
    plan.base = context.read_table(Arc::new(table))?;
    Ok(plan)
}

/// Runs `spec` over `dataset` (or `__all__`) of environment `env`; `now_ns` is
/// the time a spec without start or end ends at. `rewrite` (the server passes
/// rollups) may answer with its own plan; without it, or when it declines, the
/// plan compiled from raw rows answers.
pub async fn run_query(
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    spec: &QuerySpec,
    now_ns: i64,
    rewrite: Option<&dyn PlanRewrite>,
) -> Result<QueryResult, QueryError> {
    // A panic while planning or running fails this query only.
    catch_panics(run_query_unguarded(
        engine, env, dataset, spec, now_ns, rewrite,
    ))
    .await
}

async fn run_query_unguarded(
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    spec: &QuerySpec,
    now_ns: i64,
    rewrite: Option<&dyn PlanRewrite>,
) -> Result<QueryResult, QueryError> {
    let started = Instant::now();
    let valid = ValidSpec::new(spec, now_ns)?;
    let context = engine.session(env)?;
    // Rewrite hook (docs/rollups.md): a rollup that fits answers with the same
    // kind of plan; otherwise the raw one.
    let rewritten = match rewrite {
        Some(rewrite) => {
            rewrite
                .rewrite(
                    engine,
                    &context,
                    env,
                    dataset,
                    &valid,
                    spec.source.as_deref(),
                )
                .await?
        }
        None => None,
    };
    let (plan, source) = match rewritten {
        Some((plan, source)) => (materialized(&context, plan).await?, source),
        None => (compile(&context, dataset, valid).await?, "raw".to_owned()),
    };
    let planned = started.elapsed();

    let Answers {
        totals,
        groups: groups_batches,
        series,
        states,
    } = answers(&context, &plan, engine.spec_many_groups()).await?;
    let answered = started.elapsed();
    let totals_rows = Rows::new(&totals)?;
    let mut heatmaps = Vec::with_capacity(plan.heatmaps.len());
    for index in &plan.heatmaps {
        let cells = match (&states, plan.heatmap_in_pass()) {
            (Some(states), Some(in_pass)) if in_pass == *index => CellSource::Pass(states),
            _ => CellSource::OwnPass,
        };
        heatmaps.push(heatmap(&context, &plan, &totals_rows, *index, cells).await?);
    }
    drop(states);
    let heatmapped = started.elapsed();
    let rows_matched = totals_rows
        .column(ROWS)
        .and_then(|values| values.first())
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut groups = group_list(&plan, &groups_batches)?;
    // The answer stands without exemplar ids: a failed lookup (out of memory
    // under load, say) leaves exemplars with their time and value only.
    if let Err(error) = fill_exemplar_ids(&context, &plan, &mut groups, &mut heatmaps).await {
        tracing::warn!(%error, dataset, "exemplar ids not looked up; answering without them");
    }
    let looked_up = started.elapsed();
    let mut series = series_list(&plan, &series)?;
    let mut totals = totals_rows.values(&plan, 0);
    if plan
        .spec
        .calculations
        .iter()
        .any(|c| c.op == CalcOp::Concurrency)
    {
        fill_concurrency(
            &plan,
            &context,
            &groups_batches,
            &mut groups,
            &mut series,
            &mut totals,
        )
        .await?;
    }
    // Where a spec's time goes (benches/results/README.md, "Query-spec answers").
    tracing::debug!(
        dataset,
        source,
        plan_ms = planned.as_secs_f64() * 1e3,
        answers_ms = (answered - planned).as_secs_f64() * 1e3,
        heatmaps_ms = (heatmapped - answered).as_secs_f64() * 1e3,
        exemplar_ids_ms = (looked_up - heatmapped).as_secs_f64() * 1e3,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "spec answered"
    );
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
        groups,
        series,
        totals,
        heatmaps,
        stats: Stats {
            rows_matched,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        },
    })
}

/// Aggregates of the pass that totals and series do not show: merging them
/// (a list of candidates per state) cost more than the rest for many groups.
const NOT_SHOWN: &[&str] = &[EXEMPLARS, CELL_EXEMPLARS];

/// The aggregate parts of an answer, collected.
struct Answers {
    totals: Vec<RecordBatch>,
    groups: Vec<RecordBatch>,
    series: Vec<RecordBatch>,
    /// The one pass's states, when it ran (heatmap cells merge them too).
    states: Option<PassStates>,
}

/// Totals, top groups and their series, from one pass over the data when its
/// states merge (see `states`), from two when its breakdown keys have many values
/// (see `group_probe`), else from one plan each.
/// `many_groups` is the engine's `spec_many_groups`.
async fn answers(
    context: &SessionContext,
    plan: &Plan,
    many_groups: usize,
) -> Result<Answers, QueryError> {
    let keys = plan.spec.breakdowns.len();
    let pass_groups = plan.pass_group_columns().len();
    let started = Instant::now();
    let probe = (keys > 0).then_some(many_groups);
    let pass = PassStates::compute(context, plan.pass()?, pass_groups, probe).await?;
    tracing::debug!(
        pass_ms = started.elapsed().as_secs_f64() * 1e3,
        state_rows = match &pass {
            Pass::States(states) => Some(states.rows()),
            _ => None,
        },
        many_groups = matches!(pass, Pass::ManyGroups),
        "spec pass"
    );
    let states = match pass {
        Pass::States(states) => states,
        Pass::ManyGroups => return two_passes(context, plan).await,
        Pass::Declined => return plan_per_answer(context, plan).await,
    };
    let totals = plan
        .totals(states.merge(context, &[], None, NOT_SHOWN).await?)?
        .collect()
        .await?;
    let groups = merged_groups(context, plan, &states).await?;
    let series = if groups.iter().all(|batch| batch.num_rows() == 0) {
        Vec::new()
    } else {
        // The pass's group columns: the time bucket (0), then the keys (1..).
        let top = (keys > 0)
            .then(|| RowSet::new(&key_columns_of(&groups, keys)?, (1..=keys).collect()))
            .transpose()?;
        merged_series(context, plan, &states, top.as_ref()).await?
    };
    Ok(Answers {
        totals,
        groups,
        series,
        states: Some(states),
    })
}

/// The top groups, from states grouped by (time bucket, keys) merged by keys.
async fn merged_groups(
    context: &SessionContext,
    plan: &Plan,
    states: &PassStates,
) -> Result<Vec<RecordBatch>, QueryError> {
    let key_columns: Vec<usize> = (1..=plan.spec.breakdowns.len()).collect();
    Ok(plan
        .groups(
            states
                .merge(context, &key_columns, None, &[CELL_EXEMPLARS])
                .await?,
        )?
        .collect()
        .await?)
}

/// The series of the groups `top` keeps (all without it), from states grouped
/// by (time bucket, keys).
async fn merged_series(
    context: &SessionContext,
    plan: &Plan,
    states: &PassStates,
    top: Option<&RowSet>,
) -> Result<Vec<RecordBatch>, QueryError> {
    let all_columns: Vec<usize> = (0..=plan.spec.breakdowns.len()).collect();
    Ok(plan
        .series(states.merge(context, &all_columns, top, NOT_SHOWN).await?)?
        .collect()
        .await?)
}

/// The key columns of group batches (which come first in them).
fn key_columns_of(groups: &[RecordBatch], keys: usize) -> Result<Vec<RecordBatch>, QueryError> {
    let columns: Vec<usize> = (0..keys).collect();
    Ok(groups
        .iter()
        .map(|batch| batch.project(&columns))
        .collect::<Result<_, _>>()?)
}

/// The answers of a breakdown by keys with many values: the first pass, by keys
/// alone and without exemplars, gives the totals and chooses the top groups; the
/// second reads the top groups' rows only, by (time bucket, keys) with exemplars,
/// for their values, exemplars and series. Both keep the one pass's states, so
/// the answer is the one pass's: the same aggregates over the same rows.
async fn two_passes(context: &SessionContext, plan: &Plan) -> Result<Answers, QueryError> {
    let keys = plan.spec.breakdowns.len();
    let started = Instant::now();
    let Pass::States(by_group) =
        PassStates::compute(context, plan.per_group_values()?, keys, None).await?
    else {
        return plan_per_answer(context, plan).await;
    };
    let all_keys: Vec<usize> = (0..keys).collect();
    let totals = plan
        .totals(by_group.merge(context, &[], None, NOT_SHOWN).await?)?
        .collect()
        .await?;
    let ranked = plan
        .ranked_groups(by_group.merge(context, &all_keys, None, NOT_SHOWN).await?)?
        .collect()
        .await?;
    let ranked_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(by_group);
    if ranked.iter().all(|batch| batch.num_rows() == 0) {
        return Ok(Answers {
            totals,
            groups: Vec::new(),
            series: Vec::new(),
            states: None,
        });
    }
    let top = key_columns_of(&ranked, keys)?;
    let pass = PassStates::compute(context, plan.top_pass(context, &top)?, keys + 1, None).await?;
    tracing::debug!(
        ranked_ms,
        top_pass_ms = started.elapsed().as_secs_f64() * 1e3 - ranked_ms,
        "spec two passes"
    );
    let Pass::States(top_states) = pass else {
        let groups = plan.groups(plan.per_group()?)?.collect().await?;
        let series = plan
            .series(plan.per_bucket(context, &groups)?)?
            .collect()
            .await?;
        return Ok(Answers {
            totals,
            groups,
            series,
            states: None,
        });
    };
    let groups = merged_groups(context, plan, &top_states).await?;
    let series = merged_series(context, plan, &top_states, None).await?;
    Ok(Answers {
        totals,
        groups,
        series,
        states: None,
    })
}

/// The answers from one plan each over the base rows (which can spill), when
/// the pass's states are declined.
async fn plan_per_answer(context: &SessionContext, plan: &Plan) -> Result<Answers, QueryError> {
    let totals = plan.totals(plan.overall()?)?.collect().await?;
    let groups = plan.groups(plan.per_group()?)?.collect().await?;
    // No group, no series: skipping the join also spares `top_rows` an empty
    // key table (which has no key columns to join on).
    let series = if groups.iter().all(|batch| batch.num_rows() == 0) {
        Vec::new()
    } else {
        plan.series(plan.per_bucket(context, &groups)?)?
            .collect()
            .await?
    };
    Ok(Answers {
        totals,
        groups,
        series,
        states: None,
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
            exemplars: exemplars_of(&rows.get(EXEMPLARS, row)),
        })
        .collect())
}

/// Exemplars from their JSON list (empty when absent or malformed).
fn exemplars_of(value: &Value) -> Vec<Exemplar> {
    serde_json::from_value(value.clone()).unwrap_or_default()
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

/// Every time bucket start of the range, epoch seconds.
fn bucket_times(plan: &Plan) -> Vec<Value> {
    let step = plan.spec.granularity_secs * NANOS_PER_SECOND;
    let first = plan.spec.start_ns.div_euclid(step) * step;
    (0..)
        .map(|i| first + i * step)
        .take_while(|start| *start < plan.spec.end_ns)
        .map(seconds)
        .collect()
}

/// Where the cells of a heatmap come from.
enum CellSource<'a> {
    /// The one pass's states, which counted rows per (time bucket, fine bin).
    Pass(&'a PassStates),
    /// A pass of the heatmap's own over the base rows.
    OwnPass,
}

/// The heatmap of calculation `index`, its buckets chosen from the column's range.
async fn heatmap(
    context: &SessionContext,
    plan: &Plan,
    totals: &Rows,
    index: usize,
    source: CellSource<'_>,
) -> Result<Heatmap, QueryError> {
    let calculation = &plan.spec.calculations[index];
    let range = (
        totals.get(&heatmap_min(index), 0).as_f64(),
        totals.get(&heatmap_max(index), 0).as_f64(),
    );
    let scheme = match range {
        (Some(min), Some(max)) => heatmap_scheme(min, max),
        _ => None,
    };
    let mut result = Heatmap {
        name: calculation.name.clone(),
        column: calculation.column.clone().unwrap_or_default(),
        scale: scheme.as_ref().map_or("linear", |s| s.scale).to_owned(),
        buckets: Vec::new(),
        times: bucket_times(plan),
        cells: Vec::new(),
        totals: Vec::new(),
    };
    let Some(scheme) = scheme else {
        return Ok(result);
    };
    result.buckets = scheme
        .buckets
        .iter()
        .enumerate()
        .map(|(index, (lower, upper))| HeatmapBucket {
            index,
            lower: *lower,
            upper: *upper,
        })
        .collect();
    let cells = match source {
        CellSource::Pass(states) => pass_cells(context, states, &scheme).await?,
        CellSource::OwnPass => plan.heatmap_cells(index, &scheme)?.collect().await?,
    };
    let cells = Rows::new(&cells)?;
    let exemplars = if cells.column(CELL_EXEMPLARS).is_some() {
        CELL_EXEMPLARS
    } else {
        EXEMPLARS
    };
    let mut totals_by_bucket = vec![0.0; scheme.buckets.len()];
    for row in 0..cells.len {
        let (Some(time), Some(bucket), Some(count)) = (
            cells.get(TIME, row).as_i64(),
            cells.get(BUCKET, row).as_u64(),
            cells.get(CELL_COUNT, row).as_f64(),
        ) else {
            continue;
        };
        let bucket = bucket as usize;
        if let Some(total) = totals_by_bucket.get_mut(bucket) {
            *total += count;
        }
        result.cells.push(HeatmapCell {
            time: seconds(time),
            bucket,
            count,
            exemplars: exemplars_of(&cells.get(exemplars, row)),
        });
    }
    result
        .cells
        .sort_by_key(|cell| (cell.time.as_i64().unwrap_or(i64::MIN), cell.bucket));
    result.totals = totals_by_bucket
        .into_iter()
        .enumerate()
        .filter(|(_, count)| *count > 0.0)
        .map(|(bucket, count)| BucketTotal { bucket, count })
        .collect();
    Ok(result)
}

/// Heatmap cells from the one pass's states: rows with a value, their fine
/// bin replaced by the bucket of `scheme` holding it, merged by (time, bucket).
async fn pass_cells(
    context: &SessionContext,
    states: &PassStates,
    scheme: &HeatmapScheme,
) -> Result<Vec<RecordBatch>, QueryError> {
    let (Some(time), Some(bin)) = (states.group_column(TIME), states.group_column(BUCKET)) else {
        return Err(QueryError::Execution(
            "the pass states have no heatmap bin column".into(),
        ));
    };
    let to_buckets = |batch: &RecordBatch| -> Result<RecordBatch, QueryError> {
        let batch = filter_record_batch(batch, &is_not_null(batch.column(bin))?)?;
        let Some(bins) = batch.column(bin).as_any().downcast_ref::<Int64Array>() else {
            return Err(QueryError::Execution("heatmap bins are not Int64".into()));
        };
        let buckets: Int64Array = bins
            .iter()
            .map(|fine| fine.map(|fine| scheme.bucket_of_fine_bin(fine)))
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[bin] = Arc::new(buckets);
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    };
    Ok(states
        .merge_mapped(context, &[time, bin], to_buckets, &[])
        .await?
        .collect()
        .await?)
}

/// A group key as a map key.
fn key_text(key: &Map<String, Value>) -> String {
    Value::Object(key.clone()).to_string()
}

/// CONCURRENCY per series point (adding points for buckets where spans are only
/// in flight), per group (the largest bucket value) and in the totals.
async fn fill_concurrency(
    plan: &Plan,
    context: &SessionContext,
    groups_batches: &[RecordBatch],
    groups: &mut [Group],
    series: &mut Vec<SeriesPoint>,
    totals: &mut Map<String, Value>,
) -> Result<(), QueryError> {
    let name = CalcOp::Concurrency.name();
    let per_bucket = Rows::new(
        &plan
            .concurrency(context, groups_batches, true)?
            .collect()
            .await?,
    )?;
    let mut group_max: HashMap<String, i64> = HashMap::new();
    let mut points: HashMap<(i64, String), usize> = series
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some(((p.time.as_i64()?, key_text(&p.key)), i)))
        .collect();
    let empty_values: Map<String, Value> = plan
        .spec
        .calculations
        .iter()
        .filter(|c| c.op != CalcOp::Heatmap)
        .map(|c| (c.name.clone(), Value::Null))
        .collect();
    for row in 0..per_bucket.len {
        let (Some(time), Some(count)) = (
            per_bucket.get(TIME, row).as_i64(),
            per_bucket.get(CONCURRENCY, row).as_i64(),
        ) else {
            continue;
        };
        let key = per_bucket.key(plan, row);
        let text = key_text(&key);
        let best = group_max.entry(text.clone()).or_insert(0);
        *best = (*best).max(count);
        let time_s = time / NANOS_PER_SECOND;
        let index = *points.entry((time_s, text)).or_insert_with(|| {
            series.push(SeriesPoint {
                time: seconds(time),
                key,
                values: empty_values.clone(),
            });
            series.len() - 1
        });
        series[index].values.insert(name.into(), Value::from(count));
    }
    // Points added for in-flight-only buckets go to their place in time.
    series.sort_by_key(|p| p.time.as_i64().unwrap_or(i64::MIN));
    for group in groups.iter_mut() {
        let value = group_max.get(&key_text(&group.key)).copied().unwrap_or(0);
        group.values.insert(name.into(), Value::from(value));
    }
    let overall = Rows::new(&plan.concurrency(context, &[], false)?.collect().await?)?;
    let peak = overall
        .column(CONCURRENCY)
        .map(|values| values.iter().filter_map(Value::as_i64).max().unwrap_or(0))
        .unwrap_or(0);
    totals.insert(name.into(), Value::from(peak));
    Ok(())
}
