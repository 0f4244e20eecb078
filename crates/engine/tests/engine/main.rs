//! Integration tests of the engine, one binary split by theme.

mod api;
mod machines;
mod memory;
mod processing;
mod upscalers;
mod wgpu_devices;

use std::path::{Path, PathBuf};

use kiln_engine::{Engine, EngineOptions};
use serde_json::{Value, json};

/// An engine on this machine's real devices, with its data in `data`, not sampling by itself.
pub fn real_engine(data: &Path) -> Engine {
    let mut options = EngineOptions::standard();
    options.data_dir = data.to_path_buf();
    options.background_sampling = false;
    Engine::start(options).unwrap()
}

/// The id of the software GPU that computes (lavapipe), from a `devices.list` answer.
pub fn software_gpu_id(list: &Value) -> String {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == json!("software_gpu") && d["compute_backend"].is_string())
        .expect("a software GPU that computes: install Mesa's lavapipe (Debian: mesa-vulkan-drivers)")["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

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
