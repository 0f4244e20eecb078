//! What the GPU benches share: an engine on a fresh data folder (removed on drop), not
//! sampling by itself, and the device to measure.

use std::path::PathBuf;

use kiln_engine::{Engine, EngineOptions, dispatch};
use serde_json::Value;

/// An engine whose data folder lives as long as this value, with a runtime to call it from.
pub struct BenchEngine {
    pub engine: Engine,
    pub rt: tokio::runtime::Runtime,
    data: PathBuf,
}

impl BenchEngine {
    pub fn start() -> Self {
        let data = std::env::temp_dir().join(format!("kiln-bench-{}", std::process::id()));
        let mut options = EngineOptions::standard();
        options.data_dir = data.clone();
        options.background_sampling = false;
        let engine = Engine::start(options).expect("the engine starts");
        Self { engine, rt: tokio::runtime::Runtime::new().unwrap(), data }
    }

    /// Runs an operation to its answer; a failure ends the bench.
    pub fn call(&self, op: &str, input: Value) -> Value {
        self.rt.block_on(dispatch(&self.engine, op, input)).unwrap_or_else(|e| panic!("{op}: {e:?}"))
    }

    /// The `devices.list` entry of the device to measure (see [`device_to_measure`]).
    pub fn device_to_measure(&self) -> Value {
        device_to_measure(&self.call("devices.list", Value::Null))
    }
}

impl Drop for BenchEngine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// From a `devices.list` answer: the first hardware GPU that computes, else a software GPU that
/// does, else any device that computes.
pub fn device_to_measure(devices: &Value) -> Value {
    let list = devices["devices"].as_array().expect("a device list");
    let computes = |d: &&Value| d["compute_backend"].is_string();
    let of_kind = |kinds: &[&str]| {
        list.iter().filter(computes).find(|d| kinds.contains(&d["kind"].as_str().unwrap_or_default())).cloned()
    };
    of_kind(&["discrete_gpu", "integrated_gpu"])
        .or_else(|| of_kind(&["software_gpu"]))
        .or_else(|| list.iter().find(computes).cloned())
        .expect("a device that computes")
}
