//! Column names of a spec resolved to expressions: a calculated field (which
//! shadows a dataset column of the same name), or a dataset column. An unknown
//! name is an error naming the field it appeared in.

use std::cell::Cell;

use arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, ExprSchemable, lit};

use super::error::SpecError;
use quarry_derived as derived;
use quarry_engine::query_limits::{self, MAX_EXPRESSION_NODES, too_many_nodes};

/// What a name of the spec can refer to.
pub struct Columns<'a> {
    schema: &'a DFSchema,
    /// Calculated fields, compiled, in definition order, with their node counts.
    derived: Vec<(String, Expr, usize)>,
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
            let field = format!("calculated_fields[{index}].expression");
            // A reference to an earlier field copies that field's whole expression
            // in: count the copies as they are made, so fields that each use the one
            // before twice cannot build an exponentially large expression.
            let copied = Cell::new(0usize);
            let lookup = |reference: &str| {
                let (expr, nodes) = columns.lookup_sized(reference)?;
                copied.set(copied.get().saturating_add(nodes));
                // Past the limit, a stand-in: the field is refused below anyway.
                Some(if copied.get() > MAX_EXPRESSION_NODES {
                    lit(ScalarValue::Null)
                } else {
                    expr
                })
            };
            let compiled = derived::compile(text, &lookup);
            if copied.get() > MAX_EXPRESSION_NODES {
                return Err(SpecError::new(field, too_many_nodes().to_string()));
            }
            let expr = compiled.map_err(|error| SpecError::new(&field, error.to_string()))?;
            // Each field nests at most `derived::MAX_DEPTH` levels, but a field
            // using the one before nests deeper with every step of the chain.
            query_limits::check_expr(&expr)
                .map_err(|error| SpecError::new(&field, error.to_string()))?;
            let nodes = query_limits::expr_nodes(&expr);
            columns.derived.push((name.clone(), expr, nodes));
        }
        Ok(columns)
    }

    fn lookup(&self, name: &str) -> Option<Expr> {
        self.lookup_sized(name).map(|(expr, _)| expr)
    }

    /// The expression of `name` and its number of nodes.
    fn lookup_sized(&self, name: &str) -> Option<(Expr, usize)> {
        if let Some((_, expr, nodes)) = self.derived.iter().rev().find(|(n, ..)| n == name) {
            return Some((expr.clone(), *nodes));
        }
        self.schema
            .has_column_with_unqualified_name(name)
            .then(|| (column(name), 1))
    }

    /// Whether `name` is a dataset column (not shadowed by a calculated field).
    pub fn is_plain_column(&self, name: &str) -> bool {
        !self.derived.iter().any(|(n, ..)| n == name)
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

    /// Fields `f0`, `f1`, … where each is `body` with `$prev` naming the one before.
    fn chain(count: usize, body: &str) -> Vec<(String, String)> {
        (0..count)
            .map(|i| {
                let prev = if i == 0 {
                    "duration_ms".to_owned()
                } else {
                    format!("f{}", i - 1)
                };
                (format!("f{i}"), body.replace("prev", &prev))
            })
            .collect()
    }

    #[test]
    fn chained_fields_are_held_to_the_expression_depth_limit() {
        let schema = schema();
        // Each field 20 levels deeper than the one before: legal on its own,
        // beyond MAX_EXPRESSION_DEPTH after about 50 steps.
        let step = format!("$prev{}", " + 1".repeat(19));
        assert!(Columns::new(&schema, &chain(10, &step)).is_ok());
        let error = Columns::new(&schema, &chain(100, &step)).err().unwrap();
        assert!(error.field.starts_with("calculated_fields["), "{error}");
        assert!(
            error.message.contains(&format!(
                "the limit is {} levels",
                query_limits::MAX_EXPRESSION_DEPTH
            )),
            "{error}"
        );
    }

    #[test]
    fn fields_that_copy_the_one_before_twice_cannot_grow_exponentially() {
        let schema = schema();
        // Doubling per step: 2^40 nodes if nothing stopped it.
        let error = Columns::new(&schema, &chain(40, "$prev * $prev"))
            .err()
            .unwrap();
        assert!(
            error
                .message
                .contains(&format!("the limit is {MAX_EXPRESSION_NODES} nodes")),
            "{error}"
        );
    }
}
