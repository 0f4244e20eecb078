//! The model library and the memory domain on this machine's real devices: folders, budgets and
//! the watcher (the pools' own figures are checked in `tests/pools.rs`, a binary of its own).

use kiln_engine::dispatch;
use serde_json::{Value, json};

use crate::{real_engine, software_gpu_id};

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
