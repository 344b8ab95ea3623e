//! Calculated fields (Honeycomb's derived columns): a small expression language
//! compiled to DataFusion expressions.
//!
//! ```text
//!  text ──lexer──► tokens ──parser──► Ast ──compile──► datafusion Expr
//!        (spans)           (arity, depth)   (columns resolved by the caller)
//! ```
//!
//! The language is documented in `docs/calculated-fields.md`. Every error names
//! its position; no input, however hostile, panics or overflows the stack.
//!
//! quarry-derived depends only on arrow, DataFusion and the vocabulary crate
//! `quarry-schema` (and `regex` to check patterns): no storage, no engine, no
//! query specs. The query-spec compiler
//! (`quarry-query`) resolves column names and calls it.

mod ast;
mod branches;
mod compile;
mod dynamic;
mod error;
mod functions;
mod lexer;
mod parser;

#[cfg(test)]
mod tests;

pub use ast::{Ast, AstKind, BinaryOp, Literal, Span, UnaryOp};
pub use error::DerivedError;
pub use functions::Function;

use datafusion::logical_expr::Expr;

/// Longest expression text accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 16 * 1024;
/// Deepest nesting of calls, operators and parentheses accepted.
pub const MAX_DEPTH: usize = 64;
/// Most arguments one function call may have.
pub const MAX_ARGUMENTS: usize = 1000;

/// Parses `text` into a syntax tree, checking function names and arities.
pub fn parse(text: &str) -> Result<Ast, DerivedError> {
    parser::parse(text)
}

/// Compiles `text` to a DataFusion expression.
///
/// `columns` resolves a `$name` reference to an expression (a dataset column or
/// an earlier calculated field); `None` makes the reference read as null, as a
/// missing column does in Honeycomb.
pub fn compile(text: &str, columns: &dyn Fn(&str) -> Option<Expr>) -> Result<Expr, DerivedError> {
    let ast = parse(text)?;
    compile::Compiler::new(text, columns).compile(&ast)
}
