//! Real wgpu on this machine: on a CPU-only box, Mesa's lavapipe appears as a CPU-type Vulkan
//! adapter; the benchmark runs through burn on it and on burn's CPU backend; releasing Kiln's
//! pools afterwards reports real figures.

use kiln_engine::devices::{DeviceKind, GraphicsBackend};
use kiln_engine::dispatch;
use serde_json::{Value, json};

use crate::real_engine;

fn lavapipe_id(engine_list: &Value) -> String {
    let devices = engine_list["devices"].as_array().unwrap();
    let lavapipe = devices
        .iter()
        .find(|d| {
            d["kind"] == json!("software_gpu")
                && d["adapters"].as_array().unwrap().iter().any(|a| a["backend"] == json!("vulkan"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no software Vulkan adapter: install Mesa's lavapipe (Debian: mesa-vulkan-drivers); devices: {}",
                serde_json::to_string_pretty(devices).unwrap()
            )
        });
    lavapipe["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn lavapipe_is_found_benchmarked_and_released() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let list = dispatch(&engine, "devices.list", Value::Null).await.unwrap();
    let id = lavapipe_id(&list);
    let device: kiln_engine::devices::Device = serde_json::from_value(
        list["devices"].as_array().unwrap().iter().find(|d| d["id"] == json!(id)).unwrap().clone(),
    )
    .unwrap();
    assert_eq!(device.kind, DeviceKind::SoftwareGpu);
    let vulkan = device.adapters.iter().find(|a| a.backend == GraphicsBackend::Vulkan).unwrap();
    assert!(vulkan.name.contains("llvmpipe"), "{}", vulkan.name);
    assert!(vulkan.limits.max_storage_buffer_binding_size > 0);
    // burn's SPIR-V needs explicit workgroup layouts, which lavapipe lacks: then Kiln computes
    // through the same software device's OpenGL adapter, and says why.
    let expected = if vulkan.features.workgroup_memory_explicit_layout {
        "vulkan"
    } else {
        assert!(!vulkan.computes);
        assert!(vulkan.compute_note.as_deref().unwrap_or("").contains("workgroup_memory_explicit_layout"));
        "gl"
    };
    assert_eq!(device.compute_backend.as_deref(), Some(expected));

    let result = dispatch(&engine, "devices.benchmark", json!({ "device_id": id })).await.unwrap();
    let f32_tflops = result["matmul"][0]["tflops"].as_f64().unwrap();
    assert!(f32_tflops > 0.0, "{result}");
    assert!(result["bandwidth"]["gb_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(result["backend"], json!(expected));

    // Kiln now holds pools on the device; the next sample reports them and reset releases them.
    engine.sample_now();
    let status = dispatch(&engine, "devices.status", json!({ "device_id": id })).await.unwrap();
    assert!(status["kiln_pools"]["value"]["bytes_reserved"].as_u64().unwrap() > 0, "{status}");
    let reset = dispatch(&engine, "devices.reset", json!({ "device_id": id })).await.unwrap();
    assert_eq!(reset["had_pools"], json!(true));
    assert!(reset["after"]["bytes_reserved"].as_u64().unwrap() <= reset["before"]["bytes_reserved"].as_u64().unwrap());
    let details = dispatch(&engine, "devices.details", json!({ "device_id": id })).await.unwrap();
    assert_eq!(details["last_benchmark"]["device_id"], json!(id));
}

#[tokio::test]
async fn the_cpu_backend_benchmarks_too() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let result = dispatch(&engine, "devices.benchmark", json!({ "device_id": "cpu" })).await.unwrap();
    assert_eq!(result["backend"], json!("cpu"));
    assert!(result["matmul"].as_array().unwrap().iter().all(|m| m["tflops"].as_f64().unwrap() > 0.0));
    let snapshot = dispatch(&engine, "devices.snapshot", Value::Null).await.unwrap();
    let cpu = snapshot["devices"].as_array().unwrap().iter().find(|d| d["device"]["id"] == json!("cpu")).unwrap();
    assert!(cpu["status"]["memory_total_bytes"]["value"].as_u64().unwrap() > 0);
}
