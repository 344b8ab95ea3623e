//! The crates depend one way: the README's "Workspace layout" lists them
//! bottom-up, and a crate may depend (dev-dependencies included) only on crates
//! listed above it. This reads the real dependencies from `cargo metadata`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn no_crate_depends_on_a_crate_above_it() {
    let order = documented_order();
    let dependencies = workspace_dependencies();
    assert_eq!(
        sorted(order.clone()),
        sorted(dependencies.keys().cloned().collect()),
        "the README's layout must list every workspace crate exactly once"
    );
    let violations = upward_dependencies(&order, &dependencies);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn an_upward_dependency_is_caught() {
    let order = ["quarry-schema".to_owned(), "quarry-engine".to_owned()];
    let dependencies = BTreeMap::from([
        ("quarry-schema".to_owned(), vec!["quarry-engine".to_owned()]),
        ("quarry-engine".to_owned(), vec!["quarry-schema".to_owned()]),
    ]);
    assert_eq!(
        upward_dependencies(&order, &dependencies),
        ["quarry-schema depends on quarry-engine, listed at or above it"]
    );
}

/// Every dependency on a crate listed at or above the dependent one.
fn upward_dependencies(
    order: &[String],
    dependencies: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let rank = |name: &str| order.iter().position(|listed| listed == name);
    let mut violations = Vec::new();
    for (name, uses) in dependencies {
        for used in uses {
            if rank(used) >= rank(name) {
                violations.push(format!("{name} depends on {used}, listed at or above it"));
            }
        }
    }
    violations
}

/// This package's directory, the run-time value first: a binary built from
/// another checkout into a shared target directory must read this checkout.
fn manifest_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
}

/// Package names in the README's layout block, bottom-up (`crates/<dir>` lines).
fn documented_order() -> Vec<String> {
    let root = manifest_dir().join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layout = readme
        .split("## Workspace layout")
        .nth(1)
        .expect("README has a Workspace layout section");
    let block = layout.split("```").nth(1).expect("a code block");
    block
        .lines()
        .filter_map(|line| line.strip_prefix("crates/"))
        .map(|line| {
            let dir = line.split_whitespace().next().unwrap();
            let manifest =
                std::fs::read_to_string(root.join("crates").join(dir).join("Cargo.toml"))
                    .unwrap_or_else(|error| panic!("crates/{dir}/Cargo.toml: {error}"));
            package_name(&manifest)
        })
        .collect()
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("a package name")
        .to_owned()
}

/// Workspace crate -> the workspace crates it depends on (any kind).
fn workspace_dependencies() -> BTreeMap<String, Vec<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(manifest_dir())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|package| package["name"].as_str().unwrap())
        .collect();
    packages
        .iter()
        .map(|package| {
            let mut uses: Vec<String> = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|dependency| dependency["name"].as_str().unwrap())
                .filter(|name| names.contains(name))
                .map(str::to_owned)
                .collect();
            uses.sort();
            uses.dedup();
            (package["name"].as_str().unwrap().to_owned(), uses)
        })
        .collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}
