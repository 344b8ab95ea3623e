//! Why a calculated-field expression was rejected, and where.

use std::fmt;

/// A calculated-field expression that does not lex, parse or compile.
///
/// Every error points at one place in the text: `offset` is a byte offset, `line`
/// and `column` are 1-based and count characters, so an editor can put a caret
/// under the offending token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedError {
    /// Byte offset of the offending token in the expression text.
    pub offset: usize,
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What was wrong and, where it helps, what was expected instead.
    pub message: String,
}

impl DerivedError {
    /// An error about the token at byte `offset` of `text`.
    pub(crate) fn at(text: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = text[line_start..offset].chars().count() + 1;
        DerivedError {
            offset,
            line,
            column,
            message: message.into(),
        }
    }

    /// The error with the offending line of `text` and a caret under the position,
    /// for a human reading a terminal or a log.
    pub fn render(&self, text: &str) -> String {
        let line_text = text.lines().nth(self.line - 1).unwrap_or("");
        let padding = " ".repeat(self.column.saturating_sub(1));
        format!("{self}\n  {line_text}\n  {padding}^")
    }
}

impl fmt::Display for DerivedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at line {}, column {})",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for DerivedError {}

/// The largest char boundary at or before `offset` (`str::floor_char_boundary`
/// is not stable yet).
fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "IF(\n  é, $x)";
        let error = DerivedError::at(text, text.find('$').unwrap_or(0), "bad");
        assert_eq!((error.line, error.column), (2, 6));
        assert_eq!(error.to_string(), "bad (at line 2, column 6)");
        assert_eq!(
            error.render(text),
            "bad (at line 2, column 6)\n    é, $x)\n       ^"
        );
    }

    #[test]
    fn offsets_inside_a_character_snap_back() {
        let error = DerivedError::at("é", 1, "bad");
        assert_eq!((error.offset, error.column), (0, 1));
        let past_end = DerivedError::at("ab", 10, "bad");
        assert_eq!((past_end.offset, past_end.column), (2, 3));
    }
}
