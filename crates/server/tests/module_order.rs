//! The server's files depend one way (see the `lib.rs` doc): no file reaches,
//! through `crate::` or `super::` paths in its non-test code, a file that reaches
//! it back. A circle here is how `AppState` once tied 18 files into one knot.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files left out: the crate root declares every module, and test support is
/// test code.
const NOT_NODES: [&str; 2] = ["lib.rs", "testing.rs"];

#[test]
fn no_file_of_the_server_depends_on_itself() {
    // The run-time value first: a binary built from another checkout into a
    // shared target directory must read this checkout.
    let src = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("src");
    let graph = dependency_graph(&src);
    assert!(graph.len() > 20, "too few files found: {graph:?}");
    assert!(graph["router.rs"].contains("state.rs"), "{graph:?}");
    if let Some(circle) = find_circle(&graph) {
        panic!("the server's files depend on each other in a circle: {circle:?}");
    }
}

#[test]
fn a_circle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs", vec!["b.rs"]),
        ("b.rs", vec!["c.rs"]),
        ("c.rs", vec!["a.rs"]),
        ("d.rs", vec!["a.rs"]),
    ]
    .into_iter()
    .map(|(file, uses)| (file.into(), uses.into_iter().map(String::from).collect()))
    .collect();
    let circle = find_circle(&graph).expect("a circle");
    assert_eq!(circle.first(), circle.last());
    assert_eq!(circle.len(), 4, "{circle:?}");
}

/// File (relative to `src`) -> files its non-test code names.
fn dependency_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for file in rust_files(src) {
        let relative = relative_name(src, &file);
        if NOT_NODES.contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Everything from the first `#[cfg(test)]` on is test code.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let uses = module_paths(code)
            .into_iter()
            .filter_map(|(root, path)| resolve(src, &relative, root, &path))
            .filter(|target| *target != relative && !NOT_NODES.contains(&target.as_str()))
            .collect();
        graph.insert(relative, uses);
    }
    graph
}

/// Every `crate::a::b` / `super::a` path in `code`, as (root, segments).
fn module_paths(code: &str) -> Vec<(&'static str, Vec<String>)> {
    let mut paths = Vec::new();
    for root in ["crate", "super"] {
        let needle = format!("{root}::");
        let mut rest = code;
        while let Some(at) = rest.find(&needle) {
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + needle.len()..];
            if preceded_by_ident {
                continue;
            }
            let segments: Vec<String> = rest
                .split("::")
                .take(2)
                .map(|segment| {
                    segment
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|segment| !segment.is_empty())
                .collect();
            if !segments.is_empty() {
                paths.push((if root == "crate" { "crate" } else { "super" }, segments));
            }
        }
    }
    paths
}

/// The file a path names: the deepest existing module file.
fn resolve(src: &Path, from: &str, root: &str, segments: &[String]) -> Option<String> {
    let base: PathBuf = match root {
        "crate" => PathBuf::new(),
        // `super` of `dir/file.rs` is `dir` (its `mod.rs`); of `dir/mod.rs`, the root.
        _ => {
            let from = Path::new(from);
            let dir = from.parent().unwrap_or(Path::new(""));
            if from.file_name().is_some_and(|name| name == "mod.rs") {
                dir.parent().unwrap_or(Path::new("")).to_path_buf()
            } else {
                dir.to_path_buf()
            }
        }
    };
    let mut found = None;
    let mut dir = base.clone();
    if root == "super" && !base.as_os_str().is_empty() {
        found = Some(base.join("mod.rs"));
    }
    for segment in segments {
        let as_file = dir.join(format!("{segment}.rs"));
        let as_dir = dir.join(segment).join("mod.rs");
        if src.join(&as_file).is_file() {
            found = Some(as_file);
            break;
        } else if src.join(&as_dir).is_file() {
            found = Some(as_dir);
            dir = dir.join(segment);
        } else {
            break;
        }
    }
    found.map(|path| path.to_string_lossy().into_owned())
}

/// A circle as the files along it (first = last), if any.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        file: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == file) {
            let mut circle = path[start..].to_vec();
            circle.push(file.to_owned());
            return Some(circle);
        }
        if done.contains(file) {
            return None;
        }
        path.push(file.to_owned());
        for next in graph.get(file).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(file.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|file| visit(file, graph, &mut Vec::new(), &mut done))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

fn relative_name(src: &Path, file: &Path) -> String {
    file.strip_prefix(src)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
