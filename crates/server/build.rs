//! The web UI (`web/dist`, built by `npm run build` and committed) is compiled into
//! the binary by `include_dir!`; this tells cargo to rebuild when it changes.

fn main() {
    println!("cargo::rerun-if-changed=../../web/dist");
}
