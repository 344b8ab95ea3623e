//! Column names of a spec resolved to expressions: a calculated field (which
//! shadows a dataset column of the same name), or a dataset column. An unknown
//! name is an error naming the field it appeared in.

use arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Expr, ExprSchemable};

use super::error::SpecError;
use crate::derived;

/// What a name of the spec can refer to.
pub struct Columns<'a> {
    schema: &'a DFSchema,
    /// Calculated fields, compiled, in definition order.
    derived: Vec<(String, Expr)>,
}

/// A column reference that keeps dots in the name.
pub fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

impl<'a> Columns<'a> {
    /// Names over `schema` plus the calculated fields `(name, expression)`; each
    /// field may use the fields before it.
    pub fn new(schema: &'a DFSchema, fields: &[(String, String)]) -> Result<Self, SpecError> {
        let mut columns = Columns {
            schema,
            derived: Vec::new(),
        };
        for (index, (name, text)) in fields.iter().enumerate() {
            let lookup = |reference: &str| columns.lookup(reference);
            let expr = derived::compile(text, &lookup).map_err(|error| {
                SpecError::new(
                    format!("calculated_fields[{index}].expression"),
                    error.to_string(),
                )
            })?;
            columns.derived.push((name.clone(), expr));
        }
        Ok(columns)
    }

    fn lookup(&self, name: &str) -> Option<Expr> {
        if let Some((_, expr)) = self.derived.iter().rev().find(|(n, _)| n == name) {
            return Some(expr.clone());
        }
        self.schema
            .has_column_with_unqualified_name(name)
            .then(|| column(name))
    }

    /// Whether `name` is a dataset column (not shadowed by a calculated field).
    pub fn is_plain_column(&self, name: &str) -> bool {
        !self.derived.iter().any(|(n, _)| n == name)
            && self.schema.has_column_with_unqualified_name(name)
    }

    /// The expression of `name`; `field` is the JSON path named in the error.
    pub fn resolve(&self, name: &str, field: &str) -> Result<Expr, SpecError> {
        self.lookup(name)
            .ok_or_else(|| SpecError::new(field, format!("unknown column {name:?}")))
    }

    /// The type of `expr` over the dataset.
    pub fn data_type(&self, expr: &Expr, field: &str) -> Result<DataType, SpecError> {
        expr.get_type(self.schema)
            .map_err(|error| SpecError::new(field, error.strip_backtrace()))
    }

    /// The schema names resolve against.
    pub fn schema(&self) -> &DFSchema {
        self.schema
    }
}

/// The type values of `data_type` behave as (dictionaries as their values).
pub fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => value_type(values),
        other => other,
    }
}

/// Whether values of `data_type` are numbers (or always null, as an unknown
/// column referenced by a calculated field is).
pub fn is_numeric(data_type: &DataType) -> bool {
    let data_type = value_type(data_type);
    data_type.is_numeric() || *data_type == DataType::Null
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("duration_ms", DataType::Float64, true),
            Field::new("service.name", DataType::Utf8, true),
        ]))
        .unwrap()
    }

    #[test]
    fn names_resolve_to_fields_then_columns() {
        let schema = schema();
        let fields = vec![
            ("slow".to_owned(), "GT($duration_ms, 1000)".to_owned()),
            ("very".to_owned(), "AND($slow, true)".to_owned()),
        ];
        let columns = Columns::new(&schema, &fields).unwrap();
        let slow = columns.resolve("very", "x").unwrap();
        assert_eq!(columns.data_type(&slow, "x").unwrap(), DataType::Boolean);
        assert!(columns.is_plain_column("service.name"));
        assert!(!columns.is_plain_column("slow"));
        let error = columns.resolve("nope", "breakdowns[0]").unwrap_err();
        assert_eq!(error.to_string(), "breakdowns[0]: unknown column \"nope\"");
        let bad = vec![("x".to_owned(), "GT(".to_owned())];
        let error = Columns::new(&schema, &bad).err().unwrap();
        assert_eq!(error.field, "calculated_fields[0].expression");
    }
}
