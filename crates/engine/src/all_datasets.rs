//! `__all__`: every dataset of an environment as one table.
//!
//! Its schema is the union of the datasets' columns plus `meta.dataset` (a
//! constant per dataset). It is read through [`AllDatasetsTable`], which plans
//! only the datasets a query's filters can match and only the columns it uses:
//! time, statistics and `trace.trace_id` bloom pruning apply per dataset, a
//! filter on `meta.dataset` or on a column a dataset lacks removes that dataset
//! before anything of it is planned.
//!
//! Column types follow the placement rule of `crates/schema` (see [`union_layout`]):
//! a column with one type everywhere keeps it; ints and floats together become
//! float; otherwise the type most datasets use wins, values of other types are
//! coerced where `placement` coerces (a number or bool into a string column) and
//! otherwise move to the sibling column `<name>#<type>`, as they would have on
//! ingest into one dataset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use datafusion::error::{DataFusionError, Result};
use quarry_schema::{DatasetSchema, FieldType, Placement, TIMESTAMP, placement, sibling_name};

use crate::QueryError;
use crate::all_datasets_table::{AllDatasetsTable, Branch};
use crate::remote_buffers::LiveDatasets;
use crate::table::{DatasetTable, ScanContext};

/// Name of the environment-wide table.
pub const ALL_DATASETS: &str = "__all__";
/// Column of `__all__` naming the dataset each row comes from.
pub const DATASET_COLUMN: &str = quarry_schema::fields::DATASET;

/// Where one dataset column lands in the union.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapping {
    /// The dataset's column.
    pub(crate) source: String,
    /// Its type in the dataset.
    pub(crate) source_type: FieldType,
}

/// The union schema and, per union column, which dataset column feeds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnionLayout {
    /// Union columns in order (`timestamp` first), each with its type.
    pub(crate) columns: Vec<(String, FieldType)>,
    /// `feeds[dataset][union column]` = the dataset column read into it.
    pub(crate) feeds: Vec<HashMap<String, Mapping>>,
}

/// The union of `schemas` (one per dataset, in the order given).
pub(crate) fn union_layout(schemas: &[&DatasetSchema]) -> UnionLayout {
    // Types of each column name, in order of first appearance, with dataset counts.
    let mut order: Vec<String> = Vec::new();
    let mut types: HashMap<String, BTreeMap<TypeRank, usize>> = HashMap::new();
    for schema in schemas {
        for (name, field_type) in schema.columns() {
            let counts = types.entry(name.to_owned()).or_insert_with(|| {
                order.push(name.to_owned());
                BTreeMap::new()
            });
            *counts.entry(TypeRank(field_type)).or_default() += 1;
        }
    }
    let mut column_types: HashMap<String, FieldType> = order
        .iter()
        .map(|name| (name.clone(), winning_type(&types[name])))
        .collect();

    let mut feeds = Vec::with_capacity(schemas.len());
    for schema in schemas {
        let mut feed = HashMap::new();
        for (name, field_type) in schema.columns() {
            let union_type = column_types[name];
            let target = match placement(field_type, union_type, None) {
                Placement::Same | Placement::Coerce => name.to_owned(),
                Placement::Sibling => {
                    let sibling = sibling_name(name, field_type);
                    if !column_types.contains_key(&sibling) {
                        order.push(sibling.clone());
                        column_types.insert(sibling.clone(), field_type);
                    }
                    sibling
                }
            };
            // A dataset's own sibling column and a moved value may meet in the same
            // union column: the dataset's own column wins, the moved one is kept
            // only if the slot is free.
            let mapping = Mapping {
                source: name.to_owned(),
                source_type: field_type,
            };
            if target == name {
                feed.insert(target, mapping);
            } else {
                feed.entry(target).or_insert(mapping);
            }
        }
        feeds.push(feed);
    }
    let columns = order
        .into_iter()
        .filter(|name| name != DATASET_COLUMN)
        .map(|name| {
            let field_type = column_types[&name];
            (name, field_type)
        })
        .collect();
    UnionLayout { columns, feeds }
}

/// A type ordered by preference when datasets disagree evenly: string (holds any
/// value's text), then float, int, bool, timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TypeRank(FieldType);

impl TypeRank {
    fn preference(self) -> u8 {
        match self.0 {
            FieldType::String => 0,
            FieldType::Float => 1,
            FieldType::Int => 2,
            FieldType::Bool => 3,
            FieldType::Timestamp => 4,
        }
    }
}

impl Ord for TypeRank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.preference().cmp(&other.preference())
    }
}

impl PartialOrd for TypeRank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The union type of a column held with `counts` (datasets per type).
fn winning_type(counts: &BTreeMap<TypeRank, usize>) -> FieldType {
    let only_numbers = counts
        .keys()
        .all(|rank| matches!(rank.0, FieldType::Int | FieldType::Float));
    if only_numbers && counts.contains_key(&TypeRank(FieldType::Float)) {
        return FieldType::Float;
    }
    counts
        .iter()
        .max_by_key(|(rank, count)| (**count, std::cmp::Reverse(rank.preference())))
        .map(|(rank, _)| rank.0)
        .unwrap_or(FieldType::String)
}

/// The `__all__` table of environment `env`: a fresh snapshot of each of its
/// datasets, read through [`AllDatasetsTable`].
pub(crate) async fn all_datasets_table(
    env: &str,
    datasets: &LiveDatasets,
    scan: &Arc<ScanContext>,
) -> Result<Arc<dyn TableProvider>> {
    let external = |error: QueryError| DataFusionError::External(Box::new(error));
    let names = datasets.names(env).await.map_err(external)?;
    let snapshots = futures::future::try_join_all(
        names
            .iter()
            .map(|name| datasets.snapshot(env, name.as_str())),
    )
    .await
    .map_err(external)?;
    let tables: Vec<(String, DatasetTable, DatasetSchema)> = names
        .into_iter()
        .zip(snapshots)
        .filter_map(|(name, snapshot)| {
            let (snapshot, _) = snapshot?;
            let schema = snapshot.schema.clone();
            let table = DatasetTable::new(&name, snapshot, Arc::clone(scan));
            Some((name, table, schema))
        })
        .collect();
    if tables.is_empty() {
        let schema = Schema::new(vec![
            Field::new(TIMESTAMP, FieldType::Timestamp.data_type(), false),
            Field::new(DATASET_COLUMN, DataType::Utf8, false),
        ]);
        return Ok(Arc::new(EmptyTable::new(Arc::new(schema))));
    }
    let schemas: Vec<&DatasetSchema> = tables.iter().map(|(_, _, schema)| schema).collect();
    let layout = union_layout(&schemas);
    let mut fields: Vec<Field> = layout
        .columns
        .iter()
        .map(|(name, field_type)| Field::new(name, field_type.data_type(), name != TIMESTAMP))
        .collect();
    fields.push(Field::new(DATASET_COLUMN, DataType::Utf8, false));
    let branches = tables
        .into_iter()
        .zip(layout.feeds)
        .map(|((name, table, _), feed)| Branch::new(name, table, feed))
        .collect();
    Ok(Arc::new(AllDatasetsTable::new(
        Arc::new(Schema::new(fields)),
        branches,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(columns: &[(&str, FieldType)]) -> DatasetSchema {
        let mut schema = DatasetSchema::default();
        for (name, field_type) in columns {
            schema.insert(name, *field_type);
        }
        schema
    }

    fn union_type(layout: &UnionLayout, name: &str) -> Option<FieldType> {
        layout
            .columns
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, field_type)| *field_type)
    }

    #[test]
    fn agreeing_columns_keep_their_type_and_numbers_widen_to_float() {
        let a = schema(&[("n", FieldType::Int), ("x", FieldType::Float)]);
        let b = schema(&[("n", FieldType::Int), ("x", FieldType::Int)]);
        let c = schema(&[("x", FieldType::Int), ("s", FieldType::String)]);
        let layout = union_layout(&[&a, &b, &c]);
        let names: Vec<&str> = layout.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["timestamp", "n", "x", "s"]);
        assert_eq!(union_type(&layout, "n"), Some(FieldType::Int));
        assert_eq!(union_type(&layout, "x"), Some(FieldType::Float));
        assert_eq!(layout.feeds[1]["x"].source_type, FieldType::Int);
        assert!(!layout.feeds[0].contains_key("s"));
    }

    #[test]
    fn the_majority_type_wins_and_others_coerce_or_move_to_siblings() {
        let a = schema(&[("status", FieldType::Int)]);
        let b = schema(&[("status", FieldType::Int)]);
        let c = schema(&[("status", FieldType::String)]);
        let d = schema(&[("status", FieldType::Bool)]);
        let layout = union_layout(&[&a, &b, &c, &d]);
        assert_eq!(union_type(&layout, "status"), Some(FieldType::Int));
        assert_eq!(
            union_type(&layout, "status#string"),
            Some(FieldType::String)
        );
        assert_eq!(union_type(&layout, "status#bool"), Some(FieldType::Bool));
        assert_eq!(layout.feeds[2]["status#string"].source, "status");
        assert!(!layout.feeds[2].contains_key("status"));

        // An even split prefers string, which takes numbers and bools as text.
        let e = schema(&[("v", FieldType::Int)]);
        let f = schema(&[("v", FieldType::String)]);
        let layout = union_layout(&[&e, &f]);
        assert_eq!(union_type(&layout, "v"), Some(FieldType::String));
        assert_eq!(layout.feeds[0]["v"].source_type, FieldType::Int);
        assert_eq!(union_type(&layout, "v#int"), None);
    }

    #[test]
    fn a_dataset_column_named_like_the_dataset_column_is_not_duplicated() {
        let a = schema(&[("meta.dataset", FieldType::String), ("k", FieldType::Int)]);
        let layout = union_layout(&[&a]);
        let names: Vec<&str> = layout.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["timestamp", "k"]);
    }

    mod over_an_engine {

        use arrow::array::AsArray;
        use arrow::datatypes::Float64Type;
        use quarry_schema::FieldType;

        use crate::test_support::*;

        /// 2023-11-14T22:00:00Z in nanoseconds.
        const START_NS: i64 = 1_699_999_200_000_000_000;

        #[tokio::test]
        async fn all_datasets_union_with_types_reconciled_and_pruning_per_dataset() {
            let source = TestSource::new();
            let api_segment = source
                .write_segment(
                    "default/api/1.parquet",
                    &batch(vec![
                        ("timestamp", times(vec![START_NS, START_NS + 1])),
                        ("trace.trace_id", strings(vec![Some("t1"), Some("t2")])),
                        ("latency", ints(vec![Some(10), Some(20)])),
                        ("status", ints(vec![Some(200), Some(500)])),
                    ]),
                    &["trace.trace_id"],
                    1024,
                )
                .await;
            source.put(
                "default",
                "api",
                schema(&[
                    ("trace.trace_id", FieldType::String),
                    ("latency", FieldType::Int),
                    ("status", FieldType::Int),
                ]),
                vec![api_segment],
                vec![batch(vec![
                    ("timestamp", times(vec![START_NS + 2])),
                    ("trace.trace_id", strings(vec![Some("t1")])),
                    ("latency", ints(vec![Some(5)])),
                ])],
            );
            let db_segment = source
                .write_segment(
                    "default/db/1.parquet",
                    &batch(vec![
                        ("timestamp", times(vec![START_NS + 3, START_NS + 4])),
                        // t1 lies between these, so only the bloom filter excludes it.
                        ("trace.trace_id", strings(vec![Some("t0"), Some("t9")])),
                        ("latency", floats(vec![Some(0.5), Some(0.5)])),
                        ("status", strings(vec![Some("ok"), Some("ok")])),
                    ]),
                    &["trace.trace_id"],
                    1024,
                )
                .await;
            source.put(
                "default",
                "db",
                schema(&[
                    ("trace.trace_id", FieldType::String),
                    ("latency", FieldType::Float),
                    ("status", FieldType::String),
                ]),
                vec![db_segment],
                Vec::new(),
            );
            let engine = engine(&source);

            let total = query(&engine, "default", r#"SELECT sum(latency) FROM "__all__""#).await;
            assert_eq!(
                total[0].column(0).as_primitive::<Float64Type>().value(0),
                36.0
            );
            // An even split between int and string: string wins, ints become text.
            let texts = query(
                &engine,
                "default",
                r#"SELECT count(*) FROM "__all__" WHERE status IN ('500', 'ok')"#,
            )
            .await;
            assert_eq!(single_int(&texts), 3);
            let per_dataset = query(
                &engine,
                "default",
                r#"SELECT count(*) FROM "__all__" WHERE "meta.dataset" = 'db'"#,
            )
            .await;
            assert_eq!(single_int(&per_dataset), 2);

            let metrics = engine.metrics();
            let before = metrics.segments_pruned_by_bloom.get();
            let trace = query(
                &engine,
                "default",
                r#"SELECT count(*) FROM "__all__" WHERE "trace.trace_id" = 't1'"#,
            )
            .await;
            assert_eq!(single_int(&trace), 2);
            // The db segment's bloom filter excludes t1; the api segment's holds it.
            assert_eq!(metrics.segments_pruned_by_bloom.get() - before, 1);
        }

        #[tokio::test]
        async fn an_environment_without_datasets_has_an_empty_all_table() {
            let source = TestSource::new();
            let engine = engine(&source);
            let count = query(&engine, "default", r#"SELECT count(*) FROM "__all__""#).await;
            assert_eq!(single_int(&count), 0);
        }
    }
}
