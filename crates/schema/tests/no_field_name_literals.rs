//! One vocabulary: no crate but `quarry-schema` spells a shared field name as a
//! string literal; they all name it through `quarry_schema::fields`.
//!
//! Scans every `crates/*/src/**/*.rs` file (binaries under `src/bin` included) of
//! every crate but `quarry-schema` for a literal `"<name>"`, or a `\"<name>\"`
//! embedded in a longer literal (SQL text), of a vocabulary value
//! ([`ALL_FIELD_NAMES`]). Test code is not scanned: everything from a file's first
//! `#[cfg(test)]` on, and files named `tests.rs`, `test_support.rs`, `testing.rs`
//! or `*_tests.rs` or under a `tests/` directory. Comment lines (`//`, `///`, `//!`)
//! are skipped.
//!
//! Only names with a `.` or a `_` (`trace.span_id`, `duration_ms`, `span_event`)
//! are policed: single plain words such as `name`, `error`, `body`, `value` or
//! `timestamp` are also JSON keys, argument names and log levels, too generic to
//! police textually; review keeps those.

use std::fs;
use std::path::{Path, PathBuf};

use quarry_schema::fields::ALL_FIELD_NAMES;

/// Files that hold only tests, by name.
const TEST_FILE_NAMES: [&str; 3] = ["tests.rs", "test_support.rs", "testing.rs"];
/// Suffix of the file names of test modules kept beside the code they test.
const TEST_FILE_SUFFIX: &str = "_tests.rs";
/// Where a file's test module starts; nothing after it is scanned.
const TEST_MODULE_MARK: &str = "#[cfg(test)]";

/// The vocabulary values the scan looks for.
fn policed_names() -> Vec<&'static str> {
    ALL_FIELD_NAMES
        .iter()
        .copied()
        .filter(|name| name.contains(['.', '_']))
        .collect()
}

/// `file:line: "<name>"` for each literal of one of `names` in the non-test code
/// of `source`.
fn literals_in(file: &str, source: &str, names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (index, line) in source.lines().enumerate() {
        if line.contains(TEST_MODULE_MARK) {
            break;
        }
        if line.trim_start().starts_with("//") {
            continue;
        }
        for name in names {
            let literal = format!("\"{name}\"");
            let embedded = format!("\\\"{name}\\\"");
            if line.contains(&literal) || line.contains(&embedded) {
                found.push(format!("{file}:{}: \"{name}\"", index + 1));
            }
        }
    }
    found
}

/// Whether `path` holds only tests.
fn is_test_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    TEST_FILE_NAMES.contains(&name)
        || name.ends_with(TEST_FILE_SUFFIX)
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_crate_spells_a_field_name_outside_the_vocabulary() {
    // The run-time value first: a binary built from another checkout into a
    // shared target directory must read this checkout.
    let own = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    );
    let crates = own.parent().expect("crates/schema is inside crates/");
    let names = policed_names();
    let mut files = Vec::new();
    for entry in fs::read_dir(crates).expect("crates/ is readable") {
        let crate_dir = entry.expect("a readable directory entry").path();
        if crate_dir.is_dir() && crate_dir != own {
            rust_files(&crate_dir.join("src"), &mut files);
        }
    }
    assert!(
        files.len() > 50,
        "found only {} source files under {}",
        files.len(),
        crates.display()
    );
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let relative = path.strip_prefix(crates).expect("under crates/");
        if is_test_file(relative) {
            continue;
        }
        let source = fs::read_to_string(&path).expect("a readable source file");
        found.extend(literals_in(
            &relative.display().to_string(),
            &source,
            &names,
        ));
    }
    assert!(
        found.is_empty(),
        "field names spelled as literals; use the constants of quarry_schema::fields:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_finds_literals_and_skips_comments_and_tests() {
    let source = r#"
const SPAN: &str = "trace.span_id";
// a comment naming "trace.span_id"
/// a doc naming "duration_ms"
let sql = format!("SELECT \"duration_ms\" FROM t");
let fine = "trace.span_id_count";
#[cfg(test)]
mod tests {
    const IN_TEST: &str = "duration_ms";
}
"#;
    let found = literals_in("x/src/a.rs", source, &policed_names());
    assert_eq!(
        found,
        [
            "x/src/a.rs:2: \"trace.span_id\"",
            "x/src/a.rs:5: \"duration_ms\""
        ]
    );
}

#[test]
fn plain_words_are_not_policed_and_dotted_names_are() {
    let names = policed_names();
    assert!(names.contains(&"trace.trace_id"));
    assert!(names.contains(&"span_event"));
    assert!(!names.contains(&"name"));
    assert!(!names.contains(&"timestamp"));
}

#[test]
fn test_files_are_recognised() {
    assert!(is_test_file(Path::new("query/src/spec/tests.rs")));
    assert!(is_test_file(Path::new("engine/src/functions_tests.rs")));
    assert!(is_test_file(Path::new("ingest/src/otlp/test_support.rs")));
    assert!(is_test_file(Path::new("server/src/tests/helpers.rs")));
    assert!(!is_test_file(Path::new("ingest/src/otlp/traces.rs")));
}
