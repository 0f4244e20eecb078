//! The device watchdog end to end: a device whose owner is stuck in a call (a stand-in for a
//! kernel that never returns: the owner told to sleep past what its work was expected to take)
//! fails the job sent there with `device_stalled`, reads critical with the reason in its health,
//! refuses new work at once, leaves the other devices working, and serves again once the call
//! returns.
//!
//! A binary of its own: the stall is on the process's owner of the CPU device, which every test
//! of the engine binary would otherwise share while it lasts.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kiln_engine::compute::{Expected, Priority};
use kiln_engine::devices::DeviceId;
use kiln_engine::dispatch;
use kiln_engine::processing::store::Scope;
use serde_json::{Value, json};

use support::{real_engine, software_gpu_id};

async fn call(engine: &kiln_engine::Engine, op: &str, input: Value) -> Value {
    dispatch(engine, op, input).await.unwrap_or_else(|e| panic!("{op}: {e:?}"))
}

async fn finished(engine: &kiln_engine::Engine, id: i64) -> Value {
    let started = Instant::now();
    loop {
        let details = call(engine, "jobs.get", json!({ "id": id })).await;
        if matches!(details["job"]["state"].as_str(), Some("done" | "failed" | "cancelled")) {
            return details;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{details:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn health_codes(engine: &kiln_engine::Engine, id: &str) -> (String, Vec<String>) {
    engine.sample_now();
    let health = call(engine, "devices.health", json!({ "device_id": id })).await;
    let codes = health["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap().to_owned()).collect();
    (health["level"].as_str().unwrap().to_owned(), codes)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_device_fails_its_job_says_so_and_the_others_go_on() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let gpu = software_gpu_id(&call(&engine, "devices.list", Value::Null).await);
    let input = data.path().join("photo.png");
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upscalers/ncnn_input.png");
    let piece = kiln_engine::postprocessing::images::decode_file(&fixture).unwrap().image.crop_imm(0, 0, 24, 24);
    kiln_engine::postprocessing::images::write(
        &piece,
        &input,
        kiln_engine::postprocessing::images::OutputFormat::Png,
        100,
        &Default::default(),
    )
    .unwrap();

    // The CPU's owner is stuck for a few seconds in work that should have taken 0.1 s (+0.3 s).
    let cpu = engine.device_owner(&DeviceId::cpu()).unwrap();
    let stuck = std::thread::spawn(move || {
        let quick = Expected::new(Duration::from_millis(100)).with_grace(Duration::from_millis(300));
        cpu.run("a kernel that does not return", Priority::Long, quick, |_| std::thread::sleep(Duration::from_secs(8)))
    });
    let stalled = stuck.join().unwrap().unwrap_err();
    assert!(stalled.to_string().contains("a kernel that does not return"), "{stalled}");

    // A job sent to the stalled device fails at once with a typed error.
    engine.start_workers(Scope::All);
    let submit = |device: &str| {
        json!({
            "inputs": [{ "from": "path", "path": input }],
            "steps": [{ "kind": "upscale" }],
            "output_dir": data.path().join("out"),
            "device_id": device,
        })
    };
    let on_cpu = call(&engine, "jobs.submit", submit("cpu")).await["jobs"][0]["id"].as_i64().unwrap();
    let details = finished(&engine, on_cpu).await;
    assert_eq!(details["job"]["state"], json!("failed"), "{details:#}");
    assert_eq!(details["job"]["error"]["code"], json!("device_stalled"), "{details:#}");

    // Its health says why; the software GPU's does not, and it keeps working meanwhile.
    let (level, codes) = health_codes(&engine, "cpu").await;
    assert_eq!(level, "critical");
    assert!(codes.contains(&"device_stalled".to_owned()), "{codes:?}");
    assert!(!health_codes(&engine, &gpu).await.1.contains(&"device_stalled".to_owned()));
    let memory = call(&engine, "memory.usage", json!({ "device_id": gpu })).await;
    assert_eq!(memory["device_id"], json!(gpu));

    // Once the stuck call returns, the device answers again and the job runs when retried.
    let started = Instant::now();
    while health_codes(&engine, "cpu").await.1.contains(&"device_stalled".to_owned()) {
        assert!(started.elapsed() < Duration::from_secs(60), "the stall did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    call(&engine, "jobs.retry", json!({ "ids": [on_cpu] })).await;
    let details = finished(&engine, on_cpu).await;
    assert_eq!(details["job"]["state"], json!("done"), "{details:#}");
    engine.shutdown();
}
