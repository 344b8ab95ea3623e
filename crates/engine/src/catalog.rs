//! The catalog a query sees: one schema listing its environment's datasets live.
//!
//! Each query gets its own catalog list holding only its environment, so one
//! tenant's SQL can never name another's datasets.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    SchemaProvider, TableProvider,
};
use datafusion::error::{DataFusionError, Result};

use crate::all_datasets::{ALL_DATASETS, all_datasets_table};
use crate::remote_buffers::LiveDatasets;
use crate::table::{DatasetTable, ScanContext};

/// Name of the one catalog.
pub const CATALOG_NAME: &str = "quarry";
/// Name of the schema holding the environment's datasets (the default schema).
pub const SCHEMA_NAME: &str = "public";

/// The catalog list of one query in environment `env`.
pub(crate) fn environment_catalogs(
    env: &str,
    datasets: LiveDatasets,
    scan: Arc<ScanContext>,
) -> Result<Arc<dyn CatalogProviderList>> {
    let schema = Arc::new(EnvironmentSchema {
        env: env.to_owned(),
        datasets,
        scan,
    });
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(SCHEMA_NAME, schema)?;
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(CATALOG_NAME.to_owned(), Arc::new(catalog));
    Ok(Arc::new(catalogs))
}

/// The datasets of one environment, listed from the store at each lookup; a table
/// is built from a fresh snapshot when the query names it (with the ingest
/// nodes' unsealed rows, in a cluster). `__all__` (their union) resolves by name
/// but is not listed, so listings show only real datasets.
#[derive(Debug)]
struct EnvironmentSchema {
    env: String,
    datasets: LiveDatasets,
    scan: Arc<ScanContext>,
}

#[async_trait]
impl SchemaProvider for EnvironmentSchema {
    fn table_names(&self) -> Vec<String> {
        self.datasets.source.0.datasets(&self.env)
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name == ALL_DATASETS {
            return all_datasets_table(&self.env, &self.datasets, &self.scan)
                .await
                .map(Some);
        }
        let snapshot = self
            .datasets
            .snapshot(&self.env, name)
            .await
            .map_err(|error| DataFusionError::External(Box::new(error)))?;
        Ok(snapshot.map(|(snapshot, _)| {
            Arc::new(DatasetTable::new(name, snapshot, Arc::clone(&self.scan)))
                as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        name == ALL_DATASETS
            || self
                .datasets
                .source
                .0
                .datasets(&self.env)
                .iter()
                .any(|dataset| dataset == name)
    }
}
