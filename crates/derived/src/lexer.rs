//! Splits calculated-field text into tokens, each with its byte span.
//!
//! The lexer is a single pass over the characters; it never backtracks and
//! every error carries the offset where the bad token starts.

use super::ast::Span;
use super::error::DerivedError;

/// One token of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A function name or a keyword (`true`, `false`, `null`).
    Ident(String),
    /// `$name`, `$"quoted name"` or `` $`raw name` ``.
    Column(String),
    /// The digits of a number literal as written (sign excluded).
    Number(String),
    /// A double-quoted string with its escapes resolved.
    Str(String),
    /// A back-quoted raw string, taken verbatim.
    RawStr(String),
    /// `(`
    LeftParen,
    /// `)`
    RightParen,
    /// `,`
    Comma,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// `=` or `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterEqual,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `!`
    Bang,
    /// The end of the text.
    End,
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("`{name}`"),
            Token::Column(name) => format!("column `${name}`"),
            Token::Number(text) => format!("number `{text}`"),
            Token::Str(_) | Token::RawStr(_) => "a string".to_owned(),
            Token::LeftParen => "`(`".to_owned(),
            Token::RightParen => "`)`".to_owned(),
            Token::Comma => "`,`".to_owned(),
            Token::Plus => "`+`".to_owned(),
            Token::Minus => "`-`".to_owned(),
            Token::Star => "`*`".to_owned(),
            Token::Slash => "`/`".to_owned(),
            Token::Percent => "`%`".to_owned(),
            Token::Equal => "`=`".to_owned(),
            Token::NotEqual => "`!=`".to_owned(),
            Token::Less => "`<`".to_owned(),
            Token::LessEqual => "`<=`".to_owned(),
            Token::Greater => "`>`".to_owned(),
            Token::GreaterEqual => "`>=`".to_owned(),
            Token::And => "`&&`".to_owned(),
            Token::Or => "`||`".to_owned(),
            Token::Bang => "`!`".to_owned(),
            Token::End => "the end of the expression".to_owned(),
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    /// The token.
    pub token: Token,
    /// Its bytes in the text.
    pub span: Span,
}

/// Characters a bare `$name` may contain besides letters and digits. `-`, `/` and
/// `:` are allowed because Honeycomb allows them, so `$a-1` names a column: write
/// infix subtraction and division with spaces (`$a - 1`).
fn is_bare_column_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':')
}

/// Splits `text` into tokens, ending with [`Token::End`].
pub fn tokenize(text: &str) -> Result<Vec<Spanned>, DerivedError> {
    let mut lexer = Lexer {
        text,
        chars: text.char_indices().peekable(),
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    tokens: Vec<Spanned>,
}

impl Lexer<'_> {
    fn run(&mut self) -> Result<(), DerivedError> {
        while let Some(&(start, c)) = self.chars.peek() {
            if c.is_whitespace() {
                self.chars.next();
                continue;
            }
            let token = match c {
                '(' => self.single(Token::LeftParen),
                ')' => self.single(Token::RightParen),
                ',' => self.single(Token::Comma),
                '+' => self.single(Token::Plus),
                '-' => self.single(Token::Minus),
                '*' => self.single(Token::Star),
                '/' => self.single(Token::Slash),
                '%' => self.single(Token::Percent),
                '=' => self.one_or_two('=', Token::Equal, Token::Equal),
                '<' => self.one_or_two('=', Token::Less, Token::LessEqual),
                '>' => self.one_or_two('=', Token::Greater, Token::GreaterEqual),
                '!' => self.one_or_two('=', Token::Bang, Token::NotEqual),
                '&' => self.doubled(start, '&', Token::And)?,
                '|' => self.doubled(start, '|', Token::Or)?,
                '"' => Token::Str(self.string(start)?),
                '`' => Token::RawStr(self.raw_string(start)?),
                '$' => self.column(start)?,
                c if c.is_ascii_digit() || c == '.' => self.number(start)?,
                c if c.is_ascii_alphabetic() || c == '_' => self.ident(),
                other => {
                    return Err(DerivedError::at(
                        self.text,
                        start,
                        format!(
                            "unexpected character `{other}`; expected a function call, \
                             a $column, a literal or an operator"
                        ),
                    ));
                }
            };
            let end = self.offset();
            self.tokens.push(Spanned {
                token,
                span: Span { start, end },
            });
        }
        let end = self.text.len();
        self.tokens.push(Spanned {
            token: Token::End,
            span: Span { start: end, end },
        });
        Ok(())
    }

    /// Byte offset of the next unread character.
    fn offset(&mut self) -> usize {
        self.chars
            .peek()
            .map_or(self.text.len(), |&(offset, _)| offset)
    }

    fn single(&mut self, token: Token) -> Token {
        self.chars.next();
        token
    }

    fn one_or_two(&mut self, second: char, one: Token, two: Token) -> Token {
        self.chars.next();
        if self.chars.next_if(|&(_, c)| c == second).is_some() {
            two
        } else {
            one
        }
    }

    fn doubled(&mut self, start: usize, c: char, token: Token) -> Result<Token, DerivedError> {
        self.chars.next();
        if self.chars.next_if(|&(_, next)| next == c).is_some() {
            Ok(token)
        } else {
            Err(DerivedError::at(
                self.text,
                start,
                format!("unexpected `{c}`; did you mean `{c}{c}`?"),
            ))
        }
    }

    fn ident(&mut self) -> Token {
        let mut name = String::new();
        while let Some((_, c)) = self
            .chars
            .next_if(|&(_, c)| c.is_ascii_alphanumeric() || c == '_')
        {
            name.push(c);
        }
        Token::Ident(name)
    }

    fn number(&mut self, start: usize) -> Result<Token, DerivedError> {
        let mut digits = String::new();
        let mut seen_digit = false;
        while let Some((_, c)) = self.chars.next_if(|&(_, c)| c.is_ascii_digit()) {
            digits.push(c);
            seen_digit = true;
        }
        if let Some((_, dot)) = self.chars.next_if(|&(_, c)| c == '.') {
            digits.push(dot);
            while let Some((_, c)) = self.chars.next_if(|&(_, c)| c.is_ascii_digit()) {
                digits.push(c);
                seen_digit = true;
            }
        }
        if !seen_digit {
            return Err(DerivedError::at(
                self.text,
                start,
                "unexpected `.`; a number needs digits, like `0.5`",
            ));
        }
        if let Some((exponent_at, e)) = self.chars.next_if(|&(_, c)| c == 'e' || c == 'E') {
            digits.push(e);
            if let Some((_, sign)) = self.chars.next_if(|&(_, c)| c == '+' || c == '-') {
                digits.push(sign);
            }
            let mut exponent_digits = false;
            while let Some((_, c)) = self.chars.next_if(|&(_, c)| c.is_ascii_digit()) {
                digits.push(c);
                exponent_digits = true;
            }
            if !exponent_digits {
                return Err(DerivedError::at(
                    self.text,
                    exponent_at,
                    "expected the digits of an exponent, like `1e3` or `2.5e-4`",
                ));
            }
        }
        if let Some(&(at, c)) = self.chars.peek()
            && (c.is_alphanumeric() || c == '_' || c == '.')
        {
            return Err(DerivedError::at(
                self.text,
                at,
                format!("unexpected `{c}` after the number `{digits}`"),
            ));
        }
        Ok(Token::Number(digits))
    }

    fn column(&mut self, start: usize) -> Result<Token, DerivedError> {
        self.chars.next();
        match self.chars.peek() {
            Some(&(quote_at, '"')) => {
                let name = self.string(quote_at)?;
                self.non_empty_column(start, name)
            }
            Some(&(quote_at, '`')) => {
                let name = self.raw_string(quote_at)?;
                self.non_empty_column(start, name)
            }
            _ => {
                let mut name = String::new();
                while let Some((_, c)) = self.chars.next_if(|&(_, c)| is_bare_column_char(c)) {
                    name.push(c);
                }
                if name.is_empty() {
                    return Err(DerivedError::at(
                        self.text,
                        start,
                        "expected a column name after `$`, like `$duration_ms` or \
                         `$\"name with spaces\"`",
                    ));
                }
                Ok(Token::Column(name))
            }
        }
    }

    fn non_empty_column(&self, start: usize, name: String) -> Result<Token, DerivedError> {
        if name.is_empty() {
            return Err(DerivedError::at(
                self.text,
                start,
                "a column name cannot be empty",
            ));
        }
        Ok(Token::Column(name))
    }

    /// A `"..."` string starting at `start`, with escapes resolved.
    fn string(&mut self, start: usize) -> Result<String, DerivedError> {
        self.chars.next();
        let mut value = String::new();
        loop {
            let Some((at, c)) = self.chars.next() else {
                return Err(DerivedError::at(
                    self.text,
                    start,
                    "unterminated string: expected a closing `\"`",
                ));
            };
            match c {
                '"' => return Ok(value),
                '\n' => {
                    return Err(DerivedError::at(
                        self.text,
                        at,
                        "a string cannot span lines: write a newline as `\\n`",
                    ));
                }
                '\\' => value.push(self.escape(at)?),
                c => value.push(c),
            }
        }
    }

    /// The character of the escape whose backslash is at `at`.
    fn escape(&mut self, at: usize) -> Result<char, DerivedError> {
        let Some((_, c)) = self.chars.next() else {
            return Err(DerivedError::at(
                self.text,
                at,
                "unterminated string: expected a closing `\"`",
            ));
        };
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (3, 8),
            other => {
                return Err(DerivedError::at(
                    self.text,
                    at,
                    format!(
                        "unknown escape `\\{other}`; use one of \\n \\t \\r \\\\ \\\" \\xHH \
                         \\uHHHH, or a `raw string` for regular expressions"
                    ),
                ));
            }
        };
        let mut code = String::new();
        if radix == 8 {
            code.push(c);
        }
        while code.len() < digits {
            match self.chars.next_if(|&(_, d)| d.is_digit(radix)) {
                Some((_, d)) => code.push(d),
                None => break,
            }
        }
        u32::from_str_radix(&code, radix)
            .ok()
            .filter(|_| code.len() == digits)
            .and_then(char::from_u32)
            .ok_or_else(|| {
                DerivedError::at(
                    self.text,
                    at,
                    format!("invalid escape `\\{c}`: expected {digits} digits naming a character"),
                )
            })
    }

    /// A `` `...` `` raw string starting at `start`, taken verbatim.
    fn raw_string(&mut self, start: usize) -> Result<String, DerivedError> {
        self.chars.next();
        let mut value = String::new();
        loop {
            match self.chars.next() {
                Some((_, '`')) => return Ok(value),
                Some((_, c)) => value.push(c),
                None => {
                    return Err(DerivedError::at(
                        self.text,
                        start,
                        "unterminated raw string: expected a closing back quote",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Token> {
        match tokenize(text) {
            Ok(tokens) => tokens.into_iter().map(|spanned| spanned.token).collect(),
            Err(error) => panic!("{text}: {error}"),
        }
    }

    fn error(text: &str) -> String {
        match tokenize(text) {
            Ok(tokens) => panic!("{text} lexed: {tokens:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn lexes_every_kind_of_token() {
        assert_eq!(
            tokens("IF($a.b-c, \"x\\ty\", `\\d+`) + 1.5e3 <= -2 != !true && x || y % 3"),
            vec![
                Token::Ident("IF".into()),
                Token::LeftParen,
                Token::Column("a.b-c".into()),
                Token::Comma,
                Token::Str("x\ty".into()),
                Token::Comma,
                Token::RawStr("\\d+".into()),
                Token::RightParen,
                Token::Plus,
                Token::Number("1.5e3".into()),
                Token::LessEqual,
                Token::Minus,
                Token::Number("2".into()),
                Token::NotEqual,
                Token::Bang,
                Token::Ident("true".into()),
                Token::And,
                Token::Ident("x".into()),
                Token::Or,
                Token::Ident("y".into()),
                Token::Percent,
                Token::Number("3".into()),
                Token::End,
            ]
        );
    }

    #[test]
    fn quoted_column_names() {
        assert_eq!(
            tokens("$\"Context Key\" $`1st token` $é"),
            vec![
                Token::Column("Context Key".into()),
                Token::Column("1st token".into()),
                Token::Column("é".into()),
                Token::End,
            ]
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            tokens(r#""\u00e9\x41\101\"\\\n""#),
            vec![Token::Str("éAA\"\\\n".into()), Token::End]
        );
    }

    #[test]
    fn spans_are_byte_ranges() {
        let spanned = tokenize("é + $x").unwrap_or_default();
        assert!(spanned.is_empty(), "é is not a token start");
        let spanned = tokenize("  $x +").unwrap_or_default();
        let spans: Vec<(usize, usize)> = spanned
            .iter()
            .map(|token| (token.span.start, token.span.end))
            .collect();
        assert_eq!(spans, vec![(2, 4), (5, 6), (6, 6)]);
    }

    #[test]
    fn errors_name_the_position_and_the_expectation() {
        assert_eq!(
            error("CONCAT(\"abc"),
            "unterminated string: expected a closing `\"` (at line 1, column 8)"
        );
        assert_eq!(
            error("REG_MATCH($a, `x"),
            "unterminated raw string: expected a closing back quote (at line 1, column 15)"
        );
        assert_eq!(
            error("$a # 1"),
            "unexpected character `#`; expected a function call, a $column, a literal or an \
             operator (at line 1, column 4)"
        );
        assert_eq!(
            error("$ + 1"),
            "expected a column name after `$`, like `$duration_ms` or `$\"name with spaces\"` \
             (at line 1, column 1)"
        );
        assert_eq!(
            error("1e"),
            "expected the digits of an exponent, like `1e3` or `2.5e-4` (at line 1, column 2)"
        );
        assert_eq!(
            error("12abc"),
            "unexpected `a` after the number `12` (at line 1, column 3)"
        );
        assert_eq!(
            error("\"a\\qb\""),
            "unknown escape `\\q`; use one of \\n \\t \\r \\\\ \\\" \\xHH \\uHHHH, or a `raw \
             string` for regular expressions (at line 1, column 3)"
        );
        assert_eq!(
            error("\"a\nb\""),
            "a string cannot span lines: write a newline as `\\n` (at line 1, column 3)"
        );
        assert_eq!(
            error("$a & $b"),
            "unexpected `&`; did you mean `&&`? (at line 1, column 4)"
        );
        assert_eq!(
            error("$\"\""),
            "a column name cannot be empty (at line 1, column 1)"
        );
        assert_eq!(
            error("\"\\u12\""),
            "invalid escape `\\u`: expected 4 digits naming a character (at line 1, column 2)"
        );
    }
}
