//! Kiln's desktop app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Before any thread: wgpu's Wayland probe needs a runtime folder, or it prints errors.
    kiln_engine::process::ensure_runtime_dir();
    kiln_desktop::run();
}
