//! Integration tests of the engine, one binary split by theme.

mod api;
mod machines;
mod memory;
mod processing;
mod upscalers;
mod wgpu_devices;

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

pub use support::{real_engine, software_gpu_id};

/// A fixture machine (`tests/fixtures/machines/NAME`), copied so a test may change it.
pub fn machine(name: &str) -> kiln_testdir::TempDir {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/machines").join(name);
    assert!(source.is_dir(), "no fixture machine {}", source.display());
    let copy = kiln_testdir::TempDir::new();
    copy_tree(&source, copy.path());
    copy
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
