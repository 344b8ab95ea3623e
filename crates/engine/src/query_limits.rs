//! Limits on the shape of a query, so that one statement cannot overflow the stack
//! of the thread that plans or runs it (which aborts the whole process).
//!
//! The SQL parser refuses deep nesting (parentheses, subqueries) by itself, but a
//! long flat chain — `1+1+…+1`, `a OR b OR …`, `s || s || …`, a `UNION ALL` of
//! thousands of `SELECT`s — parses in a loop into a tree as deep as the chain is
//! long. Parts of the planner, the optimizer and the executor walk that tree
//! recursively, and so do `Drop`, `Clone` and `Hash` of it. So:
//!
//! 1. [`check_sql_text`], before parsing: counts operator tokens and set-operation
//!    keywords. Their number bounds how deep the parser's tree can be, so the tree
//!    the parser builds can always be walked (step 2) and dropped safely.
//! 2. [`check_statement`], after parsing: the exact nesting depth and node count of
//!    the statement's expressions; and, against planning time rather than the
//!    stack, how deep subqueries nest in expressions and how many relations the
//!    statement reads with its CTEs expanded.
//! 3. [`check_expr`], for expressions built without SQL (calculated fields of query
//!    specs): the same depth and node limits.
//!
//! Every refusal is [`QueryError::TooComplex`] (HTTP 400) naming the limit. The
//! values are measured against the server's thread stack (see `WORKER_STACK_BYTES`
//! in `crates/quarry/src/main.rs`) and documented in `docs/query.md`.
//!
//! Measured on a debug build (frames are larger than in release) with the
//! server's 16 MiB runtime thread stacks; "ok / overflowed" in terms of one chain:
//!
//! | statement | ok | overflowed |
//! |---|---|---|
//! | `SELECT 1+1+…` | 12,828 | 13,281 |
//! | `SELECT 'a'\|\|'a'\|\|…` | 12,625 | 13,000 |
//! | `SELECT true OR true OR …` | 12,625 | 13,000 |
//! | `SELECT 1::bigint::bigint…` | 12,625 | 13,000 |
//! | `… WHERE n <> 0 AND n <> 1 AND …` | 7,750 | 8,125 |
//! | `… WHERE n = 0 OR n = 1 OR …` | 13,000 | not reached |
//! | `SELECT 0 UNION ALL SELECT 1 …` (SELECTs) | 3,429 | 3,527 |
//! | the parser's tree of `1+1+…`: drop, visit | 258,554 | 262,456 |
//! | the same tree: `Debug` (sqlparser's debug log) | 37,095 | 37,583 |
//!
//! (With tokio's default 2 MiB, `SELECT 1+1+…` overflowed at 1,562 terms; the
//! issue saw 1,900 on a release build.) The limits are 7.7 times below the
//! smallest overflow ([`MAX_EXPRESSION_DEPTH`] against `AND` in `WHERE`), 6.9
//! times ([`MAX_SET_OPERATIONS`] against `UNION ALL`) and 25 times
//! ([`MAX_OPERATORS`] against dropping the parser's tree; 3.7 times against
//! debug-formatting it). Statements just under every limit (999-level chains of
//! each kind; 990-level expressions in `WHERE`, `GROUP BY`, `ORDER BY`, `HAVING`,
//! a window, a subquery and `EXPLAIN`; 501 `SELECT`s in a `UNION ALL`) all ran
//! with a 4 MiB stack, a quarter of the server's. Long chains also cost time that
//! grows with the square of their length (DataFusion names every sub-expression):
//! a 999-term sum plans in about 1.3 s on a debug build, 8,750 terms in 100 s.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion, TreeNodeVisitor};
use datafusion::logical_expr::Expr;
use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{self as sql_ast, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::QueryError;

/// Most operators (`+`, `||`, `=`, `::`, `AND`, `OR`, `NOT`, `IS`, `LIKE`, …) in one
/// SQL statement, counted on its tokens before parsing.
///
/// A chain of n operators parses into a tree n levels deep, which the parser's
/// tree walk and drop recurse through; this bounds that depth.
pub const MAX_OPERATORS: usize = 10_000;

/// Deepest nesting of expressions (operators, function calls, casts, subqueries)
/// in one statement or calculated field, in levels. `a + b + c` is 3 levels deep:
/// `(a + b) + c`, then `a + b`, then `a`.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Most expression nodes (each operator, call, column reference and literal) in
/// one statement or calculated field.
pub const MAX_EXPRESSION_NODES: usize = 100_000;

/// Most set operations (`UNION`, `INTERSECT`, `EXCEPT`, `MINUS`) in one statement.
pub const MAX_SET_OPERATIONS: usize = 500;

/// Most array brackets and nested-type constructors (`[`, `ARRAY<`, `STRUCT<`,
/// `MAP<`) in one statement, and most parentheses in the type string of
/// `arrow_cast` / `arrow_try_cast`.
///
/// The parser builds nested types (`INT[][]…`, `STRUCT<a STRUCT<a …>>`) by
/// recursion without a depth guard, and so does arrow's parser of type strings
/// (`'List(List(…))'`): on a debug build with the server's 16 MiB stacks,
/// `STRUCT<` nested 5,000 deep parsed and 7,500 overflowed, `INT` with 6,000
/// `[]` planned and 7,500 overflowed, `arrow_try_cast` with 100,000 `List(`
/// overflowed. Before parsing, the bracket of an array type cannot be told from
/// that of an array literal or a subscript, so every `[` counts.
pub const MAX_TYPE_NESTING: usize = 1_000;

/// Most `EXPLAIN` keywords in one statement.
///
/// DataFusion's parser reads `EXPLAIN EXPLAIN …` recursively without a depth
/// guard (and then refuses a nested EXPLAIN anyway): on a debug build with the
/// server's 16 MiB stacks, 3,000 of them parsed and 4,000 overflowed the stack.
/// More than one is never useful; a few leave room for a column named `explain`.
pub const MAX_EXPLAINS: usize = 8;

/// Deepest nesting of subqueries inside expressions (`IN (SELECT …)`, `EXISTS`,
/// scalar subqueries), in levels.
///
/// Not a stack limit: DataFusion's decorrelation plans each level about twice
/// over, so planning time doubles per level (measured on a debug build: `IN`
/// nested 14 deep 0.4 s, 18 deep 5 s, 22 deep over a minute; scalar subqueries in
/// `WHERE` 10 deep 0.2 s, 14 deep 2.8 s). Planning runs on a runtime thread and
/// cannot be cancelled, so such a statement would hold a thread for hours.
/// Subqueries in `FROM` do not count; they cost no more per level.
pub const MAX_SUBQUERY_DEPTH: usize = 10;

/// Most relations one statement reads: table references, each reference to a
/// CTE counting the relations of that CTE.
///
/// Not a stack limit either: a CTE may use the one before twice (`a2 AS (SELECT
/// … FROM a1 JOIN a1 …)`), and the plan then doubles at every step while the
/// text grows by a line (a debug build planned 12 such steps, 4,096 relations,
/// in 3.6 s, and 14 steps in 19 s). Flat joins cost more than linear time too: a
/// 500-table join planned in 5 s on a debug build, 1,000 tables in 46 s.
pub const MAX_RELATIONS: usize = 500;

/// Refuses SQL text with more operators than [`MAX_OPERATORS`], more set
/// operations than [`MAX_SET_OPERATIONS`] or more `EXPLAIN`s than
/// [`MAX_EXPLAINS`], before it is parsed.
///
/// Text that does not tokenize passes: the parser reports the same error with
/// its position.
pub fn check_sql_text(sql: &str, dialect: &dyn Dialect) -> Result<(), QueryError> {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else {
        return Ok(());
    };
    let mut operators = 0usize;
    let mut set_operations = 0usize;
    let mut explains = 0usize;
    let mut type_nesting = 0usize;
    let mut previous: Option<&Token> = None;
    for token in tokens
        .iter()
        .filter(|token| !matches!(token, Token::Whitespace(_)))
    {
        if is_set_operation(token) {
            set_operations += 1;
        } else if is_operator(token) {
            operators += 1;
        } else if matches!(token, Token::Word(word) if word.keyword == Keyword::EXPLAIN) {
            explains += 1;
        }
        if opens_nested_type(previous, token) {
            type_nesting += 1;
        }
        previous = Some(token);
    }
    if type_nesting > MAX_TYPE_NESTING {
        return Err(QueryError::TooComplex(format!(
            "the statement has {type_nesting} array brackets and nested types (`[`, \
             `ARRAY<`, `STRUCT<`, `MAP<`); the limit is {MAX_TYPE_NESTING}"
        )));
    }
    if explains > MAX_EXPLAINS {
        return Err(QueryError::TooComplex(format!(
            "the statement has {explains} EXPLAIN keywords; the limit is {MAX_EXPLAINS} \
             (an EXPLAIN of an EXPLAIN is not supported)"
        )));
    }
    if set_operations > MAX_SET_OPERATIONS {
        return Err(QueryError::TooComplex(format!(
            "the statement has {set_operations} set operations (UNION, INTERSECT, EXCEPT); \
             the limit is {MAX_SET_OPERATIONS} set operations per statement"
        )));
    }
    if operators > MAX_OPERATORS {
        return Err(QueryError::TooComplex(format!(
            "the statement has {operators} operators; \
             the limit is {MAX_OPERATORS} operators per statement"
        )));
    }
    Ok(())
}

/// Refuses a parsed statement whose expressions nest deeper than
/// [`MAX_EXPRESSION_DEPTH`] or have more than [`MAX_EXPRESSION_NODES`] nodes,
/// whose subqueries nest deeper than [`MAX_SUBQUERY_DEPTH`] in expressions, or
/// which reads more than [`MAX_RELATIONS`] relations.
///
/// Walks the syntax tree recursively: call it only on a statement whose text
/// passed [`check_sql_text`], which bounds the depth of that walk.
pub fn check_statement(statement: &DFStatement) -> Result<(), QueryError> {
    let mut shape = SqlShape::default();
    let outcome = match statement {
        DFStatement::Statement(statement) => statement.visit(&mut shape),
        DFStatement::Explain(explain) => return check_statement(&explain.statement),
        DFStatement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => query.visit(&mut shape),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        // No expressions of their own (and refused as DDL or statements anyway).
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => ControlFlow::Continue(()),
    };
    match outcome {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Refuses an expression that nests deeper than [`MAX_EXPRESSION_DEPTH`] or has
/// more than [`MAX_EXPRESSION_NODES`] nodes.
///
/// DataFusion's tree walk grows its stack on the heap when it runs short, so the
/// walk itself is safe on any expression.
pub fn check_expr(expr: &Expr) -> Result<(), QueryError> {
    let mut shape = ExprShape::default();
    expr.visit(&mut shape)?;
    match shape.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The number of nodes of `expr`, stopping early past [`MAX_EXPRESSION_NODES`]
/// (the answer is then `MAX_EXPRESSION_NODES + 1`).
pub fn expr_nodes(expr: &Expr) -> usize {
    let mut nodes = 0usize;
    // The closure never fails; a walk error could only come from it.
    let _ = expr.apply(|_| {
        nodes += 1;
        Ok(if nodes > MAX_EXPRESSION_NODES {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    nodes
}

/// The error for an expression deeper than [`MAX_EXPRESSION_DEPTH`].
fn too_deep() -> QueryError {
    QueryError::TooComplex(format!(
        "an expression nests more than {MAX_EXPRESSION_DEPTH} levels deep; \
         the limit is {MAX_EXPRESSION_DEPTH} levels (a long chain of operators such as \
         `a OR b OR …` counts one level per operator; `x IN (…)` does not)"
    ))
}

/// The error for more than [`MAX_EXPRESSION_NODES`] expression nodes.
pub fn too_many_nodes() -> QueryError {
    QueryError::TooComplex(format!(
        "the expressions have more than {MAX_EXPRESSION_NODES} nodes; \
         the limit is {MAX_EXPRESSION_NODES} nodes (operators, calls, columns and literals)"
    ))
}

/// Whether `token` (after `previous`) is `[` or the `<` of `ARRAY<`, `STRUCT<`
/// or `MAP<`.
fn opens_nested_type(previous: Option<&Token>, token: &Token) -> bool {
    match token {
        Token::LBracket => true,
        Token::Lt => matches!(
            previous,
            Some(Token::Word(word))
                if matches!(word.keyword, Keyword::ARRAY | Keyword::STRUCT | Keyword::MAP)
        ),
        _ => false,
    }
}

/// The parentheses in the type-string arguments of `arrow_cast` and
/// `arrow_try_cast`, which arrow parses recursively.
fn type_string_nesting(function: &sql_ast::Function) -> usize {
    let name = function
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.to_lowercase());
    if !matches!(name.as_deref(), Some("arrow_cast" | "arrow_try_cast")) {
        return 0;
    }
    let sql_ast::FunctionArguments::List(list) = &function.args else {
        return 0;
    };
    list.args
        .iter()
        .map(|arg| match arg {
            sql_ast::FunctionArg::Unnamed(sql_ast::FunctionArgExpr::Expr(
                sql_ast::Expr::Value(value),
            )) => value.value.to_string().matches('(').count(),
            _ => 0,
        })
        .sum()
}

/// Whether `token` is `UNION`, `INTERSECT`, `EXCEPT` or `MINUS`.
fn is_set_operation(token: &Token) -> bool {
    matches!(
        token,
        Token::Word(word) if matches!(
            word.keyword,
            Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS
        )
    )
}

/// Whether `token` can make the parser nest the expression before it one level
/// deeper: every operator symbol and operator keyword. Literals, names and
/// punctuation cannot; `.` and `[` build flat paths. A token kind not listed here
/// counts, so the bound errs on the safe side.
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(word) => matches!(
            word.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::IN
                | Keyword::BETWEEN
                | Keyword::OVERLAPS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::RLIKE
                | Keyword::REGEXP
                | Keyword::MATCH
                | Keyword::SIMILAR
                | Keyword::MEMBER
                | Keyword::OPERATOR
                | Keyword::DIV
                | Keyword::COLLATE
                | Keyword::AT
                | Keyword::NOTNULL
        ),
        Token::EOF
        | Token::Number(..)
        | Token::Char(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::Placeholder(_)
        | Token::Comma
        | Token::Whitespace(_)
        | Token::LParen
        | Token::RParen
        | Token::Period
        | Token::SemiColon
        | Token::RBracket
        | Token::LBrace
        | Token::RBrace => false,
        _ => true,
    }
}

/// Depth and size of a SQL syntax tree, measured by sqlparser's visitor.
#[derive(Default)]
struct SqlShape {
    depth: usize,
    nodes: usize,
    /// Expressions entered and not yet left, within the innermost open query.
    open_exprs: usize,
    /// The queries entered and not yet left, innermost last.
    queries: Vec<QueryFrame>,
    /// Subqueries of expressions entered and not yet left.
    subquery_depth: usize,
    /// Relations of each CTE defined so far, by (normalized) name.
    cte_relations: HashMap<String, usize>,
    /// CTE bodies not yet measured: the address of their query, and their name.
    cte_bodies: HashMap<usize, String>,
}

/// One open query of [`SqlShape`].
struct QueryFrame {
    /// `open_exprs` of the query around this one, restored when it is left.
    outer_open_exprs: usize,
    /// Whether the query is a subquery inside an expression.
    in_expression: bool,
    /// Relations read so far, CTE references expanded.
    relations: usize,
}

/// The identity of a query node while the tree is walked (it does not move).
fn address(query: &sql_ast::Query) -> usize {
    std::ptr::from_ref(query) as usize
}

/// A name as DataFusion resolves it: unquoted names are lower-cased.
fn normalized(ident: &sql_ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The error for more than [`MAX_RELATIONS`] relations.
fn too_many_relations(relations: usize) -> QueryError {
    QueryError::TooComplex(format!(
        "the statement reads {relations} relations (tables and CTE references, a \
         reference counting the relations of its CTE); the limit is {MAX_RELATIONS} relations"
    ))
}

impl SqlShape {
    fn enter(&mut self) -> ControlFlow<QueryError> {
        self.depth += 1;
        self.nodes += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return ControlFlow::Break(too_deep());
        }
        if self.nodes > MAX_EXPRESSION_NODES {
            return ControlFlow::Break(too_many_nodes());
        }
        ControlFlow::Continue(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Adds `relations` to the innermost open query.
    fn read(&mut self, relations: usize) -> ControlFlow<QueryError> {
        if let Some(frame) = self.queries.last_mut() {
            frame.relations = frame.relations.saturating_add(relations);
            if frame.relations > MAX_RELATIONS {
                return ControlFlow::Break(too_many_relations(frame.relations));
            }
        }
        ControlFlow::Continue(())
    }
}

impl Visitor for SqlShape {
    type Break = QueryError;

    // A subquery nests its expressions one level deeper than the query around it.
    fn pre_visit_query(&mut self, query: &sql_ast::Query) -> ControlFlow<QueryError> {
        let in_expression = self.open_exprs > 0;
        if in_expression {
            self.subquery_depth += 1;
            if self.subquery_depth > MAX_SUBQUERY_DEPTH {
                return ControlFlow::Break(QueryError::TooComplex(format!(
                    "subqueries nest more than {MAX_SUBQUERY_DEPTH} levels deep inside \
                     expressions; the limit is {MAX_SUBQUERY_DEPTH} levels of subqueries \
                     (each level doubles the planning time)"
                )));
            }
        }
        // The CTEs are visited before the body that uses them: note which query
        // is which CTE, to record its relations when it is left.
        for cte in query.with.iter().flat_map(|with| &with.cte_tables) {
            self.cte_bodies
                .insert(address(&cte.query), normalized(&cte.alias.name));
        }
        let nested = !self.queries.is_empty();
        self.queries.push(QueryFrame {
            outer_open_exprs: self.open_exprs,
            in_expression,
            relations: 0,
        });
        self.open_exprs = 0;
        if nested {
            return self.enter();
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &sql_ast::Query) -> ControlFlow<QueryError> {
        let Some(frame) = self.queries.pop() else {
            return ControlFlow::Continue(());
        };
        self.open_exprs = frame.outer_open_exprs;
        if frame.in_expression {
            self.subquery_depth = self.subquery_depth.saturating_sub(1);
        }
        if !self.queries.is_empty() {
            self.leave();
        }
        match self.cte_bodies.remove(&address(query)) {
            // A CTE's relations count where it is referenced, as often as it is.
            Some(name) => {
                self.cte_relations.insert(name, frame.relations);
                ControlFlow::Continue(())
            }
            None => self.read(frame.relations),
        }
    }

    fn pre_visit_relation(&mut self, relation: &sql_ast::ObjectName) -> ControlFlow<QueryError> {
        let cte = match relation.0.as_slice() {
            [part] => part
                .as_ident()
                .and_then(|ident| self.cte_relations.get(&normalized(ident)).copied()),
            _ => None,
        };
        self.read(cte.unwrap_or(1).max(1))
    }

    fn pre_visit_expr(&mut self, expr: &sql_ast::Expr) -> ControlFlow<QueryError> {
        if let sql_ast::Expr::Function(function) = expr {
            let nesting = type_string_nesting(function);
            if nesting > MAX_TYPE_NESTING {
                return ControlFlow::Break(QueryError::TooComplex(format!(
                    "the type string of {} has {nesting} parentheses; the limit is \
                     {MAX_TYPE_NESTING}",
                    function.name
                )));
            }
        }
        self.open_exprs += 1;
        self.enter()
    }

    fn post_visit_expr(&mut self, _expr: &sql_ast::Expr) -> ControlFlow<QueryError> {
        self.open_exprs = self.open_exprs.saturating_sub(1);
        self.leave();
        ControlFlow::Continue(())
    }
}

/// Depth and size of a DataFusion expression, measured by its tree walk.
#[derive(Default)]
struct ExprShape {
    depth: usize,
    nodes: usize,
    error: Option<QueryError>,
}

impl<'n> TreeNodeVisitor<'n> for ExprShape {
    type Node = Expr;

    fn f_down(&mut self, _node: &'n Expr) -> datafusion::common::Result<TreeNodeRecursion> {
        self.depth += 1;
        self.nodes += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            self.error = Some(too_deep());
        } else if self.nodes > MAX_EXPRESSION_NODES {
            self.error = Some(too_many_nodes());
        }
        Ok(if self.error.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    }

    fn f_up(&mut self, _node: &'n Expr) -> datafusion::common::Result<TreeNodeRecursion> {
        self.depth = self.depth.saturating_sub(1);
        Ok(TreeNodeRecursion::Continue)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::lit;
    use datafusion::sql::parser::DFParserBuilder;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    use super::*;

    /// `SELECT 1+1+…` with `terms` terms: `terms - 1` operators, `terms` levels deep.
    fn plus_chain(terms: usize) -> String {
        format!("SELECT {}", vec!["1"; terms].join("+"))
    }

    fn union_chain(selects: usize) -> String {
        (0..selects)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    }

    fn parsed(sql: &str) -> DFStatement {
        let mut statements = DFParserBuilder::new(sql)
            .with_dialect(&GenericDialect {})
            .build()
            .unwrap()
            .parse_statements()
            .unwrap();
        statements.pop_front().unwrap()
    }

    fn message(outcome: Result<(), QueryError>) -> String {
        match outcome {
            Err(QueryError::TooComplex(message)) => message,
            other => panic!("expected TooComplex, got {other:?}"),
        }
    }

    #[test]
    fn too_many_operators_are_refused_before_parsing() {
        let sql = plus_chain(MAX_OPERATORS + 2);
        let text = message(check_sql_text(&sql, &GenericDialect {}));
        assert!(
            text.contains(&format!("the limit is {MAX_OPERATORS} operators")),
            "{text}"
        );
        let keywords = format!(
            "SELECT 1 FROM t WHERE {}",
            vec!["a IS NOT NULL"; MAX_OPERATORS / 2 + 1].join(" AND ")
        );
        assert!(check_sql_text(&keywords, &GenericDialect {}).is_err());
    }

    #[test]
    fn too_many_set_operations_are_refused_before_parsing() {
        let sql = union_chain(MAX_SET_OPERATIONS + 2);
        let text = message(check_sql_text(&sql, &GenericDialect {}));
        assert!(
            text.contains(&format!("the limit is {MAX_SET_OPERATIONS} set operations")),
            "{text}"
        );
        assert!(check_sql_text(&union_chain(MAX_SET_OPERATIONS + 1), &GenericDialect {}).is_ok());
    }

    #[test]
    fn nested_explains_are_refused_before_parsing() {
        let nested = format!("{}SELECT 1", "EXPLAIN ".repeat(MAX_EXPLAINS + 1));
        let text = message(check_sql_text(&nested, &GenericDialect {}));
        assert!(
            text.contains(&format!("the limit is {MAX_EXPLAINS}")),
            "{text}"
        );
        assert!(check_sql_text("EXPLAIN SELECT explain FROM t", &GenericDialect {}).is_ok());
    }

    #[test]
    fn deeply_nested_types_are_refused() {
        let list = format!(
            "SELECT CAST(NULL AS INT{})",
            "[]".repeat(MAX_TYPE_NESTING + 1)
        );
        let text = message(check_sql_text(&list, &GenericDialect {}));
        assert!(
            text.contains(&format!("the limit is {MAX_TYPE_NESTING}")),
            "{text}"
        );
        let structs = format!(
            "SELECT CAST(NULL AS {}INT{})",
            "STRUCT<a ".repeat(MAX_TYPE_NESTING + 1),
            ">".repeat(MAX_TYPE_NESTING + 1)
        );
        assert!(check_sql_text(&structs, &GenericDialect {}).is_err());
        // A comparison is not a type.
        let comparisons = format!(
            "SELECT 1 FROM t WHERE {}",
            vec!["a < 1"; MAX_TYPE_NESTING + 1].join(" AND ")
        );
        assert!(check_sql_text(&comparisons, &GenericDialect {}).is_ok());
        let nested = format!(
            "SELECT arrow_cast(NULL, '{}Int64{}')",
            "List(".repeat(MAX_TYPE_NESTING + 1),
            ")".repeat(MAX_TYPE_NESTING + 1)
        );
        let text = message(check_statement(&parsed(&nested)));
        assert!(text.contains("arrow_cast"), "{text}");
        assert!(check_statement(&parsed("SELECT arrow_cast(1, 'List(Int64)')")).is_ok());
    }

    #[test]
    fn operators_inside_literals_and_names_do_not_count() {
        let quoted = format!(
            "SELECT '{}' AS \"{}\" FROM \"union\"",
            "+".repeat(MAX_OPERATORS * 2),
            "or ".repeat(MAX_OPERATORS)
        );
        assert!(check_sql_text(&quoted, &GenericDialect {}).is_ok());
        // Text that does not tokenize is left to the parser's error.
        assert!(check_sql_text("SELECT 'unterminated", &GenericDialect {}).is_ok());
    }

    #[test]
    fn a_chain_deeper_than_the_limit_is_refused_after_parsing() {
        let deep = parsed(&plus_chain(MAX_EXPRESSION_DEPTH + 1));
        let text = message(check_statement(&deep));
        assert!(
            text.contains(&format!("the limit is {MAX_EXPRESSION_DEPTH} levels")),
            "{text}"
        );
        assert!(check_statement(&parsed(&plus_chain(MAX_EXPRESSION_DEPTH))).is_ok());
        // The same chain inside EXPLAIN, or in a subquery, is as deep.
        let explained = parsed(&format!("EXPLAIN {}", plus_chain(MAX_EXPRESSION_DEPTH + 1)));
        assert!(check_statement(&explained).is_err());
        let nested = parsed(&format!(
            "SELECT * FROM ({}) AS s",
            plus_chain(MAX_EXPRESSION_DEPTH)
        ));
        assert!(check_statement(&nested).is_err());
    }

    #[test]
    fn wide_flat_expressions_are_not_deep() {
        let values: Vec<String> = (0..5_000).map(|i| i.to_string()).collect();
        let in_list = parsed(&format!("SELECT 1 WHERE 1 IN ({})", values.join(", ")));
        assert!(check_statement(&in_list).is_ok());
        let columns: Vec<String> = (0..2_000).map(|i| format!("{i} + 1 AS c{i}")).collect();
        let wide = parsed(&format!("SELECT {}", columns.join(", ")));
        assert!(check_statement(&wide).is_ok());
    }

    #[test]
    fn too_many_nodes_are_refused() {
        let values: Vec<String> = (0..MAX_EXPRESSION_NODES).map(|i| i.to_string()).collect();
        let huge = parsed(&format!("SELECT 1 WHERE 1 IN ({})", values.join(",")));
        let text = message(check_statement(&huge));
        assert!(
            text.contains(&format!("the limit is {MAX_EXPRESSION_NODES} nodes")),
            "{text}"
        );
    }

    #[test]
    fn subqueries_in_expressions_nest_at_most_the_limit() {
        let nested = |levels: usize| {
            format!(
                "SELECT n FROM t WHERE n IN {}(SELECT 1){}",
                "(SELECT n FROM t WHERE n IN ".repeat(levels - 1),
                ")".repeat(levels - 1)
            )
        };
        assert!(check_statement(&parsed(&nested(MAX_SUBQUERY_DEPTH))).is_ok());
        let text = message(check_statement(&parsed(&nested(MAX_SUBQUERY_DEPTH + 1))));
        assert!(
            text.contains(&format!(
                "the limit is {MAX_SUBQUERY_DEPTH} levels of subqueries"
            )),
            "{text}"
        );
        // Subqueries in FROM are not expression subqueries.
        let derived = format!(
            "SELECT x FROM {}(SELECT 1 AS x) AS t{}",
            "(SELECT x FROM ".repeat(20),
            ") AS t".repeat(20)
        );
        assert!(check_statement(&parsed(&derived)).is_ok());
    }

    #[test]
    fn cte_references_count_the_relations_of_their_cte() {
        // Each CTE joins the one before with itself: 2^steps relations.
        let doubling = |steps: usize| {
            let ctes: Vec<String> = (1..=steps)
                .map(|i| {
                    format!(
                        "a{i} AS (SELECT p.x FROM a{} p JOIN A{} q ON p.x = q.x)",
                        i - 1,
                        i - 1
                    )
                })
                .collect();
            format!(
                "WITH a0 AS (SELECT x FROM t), {} SELECT count(*) FROM a{steps}",
                ctes.join(", ")
            )
        };
        assert!(check_statement(&parsed(&doubling(8))).is_ok());
        let text = message(check_statement(&parsed(&doubling(9))));
        assert!(
            text.contains(&format!("the limit is {MAX_RELATIONS} relations")),
            "{text}"
        );
        // A recursive CTE's reference to itself counts once.
        let recursive = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 9) \
             SELECT * FROM r";
        assert!(check_statement(&parsed(recursive)).is_ok());
        let join = |tables: usize| {
            let names: Vec<String> = (0..tables).map(|i| format!("t AS t{i}")).collect();
            format!("SELECT 1 FROM {}", names.join(", "))
        };
        assert!(check_statement(&parsed(&join(MAX_RELATIONS))).is_ok());
        assert!(check_statement(&parsed(&join(MAX_RELATIONS + 1))).is_err());
    }

    #[test]
    fn built_expressions_are_checked_too() {
        let chain = |levels: usize| (1..levels).fold(lit(1), |acc, _| acc + lit(1));
        assert!(check_expr(&chain(MAX_EXPRESSION_DEPTH)).is_ok());
        let text = message(check_expr(&chain(MAX_EXPRESSION_DEPTH + 1)));
        assert!(text.contains("levels"), "{text}");
        assert_eq!(expr_nodes(&chain(10)), 19);
    }
}
