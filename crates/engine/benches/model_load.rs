//! Loading a model onto the first GPU that computes: time from disk (RAM cache cold) and from
//! the RAM cache (warm), and Kiln's ledger against the device's own used-memory delta (NVML on
//! NVIDIA). Run with
//!   cargo bench -p kiln-engine --bench model_load -- MODEL_FILE
//! (the file's folder is added to the library of a fresh data folder; without a file, the
//! bundled model). Prints JSON.

mod support;

use std::path::PathBuf;

use kiln_engine::{Engine, dispatch};
use serde_json::{Value, json};

fn used(rt: &tokio::runtime::Runtime, engine: &Engine, id: &str) -> Option<u64> {
    engine.sample_now();
    let status = rt.block_on(dispatch(engine, "devices.status", json!({ "device_id": id }))).ok()?;
    status["memory_used_bytes"]["value"].as_u64()
}

fn main() {
    // `cargo test` runs this too, with test filters for arguments: then it loads the bundled
    // model, as a smoke test of the same path.
    let model = std::env::args().skip(1).map(PathBuf::from).find(|a| a.is_file()).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param")
    });
    let model = model.canonicalize().expect("the model file exists");
    let bench = support::BenchEngine::start();
    let engine = &bench.engine;
    let call = |op: &str, input: Value| bench.call(op, input);

    let gpu = bench.device_to_measure();
    let id = gpu["id"].as_str().unwrap().to_owned();
    call("models.add_folder", json!({ "path": model.parent().unwrap() }));
    // Open the device and its pools first, so the delta counts the model, not the context.
    call("devices.benchmark", json!({ "device_id": id }));
    std::thread::sleep(std::time::Duration::from_secs(1));
    call("memory.cleanup", json!({ "device_id": id }));

    let mut runs = Vec::new();
    for round in ["cold", "warm"] {
        let before = used(&bench.rt, engine, &id);
        let loaded = call("models.load", json!({ "path": model, "device_id": id }));
        let after = used(&bench.rt, engine, &id);
        let memory = call("memory.usage", json!({ "device_id": id }));
        runs.push(json!({
            "round": round,
            "source": loaded["source"],
            "seconds": loaded["seconds"],
            "ledger_bytes": loaded["bytes"],
            "device_used_delta_bytes": before.zip(after).map(|(b, a)| a as i64 - b as i64),
            "pool": memory["pool"],
        }));
        call("models.unload", json!({ "path": model, "device_id": id }));
    }
    let result = json!({ "device": gpu["name"], "backend": gpu["compute_backend"], "model": model, "runs": runs });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
}
