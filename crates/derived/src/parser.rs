//! Recursive-descent parser from tokens to the [`Ast`].
//!
//! Precedence, loosest first: `||`, `&&`, comparisons (`= == != < <= > >=`, not
//! chainable), `+ -`, `* / %`, prefix `- !`, then calls, columns, literals and
//! parentheses. Recursion is bounded: every node and every parenthesis counts
//! toward [`MAX_DEPTH`], so hostile input cannot overflow the stack.

use super::ast::{Ast, AstKind, BinaryOp, Literal, Span, UnaryOp};
use super::error::DerivedError;
use super::functions::Function;
use super::lexer::{Spanned, Token, tokenize};
use super::{MAX_ARGUMENTS, MAX_DEPTH, MAX_EXPRESSION_BYTES};

/// Parses `text` into a tree, checking function names and arities.
pub fn parse(text: &str) -> Result<Ast, DerivedError> {
    if text.len() > MAX_EXPRESSION_BYTES {
        return Err(DerivedError::at(
            text,
            MAX_EXPRESSION_BYTES,
            format!(
                "the expression is {} bytes long; the limit is {MAX_EXPRESSION_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        position: 0,
        nesting: 0,
    };
    if parser.peek().token == Token::End {
        return Err(parser.error_here(
            "the expression is empty: expected a function call, a $column or a literal",
        ));
    }
    let parsed = parser.binary(0)?;
    let next = parser.peek();
    if next.token != Token::End {
        return Err(DerivedError::at(
            text,
            next.span.start,
            format!(
                "unexpected {} after a complete expression: expected an operator or the end \
                 (to pass several values, use a function such as CONCAT(a, b))",
                next.token.describe()
            ),
        ));
    }
    Ok(parsed.ast)
}

/// A subtree and its depth, tracked as nodes are built so the check is O(1).
struct Parsed {
    ast: Ast,
    depth: usize,
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Spanned>,
    position: usize,
    /// Parentheses, calls and prefix operators currently open.
    nesting: usize,
}

/// Binary operators by precedence level, loosest first.
const LEVELS: &[&[(Token, BinaryOp)]] = &[
    &[(Token::Or, BinaryOp::Or)],
    &[(Token::And, BinaryOp::And)],
    &[
        (Token::Equal, BinaryOp::Equal),
        (Token::NotEqual, BinaryOp::NotEqual),
        (Token::Less, BinaryOp::Less),
        (Token::LessEqual, BinaryOp::LessEqual),
        (Token::Greater, BinaryOp::Greater),
        (Token::GreaterEqual, BinaryOp::GreaterEqual),
    ],
    &[
        (Token::Plus, BinaryOp::Add),
        (Token::Minus, BinaryOp::Subtract),
    ],
    &[
        (Token::Star, BinaryOp::Multiply),
        (Token::Slash, BinaryOp::Divide),
        (Token::Percent, BinaryOp::Modulo),
    ],
];

/// The level of comparisons, which do not chain.
const COMPARISON_LEVEL: usize = 2;

impl Parser<'_> {
    fn peek(&self) -> &Spanned {
        // The token list always ends with `End`, and `advance` never moves past it.
        &self.tokens[self.position.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Spanned {
        let token = self.peek().clone();
        if token.token != Token::End {
            self.position += 1;
        }
        token
    }

    fn error_here(&self, message: impl Into<String>) -> DerivedError {
        DerivedError::at(self.text, self.peek().span.start, message)
    }

    /// "line L, column C" of `offset`, for messages that point back at an opener.
    fn where_is(&self, offset: usize) -> String {
        let position = DerivedError::at(self.text, offset, "");
        if position.line == 1 {
            format!("column {}", position.column)
        } else {
            format!("line {}, column {}", position.line, position.column)
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), DerivedError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(DerivedError::at(
                self.text,
                at,
                format!("the expression nests more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// A node over `children`, refused when it would make the tree too deep.
    fn node(&self, kind: AstKind, span: Span, child_depth: usize) -> Result<Parsed, DerivedError> {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            return Err(DerivedError::at(
                self.text,
                span.start,
                format!("the expression nests more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(Parsed {
            ast: Ast { kind, span },
            depth,
        })
    }

    fn binary(&mut self, level: usize) -> Result<Parsed, DerivedError> {
        let Some(operators) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        loop {
            let next = self.peek();
            let Some(&(_, op)) = operators.iter().find(|(token, _)| *token == next.token) else {
                return Ok(left);
            };
            let op_span = self.advance().span;
            let right = self.binary(level + 1)?;
            if level == COMPARISON_LEVEL {
                let after = self.peek();
                if operators.iter().any(|(token, _)| *token == after.token) {
                    return Err(DerivedError::at(
                        self.text,
                        after.span.start,
                        format!(
                            "comparisons do not chain: write `a {} b && b {} c` \
                             instead of `a {} b {} c`",
                            op.symbol(),
                            after.token.describe().trim_matches('`'),
                            op.symbol(),
                            after.token.describe().trim_matches('`'),
                        ),
                    ));
                }
            }
            let span = Span {
                start: left.ast.span.start,
                end: right.ast.span.end,
            };
            let child_depth = left.depth.max(right.depth);
            let kind = AstKind::Binary {
                op,
                left: Box::new(left.ast),
                right: Box::new(right.ast),
            };
            left = self.node(kind, span, child_depth).map_err(|mut error| {
                // Point at the operator that made the chain too deep.
                error = DerivedError::at(self.text, op_span.start, error.message);
                error
            })?;
        }
    }

    fn unary(&mut self) -> Result<Parsed, DerivedError> {
        let start = self.peek().span.start;
        let op = match self.peek().token {
            Token::Minus => UnaryOp::Negate,
            Token::Bang => UnaryOp::Not,
            _ => return self.primary(),
        };
        self.advance();
        self.enter(start)?;
        let result = if let (UnaryOp::Negate, Token::Number(digits)) = (op, &self.peek().token) {
            // Fold `-3` into a literal so that -9223372036854775808 is in range.
            let digits = format!("-{digits}");
            let end = self.advance().span.end;
            let literal = self.number(&digits, start)?;
            self.node(AstKind::Literal(literal), Span { start, end }, 0)
        } else {
            let operand = self.unary()?;
            let span = Span {
                start,
                end: operand.ast.span.end,
            };
            let kind = AstKind::Unary {
                op,
                operand: Box::new(operand.ast),
            };
            self.node(kind, span, operand.depth)
        };
        self.leave();
        result
    }

    fn primary(&mut self) -> Result<Parsed, DerivedError> {
        let Spanned { token, span } = self.peek().clone();
        match token {
            Token::Number(digits) => {
                self.advance();
                let literal = self.number(&digits, span.start)?;
                self.node(AstKind::Literal(literal), span, 0)
            }
            Token::Str(value) | Token::RawStr(value) => {
                self.advance();
                self.node(AstKind::Literal(Literal::Str(value)), span, 0)
            }
            Token::Column(name) => {
                self.advance();
                self.node(AstKind::Column(name), span, 0)
            }
            Token::Ident(name) => {
                self.advance();
                self.identifier(name, span)
            }
            Token::LeftParen => {
                self.advance();
                self.enter(span.start)?;
                let inner = self.binary(0)?;
                if self.peek().token != Token::RightParen {
                    return Err(self.error_here(format!(
                        "expected `)` to close the `(` at {}, found {}",
                        self.where_is(span.start),
                        self.peek().token.describe()
                    )));
                }
                self.advance();
                self.leave();
                Ok(inner)
            }
            other => Err(self.error_here(format!(
                "expected a value (a function call, a $column or a literal), found {}",
                other.describe()
            ))),
        }
    }

    fn number(&self, digits: &str, at: usize) -> Result<Literal, DerivedError> {
        if digits.contains(['.', 'e', 'E']) {
            match digits.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(Literal::Float(value)),
                _ => Err(DerivedError::at(
                    self.text,
                    at,
                    format!("the number `{digits}` is out of range"),
                )),
            }
        } else {
            digits.parse::<i64>().map(Literal::Int).map_err(|_| {
                DerivedError::at(
                    self.text,
                    at,
                    format!(
                        "the integer `{digits}` is out of range: integers are 64-bit \
                         (write it with a decimal point to use a float)"
                    ),
                )
            })
        }
    }

    /// A keyword literal or a function call, after its name was consumed.
    fn identifier(&mut self, name: String, span: Span) -> Result<Parsed, DerivedError> {
        let is_call = self.peek().token == Token::LeftParen;
        if !is_call {
            let literal = match name.as_str() {
                "true" => Some(Literal::Bool(true)),
                "false" => Some(Literal::Bool(false)),
                "null" => Some(Literal::Null),
                _ => None,
            };
            if let Some(literal) = literal {
                return self.node(AstKind::Literal(literal), span, 0);
            }
            let lower = name.to_ascii_lowercase();
            let message = if matches!(lower.as_str(), "true" | "false" | "null") {
                format!("unknown name `{name}`; literals are lower case: did you mean `{lower}`?")
            } else if Function::lookup(&name).is_some() {
                format!("expected `(` after the function name {name}")
            } else {
                format!(
                    "unknown name `{name}`: columns are written with a dollar sign \
                     (`${name}`), strings in double quotes (`\"{name}\"`)"
                )
            };
            return Err(DerivedError::at(self.text, span.start, message));
        }
        let Some(function) = Function::lookup(&name) else {
            let hint = match Function::suggest(&name) {
                Some(known) if known.eq_ignore_ascii_case(&name) => {
                    format!("; function names are upper case: did you mean {known}?")
                }
                Some(known) => format!("; did you mean {known}?"),
                None => String::new(),
            };
            return Err(DerivedError::at(
                self.text,
                span.start,
                format!("unknown function `{name}`{hint}"),
            ));
        };
        let open = self.advance().span;
        self.enter(span.start)?;
        let mut args = Vec::new();
        let mut child_depth = 0;
        loop {
            if self.peek().token == Token::RightParen {
                break;
            }
            if args.len() == MAX_ARGUMENTS {
                return Err(self.error_here(format!(
                    "{name} has more than {MAX_ARGUMENTS} arguments, the limit"
                )));
            }
            let arg = self.binary(0)?;
            child_depth = child_depth.max(arg.depth);
            args.push(arg.ast);
            match self.peek().token {
                // A trailing comma before `)` is allowed, as in Honeycomb.
                Token::Comma => {
                    self.advance();
                }
                Token::RightParen => break,
                ref other => {
                    return Err(self.error_here(format!(
                        "expected `,` or `)` in the call of {name} opened at {}, found {}",
                        self.where_is(open.start),
                        other.describe()
                    )));
                }
            }
        }
        let close = self.advance().span;
        self.leave();
        if let Some(message) = function.check_arity(args.len()) {
            return Err(DerivedError::at(self.text, span.start, message));
        }
        let span = Span {
            start: span.start,
            end: close.end,
        };
        self.node(AstKind::Call { function, args }, span, child_depth)
    }
}
