//! The typed API through `dispatch`, as both doors call it: names, inputs, errors, settings and
//! power limits end to end on a fixture machine.

use kiln_engine::devices::telemetry::TelemetryOptions;
use kiln_engine::devices::telemetry::nvml::NvmlMode;
use kiln_engine::devices::telemetry::sysfs::SystemRoots;
use kiln_engine::{Engine, EngineOptions, ErrorCode, KilnEvent, OPERATIONS, OperationKind, dispatch};
use serde_json::{Value, json};

/// An engine over a fixture machine, without wgpu or background sampling.
pub fn engine_on(machine: &std::path::Path, data: &std::path::Path) -> Engine {
    Engine::start(EngineOptions {
        data_dir: data.to_path_buf(),
        telemetry: TelemetryOptions { roots: SystemRoots::under(machine), nvml: NvmlMode::Disabled, skip_wgpu: true },
        background_sampling: false,
    })
    .unwrap()
}

#[tokio::test]
async fn unknown_operations_and_bad_input_are_typed_errors() {
    let machine = super::machine("amd-rx7900xtx");
    let data = kiln_testdir::TempDir::new();
    let engine = engine_on(machine.path(), data.path());
    let error = dispatch(&engine, "devices.melt", Value::Null).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::UnknownOperation);
    let error = dispatch(&engine, "devices.status", json!({ "device": 3 })).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert!(error.message.starts_with("devices.status:"), "{}", error.message);
    let error = dispatch(&engine, "devices.status", json!({ "device_id": "pci:9999:00:00.0" })).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(error.details, Some(json!({ "device_id": "pci:9999:00:00.0" })));
}

#[tokio::test]
async fn every_query_answers_for_every_device() {
    let machine = super::machine("amd-rx7900xtx");
    let data = kiln_testdir::TempDir::new();
    let engine = engine_on(machine.path(), data.path());
    let list = dispatch(&engine, "devices.list", Value::Null).await.unwrap();
    let ids: Vec<String> =
        list["devices"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, vec!["pci:0000:03:00.0", "cpu"]);
    for op in OPERATIONS.iter().filter(|op| op.kind == OperationKind::Query && op.name.starts_with("devices.")) {
        for id in &ids {
            let input = if op.name == "devices.list" || op.name == "devices.snapshot" {
                Value::Null
            } else {
                json!({ "device_id": id })
            };
            let result = dispatch(&engine, op.name, input).await;
            match (op.name, id.as_str(), result) {
                // The CPU has no power interface: a clear error, not a crash.
                ("devices.power", "cpu", Err(e)) => assert_eq!(e.code, ErrorCode::Unsupported),
                (_, _, Ok(_)) => {}
                (name, id, Err(e)) => panic!("{name} on {id}: {e:?}"),
            }
        }
    }
    let details = dispatch(&engine, "devices.details", json!({ "device_id": "pci:0000:03:00.0" })).await.unwrap();
    assert_eq!(details["power"]["limits"]["current_watts"], json!(303.0));
    assert_eq!(details["drivers"][0]["name"], json!("amdgpu"));
    let optimize = dispatch(&engine, "devices.optimize", json!({ "device_id": "pci:0000:03:00.0" })).await.unwrap();
    assert!(optimize["memory_budget_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn power_limits_are_set_through_hwmon_and_checked_first() {
    let machine = super::machine("amd-rx7900xtx");
    let data = kiln_testdir::TempDir::new();
    let engine = engine_on(machine.path(), data.path());
    let card = json!({ "device_id": "pci:0000:03:00.0", "watts": 280.0 });
    let info = dispatch(&engine, "devices.set_power_limit", card).await.unwrap();
    assert_eq!(info["limits"]["current_watts"], json!(280.0));
    let file = machine.path().join("sys/class/drm/card1/device/hwmon/hwmon2/power1_cap");
    assert_eq!(std::fs::read_to_string(file).unwrap(), "280000000\n");
    let too_much = json!({ "device_id": "pci:0000:03:00.0", "watts": 500.0 });
    assert_eq!(dispatch(&engine, "devices.set_power_limit", too_much).await.unwrap_err().code, ErrorCode::InvalidInput);
    let cpu = json!({ "device_id": "cpu", "watts": 65.0 });
    assert_eq!(dispatch(&engine, "devices.set_power_limit", cpu).await.unwrap_err().code, ErrorCode::Unsupported);
}

#[tokio::test]
async fn settings_are_validated_saved_and_announced() {
    let machine = super::machine("amd-rx7900xtx");
    let data = kiln_testdir::TempDir::new();
    let engine = engine_on(machine.path(), data.path());
    let mut events = engine.subscribe();
    let mut settings = dispatch(&engine, "settings.get", Value::Null).await.unwrap();
    settings["telemetry"]["interval_ms"] = json!(2000);
    settings["health"]["gpu_temperature_warning_c"] = json!(50.0);
    dispatch(&engine, "settings.update", settings.clone()).await.unwrap();
    assert!(matches!(events.recv().await.unwrap(), KilnEvent::SettingsChanged { .. }));
    // A new sample judges the 52 °C card against the new threshold.
    engine.sample_now();
    let health = dispatch(&engine, "devices.health", json!({ "device_id": "pci:0000:03:00.0" })).await.unwrap();
    assert_eq!(health["level"], json!("warning"));
    drop(engine);
    let again = engine_on(machine.path(), data.path());
    assert_eq!(dispatch(&again, "settings.get", Value::Null).await.unwrap(), settings);
    settings["telemetry"]["interval_ms"] = json!(1);
    let error = dispatch(&again, "settings.update", settings).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn history_grows_with_each_sample() {
    let machine = super::machine("amd-rx7900xtx");
    let data = kiln_testdir::TempDir::new();
    let engine = engine_on(machine.path(), data.path());
    engine.sample_now();
    engine.sample_now();
    let history = dispatch(&engine, "devices.history", json!({ "device_id": "pci:0000:03:00.0" })).await.unwrap();
    assert_eq!(history["t_ms"].as_array().unwrap().len(), 3);
    let metrics: Vec<&str> =
        history["series"].as_array().unwrap().iter().map(|s| s["metric"].as_str().unwrap()).collect();
    assert!(metrics.contains(&"utilization") && metrics.contains(&"temperature"), "{metrics:?}");
    let since = history["t_ms"][2].as_u64().unwrap();
    let newer = dispatch(&engine, "devices.history", json!({ "device_id": "cpu", "since_ms": since })).await.unwrap();
    assert!(newer["t_ms"].as_array().unwrap().is_empty());
}
