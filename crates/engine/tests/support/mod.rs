//! What the engine's integration test binaries share: an engine on this machine's real devices
//! and the software GPU's id.

use std::path::Path;

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
