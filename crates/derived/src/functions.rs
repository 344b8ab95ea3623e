//! The functions of the language: names, arities, and the usage line that error
//! messages quote.

/// Every function a calculated field may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the function of the same name, documented in the table
pub enum Function {
    If,
    Switch,
    Coalesce,
    Lt,
    Lte,
    Gt,
    Gte,
    Equals,
    In,
    Exists,
    Not,
    And,
    Or,
    Min,
    Max,
    Sum,
    Sub,
    Mul,
    Div,
    Mod,
    Log10,
    Bucket,
    Int,
    Float,
    String,
    Bool,
    Concat,
    StartsWith,
    EndsWith,
    Contains,
    ToLower,
    ToUpper,
    Length,
    RegMatch,
    RegValue,
    RegCount,
    UnixTimestamp,
    EventTimestamp,
}

/// Name, fewest and most arguments (`None`: any number), usage line.
struct Entry {
    function: Function,
    name: &'static str,
    min_args: usize,
    max_args: Option<usize>,
    usage: &'static str,
}

/// The table every lookup reads; `docs/calculated-fields.md` documents each row.
const TABLE: &[Entry] = &[
    entry(
        Function::If,
        "IF",
        2,
        None,
        "IF(condition, value[, condition, value]...[, default])",
    ),
    entry(
        Function::Switch,
        "SWITCH",
        3,
        None,
        "SWITCH(value, case, result[, case, result]...[, default])",
    ),
    entry(
        Function::Coalesce,
        "COALESCE",
        1,
        None,
        "COALESCE(value, ...)",
    ),
    entry(Function::Lt, "LT", 2, Some(2), "LT(left, right)"),
    entry(Function::Lte, "LTE", 2, Some(2), "LTE(left, right)"),
    entry(Function::Gt, "GT", 2, Some(2), "GT(left, right)"),
    entry(Function::Gte, "GTE", 2, Some(2), "GTE(left, right)"),
    entry(
        Function::Equals,
        "EQUALS",
        2,
        Some(2),
        "EQUALS(left, right)",
    ),
    entry(Function::In, "IN", 2, None, "IN(value, candidate, ...)"),
    entry(Function::Exists, "EXISTS", 1, Some(1), "EXISTS(value)"),
    entry(Function::Not, "NOT", 1, Some(1), "NOT(condition)"),
    entry(Function::And, "AND", 1, None, "AND(condition, ...)"),
    entry(Function::Or, "OR", 1, None, "OR(condition, ...)"),
    entry(Function::Min, "MIN", 1, None, "MIN(number, ...)"),
    entry(Function::Max, "MAX", 1, None, "MAX(number, ...)"),
    entry(Function::Sum, "SUM", 1, None, "SUM(number, ...)"),
    entry(Function::Sub, "SUB", 2, Some(2), "SUB(number, number)"),
    entry(Function::Mul, "MUL", 1, None, "MUL(number, ...)"),
    entry(Function::Div, "DIV", 2, Some(2), "DIV(dividend, divisor)"),
    entry(Function::Mod, "MOD", 2, Some(2), "MOD(dividend, divisor)"),
    entry(Function::Log10, "LOG10", 1, Some(1), "LOG10(number)"),
    entry(
        Function::Bucket,
        "BUCKET",
        2,
        Some(4),
        "BUCKET(number, size[, min[, max]])",
    ),
    entry(Function::Int, "INT", 1, Some(1), "INT(value)"),
    entry(Function::Float, "FLOAT", 1, Some(1), "FLOAT(value)"),
    entry(Function::String, "STRING", 1, Some(1), "STRING(value)"),
    entry(Function::Bool, "BOOL", 1, Some(1), "BOOL(value)"),
    entry(Function::Concat, "CONCAT", 1, None, "CONCAT(value, ...)"),
    entry(
        Function::StartsWith,
        "STARTS_WITH",
        2,
        Some(2),
        "STARTS_WITH(string, prefix)",
    ),
    entry(
        Function::EndsWith,
        "ENDS_WITH",
        2,
        Some(2),
        "ENDS_WITH(string, suffix)",
    ),
    entry(
        Function::Contains,
        "CONTAINS",
        2,
        Some(2),
        "CONTAINS(string, substring)",
    ),
    entry(
        Function::ToLower,
        "TO_LOWER",
        1,
        Some(1),
        "TO_LOWER(string)",
    ),
    entry(
        Function::ToUpper,
        "TO_UPPER",
        1,
        Some(1),
        "TO_UPPER(string)",
    ),
    entry(
        Function::Length,
        "LENGTH",
        1,
        Some(2),
        "LENGTH(string[, \"chars\" | \"bytes\"])",
    ),
    entry(
        Function::RegMatch,
        "REG_MATCH",
        2,
        Some(2),
        "REG_MATCH(string, `regex`)",
    ),
    entry(
        Function::RegValue,
        "REG_VALUE",
        2,
        Some(2),
        "REG_VALUE(string, `regex`)",
    ),
    entry(
        Function::RegCount,
        "REG_COUNT",
        2,
        Some(2),
        "REG_COUNT(string, `regex`)",
    ),
    entry(
        Function::UnixTimestamp,
        "UNIX_TIMESTAMP",
        1,
        Some(1),
        "UNIX_TIMESTAMP(string)",
    ),
    entry(
        Function::EventTimestamp,
        "EVENT_TIMESTAMP",
        0,
        Some(0),
        "EVENT_TIMESTAMP()",
    ),
];

const fn entry(
    function: Function,
    name: &'static str,
    min_args: usize,
    max_args: Option<usize>,
    usage: &'static str,
) -> Entry {
    Entry {
        function,
        name,
        min_args,
        max_args,
        usage,
    }
}

impl Function {
    /// The function called `name` (function names are upper case and exact).
    pub fn lookup(name: &str) -> Option<Function> {
        TABLE
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.function)
    }

    fn entry(self) -> &'static Entry {
        // Every variant has a row; `every_function_has_one_row` checks it.
        TABLE
            .iter()
            .find(|entry| entry.function == self)
            .unwrap_or(&TABLE[0])
    }

    /// The name as written in expressions.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// The usage line, e.g. `SUB(number, number)`.
    pub fn usage(self) -> &'static str {
        self.entry().usage
    }

    /// Why `count` arguments are wrong for this function, if they are.
    pub fn check_arity(self, count: usize) -> Option<String> {
        let entry = self.entry();
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        let max = entry.max_args.unwrap_or(usize::MAX);
        if (entry.min_args..=max).contains(&count) {
            return None;
        }
        let expected = if entry.max_args == Some(entry.min_args) {
            format!("exactly {max} {}", plural(max))
        } else if count < entry.min_args {
            format!("at least {} {}", entry.min_args, plural(entry.min_args))
        } else {
            format!("at most {max} {}", plural(max))
        };
        Some(format!(
            "{} expects {expected} but got {count}; usage: {}",
            entry.name, entry.usage
        ))
    }

    /// The known function names closest to a misspelt `name`, best first.
    pub fn suggest(name: &str) -> Option<&'static str> {
        let upper = name.to_ascii_uppercase();
        if let Some(function) = Function::lookup(&upper) {
            return Some(function.name());
        }
        TABLE
            .iter()
            .map(|entry| (edit_distance(&upper, entry.name), entry.name))
            .filter(|&(distance, name)| distance <= (name.len() / 3).max(1))
            .min_by_key(|&(distance, _)| distance)
            .map(|(_, name)| name)
    }

    /// All function names, for "expected one of" messages and the docs test.
    pub fn names() -> impl Iterator<Item = &'static str> {
        TABLE.iter().map(|entry| entry.name)
    }
}

/// Levenshtein distance between two short ASCII-ish names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_one_row() {
        for entry in TABLE {
            assert_eq!(Function::lookup(entry.name), Some(entry.function));
            assert_eq!(entry.function.name(), entry.name);
            assert!(entry.usage.starts_with(entry.name));
        }
        let rows = TABLE.len();
        let distinct: std::collections::HashSet<&str> = Function::names().collect();
        assert_eq!(rows, distinct.len());
    }

    #[test]
    fn arity_messages() {
        assert_eq!(Function::Sub.check_arity(2), None);
        assert_eq!(
            Function::Sub.check_arity(3).as_deref(),
            Some("SUB expects exactly 2 arguments but got 3; usage: SUB(number, number)")
        );
        assert_eq!(
            Function::If.check_arity(1).as_deref(),
            Some(
                "IF expects at least 2 arguments but got 1; usage: \
                 IF(condition, value[, condition, value]...[, default])"
            )
        );
        assert_eq!(
            Function::Bucket.check_arity(5).as_deref(),
            Some(
                "BUCKET expects at most 4 arguments but got 5; usage: \
                 BUCKET(number, size[, min[, max]])"
            )
        );
        assert_eq!(Function::Length.check_arity(1), None);
        assert_eq!(Function::Sum.check_arity(30), None);
        assert!(Function::EventTimestamp.check_arity(1).is_some());
    }

    #[test]
    fn suggestions() {
        assert_eq!(Function::suggest("if"), Some("IF"));
        assert_eq!(Function::suggest("CONTAIN"), Some("CONTAINS"));
        assert_eq!(Function::suggest("REGMATCH"), Some("REG_MATCH"));
        assert_eq!(Function::suggest("FROBNICATE"), None);
    }
}
