//! Embeds the built web UI (`ui/dist`) into the server, so `kiln serve` is one file to copy.
//! Without a build (`npm run build` not run yet) the server still builds, and its pages say
//! how to build the UI.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=KILN_UI_DIST");
    let dist = std::env::var_os("KILN_UI_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../ui/dist"));
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from("/// The UI's files by URL path.\npub static UI_FILES: &[(&str, &[u8])] = &[\n");
    for (route, path) in &files {
        writeln!(code, "    ({route:?}, include_bytes!({:?})),", path.canonicalize().unwrap().display().to_string())
            .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("ui_files.rs");
    std::fs::write(out, code).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let route = format!("/{}", path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            files.push((route, path));
        }
    }
}
