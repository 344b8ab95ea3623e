//! The union schema of one dataset.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::FieldType;

/// Every column a dataset has ever had, in order of first appearance, each with its
/// one type. `timestamp` is always first. Serialized into the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSchema {
    columns: Vec<(String, FieldType)>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl Default for DatasetSchema {
    fn default() -> Self {
        let mut schema = DatasetSchema {
            columns: Vec::new(),
            index: HashMap::new(),
        };
        schema.insert(crate::TIMESTAMP, FieldType::Timestamp);
        schema
    }
}

impl DatasetSchema {
    /// Rebuilds the name index after deserialization.
    pub fn reindex(&mut self) {
        self.index = self
            .columns
            .iter()
            .enumerate()
            .map(|(position, (name, _))| (name.clone(), position))
            .collect();
    }

    /// The type of column `name`, if the dataset has it.
    pub fn get(&self, name: &str) -> Option<FieldType> {
        self.index
            .get(name)
            .map(|&position| self.columns[position].1)
    }

    /// Adds a column; returns false (and changes nothing) when it already exists.
    pub fn insert(&mut self, name: &str, field_type: FieldType) -> bool {
        if self.index.contains_key(name) {
            return false;
        }
        self.index.insert(name.to_owned(), self.columns.len());
        self.columns.push((name.to_owned(), field_type));
        true
    }

    /// Number of columns, `timestamp` included.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the schema has only the `timestamp` column (or none).
    pub fn is_empty(&self) -> bool {
        self.columns.len() <= 1
    }

    /// Columns in order of first appearance.
    pub fn columns(&self) -> impl Iterator<Item = (&str, FieldType)> {
        self.columns
            .iter()
            .map(|(name, field_type)| (name.as_str(), *field_type))
    }

    /// The Arrow schema of the dataset table: every column nullable but `timestamp`.
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|(name, field_type)| {
                Field::new(name, field_type.data_type(), name != crate::TIMESTAMP)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_appearance_order_and_survives_serde() {
        let mut schema = DatasetSchema::default();
        assert!(schema.insert("b", FieldType::Int));
        assert!(schema.insert("a", FieldType::String));
        assert!(!schema.insert("b", FieldType::String));
        let json = serde_json_like(&schema);
        let mut back: DatasetSchema = json;
        back.reindex();
        assert_eq!(back.get("b"), Some(FieldType::Int));
        let names: Vec<&str> = back.columns().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["timestamp", "b", "a"]);
        assert!(!back.arrow_schema().field(0).is_nullable());
    }

    // The schema crate does not depend on serde_json; a clone stands in for a
    // round trip of the serialized columns list.
    fn serde_json_like(schema: &DatasetSchema) -> DatasetSchema {
        DatasetSchema {
            columns: schema.columns.clone(),
            index: HashMap::new(),
        }
    }
}
