//! End-to-end tests: expressions compiled and evaluated by DataFusion over a
//! small in-memory table, asserting the values that come out.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::Column;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;

use super::{MAX_DEPTH, MAX_EXPRESSION_BYTES, compile, parse};

/// 2024-01-01T00:00:00Z in nanoseconds.
const NEW_YEAR_2024_NS: i64 = 1_704_067_200_000_000_000;

/// Four rows: every column has one null (row 3) and values of each type.
fn batch() -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "i",
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(-7)])),
        ),
        (
            "f",
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                Some(0.0),
                None,
                Some(2.5),
            ])),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![
                Some("Hello World"),
                Some("42"),
                None,
                Some("abc"),
            ])),
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
        ),
        (
            "http.status",
            Arc::new(Int64Array::from(vec![
                Some(200),
                Some(404),
                None,
                Some(500),
            ])),
        ),
        (
            "name with spaces",
            Arc::new(StringArray::from(vec![
                Some("x"),
                Some("y"),
                None,
                Some("z"),
            ])),
        ),
        (
            "timestamp",
            Arc::new(
                TimestampNanosecondArray::from(vec![
                    Some(NEW_YEAR_2024_NS),
                    Some(NEW_YEAR_2024_NS + 1_500_000_000),
                    None,
                    Some(0),
                ])
                .with_timezone("UTC"),
            ),
        ),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("test batch")
}

/// Resolves `$name` to the batch column of that name (dots are part of names).
fn resolve(name: &str) -> Option<Expr> {
    resolve_in(&batch(), name)
}

fn resolve_in(batch: &RecordBatch, name: &str) -> Option<Expr> {
    batch
        .schema()
        .column_with_name(name)
        .map(|_| Expr::Column(Column::from_name(name)))
}

/// Evaluates `text` over [`batch`]: each row's value as text (`null` for null),
/// and the result type.
async fn eval_typed(text: &str) -> Result<(Vec<String>, DataType), String> {
    eval_over(text, batch()).await
}

async fn eval_over(text: &str, batch: RecordBatch) -> Result<(Vec<String>, DataType), String> {
    let expr =
        compile(text, &|name| resolve_in(&batch, name)).map_err(|error| error.to_string())?;
    let ctx = SessionContext::new();
    let frame = ctx
        .read_batch(batch)
        .and_then(|frame| frame.select(vec![expr.alias("out")]))
        .map_err(|error| format!("plan: {error}"))?;
    let batches = frame
        .collect()
        .await
        .map_err(|error| format!("run: {error}"))?;
    let mut rows = Vec::new();
    let mut data_type = DataType::Null;
    let options = FormatOptions::default().with_null("null");
    for batch in batches {
        let column = batch.column(0);
        data_type = column.data_type().clone();
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)
            .map_err(|error| error.to_string())?;
        for row in 0..batch.num_rows() {
            rows.push(formatter.value(row).to_string());
        }
    }
    Ok((rows, data_type))
}

async fn eval(text: &str) -> Vec<String> {
    match eval_typed(text).await {
        Ok((rows, _)) => rows,
        Err(error) => panic!("{text}: {error}"),
    }
}

async fn assert_rows(text: &str, expected: [&str; 4]) {
    assert_eq!(eval(text).await, expected, "{text}");
}

/// The value of an expression that does not depend on the row.
async fn value(text: &str) -> String {
    let rows = eval(text).await;
    assert!(rows.iter().all(|row| *row == rows[0]), "{text}: {rows:?}");
    rows[0].clone()
}

fn error(text: &str) -> String {
    match compile(text, &resolve) {
        Ok(expr) => panic!("{text} compiled to {expr}"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn literals_and_columns() {
    assert_eq!(value("42").await, "42");
    assert_eq!(value("-3").await, "-3");
    assert_eq!(value("-9223372036854775808").await, "-9223372036854775808");
    assert_eq!(value("12.5").await, "12.5");
    assert_eq!(value("4e+2").await, "400.0");
    assert_eq!(value(".5").await, "0.5");
    assert_eq!(value("\"a\\\"b\"").await, "a\"b");
    assert_eq!(value("`C:\\dir`").await, "C:\\dir");
    assert_eq!(value("true").await, "true");
    assert_eq!(value("null").await, "null");
    assert_rows("$i", ["1", "2", "null", "-7"]).await;
    assert_rows("$http.status", ["200", "404", "null", "500"]).await;
    assert_rows("$\"name with spaces\"", ["x", "y", "null", "z"]).await;
    assert_rows("$`name with spaces`", ["x", "y", "null", "z"]).await;
    // A column the dataset does not have reads as null, as in Honeycomb.
    assert_rows("$nope", ["null", "null", "null", "null"]).await;
    assert_rows("( ($i) )", ["1", "2", "null", "-7"]).await;
}

#[tokio::test]
async fn arithmetic() {
    assert_eq!(value("1 + 2 * 3").await, "7");
    assert_eq!(value("(1 + 2) * 3").await, "9");
    assert_eq!(value("10 - 2 - 3").await, "5");
    assert_eq!(value("7 / 2").await, "3.5");
    assert_eq!(value("7 % 3").await, "1");
    assert_eq!(value("7.5 % 2").await, "1.5");
    assert_eq!(value("SUM(1.0, 5, \"2.5\")").await, "8.5");
    assert_eq!(value("MUL(2, 3, 4)").await, "24");
    assert_eq!(value("SUB(10, 4)").await, "6");
    assert_eq!(value("DIV(1, 4)").await, "0.25");
    assert_eq!(value("MOD(-7, 3)").await, "-1");
    assert_eq!(value("- -2").await, "2");
    // 64-bit integer arithmetic wraps rather than failing the query.
    assert_eq!(
        value("9223372036854775807 + 1").await,
        "-9223372036854775808"
    );
    assert_rows("SUM($i, 1)", ["2", "3", "null", "-6"]).await;
    assert_rows("$i + $f", ["2.5", "2.0", "null", "-4.5"]).await;
    assert_rows("-$i", ["-1", "-2", "null", "7"]).await;
    assert_rows("$b + 1", ["2", "1", "null", "2"]).await;
    // Strings are parsed as numbers; those that do not parse make the result null.
    assert_rows("SUB($s, 2)", ["null", "40.0", "null", "null"]).await;
    // Division by zero is null, never an error or infinity.
    assert_rows(
        "DIV($i, $f)",
        ["0.6666666666666666", "null", "null", "-2.8"],
    )
    .await;
    assert_rows("$i / 0", ["null", "null", "null", "null"]).await;
    assert_rows("MOD($i, 0)", ["null", "null", "null", "null"]).await;
    assert_rows("MOD($i, $f)", ["1.0", "null", "null", "-2.0"]).await;
    assert_rows("MOD($http.status, 100)", ["0", "4", "null", "0"]).await;
    let typed = eval_typed("$i * 2").await.map(|(_, data_type)| data_type);
    assert_eq!(typed, Ok(DataType::Int64), "integers stay integers");
}

#[tokio::test]
async fn comparisons() {
    assert_rows("LT($i, 2)", ["true", "false", "false", "true"]).await;
    assert_rows("LTE($i, 2)", ["true", "true", "false", "true"]).await;
    assert_rows("GT($i, 1)", ["false", "true", "false", "false"]).await;
    assert_rows("GTE($f, 1.5)", ["true", "false", "false", "true"]).await;
    assert_rows("$i < 2", ["true", "false", "false", "true"]).await;
    assert_rows("$i >= $f", ["false", "true", "false", "false"]).await;
    // An integer equals the same float.
    assert_rows("$i = 1.0", ["true", "false", "false", "false"]).await;
    assert_rows("$i == 2", ["false", "true", "false", "false"]).await;
    assert_rows("EQUALS($s, \"42\")", ["false", "true", "false", "false"]).await;
    // Strings and numbers never compare equal or ordered, as in Honeycomb.
    assert_rows("EQUALS($s, 42)", ["false", "false", "false", "false"]).await;
    assert_rows("GT($s, 40)", ["false", "false", "false", "false"]).await;
    assert_rows("LT($b, 1)", ["false", "false", "false", "false"]).await;
    // Strings order lexicographically (upper case before lower case).
    assert_rows("LT($s, \"abc\")", ["true", "true", "false", "false"]).await;
    assert_rows("EQUALS($b, true)", ["true", "false", "false", "true"]).await;
    assert_rows(
        "EQUALS(EVENT_TIMESTAMP(), 1704067200)",
        ["true", "false", "false", "false"],
    )
    .await;
    // A null operand makes a comparison false; != is NOT(EQUALS).
    assert_rows("$i != 1", ["false", "true", "true", "true"]).await;
    assert_rows("GTE($nope, 1)", ["false", "false", "false", "false"]).await;
    assert_rows("EQUALS($nope, null)", ["false", "false", "false", "false"]).await;
    assert_rows("IN($i, 1, 2)", ["true", "true", "false", "false"]).await;
    assert_rows(
        "IN($s, \"42\", 42, \"abc\")",
        ["false", "true", "false", "true"],
    )
    .await;
}

#[tokio::test]
async fn logic_and_truthiness() {
    assert_rows("AND($b, GT($i, 0))", ["true", "false", "false", "false"]).await;
    assert_rows("OR($b, GT($i, 1))", ["true", "true", "false", "true"]).await;
    assert_rows("$b && $i > 0", ["true", "false", "false", "false"]).await;
    assert_rows("$b || $i > 1", ["true", "true", "false", "true"]).await;
    assert_rows("NOT($b)", ["false", "true", "true", "false"]).await;
    assert_rows("!$b", ["false", "true", "true", "false"]).await;
    assert_rows("AND($b)", ["true", "false", "false", "true"]).await;
    // Numbers are true when not zero, strings when they read as true.
    assert_rows("BOOL($i)", ["true", "true", "false", "true"]).await;
    assert_rows("BOOL($f)", ["true", "false", "false", "true"]).await;
    assert_rows("BOOL($s)", ["false", "false", "false", "false"]).await;
    assert_eq!(value("BOOL(\"true\")").await, "true");
    assert_eq!(value("BOOL(\"YES\")").await, "true");
    assert_eq!(value("BOOL(\"nope\")").await, "false");
    assert_eq!(value("BOOL(null)").await, "false");
    assert_rows(
        "BOOL(EVENT_TIMESTAMP())",
        ["true", "true", "false", "false"],
    )
    .await;
    assert_rows("EXISTS($i)", ["true", "true", "false", "true"]).await;
    assert_rows("EXISTS($nope)", ["false", "false", "false", "false"]).await;
    assert_rows(
        "EXISTS(REG_VALUE($s, `\\d`))",
        ["false", "true", "false", "false"],
    )
    .await;
    assert_eq!(value("EXISTS(null)").await, "false");
    // && binds tighter than ||.
    assert_eq!(value("true || false && false").await, "true");
}

#[tokio::test]
async fn conditionals() {
    assert_rows("IF($b, \"yes\", \"no\")", ["yes", "no", "no", "yes"]).await;
    assert_rows("IF(GTE($i, 2), \"big\")", ["null", "big", "null", "null"]).await;
    assert_rows(
        "IF(LT($i, 0), \"negative\", LT($i, 2), \"small\", \"large\")",
        ["small", "large", "large", "negative"],
    )
    .await;
    assert_rows("IF($i, 1, 0)", ["1", "1", "0", "1"]).await;
    // Mixed result kinds become strings; numbers beside a column stay numbers.
    assert_rows("IF($b, 1, \"none\")", ["1", "none", "none", "1"]).await;
    assert_rows("IF($b, $i, 0.5)", ["1.0", "0.5", "0.5", "-7.0"]).await;
    assert_rows("IF($b, $b, false)", ["true", "false", "false", "true"]).await;
    assert_rows("IF($b, $s, 7)", ["Hello World", "7", "7", "abc"]).await;
    assert_rows("IF($b, true, 0)", ["true", "0", "0", "true"]).await;
    assert_rows(
        "SWITCH($http.status, 200, \"ok\", 404, \"missing\", \"other\")",
        ["ok", "missing", "other", "other"],
    )
    .await;
    assert_rows(
        "SWITCH($s, \"42\", \"answer\", \"abc\", \"letters\")",
        ["null", "answer", "null", "letters"],
    )
    .await;
    assert_rows("COALESCE($nope, $i, 0)", ["1", "2", "0", "-7"]).await;
    assert_rows(
        "COALESCE($s, \"none\")",
        ["Hello World", "42", "none", "abc"],
    )
    .await;
    assert_rows("COALESCE($i, \"none\")", ["1", "2", "none", "-7"]).await;
    // An empty string is missing for COALESCE, as in Honeycomb.
    assert_eq!(value("COALESCE(\"\", null, \"x\")").await, "x");
    assert_rows(
        "COALESCE(REG_VALUE($s, `\\d*`), $i)",
        ["1", "42", "null", "-7"],
    )
    .await;
}

#[tokio::test]
async fn math_functions() {
    assert_rows("MIN($i, $f)", ["1.0", "0.0", "null", "-7.0"]).await;
    assert_rows("MAX($i, $f, 0)", ["1.5", "2.0", "0.0", "2.5"]).await;
    assert_eq!(value("MAX(1, 5, 3)").await, "5");
    assert_eq!(value("MIN(\"2.5\", 3)").await, "2.5");
    assert_eq!(value("MIN(4)").await, "4");
    assert_eq!(value("LOG10(1000)").await, "3.0");
    assert_eq!(value("LOG10(0)").await, "null");
    assert_eq!(value("LOG10(-5)").await, "null");
    assert_rows("BUCKET($f, 1)", ["1.0", "0.0", "null", "2.0"]).await;
    assert_eq!(value("BUCKET(37, 10)").await, "30.0");
    assert_eq!(value("BUCKET(-3, 10)").await, "-10.0");
    // Below the minimum: the first bucket; above the maximum: the last.
    assert_rows(
        "BUCKET($http.status, 100, 250, 450)",
        ["250.0", "350.0", "null", "450.0"],
    )
    .await;
    assert_rows("BUCKET($i, 5, 0, 10)", ["0.0", "0.0", "null", "0.0"]).await;
    assert_eq!(value("BUCKET(7, 5, 1)").await, "6.0");
}

#[tokio::test]
async fn conversions() {
    assert_eq!(value("INT(\"42\")").await, "42");
    assert_eq!(value("INT(\"4.7\")").await, "4");
    assert_eq!(value("INT(-3.9)").await, "-3");
    assert_eq!(value("INT(\"1e3\")").await, "1000");
    assert_eq!(value("INT(\"abc\")").await, "null");
    assert_eq!(value("INT(true)").await, "1");
    assert_eq!(value("INT(1e300)").await, "null");
    assert_rows("INT($s)", ["null", "42", "null", "null"]).await;
    assert_rows("INT($f)", ["1", "0", "null", "2"]).await;
    assert_rows(
        "INT($timestamp)",
        ["1704067200000000000", "1704067201500000000", "null", "0"],
    )
    .await;
    assert_eq!(value("FLOAT(\"2.5\")").await, "2.5");
    assert_eq!(value("FLOAT(3)").await, "3.0");
    assert_eq!(value("FLOAT(\"x\")").await, "null");
    assert_rows("FLOAT($b)", ["1.0", "0.0", "null", "1.0"]).await;
    assert_eq!(value("STRING(42)").await, "42");
    assert_eq!(value("STRING(2.5)").await, "2.5");
    assert_eq!(value("STRING(null)").await, "null");
    assert_rows("STRING($b)", ["true", "false", "null", "true"]).await;
    assert_rows("STRING($i)", ["1", "2", "null", "-7"]).await;
}

#[tokio::test]
async fn string_functions() {
    assert_rows(
        "CONCAT($s, \"-\", $i)",
        ["Hello World-1", "42-2", "-", "abc--7"],
    )
    .await;
    assert_rows("CONCAT($b)", ["true", "false", "", "true"]).await;
    assert_rows(
        "STARTS_WITH($s, \"Hel\")",
        ["true", "false", "false", "false"],
    )
    .await;
    assert_rows("ENDS_WITH($s, \"bc\")", ["false", "false", "false", "true"]).await;
    assert_rows("CONTAINS($s, \"o W\")", ["true", "false", "false", "false"]).await;
    assert_rows("CONTAINS($i, \"7\")", ["false", "false", "false", "true"]).await;
    assert_rows("CONTAINS($s, $nope)", ["false", "false", "false", "false"]).await;
    assert_rows("TO_LOWER($s)", ["hello world", "42", "null", "abc"]).await;
    assert_rows("TO_UPPER($s)", ["HELLO WORLD", "42", "null", "ABC"]).await;
    assert_rows("LENGTH($s)", ["11", "2", "null", "3"]).await;
    assert_eq!(value("LENGTH(\"héllo\")").await, "5");
    assert_eq!(value("LENGTH(\"héllo\", \"chars\")").await, "5");
    assert_eq!(value("LENGTH(\"héllo\", \"bytes\")").await, "6");
    assert_eq!(value("LENGTH(12345)").await, "5");
}

#[tokio::test]
async fn regular_expressions() {
    assert_rows(
        "REG_MATCH($s, `^\\d+$`)",
        ["false", "true", "false", "false"],
    )
    .await;
    assert_rows(
        "REG_MATCH($s, \"^\\\\d+$\")",
        ["false", "true", "false", "false"],
    )
    .await;
    assert_rows(
        "REG_VALUE($s, `(\\w+) World`)",
        ["Hello", "null", "null", "null"],
    )
    .await;
    // Without a capture group the whole match is the value.
    assert_rows("REG_VALUE($s, `[a-z]+`)", ["ello", "null", "null", "abc"]).await;
    assert_rows("REG_COUNT($s, `o`)", ["2", "0", "null", "0"]).await;
    assert_rows(
        "REG_MATCH($http.status, `^4`)",
        ["false", "true", "false", "false"],
    )
    .await;
}

#[tokio::test]
async fn time_functions() {
    assert_eq!(
        value("UNIX_TIMESTAMP(\"2024-01-01T00:00:00Z\")").await,
        "1704067200.0"
    );
    assert_eq!(
        value("UNIX_TIMESTAMP(\"2024-01-01 00:00:01.5\")").await,
        "1704067201.5"
    );
    assert_eq!(value("UNIX_TIMESTAMP(\"yesterday\")").await, "null");
    assert_rows(
        "EVENT_TIMESTAMP()",
        ["1704067200.0", "1704067201.5", "null", "0.0"],
    )
    .await;
    assert_rows(
        "EVENT_TIMESTAMP() - UNIX_TIMESTAMP(\"2024-01-01T00:00:00Z\")",
        ["0.0", "1.5", "null", "-1704067200.0"],
    )
    .await;
}

#[tokio::test]
async fn honeycomb_examples() {
    assert_rows(
        "IF(AND(NOT(EXISTS($trace.parent_id)), EXISTS($f)), LTE($f, 1))",
        ["false", "true", "null", "false"],
    )
    .await;
    assert_rows(
        "COALESCE(IF(CONTAINS($s, \"World\"), REG_VALUE($s, `^(\\w+)`)), $s,)",
        ["Hello", "42", "null", "abc"],
    )
    .await;
    assert_rows(
        "MUL(DIV($f, SUM($f, 1)), 100)",
        ["60.0", "0.0", "null", "71.42857142857143"],
    )
    .await;
}

/// The event the examples of `docs/calculated-fields.md` assume.
fn docs_event() -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("status", Arc::new(Int64Array::from(vec![503]))),
        ("duration_ms", Arc::new(Float64Array::from(vec![250.0]))),
        ("path", Arc::new(StringArray::from(vec!["/api/users"]))),
        ("ok", Arc::new(BooleanArray::from(vec![false]))),
        (
            "timestamp",
            Arc::new(TimestampNanosecondArray::from(vec![NEW_YEAR_2024_NS]).with_timezone("UTC")),
        ),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("docs event")
}

/// `example → result` pairs from the function tables of the docs.
fn docs_examples() -> Vec<(String, String)> {
    let docs = include_str!("../../../docs/calculated-fields.md");
    let mut examples = Vec::new();
    for line in docs.lines().filter(|line| line.starts_with('|')) {
        let Some(arrow_at) = line.rfind(" → ") else {
            continue;
        };
        let Some(cell_start) = line[..arrow_at].rfind("| ") else {
            continue;
        };
        let example = line[cell_start + 2..arrow_at].trim();
        if example == "example" {
            continue; // a table header
        }
        let example = example
            .strip_prefix("``")
            .and_then(|rest| rest.strip_suffix("``"))
            .or_else(|| {
                example
                    .strip_prefix('`')
                    .and_then(|rest| rest.strip_suffix('`'))
            })
            .unwrap_or(example)
            .trim();
        let result = line[arrow_at + " → ".len()..]
            .split('`')
            .nth(1)
            .unwrap_or_default();
        let result = result
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(result);
        examples.push((example.to_owned(), result.to_owned()));
    }
    examples
}

/// Every example in the function reference gives the result the docs claim.
#[tokio::test]
async fn docs_examples_hold() {
    let examples = docs_examples();
    assert!(
        examples.len() >= 40,
        "found only {} examples",
        examples.len()
    );
    for (example, expected) in examples {
        match eval_over(&example, docs_event()).await {
            Ok((rows, _)) => assert_eq!(rows, vec![expected], "{example}"),
            Err(error) => panic!("{example}: {error}"),
        }
    }
}

#[test]
fn parse_builds_the_tree() {
    use super::{AstKind, BinaryOp, Function, Literal};
    let ast = parse("IF($a < 2 * 3, \"x\")").unwrap_or_else(|error| panic!("{error}"));
    let AstKind::Call { function, args } = &ast.kind else {
        panic!("{ast:?}");
    };
    assert_eq!(*function, Function::If);
    assert_eq!((ast.span.start, ast.span.end), (0, 19));
    let AstKind::Binary { op, left, right } = &args[0].kind else {
        panic!("{ast:?}");
    };
    assert_eq!(*op, BinaryOp::Less);
    assert_eq!(left.kind, AstKind::Column("a".into()));
    assert!(matches!(
        right.kind,
        AstKind::Binary {
            op: BinaryOp::Multiply,
            ..
        }
    ));
    assert_eq!(args[1].kind, AstKind::Literal(Literal::Str("x".into())));
    assert_eq!(ast.depth(), 4);
}

#[test]
fn errors_name_the_position_and_the_expectation() {
    assert_eq!(
        error("FROB($a)"),
        "unknown function `FROB` (at line 1, column 1)"
    );
    assert_eq!(
        error("SUM(1, CONTIANS($s, \"x\"))"),
        "unknown function `CONTIANS`; did you mean CONTAINS? (at line 1, column 8)"
    );
    assert_eq!(
        error("if($b, 1, 0)"),
        "unknown function `if`; function names are upper case: did you mean IF? \
         (at line 1, column 1)"
    );
    assert_eq!(
        error("IF($b)"),
        "IF expects at least 2 arguments but got 1; usage: \
         IF(condition, value[, condition, value]...[, default]) (at line 1, column 1)"
    );
    assert_eq!(
        error("SUM(1, SUB(1, 2, 3))"),
        "SUB expects exactly 2 arguments but got 3; usage: SUB(number, number) \
         (at line 1, column 8)"
    );
    assert_eq!(
        error("CONCAT($s, \"abc)"),
        "unterminated string: expected a closing `\"` (at line 1, column 12)"
    );
    assert_eq!(
        error("SUM(1, 2) 3"),
        "unexpected number `3` after a complete expression: expected an operator or the end \
         (to pass several values, use a function such as CONCAT(a, b)) (at line 1, column 11)"
    );
    assert_eq!(
        error("SUM(1, 2))"),
        "unexpected `)` after a complete expression: expected an operator or the end \
         (to pass several values, use a function such as CONCAT(a, b)) (at line 1, column 10)"
    );
    assert_eq!(
        error("SUM(1 2)"),
        "expected `,` or `)` in the call of SUM opened at column 4, found number `2` \
         (at line 1, column 7)"
    );
    assert_eq!(
        error("IF($b,\n  (1 + 2"),
        "expected `)` to close the `(` at line 2, column 3, found the end of the expression \
         (at line 2, column 9)"
    );
    assert_eq!(
        error("SUM(1, , 2)"),
        "expected a value (a function call, a $column or a literal), found `,` \
         (at line 1, column 8)"
    );
    assert_eq!(
        error(""),
        "the expression is empty: expected a function call, a $column or a literal \
         (at line 1, column 1)"
    );
    assert_eq!(
        error("  "),
        "the expression is empty: expected a function call, a $column or a literal \
         (at line 1, column 3)"
    );
    assert_eq!(
        error("1 < 2 < 3"),
        "comparisons do not chain: write `a < b && b < c` instead of `a < b < c` \
         (at line 1, column 7)"
    );
    assert_eq!(
        error("duration_ms > 5"),
        "unknown name `duration_ms`: columns are written with a dollar sign (`$duration_ms`), \
         strings in double quotes (`\"duration_ms\"`) (at line 1, column 1)"
    );
    assert_eq!(
        error("IF(TRUE, 1)"),
        "unknown name `TRUE`; literals are lower case: did you mean `true`? \
         (at line 1, column 4)"
    );
    assert_eq!(
        error("SUM + 1"),
        "expected `(` after the function name SUM (at line 1, column 1)"
    );
    assert_eq!(
        error("99999999999999999999"),
        "the integer `99999999999999999999` is out of range: integers are 64-bit \
         (write it with a decimal point to use a float) (at line 1, column 1)"
    );
    assert_eq!(
        error("1e999"),
        "the number `1e999` is out of range (at line 1, column 1)"
    );
    assert_eq!(
        error("REG_MATCH($s, `(`)"),
        "invalid regular expression: regex parse error: ( ^ error: unclosed group \
         (at line 1, column 15)"
    );
    assert_eq!(
        error("REG_VALUE($s, $s)"),
        "the pattern of REG_VALUE must be a string literal, best a `raw string` \
         (at line 1, column 15)"
    );
    assert_eq!(
        error("BUCKET($i, 0)"),
        "the BUCKET size must be greater than 0 (at line 1, column 12)"
    );
    assert_eq!(
        error("BUCKET($i, $f)"),
        "the BUCKET size must be a number literal, like 100 or 0.5 (at line 1, column 12)"
    );
    assert_eq!(
        error("BUCKET($i, 10, 100, 5)"),
        "the BUCKET maximum 5 is below the minimum 100 (at line 1, column 21)"
    );
    assert_eq!(
        error("LENGTH($s, \"words\")"),
        "the LENGTH mode must be the string \"chars\" or \"bytes\" (at line 1, column 12)"
    );
}

#[test]
fn limits_stop_hostile_input() {
    let deep = format!(
        "{}1{}",
        "NOT(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(
        error(&deep),
        format!(
            "the expression nests more than {MAX_DEPTH} levels deep (at line 1, column {})",
            4 * MAX_DEPTH + 1
        )
    );
    let parens = format!("{}1{}", "(".repeat(5_000), ")".repeat(5_000));
    assert!(error(&parens).contains("nests more than"));
    let minus = format!("{}1", "-".repeat(10_000));
    assert!(error(&minus).contains("nests more than"));
    let chain = vec!["1"; 200].join(" + ");
    assert!(error(&chain).contains("nests more than"));
    // Just inside the limits compiles.
    let ok = format!(
        "{}1{}",
        "NOT(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert!(compile(&ok, &resolve).is_ok());
    let long = format!("CONCAT(\"{}\")", "x".repeat(MAX_EXPRESSION_BYTES));
    assert_eq!(
        error(&long),
        format!(
            "the expression is {} bytes long; the limit is {MAX_EXPRESSION_BYTES} bytes \
             (at line 1, column {})",
            long.len(),
            MAX_EXPRESSION_BYTES + 1
        )
    );
    let many = format!("SUM({})", vec!["1"; 1001].join(","));
    assert!(error(&many).contains("more than 1000 arguments"));
}

#[tokio::test]
async fn long_argument_lists_stay_shallow() {
    let candidates: Vec<String> = (0..999).map(|n| n.to_string()).collect();
    let text = format!("IN($http.status, {})", candidates.join(", "));
    assert_rows(&text, ["true", "true", "false", "true"]).await;
    let text = format!("IN($http.status, {})", candidates[..400].join(", "));
    assert_rows(&text, ["true", "false", "false", "false"]).await;
    let text = format!("SUM({})", vec!["1"; 1000].join(", "));
    assert_eq!(value(&text).await, "1000");
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Random token soup never panics: it parses or fails with a positioned error.
#[test]
fn token_soup_never_panics() {
    const PIECES: &[&str] = &[
        "IF",
        "SWITCH",
        "SUM",
        "REG_MATCH",
        "BUCKET",
        "LENGTH",
        "NOT",
        "(",
        ")",
        "(",
        ")",
        ",",
        ",",
        "$i",
        "$s",
        "$\"x y\"",
        "$`q`",
        "$",
        "\"str",
        "\"ok\"",
        "`raw`",
        "`",
        "1",
        "-",
        "2.5",
        "1e",
        "e5",
        ".",
        "+",
        "*",
        "/",
        "%",
        "<",
        "<=",
        "==",
        "!=",
        "!",
        "&&",
        "||",
        "&",
        "|",
        "true",
        "null",
        "nul",
        "\\",
        "\"\\u12\"",
        "é",
        "\n",
        " ",
        "🙂",
        "\"\\x4",
        "0x10",
        "99999999999999999999",
        "`(`",
        "#",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let length = rng.below(24);
        let text: String = (0..length).map(|_| rng.pick(PIECES)).collect();
        if let Err(error) = compile(&text, &resolve) {
            assert!(error.offset <= text.len(), "{text:?}: {error}");
            assert!(text.is_char_boundary(error.offset), "{text:?}: {error}");
            assert!(!error.render(&text).is_empty());
        }
    }
}

/// A random well-formed expression of at most `depth` levels.
fn random_expression(rng: &mut Rng, depth: usize) -> String {
    const LEAVES: &[&str] = &[
        "$i",
        "$f",
        "$s",
        "$b",
        "$http.status",
        "$nope",
        "$timestamp",
        "0",
        "3",
        "-2",
        "2.5",
        "\"42\"",
        "\"abc\"",
        "true",
        "false",
        "null",
        "EVENT_TIMESTAMP()",
    ];
    const CALLS: &[(&str, usize, usize)] = &[
        ("IF", 2, 5),
        ("SWITCH", 3, 6),
        ("COALESCE", 1, 4),
        ("LT", 2, 2),
        ("GTE", 2, 2),
        ("EQUALS", 2, 2),
        ("IN", 2, 4),
        ("EXISTS", 1, 1),
        ("NOT", 1, 1),
        ("AND", 1, 3),
        ("OR", 1, 3),
        ("MIN", 1, 3),
        ("MAX", 1, 3),
        ("SUM", 1, 3),
        ("SUB", 2, 2),
        ("MUL", 1, 3),
        ("DIV", 2, 2),
        ("MOD", 2, 2),
        ("LOG10", 1, 1),
        ("INT", 1, 1),
        ("FLOAT", 1, 1),
        ("STRING", 1, 1),
        ("BOOL", 1, 1),
        ("CONCAT", 1, 3),
        ("STARTS_WITH", 2, 2),
        ("CONTAINS", 2, 2),
        ("TO_LOWER", 1, 1),
        ("LENGTH", 1, 1),
        ("UNIX_TIMESTAMP", 1, 1),
    ];
    const OPERATORS: &[&str] = &[
        "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "=", "!=", "&&", "||",
    ];
    if depth == 0 || rng.below(3) == 0 {
        return rng.pick(LEAVES).to_owned();
    }
    match rng.below(6) {
        0 => format!(
            "({} {} {})",
            random_expression(rng, depth - 1),
            rng.pick(OPERATORS),
            random_expression(rng, depth - 1)
        ),
        1 => format!("REG_VALUE({}, `\\d`)", random_expression(rng, depth - 1)),
        2 => format!("BUCKET({}, 10, 0, 100)", random_expression(rng, depth - 1)),
        _ => {
            let (name, min, max) = CALLS[rng.below(CALLS.len())];
            let count = min + rng.below(max - min + 1);
            let args: Vec<String> = (0..count)
                .map(|_| random_expression(rng, depth - 1))
                .collect();
            format!("{name}({})", args.join(", "))
        }
    }
}

/// Random well-formed expressions over every column type compile, plan and run:
/// type mismatches have defined results, never a planning error.
#[tokio::test]
async fn random_expressions_always_run() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..400 {
        let text = random_expression(&mut rng, 4);
        if let Err(error) = eval_typed(&text).await {
            panic!("{text}: {error}");
        }
    }
}

/// Dictionary-encoded strings (as some scans produce) compare and convert as
/// the strings they encode.
#[tokio::test]
async fn dictionary_columns_behave_as_their_values() {
    use arrow::array::{Array, DictionaryArray};
    use arrow::datatypes::Int32Type;
    let names: DictionaryArray<Int32Type> = vec![Some("a"), Some("7"), None, Some("a")]
        .into_iter()
        .collect();
    let schema = Schema::new(vec![Field::new("d", names.data_type().clone(), true)]);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(names) as ArrayRef])
        .expect("dictionary batch");
    let run = |text: &'static str| eval_over(text, batch.clone());
    assert_eq!(
        run("EQUALS($d, \"a\")").await.map(|(rows, _)| rows),
        Ok(vec![
            "true".into(),
            "false".into(),
            "false".into(),
            "true".into()
        ])
    );
    assert_eq!(
        run("SUM($d, 1)").await.map(|(rows, _)| rows),
        Ok(vec![
            "null".into(),
            "8.0".into(),
            "null".into(),
            "null".into()
        ])
    );
    assert_eq!(
        run("IF(EXISTS($d), $d, 0)").await.map(|(rows, _)| rows),
        Ok(vec!["a".into(), "7".into(), "0".into(), "a".into()])
    );
}
