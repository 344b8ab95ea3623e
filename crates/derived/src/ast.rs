//! The syntax tree of a calculated-field expression.

use super::functions::Function;

/// A byte range of the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A node of the tree and the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    /// What the node is.
    pub kind: AstKind,
    /// Where it is in the text.
    pub span: Span,
}

/// The kinds of node.
#[derive(Debug, Clone, PartialEq)]
pub enum AstKind {
    /// A constant.
    Literal(Literal),
    /// A `$column` reference, by name.
    Column(String),
    /// A function call; the arity was checked by the parser.
    Call {
        /// Which function.
        function: Function,
        /// Its arguments in order.
        args: Vec<Ast>,
    },
    /// A prefix operator.
    Unary {
        /// Which operator.
        op: UnaryOp,
        /// Its operand.
        operand: Box<Ast>,
    },
    /// An infix operator.
    Binary {
        /// Which operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Ast>,
        /// Right operand.
        right: Box<Ast>,
    },
}

/// A constant value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A whole number.
    Int(i64),
    /// A number with a fraction or an exponent.
    Float(f64),
    /// A string, double-quoted or raw.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`: the negated number.
    Negate,
    /// `!x`: same as `NOT(x)`.
    Not,
}

/// Infix operators, each the same as a function (see `docs/calculated-fields.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `||`: `OR(a, b)`.
    Or,
    /// `&&`: `AND(a, b)`.
    And,
    /// `=` or `==`: `EQUALS(a, b)`.
    Equal,
    /// `!=`: `NOT(EQUALS(a, b))`.
    NotEqual,
    /// `<`: `LT(a, b)`.
    Less,
    /// `<=`: `LTE(a, b)`.
    LessEqual,
    /// `>`: `GT(a, b)`.
    Greater,
    /// `>=`: `GTE(a, b)`.
    GreaterEqual,
    /// `+`: `SUM(a, b)`.
    Add,
    /// `-`: `SUB(a, b)`.
    Subtract,
    /// `*`: `MUL(a, b)`.
    Multiply,
    /// `/`: `DIV(a, b)`.
    Divide,
    /// `%`: `MOD(a, b)`.
    Modulo,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Equal => "=",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterEqual => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
        }
    }
}

impl Ast {
    /// How many nodes deep the tree is (a leaf is 1).
    pub fn depth(&self) -> usize {
        match &self.kind {
            AstKind::Literal(_) | AstKind::Column(_) => 1,
            AstKind::Call { args, .. } => 1 + args.iter().map(Ast::depth).max().unwrap_or(0),
            AstKind::Unary { operand, .. } => 1 + operand.depth(),
            AstKind::Binary { left, right, .. } => 1 + left.depth().max(right.depth()),
        }
    }
}
