//! The bundled model on the software GPU as the memory domain and the device's pools see it: it
//! loads once, shows in the ledger, the map and the pools, and unloading gives the memory back.
//!
//! A binary of its own: burn opens one device per process, so the pools' figures count every
//! allocation of every test running beside this one (the engine binary's jobs keep models
//! resident on the same software GPU); here nothing else allocates.

mod support;

use kiln_engine::dispatch;
use serde_json::{Value, json};

use support::{real_engine, software_gpu_id};

fn device<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["devices"].as_array().unwrap().iter().find(|d| d["device_id"] == json!(id)).unwrap()
}

#[tokio::test]
async fn the_bundled_model_loads_once_shows_in_the_map_and_unloads() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let id = software_gpu_id(&dispatch(&engine, "devices.list", Value::Null).await.unwrap());

    let library = dispatch(&engine, "models.list", Value::Null).await.unwrap();
    assert!(library["folders"].as_array().unwrap().iter().any(|f| f["kind"] == json!("bundled")));
    let model = library["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == json!("realesr-animevideov3-x4"))
        .unwrap_or_else(|| panic!("the bundled model is listed: {library}"));
    assert_eq!(model["runnable"], json!(true));
    assert_eq!(model["info"]["label"], json!("Compact x4 (16 convs)"));
    let path = model["path"].as_str().unwrap().to_owned();

    let loaded = dispatch(&engine, "models.load", json!({ "path": path, "device_id": id })).await.unwrap();
    assert_eq!(loaded["source"], json!("disk"));
    let bytes = loaded["bytes"].as_u64().unwrap();
    assert_eq!(bytes, 621_424 * 4, "every parameter as f32");
    let again = dispatch(&engine, "models.load", json!({ "path": path, "device_id": id })).await.unwrap();
    assert_eq!(again["source"], json!("resident"));

    let status = dispatch(&engine, "memory.status", Value::Null).await.unwrap();
    let gpu = device(&status, &id);
    assert_eq!(gpu["kiln_weights_bytes"].as_u64(), Some(bytes));
    assert_eq!(gpu["models"][0]["name"], json!("realesr-animevideov3-x4"));
    assert_eq!(gpu["pool_pending"], json!(false), "an idle device's pools answer now");
    let in_use = gpu["pool"]["bytes_in_use"].as_u64().unwrap();
    assert!(in_use >= bytes, "the pools hold the weights: {in_use} < {bytes}");
    assert_eq!(status["ram"]["models"][0]["bytes"].as_u64(), Some(bytes));
    let ledger = dispatch(&engine, "memory.allocations", Value::Null).await.unwrap();
    assert_eq!(ledger.as_array().unwrap().len(), 1);
    assert_eq!(ledger[0]["kind"], json!("weights"));

    let listed = dispatch(&engine, "models.list", Value::Null).await.unwrap();
    let entry = listed["models"].as_array().unwrap().iter().find(|m| m["path"] == json!(path)).unwrap();
    assert_eq!(entry["on_devices"], json!([id]));
    assert_eq!(entry["in_ram"], json!(true));

    let unloaded = dispatch(&engine, "models.unload", json!({ "path": path, "device_id": id })).await.unwrap();
    assert_eq!(unloaded["paths"].as_array().unwrap().len(), 1);
    let after = dispatch(&engine, "memory.status", Value::Null).await.unwrap();
    let gpu = device(&after, &id);
    assert_eq!(gpu["kiln_weights_bytes"].as_u64(), Some(0));
    let freed = gpu["pool"]["bytes_in_use"].as_u64().unwrap();
    assert!(in_use.saturating_sub(freed) >= bytes, "unloading returns the weights' memory: {in_use} -> {freed}");
    assert!(dispatch(&engine, "memory.allocations", Value::Null).await.unwrap().as_array().unwrap().is_empty());

    // Warm: from the RAM cache this time.
    let warm = dispatch(&engine, "models.load", json!({ "path": path, "device_id": id })).await.unwrap();
    assert_eq!(warm["source"], json!("ram_cache"));
    let cleared = dispatch(&engine, "memory.clear", json!({ "device_id": id })).await.unwrap();
    assert_eq!(cleared["paths"], json!([path]));
}
