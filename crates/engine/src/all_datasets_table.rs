//! The `__all__` table provider: the datasets a query's filters leave, each read
//! as only the columns the query uses, in the union's shape.
//!
//! ```text
//!                   UnionExec  (or its only input; EmptyExec when no dataset is left)
//!           ┌───────────┴───────────┐
//!   ProjectionExec            ProjectionExec     union columns: the dataset's column
//!           │                       │            (cast where types differ), a typed
//!    FilterExec                FilterExec        NULL, or 'name' AS "meta.dataset"
//!           │                       │            filters rewritten to the dataset's
//!   DatasetTable scan a      DatasetTable scan c columns: they prune its segments
//!                                                 (time, stats, bloom) and its rows
//!   (dataset b: a filter folded to false for it, so it is not planned at all)
//! ```
//!
//! Why a provider and not a view of the union: a view inlines a projection of
//! every union column for every dataset into the logical plan, and each optimizer
//! rule then walks them all. With eight datasets and a few hundred columns that
//! planning cost more than a small query's scan. Here the logical plan holds one
//! table scan, and the per-dataset work happens once, in `scan`, for the
//! projected columns of the datasets that can match.
//!
//! Filters are `Exact`: each branch applies its rewritten filter itself, so none
//! is evaluated twice. Rewriting is exact because a union column is, in each
//! branch, exactly the expression it is replaced with.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{
    Column, DFSchema, ScalarValue, internal_datafusion_err, plan_err, project_schema,
};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, cast, lit};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    Column as PhysicalColumn, Literal, cast as physical_cast,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;

use crate::all_datasets::{DATASET_COLUMN, Mapping};
use crate::table::DatasetTable;

/// Every dataset of an environment as one table (see the module docs).
pub(crate) struct AllDatasetsTable {
    /// The union's columns (`timestamp` first) and `meta.dataset` last.
    schema: SchemaRef,
    /// Each union column's type by name: `Schema::field_with_name` is a linear
    /// search, and a wide union asks it for every column of every dataset.
    types: HashMap<String, DataType>,
    branches: Vec<Branch>,
}

/// One dataset of the union and where its columns land.
pub(crate) struct Branch {
    name: String,
    table: DatasetTable,
    /// `feed[union column]` = the dataset column read into it.
    feed: HashMap<String, Mapping>,
    /// The dataset's columns by name: their indices in its schema.
    indices: HashMap<String, usize>,
}

impl Branch {
    pub(crate) fn new(name: String, table: DatasetTable, feed: HashMap<String, Mapping>) -> Self {
        let indices = table
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(index, field)| (field.name().clone(), index))
            .collect();
        Branch {
            name,
            table,
            feed,
            indices,
        }
    }

    fn index_of(&self, column: &str) -> Result<usize> {
        match self.indices.get(column) {
            Some(index) => Ok(*index),
            None => plan_err!("dataset {} has no column {column}", self.name),
        }
    }
}

/// Where one union column comes from in one dataset.
enum Source<'a> {
    /// The dataset's column, cast to the union's type where that differs.
    Read {
        column: &'a str,
        cast_to: Option<&'a DataType>,
    },
    /// A column the dataset lacks.
    Null(&'a DataType),
    /// `meta.dataset`.
    Name,
}

/// What a query's filters keep of one dataset.
enum Kept {
    /// No row can match: the dataset is not read.
    Nothing,
    /// The rows matching this filter over the dataset's columns (`None`: all).
    Rows(Option<Expr>),
}

impl AllDatasetsTable {
    pub(crate) fn new(schema: SchemaRef, branches: Vec<Branch>) -> Self {
        let types = schema
            .fields()
            .iter()
            .map(|field| (field.name().clone(), field.data_type().clone()))
            .collect();
        AllDatasetsTable {
            schema,
            types,
            branches,
        }
    }

    /// Where `column` of the union comes from in `branch`.
    fn source<'a>(&'a self, branch: &'a Branch, column: &str) -> Result<Source<'a>> {
        if column == DATASET_COLUMN {
            return Ok(Source::Name);
        }
        let Some(union_type) = self.types.get(column) else {
            return plan_err!("__all__ has no column {column}");
        };
        Ok(match branch.feed.get(column) {
            Some(mapping) => Source::Read {
                column: &mapping.source,
                cast_to: (mapping.source_type.data_type() != *union_type).then_some(union_type),
            },
            None => Source::Null(union_type),
        })
    }

    /// `column` of the union, in `branch`, as an expression over its columns.
    fn read_in(&self, branch: &Branch, column: &str) -> Result<Expr> {
        Ok(match self.source(branch, column)? {
            Source::Read { column, cast_to } => {
                let read = Expr::Column(Column::new_unqualified(column));
                match cast_to {
                    Some(data_type) => cast(read, data_type.clone()),
                    None => read,
                }
            }
            Source::Null(data_type) => lit(ScalarValue::try_from(data_type)?),
            Source::Name => lit(branch.name.as_str()),
        })
    }

    /// The query's `filters` (over union columns) as one filter over `branch`'s
    /// columns, simplified: a dataset without a filtered column, or of another
    /// `meta.dataset`, folds to a constant.
    fn kept(&self, state: &dyn Session, branch: &Branch, filters: &[Expr]) -> Result<Kept> {
        if filters.is_empty() {
            return Ok(Kept::Rows(None));
        }
        let dataset_schema = DFSchema::try_from(branch.table.schema())?;
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(dataset_schema))
            .with_config_options(Arc::clone(state.config().options()))
            .with_query_execution_start_time(state.execution_props().query_execution_start_time)
            .build();
        let simplifier = ExprSimplifier::new(context);
        let mut kept = Vec::with_capacity(filters.len());
        for filter in filters {
            let rewritten = filter
                .clone()
                .transform_up(|expr| match expr {
                    Expr::Column(column) => {
                        Ok(Transformed::yes(self.read_in(branch, &column.name)?))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            match simplifier.simplify(rewritten)? {
                Expr::Literal(ScalarValue::Boolean(Some(true)), _) => {}
                // False or NULL: no row of this dataset passes.
                Expr::Literal(..) => return Ok(Kept::Nothing),
                other => kept.push(other),
            }
        }
        Ok(Kept::Rows(conjunction(kept)))
    }

    /// `branch` read for the union `columns` (indices into the schema), with
    /// `filter` applied, in the union's shape; `None` when it holds no rows.
    async fn scan_branch(
        &self,
        state: &dyn Session,
        branch: &Branch,
        columns: &[usize],
        filter: Option<Expr>,
        limit: Option<usize>,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let sources = columns
            .iter()
            .map(|index| self.source(branch, self.schema.field(*index).name()))
            .collect::<Result<Vec<_>>>()?;
        // The dataset columns the outputs and the filter read, in schema order.
        let mut read = BTreeSet::new();
        for source in &sources {
            if let Source::Read { column, .. } = source {
                read.insert(branch.index_of(column)?);
            }
        }
        for column in filter.iter().flat_map(Expr::column_refs) {
            read.insert(branch.index_of(&column.name)?);
        }
        let projection: Vec<usize> = read.into_iter().collect();
        let filters: Vec<Expr> = filter.iter().cloned().collect();
        // A limit may stop the scan early only when nothing filters its rows.
        let scan_limit = if filter.is_some() { None } else { limit };
        let mut plan = branch
            .table
            .scan(state, Some(&projection), &filters, scan_limit)
            .await?;
        if plan.is::<EmptyExec>() {
            return Ok(None);
        }
        let scanned = plan.schema();
        // Columns read as they are, in order, need no projection.
        let as_read = filter.is_none()
            && sources.len() == scanned.fields().len()
            && sources.iter().zip(columns).zip(scanned.fields()).all(
                |((source, index), field)| {
                    matches!(source, Source::Read { column, cast_to: None }
                        if *column == field.name() && field.name() == self.schema.field(*index).name())
                },
            );
        if as_read {
            return Ok(Some(plan));
        }
        if let Some(filter) = filter {
            let predicate = state.create_physical_expr(filter, &DFSchema::try_from(scanned)?)?;
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        // Physical expressions built by position: planning them by name looks
        // each up in the schema, which is quadratic for a wide union.
        let input = plan.schema();
        let exprs = sources
            .into_iter()
            .zip(columns)
            .map(|(source, index)| {
                let expr: Arc<dyn PhysicalExpr> = match source {
                    Source::Read { column, cast_to } => {
                        let position = projection
                            .binary_search(&branch.index_of(column)?)
                            .map_err(|_| internal_datafusion_err!("{column} was not read"))?;
                        let read = Arc::new(PhysicalColumn::new(column, position));
                        match cast_to {
                            Some(data_type) => physical_cast(read, &input, data_type.clone())?,
                            None => read,
                        }
                    }
                    Source::Null(data_type) => {
                        Arc::new(Literal::new(ScalarValue::try_from(data_type)?))
                    }
                    Source::Name => Arc::new(Literal::new(ScalarValue::from(branch.name.as_str()))),
                };
                Ok((expr, self.schema.field(*index).name().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Arc::new(ProjectionExec::try_new(exprs, plan)?)))
    }
}

impl fmt::Debug for AllDatasetsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllDatasetsTable")
            .field("columns", &self.schema.fields().len())
            .field(
                "datasets",
                &self
                    .branches
                    .iter()
                    .map(|branch| branch.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[async_trait]
impl TableProvider for AllDatasetsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// Every filter is applied in its branch: see the module docs.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(projection) => projection.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut scans = Vec::with_capacity(self.branches.len());
        for branch in &self.branches {
            if let Kept::Rows(filter) = self.kept(state, branch, filters)? {
                scans.push(self.scan_branch(state, branch, &columns, filter, limit));
            }
        }
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = futures::future::try_join_all(scans)
            .await?
            .into_iter()
            .flatten()
            .collect();
        match inputs.len() {
            0 => Ok(Arc::new(EmptyExec::new(project_schema(
                &self.schema,
                projection,
            )?))),
            1 => Ok(inputs.remove(0)),
            _ => UnionExec::try_new(inputs),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::Float64Type;
    use quarry_schema::FieldType;

    use crate::QueryEngine;
    use crate::test_support::*;

    /// 2023-11-14T22:00:00Z in nanoseconds.
    const START_NS: i64 = 1_699_999_200_000_000_000;

    /// `api` (one segment and a buffer) has `http.route`; `db` (one segment)
    /// does not, and its `latency` is a float where `api`'s is an int.
    async fn two_datasets() -> QueryEngine {
        let source = TestSource::new();
        let api_segment = source
            .write_segment(
                "default/api/1.parquet",
                &batch(vec![
                    ("timestamp", times(vec![START_NS, START_NS + 1])),
                    ("http.route", strings(vec![Some("/a"), Some("/b")])),
                    ("latency", ints(vec![Some(10), Some(20)])),
                ]),
                &[],
                1024,
            )
            .await;
        source.put(
            "default",
            "api",
            schema(&[
                ("http.route", FieldType::String),
                ("latency", FieldType::Int),
            ]),
            vec![api_segment],
            vec![batch(vec![
                ("timestamp", times(vec![START_NS + 2])),
                ("http.route", strings(vec![Some("/a")])),
                ("latency", ints(vec![Some(5)])),
            ])],
        );
        let db_segment = source
            .write_segment(
                "default/db/1.parquet",
                &batch(vec![
                    ("timestamp", times(vec![START_NS + 3, START_NS + 4])),
                    ("latency", floats(vec![Some(0.5), Some(30.0)])),
                ]),
                &[],
                1024,
            )
            .await;
        source.put(
            "default",
            "db",
            schema(&[("latency", FieldType::Float)]),
            vec![db_segment],
            Vec::new(),
        );
        engine(&source)
    }

    /// `sql`'s single integer and how many segments its scans considered.
    async fn count_and_segments(engine: &QueryEngine, sql: &str) -> (i64, u64) {
        let before = engine.metrics().segments_considered.get();
        let count = single_int(&query(engine, "default", sql).await);
        (count, engine.metrics().segments_considered.get() - before)
    }

    fn floats_of(batches: &[RecordBatch]) -> Vec<f64> {
        let mut values: Vec<f64> = batches
            .iter()
            .flat_map(|batch| {
                batch
                    .column(0)
                    .as_primitive::<Float64Type>()
                    .iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
            .collect();
        values.sort_by(f64::total_cmp);
        values
    }

    #[tokio::test]
    async fn a_dataset_a_filter_cannot_match_is_not_read() {
        let engine = two_datasets().await;
        // `db` has no `http.route`: the filter is NULL there, so only api's
        // segment is considered.
        let routed = r#"SELECT count(*) FROM "__all__" WHERE "http.route" = '/a'"#;
        assert_eq!(count_and_segments(&engine, routed).await, (2, 1));
        let named = r#"SELECT count(*) FROM "__all__" WHERE "meta.dataset" = 'db'"#;
        assert_eq!(count_and_segments(&engine, named).await, (2, 1));
        let unfiltered = r#"SELECT count(*) FROM "__all__""#;
        assert_eq!(count_and_segments(&engine, unfiltered).await, (5, 2));
        // A missing column is NULL in every row: IS NULL keeps all of db (and
        // api's segment is still considered: its rows are filtered, not folded).
        let missing = r#"SELECT count(*) FROM "__all__" WHERE "http.route" IS NULL"#;
        assert_eq!(count_and_segments(&engine, missing).await, (2, 2));
    }

    #[tokio::test]
    async fn each_dataset_keeps_its_own_part_of_an_or() {
        let engine = two_datasets().await;
        let sql = r#"SELECT latency FROM "__all__"
            WHERE ("meta.dataset" = 'api' AND latency >= 10)
               OR ("meta.dataset" = 'db' AND latency < 1)"#;
        assert_eq!(
            floats_of(&query(&engine, "default", sql).await),
            vec![0.5, 10.0, 20.0]
        );
    }

    #[tokio::test]
    async fn a_limit_counts_only_rows_that_pass_the_filter() {
        let engine = two_datasets().await;
        let sql = r#"SELECT latency FROM "__all__" WHERE latency > 15 LIMIT 5"#;
        assert_eq!(
            floats_of(&query(&engine, "default", sql).await),
            vec![20.0, 30.0]
        );
        let unfiltered = r#"SELECT latency FROM "__all__" LIMIT 4"#;
        assert_eq!(
            floats_of(&query(&engine, "default", unfiltered).await).len(),
            4
        );
    }

    #[tokio::test]
    async fn every_row_names_its_dataset_and_missing_columns_are_null() {
        let engine = two_datasets().await;
        let sql = r#"SELECT "meta.dataset", count(*), count("http.route"), sum(latency)
            FROM "__all__" GROUP BY 1 ORDER BY 1"#;
        let batches = query(&engine, "default", sql).await;
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|line| line.starts_with("| "))
            .skip(1)
            .map(|line| {
                line.split('|')
                    .map(str::trim)
                    .filter(|cell| !cell.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            rows,
            vec![vec!["api", "3", "3", "35.0"], vec!["db", "2", "0", "30.5"]]
        );
    }
}
