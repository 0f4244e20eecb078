//! The model library and the memory domain on this machine's real devices: the bundled model
//! is found, loads onto the software GPU once, appears in the ledger and the pools, and
//! unloading gives the memory back.

use kiln_engine::dispatch;
use serde_json::{Value, json};

use crate::{real_engine, software_gpu_id};

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
    // The software GPU's pools are shared by every test of this binary running at once (one
    // burn device per process), so other tests' tiles come and go in these figures: look a few
    // times for the drop the unload must show.
    let mut freed = u64::MAX;
    for _ in 0..50 {
        let after = dispatch(&engine, "memory.status", Value::Null).await.unwrap();
        let gpu = device(&after, &id);
        assert_eq!(gpu["kiln_weights_bytes"].as_u64(), Some(0));
        freed = freed.min(gpu["pool"]["bytes_in_use"].as_u64().unwrap());
        if in_use.saturating_sub(freed) >= bytes {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(in_use.saturating_sub(freed) >= bytes, "unloading returns the weights' memory: {in_use} -> {freed}");
    assert!(dispatch(&engine, "memory.allocations", Value::Null).await.unwrap().as_array().unwrap().is_empty());

    // Warm: from the RAM cache this time.
    let warm = dispatch(&engine, "models.load", json!({ "path": path, "device_id": id })).await.unwrap();
    assert_eq!(warm["source"], json!("ram_cache"));
    let cleared = dispatch(&engine, "memory.clear", json!({ "device_id": id })).await.unwrap();
    assert_eq!(cleared["paths"], json!([path]));
}

#[tokio::test]
async fn paths_outside_the_library_and_budgets_are_refused() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let id = software_gpu_id(&dispatch(&engine, "devices.list", Value::Null).await.unwrap());
    // A real model file that is not in any model folder.
    let outside = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upscalers/compact_x4.pth");
    let error = dispatch(&engine, "models.load", json!({ "path": outside, "device_id": id })).await.unwrap_err();
    assert_eq!(error.code, kiln_engine::error::ErrorCode::NotFound);
    let error = dispatch(&engine, "models.inspect", json!({ "path": "/etc/passwd" })).await.unwrap_err();
    assert_eq!(error.code, kiln_engine::error::ErrorCode::NotFound);

    // Once its folder is added, it loads, within the budget set.
    let folder = outside.parent().unwrap().display().to_string();
    dispatch(&engine, "models.add_folder", json!({ "path": folder })).await.unwrap();
    dispatch(&engine, "memory.set_budget", json!({ "device_id": id, "bytes": 1000 })).await.unwrap();
    let error = dispatch(&engine, "models.load", json!({ "path": outside, "device_id": id })).await.unwrap_err();
    assert_eq!(error.code, kiln_engine::error::ErrorCode::OutOfMemory);
    assert!(error.message.contains("budget"), "{}", error.message);
    dispatch(&engine, "memory.set_budget", json!({ "device_id": id })).await.unwrap();
    dispatch(&engine, "models.load", json!({ "path": outside, "device_id": id })).await.unwrap();
    // A lower budget applies at once: the model no work holds is unloaded.
    let usage = dispatch(&engine, "memory.set_budget", json!({ "device_id": id, "bytes": 1000 })).await.unwrap();
    assert_eq!(usage["models"], json!([]));
    assert_eq!(usage["kiln_weights_bytes"], json!(0));
    dispatch(&engine, "memory.set_budget", json!({ "device_id": id })).await.unwrap();
    // A model linked into Kiln's folder is one model, reachable by either name.
    let elsewhere = data.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(outside.parent().unwrap().join("compact_x2.legacy.pth"), elsewhere.join("x.pth")).unwrap();
    let link = data.path().join("models/linked.pth");
    std::os::unix::fs::symlink(elsewhere.join("x.pth"), &link).unwrap();
    dispatch(&engine, "models.load", json!({ "path": link, "device_id": id })).await.unwrap();
    // Unknown model files in the folder are listed with their reason, not hidden.
    let library = dispatch(&engine, "models.list", Value::Null).await.unwrap();
    assert!(library["models"].as_array().unwrap().iter().any(|m| m["name"] == json!("rrdb_old_x4")));
}

#[tokio::test]
async fn a_model_copied_into_a_folder_appears_by_itself() {
    let data = kiln_testdir::TempDir::new();
    let mut options = kiln_engine::EngineOptions::standard();
    options.data_dir = data.path().to_path_buf();
    let engine = kiln_engine::Engine::start(options).unwrap();
    let mut events = engine.subscribe();
    // The watcher's first scan finds the bundled model; then a model arrives in Kiln's folder.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let source = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upscalers/compact_x4.pth");
    std::fs::copy(&source, data.path().join("models/arrived.pth")).unwrap();
    // A change notice, not the 10-second rescan, brings it in.
    let found = tokio::time::timeout(std::time::Duration::from_secs(8), async {
        loop {
            if let Ok(kiln_engine::events::KilnEvent::ModelsChanged) = events.recv().await {
                let library = dispatch(&engine, "models.list", Value::Null).await.unwrap();
                if library["models"].as_array().unwrap().iter().any(|m| m["name"] == json!("arrived")) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the new model was not noticed within 8 s");
    engine.shutdown();
}
