//! Embeds the web UI (`web/index.html` at the workspace root) when it exists.
//!
//! `include_str!` fails to compile on a missing file, so the build script tells the
//! crate whether the file is there (cfg `quarry_web_ui`) and reruns when `web/` changes.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(quarry_web_ui)");
    let web_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    println!("cargo::rerun-if-changed={}", web_dir.display());
    if web_dir.join("index.html").is_file() {
        println!("cargo::rustc-cfg=quarry_web_ui");
    }
}
