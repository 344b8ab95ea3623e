//! Lowers the [`Ast`] to a DataFusion [`Expr`].
//!
//! Columns arrive as untyped `Expr`s, so the compiler tracks what it does know
//! (literals and function results have fixed types) in [`Ty`] and leans on the
//! run-time conversions of [`super::dynamic`] where it does not. Every function
//! either has a defined result for every input type or is rejected here with a
//! position; nothing is left for DataFusion to refuse at planning time.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{
    character_length, coalesce, concat, contains, ends_with, floor, greatest, least, log10, lower,
    nullif, octet_length, regexp_count, regexp_like, regexp_match, starts_with, upper,
};
use datafusion::functions_nested::expr_fn::array_element;
use datafusion::logical_expr::{Case, Expr, cast, lit, not, try_cast};
use quarry_schema::TIMESTAMP;

use super::ast::{Ast, AstKind, BinaryOp, Literal, Span, UnaryOp};
use super::branches::{coalesce_values, if_values};
use super::dynamic::{CompareOp, compare, to_number, truthy};
use super::error::DerivedError;
use super::functions::Function;

/// Compiled size limit of a regular expression; far above any sane pattern, far
/// below what would let one expression eat the server's memory.
const REGEX_SIZE_LIMIT_BYTES: usize = 1 << 20;

/// What the compiler knows about an expression's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// Int64.
    Int,
    /// Float64.
    Float,
    /// Int64 or Float64, decided by a column's type at planning.
    Number,
    /// Utf8.
    Str,
    /// Boolean, never null.
    Bool,
    /// The null literal.
    Null,
    /// A column, or a branch result of mixed kinds.
    Unknown,
}

impl Ty {
    fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Number)
    }
}

/// A compiled expression and what is known of its type.
struct Typed {
    expr: Expr,
    ty: Ty,
}

impl Typed {
    fn new(expr: Expr, ty: Ty) -> Self {
        Typed { expr, ty }
    }
}

/// Compiles trees for one expression text, resolving columns with `columns`.
pub struct Compiler<'a> {
    text: &'a str,
    columns: &'a dyn Fn(&str) -> Option<Expr>,
}

impl<'a> Compiler<'a> {
    /// A compiler for `text` (used for error positions).
    pub fn new(text: &'a str, columns: &'a dyn Fn(&str) -> Option<Expr>) -> Self {
        Compiler { text, columns }
    }

    /// The DataFusion expression of `ast`.
    pub fn compile(&self, ast: &Ast) -> Result<Expr, DerivedError> {
        Ok(self.lower(ast)?.expr)
    }

    fn error(&self, span: Span, message: impl Into<String>) -> DerivedError {
        DerivedError::at(self.text, span.start, message)
    }

    fn lower(&self, ast: &Ast) -> Result<Typed, DerivedError> {
        match &ast.kind {
            AstKind::Literal(literal) => Ok(literal_expr(literal)),
            AstKind::Column(name) => Ok(match (self.columns)(name) {
                Some(expr) => Typed::new(expr, Ty::Unknown),
                None => Typed::new(lit(ScalarValue::Null), Ty::Null),
            }),
            AstKind::Unary { op, operand } => {
                let operand = self.lower(operand)?;
                Ok(match op {
                    UnaryOp::Negate => {
                        let ty = number_ty(operand.ty);
                        Typed::new(Expr::Negative(Box::new(number(operand))), ty)
                    }
                    UnaryOp::Not => Typed::new(not(condition(operand)), Ty::Bool),
                })
            }
            AstKind::Binary { op, left, right } => {
                let left = self.lower(left)?;
                let right = self.lower(right)?;
                Ok(binary(*op, left, right))
            }
            AstKind::Call { function, args } => self.call(*function, args, ast.span),
        }
    }

    fn lower_all(&self, args: &[Ast]) -> Result<Vec<Typed>, DerivedError> {
        args.iter().map(|arg| self.lower(arg)).collect()
    }

    fn call(&self, function: Function, args: &[Ast], span: Span) -> Result<Typed, DerivedError> {
        use Function as F;
        // Functions that read their arguments' syntax, not only their values.
        match function {
            F::Exists => return self.exists(&args[0]),
            F::Bucket => return self.bucket(args),
            F::Length => return self.length(args),
            F::RegMatch | F::RegValue | F::RegCount => return self.regex(function, args),
            F::EventTimestamp => {
                let seconds = match (self.columns)(TIMESTAMP) {
                    Some(timestamp) => to_number(timestamp),
                    None => lit(ScalarValue::Float64(None)),
                };
                return Ok(Typed::new(seconds, Ty::Float));
            }
            _ => {}
        }
        let mut values = self.lower_all(args)?;
        let typed = match function {
            F::If => if_chain(values),
            F::Switch => {
                let subject = values.remove(0);
                switch(subject, values)
            }
            F::Coalesce => coalesce_chain(values),
            F::Lt => comparison(CompareOp::Less, take2(values)),
            F::Lte => comparison(CompareOp::LessEqual, take2(values)),
            F::Gt => comparison(CompareOp::Greater, take2(values)),
            F::Gte => comparison(CompareOp::GreaterEqual, take2(values)),
            F::Equals => comparison(CompareOp::Equal, take2(values)),
            F::In => {
                let subject = values.remove(0);
                let tests = values
                    .into_iter()
                    .map(|candidate| {
                        comparison(CompareOp::Equal, (clone_typed(&subject), candidate)).expr
                    })
                    .collect();
                Typed::new(balanced(tests, Expr::or), Ty::Bool)
            }
            F::Not => Typed::new(not(condition(take1(values))), Ty::Bool),
            F::And => logic(values, Expr::and),
            F::Or => logic(values, Expr::or),
            F::Sum => arithmetic(values, |a, b| a + b),
            F::Mul => arithmetic(values, |a, b| a * b),
            F::Sub => binary(BinaryOp::Subtract, values.remove(0), take1(values)),
            F::Div => binary(BinaryOp::Divide, values.remove(0), take1(values)),
            F::Mod => binary(BinaryOp::Modulo, values.remove(0), take1(values)),
            F::Min | F::Max => {
                let ty = values
                    .iter()
                    .map(|value| number_ty(value.ty))
                    .reduce(widen)
                    .unwrap_or(Ty::Number);
                let mut numbers: Vec<Expr> = values.into_iter().map(number).collect();
                let expr = if numbers.len() == 1 {
                    numbers.remove(0)
                } else if function == F::Min {
                    least(numbers)
                } else {
                    greatest(numbers)
                };
                Typed::new(expr, ty)
            }
            F::Log10 => {
                let value = float(take1(values));
                let positive = value.clone().gt(lit(0.0));
                Typed::new(case(vec![(positive, log10(value))], None), Ty::Float)
            }
            F::Int => Typed::new(to_int(take1(values)), Ty::Int),
            F::Float => Typed::new(float(take1(values)), Ty::Float),
            F::String => Typed::new(string(take1(values)), Ty::Str),
            F::Bool => Typed::new(condition(take1(values)), Ty::Bool),
            F::Concat => Typed::new(concat(values.into_iter().map(string).collect()), Ty::Str),
            F::StartsWith => predicate(starts_with, take2(values)),
            F::EndsWith => predicate(ends_with, take2(values)),
            F::Contains => predicate(contains, take2(values)),
            F::ToLower => Typed::new(lower(string(take1(values))), Ty::Str),
            F::ToUpper => Typed::new(upper(string(take1(values))), Ty::Str),
            F::UnixTimestamp => {
                let text = string(take1(values));
                let time = try_cast(text, DataType::Timestamp(TimeUnit::Nanosecond, None));
                Typed::new(to_number(time), Ty::Float)
            }
            F::Exists
            | F::Bucket
            | F::Length
            | F::RegMatch
            | F::RegValue
            | F::RegCount
            | F::EventTimestamp => {
                return Err(self.error(span, "internal: function handled above"));
            }
        };
        Ok(typed)
    }

    /// `EXISTS(x)`: true when `x` is not null; a column the dataset does not
    /// have does not exist.
    fn exists(&self, arg: &Ast) -> Result<Typed, DerivedError> {
        let value = self.lower(arg)?;
        let present = match value.ty {
            Ty::Null => lit(false),
            _ => value.expr.is_not_null(),
        };
        Ok(Typed::new(present, Ty::Bool))
    }

    /// A number literal argument (a constant such as a bucket size).
    fn constant(&self, arg: &Ast, what: &str) -> Result<f64, DerivedError> {
        match arg.kind {
            AstKind::Literal(Literal::Int(value)) => Ok(value as f64),
            AstKind::Literal(Literal::Float(value)) => Ok(value),
            _ => Err(self.error(
                arg.span,
                format!("the {what} must be a number literal, like 100 or 0.5"),
            )),
        }
    }

    fn bucket(&self, args: &[Ast]) -> Result<Typed, DerivedError> {
        let value = float(self.lower(&args[0])?);
        let size = self.constant(&args[1], "BUCKET size")?;
        if size <= 0.0 {
            return Err(self.error(args[1].span, "the BUCKET size must be greater than 0"));
        }
        let min = args
            .get(2)
            .map(|arg| self.constant(arg, "BUCKET minimum"))
            .transpose()?;
        let max = args
            .get(3)
            .map(|arg| self.constant(arg, "BUCKET maximum"))
            .transpose()?;
        if let (Some(min), Some(max)) = (min, max)
            && max < min
        {
            return Err(self.error(
                args[3].span,
                format!("the BUCKET maximum {max} is below the minimum {min}"),
            ));
        }
        // Values outside [min, max] fall into the first or last bucket.
        let mut clamps = Vec::new();
        if let Some(min) = min {
            clamps.push((value.clone().lt(lit(min)), lit(min)));
        }
        if let Some(max) = max {
            clamps.push((value.clone().gt(lit(max)), lit(max)));
        }
        let clamped = if clamps.is_empty() {
            value
        } else {
            case(clamps, Some(value))
        };
        let base = min.unwrap_or(0.0);
        let index = floor((clamped - lit(base)) / lit(size));
        Ok(Typed::new(index * lit(size) + lit(base), Ty::Float))
    }

    fn length(&self, args: &[Ast]) -> Result<Typed, DerivedError> {
        let text = string(self.lower(&args[0])?);
        let bytes = match args.get(1).map(|arg| (&arg.kind, arg.span)) {
            None => false,
            Some((AstKind::Literal(Literal::Str(mode)), _)) if mode == "chars" => false,
            Some((AstKind::Literal(Literal::Str(mode)), _)) if mode == "bytes" => true,
            Some((_, span)) => {
                return Err(self.error(
                    span,
                    "the LENGTH mode must be the string \"chars\" or \"bytes\"",
                ));
            }
        };
        let length = if bytes {
            octet_length(text)
        } else {
            character_length(text)
        };
        Ok(Typed::new(cast(length, DataType::Int64), Ty::Int))
    }

    fn regex(&self, function: Function, args: &[Ast]) -> Result<Typed, DerivedError> {
        let text = string(self.lower(&args[0])?);
        let AstKind::Literal(Literal::Str(pattern)) = &args[1].kind else {
            return Err(self.error(
                args[1].span,
                format!(
                    "the pattern of {} must be a string literal, best a `raw string`",
                    function.name()
                ),
            ));
        };
        if let Err(error) = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT_BYTES)
            .build()
        {
            let detail = error.to_string();
            let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
            return Err(self.error(
                args[1].span,
                format!("invalid regular expression: {detail}"),
            ));
        }
        let pattern = lit(pattern.as_str());
        Ok(match function {
            Function::RegMatch => Typed::new(
                coalesce(vec![regexp_like(text, pattern, None), lit(false)]),
                Ty::Bool,
            ),
            Function::RegValue => Typed::new(
                array_element(regexp_match(text, pattern, None), lit(1i64)),
                Ty::Str,
            ),
            _ => Typed::new(regexp_count(text, pattern, None, None), Ty::Int),
        })
    }
}

fn literal_expr(literal: &Literal) -> Typed {
    match literal {
        Literal::Int(value) => Typed::new(lit(*value), Ty::Int),
        Literal::Float(value) => Typed::new(lit(*value), Ty::Float),
        Literal::Str(value) => Typed::new(lit(value.as_str()), Ty::Str),
        Literal::Bool(value) => Typed::new(lit(*value), Ty::Bool),
        Literal::Null => Typed::new(lit(ScalarValue::Null), Ty::Null),
    }
}

fn clone_typed(typed: &Typed) -> Typed {
    Typed::new(typed.expr.clone(), typed.ty)
}

/// The single argument (the parser checked the arity).
fn take1(mut values: Vec<Typed>) -> Typed {
    values
        .pop()
        .unwrap_or_else(|| Typed::new(lit(ScalarValue::Null), Ty::Null))
}

/// The two arguments (the parser checked the arity).
fn take2(mut values: Vec<Typed>) -> (Typed, Typed) {
    let second = take1(values.split_off(values.len().min(1)));
    (take1(values), second)
}

/// The type `number` gives to a value of type `ty`.
fn number_ty(ty: Ty) -> Ty {
    match ty {
        Ty::Int | Ty::Bool => Ty::Int,
        Ty::Float | Ty::Str => Ty::Float,
        Ty::Null => Ty::Int,
        Ty::Number | Ty::Unknown => Ty::Number,
    }
}

/// The type of arithmetic on two numbers.
fn widen(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Int, Ty::Int) => Ty::Int,
        (Ty::Float, _) | (_, Ty::Float) => Ty::Float,
        _ => Ty::Number,
    }
}

/// `value` as a number: see `ToNumber` for the conversions.
fn number(value: Typed) -> Expr {
    match value.ty {
        Ty::Int | Ty::Float | Ty::Number => value.expr,
        Ty::Null => lit(ScalarValue::Int64(None)),
        _ => to_number(value.expr),
    }
}

/// `value` as a Float64.
fn float(value: Typed) -> Expr {
    match value.ty {
        Ty::Float => value.expr,
        Ty::Null => lit(ScalarValue::Float64(None)),
        _ => cast(number(value), DataType::Float64),
    }
}

/// `value` as a string: numbers and booleans print as they read.
fn string(value: Typed) -> Expr {
    match value.ty {
        Ty::Str => value.expr,
        Ty::Null => lit(ScalarValue::Utf8(None)),
        _ => try_cast(value.expr, DataType::Utf8),
    }
}

/// `INT(value)`: integers as they are, floats truncated toward zero, strings
/// parsed (`"42"`, `"4.7"`, `"1e3"`), booleans 1 or 0, else null.
fn to_int(value: Typed) -> Expr {
    match value.ty {
        Ty::Int => value.expr,
        Ty::Null => lit(ScalarValue::Int64(None)),
        _ => {
            let direct = try_cast(value.expr.clone(), DataType::Int64);
            let via_float = try_cast(float(value), DataType::Int64);
            coalesce(vec![direct, via_float])
        }
    }
}

/// `value` as a condition that is never null (see `Truthy`).
fn condition(value: Typed) -> Expr {
    match value.ty {
        Ty::Bool => value.expr,
        Ty::Null => lit(false),
        _ => truthy(value.expr),
    }
}

/// A CASE without a subject.
fn case(when_then: Vec<(Expr, Expr)>, otherwise: Option<Expr>) -> Expr {
    Expr::Case(Case::new(
        None,
        when_then
            .into_iter()
            .map(|(when, then)| (Box::new(when), Box::new(then)))
            .collect(),
        otherwise.map(Box::new),
    ))
}

/// Folds `exprs` pairwise as a balanced tree, so a long argument list makes a
/// shallow expression.
fn balanced(mut exprs: Vec<Expr>, combine: fn(Expr, Expr) -> Expr) -> Expr {
    match exprs.len() {
        0 => lit(ScalarValue::Null),
        1 => exprs.remove(0),
        len => {
            let right = exprs.split_off(len / 2);
            combine(balanced(exprs, combine), balanced(right, combine))
        }
    }
}

/// Gives the values of IF/SWITCH/COALESCE one type when all their types are
/// known here: numbers stay numbers, values of one kind stay as they are, and any
/// mix of kinds makes every value a string. `None` when a value's type is only
/// known at planning; the run-time `branches` functions apply the same rule then.
fn unify(values: &[Typed]) -> Option<Ty> {
    let known: Vec<Ty> = values
        .iter()
        .map(|value| value.ty)
        .filter(|ty| *ty != Ty::Null)
        .collect();
    if known.contains(&Ty::Unknown) {
        return None;
    }
    let Some(&first) = known.first() else {
        return Some(Ty::Null);
    };
    Some(if known.iter().all(|ty| ty.is_numeric()) {
        known.iter().copied().reduce(widen).unwrap_or(first)
    } else if known.iter().all(|ty| *ty == first) {
        first
    } else {
        Ty::Str
    })
}

/// The values converted to their common type (see [`unify`]).
fn convert_all(values: Vec<Typed>, target: Ty) -> Vec<Expr> {
    values
        .into_iter()
        .map(|value| match (target, value.ty) {
            (Ty::Str, ty) if ty != Ty::Str && ty != Ty::Null => string(value),
            _ => value.expr,
        })
        .collect()
}

/// The type of an IF/SWITCH/COALESCE result: a boolean result may be null (no
/// branch taken), so it is no longer `Bool`.
fn result_ty(target: Ty) -> Ty {
    if target == Ty::Bool {
        Ty::Unknown
    } else {
        target
    }
}

/// `COALESCE(v1, v2, ...)`.
fn coalesce_chain(values: Vec<Typed>) -> Typed {
    match unify(&values) {
        Some(target) => {
            // An empty string is a missing value for COALESCE, as in Honeycomb.
            let values = values
                .into_iter()
                .map(|value| match value.ty {
                    Ty::Str => Typed::new(nullif(value.expr, lit("")), Ty::Str),
                    _ => value,
                })
                .collect();
            Typed::new(coalesce(convert_all(values, target)), result_ty(target))
        }
        None => Typed::new(
            coalesce_values(values.into_iter().map(|value| value.expr).collect()),
            Ty::Unknown,
        ),
    }
}

/// `IF(c1, v1, c2, v2, ..., [default])`.
fn if_chain(values: Vec<Typed>) -> Typed {
    let mut conditions = Vec::new();
    let mut results = Vec::new();
    let mut values = values.into_iter();
    let mut default = None;
    while let Some(first) = values.next() {
        match values.next() {
            Some(result) => {
                conditions.push(condition(first));
                results.push(result);
            }
            None => default = Some(first),
        }
    }
    branches(conditions, results, default)
}

/// `SWITCH(subject, case1, v1, ..., [default])`: cases compare as EQUALS does.
fn switch(subject: Typed, values: Vec<Typed>) -> Typed {
    let mut conditions = Vec::new();
    let mut results = Vec::new();
    let mut values = values.into_iter();
    let mut default = None;
    while let Some(first) = values.next() {
        match values.next() {
            Some(result) => {
                let test = comparison(CompareOp::Equal, (clone_typed(&subject), first));
                conditions.push(test.expr);
                results.push(result);
            }
            None => default = Some(first),
        }
    }
    branches(conditions, results, default)
}

fn branches(conditions: Vec<Expr>, results: Vec<Typed>, default: Option<Typed>) -> Typed {
    let has_default = default.is_some();
    let mut values = results;
    values.extend(default);
    let Some(target) = unify(&values) else {
        let mut args = Vec::new();
        let mut values = values.into_iter();
        for condition in conditions {
            args.push(condition);
            args.extend(values.next().map(|value| value.expr));
        }
        args.extend(values.map(|value| value.expr));
        return Typed::new(if_values(args), Ty::Unknown);
    };
    let mut exprs = convert_all(values, target);
    let otherwise = if has_default { exprs.pop() } else { None };
    let when_then = conditions.into_iter().zip(exprs).collect();
    Typed::new(case(when_then, otherwise), result_ty(target))
}

/// A comparison; natively when both sides are known to be comparable (so
/// DataFusion can push it down), by Honeycomb's run-time rules otherwise.
fn comparison(op: CompareOp, (left, right): (Typed, Typed)) -> Typed {
    let native = (left.ty.is_numeric() && right.ty.is_numeric())
        || (left.ty == Ty::Str && right.ty == Ty::Str)
        || (left.ty == Ty::Bool && right.ty == Ty::Bool);
    let expr = if native {
        let (l, r) = (left.expr, right.expr);
        let test = match op {
            CompareOp::Less => l.lt(r),
            CompareOp::LessEqual => l.lt_eq(r),
            CompareOp::Greater => l.gt(r),
            CompareOp::GreaterEqual => l.gt_eq(r),
            CompareOp::Equal => l.eq(r),
        };
        coalesce(vec![test, lit(false)])
    } else {
        compare(op, left.expr, right.expr)
    };
    Typed::new(expr, Ty::Bool)
}

/// AND/OR over conditions.
fn logic(values: Vec<Typed>, combine: fn(Expr, Expr) -> Expr) -> Typed {
    let conditions = values.into_iter().map(condition).collect();
    Typed::new(balanced(conditions, combine), Ty::Bool)
}

/// SUM/MUL over numbers.
fn arithmetic(values: Vec<Typed>, combine: fn(Expr, Expr) -> Expr) -> Typed {
    let ty = values
        .iter()
        .map(|value| number_ty(value.ty))
        .reduce(widen)
        .unwrap_or(Ty::Number);
    let numbers = values.into_iter().map(number).collect();
    Typed::new(balanced(numbers, combine), ty)
}

/// A string predicate (STARTS_WITH, ENDS_WITH, CONTAINS) that is never null.
fn predicate(f: fn(Expr, Expr) -> Expr, (text, part): (Typed, Typed)) -> Typed {
    let test = f(string(text), string(part));
    Typed::new(coalesce(vec![test, lit(false)]), Ty::Bool)
}

/// An infix operator, with the meaning of the function of the same name.
fn binary(op: BinaryOp, left: Typed, right: Typed) -> Typed {
    match op {
        BinaryOp::Or => logic(vec![left, right], Expr::or),
        BinaryOp::And => logic(vec![left, right], Expr::and),
        BinaryOp::Equal => comparison(CompareOp::Equal, (left, right)),
        BinaryOp::NotEqual => {
            let equal = comparison(CompareOp::Equal, (left, right));
            Typed::new(not(equal.expr), Ty::Bool)
        }
        BinaryOp::Less => comparison(CompareOp::Less, (left, right)),
        BinaryOp::LessEqual => comparison(CompareOp::LessEqual, (left, right)),
        BinaryOp::Greater => comparison(CompareOp::Greater, (left, right)),
        BinaryOp::GreaterEqual => comparison(CompareOp::GreaterEqual, (left, right)),
        BinaryOp::Add => arithmetic(vec![left, right], |a, b| a + b),
        BinaryOp::Subtract => arithmetic(vec![left, right], |a, b| a - b),
        BinaryOp::Multiply => arithmetic(vec![left, right], |a, b| a * b),
        BinaryOp::Divide => {
            // Always a float; a zero divisor gives null rather than inf or an error.
            let divisor = nullif(float(right), lit(0.0));
            Typed::new(float(left) / divisor, Ty::Float)
        }
        BinaryOp::Modulo => {
            let ty = widen(number_ty(left.ty), number_ty(right.ty));
            let divisor = number(right);
            let zero = if ty == Ty::Int { lit(0i64) } else { lit(0.0) };
            let divisor = match ty {
                Ty::Int | Ty::Float => nullif(divisor, zero),
                // Type decided at planning: compare to an integer zero, which
                // DataFusion widens as needed.
                _ => nullif(divisor, lit(0i64)),
            };
            Typed::new(number(left) % divisor, ty)
        }
    }
}
