//! The job queue and the upscale step on this machine's real devices: the software GPU
//! (lavapipe, the wgpu path) and burn's CPU backend, with the bundled model.
//!
//! Tolerances: a tiled result differs from the whole-image result by at most 2/255 per channel
//! (the bar); Kiln's output for the fixture image agrees with the wheel's ncnn-Vulkan
//! engine (fp16, replicate padding) at 50 dB PSNR or better away from the 18-pixel border, as
//! the network test checks for the bare network.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::{DynamicImage, GenericImageView};
use kiln_engine::devices::DeviceId;
use kiln_engine::postprocessing::images::{self, OutputFormat};
use kiln_engine::postprocessing::upscale::{AlphaMode, OutputSize, UpscaleRequest, UpscaleSettings};
use kiln_engine::processing::store::Scope;
use kiln_engine::{Engine, dispatch};
use serde_json::{Value, json};

use crate::{real_engine, software_gpu_id};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upscalers").join(name)
}

/// A `width`×`height` piece of the fixture image written as a PNG to `path`: the tests that
/// need many tiles but not the whole picture run on lavapipe in a fraction of the time.
fn fixture_crop(width: u32, height: u32, path: &Path) -> PathBuf {
    let crop = images::decode_file(&fixture("ncnn_input.png")).unwrap().image.crop_imm(0, 0, width, height);
    images::write(&crop, path, OutputFormat::Png, 100, &Default::default()).unwrap();
    path.to_owned()
}

fn bundled_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param")
        .canonicalize()
        .unwrap()
}

async fn call(engine: &Engine, op: &str, input: Value) -> Value {
    dispatch(engine, op, input).await.unwrap_or_else(|e| panic!("{op}: {e:?}"))
}

/// A job's hang guard: lavapipe shares the machine's cores with the other tests, and on a slow
/// 2-core CI machine a small job that takes a minute here has taken several. Only a hang
/// should fail the guard, so it is long.
const HANG_GUARD: Duration = Duration::from_secs(900);

/// Polls a job until it is finished; returns it.
async fn wait_for(engine: &Engine, id: i64, timeout: Duration) -> Value {
    let started = Instant::now();
    loop {
        let details = call(engine, "jobs.get", json!({ "id": id })).await;
        let state = details["job"]["state"].as_str().unwrap().to_owned();
        if matches!(state.as_str(), "done" | "failed" | "cancelled" | "paused") {
            return details;
        }
        assert!(started.elapsed() < timeout, "job {id} still {state} after {timeout:?}: {details:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn max_difference(a: &DynamicImage, b: &DynamicImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.to_rgba8().as_raw().iter().zip(b.to_rgba8().as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
}

/// PSNR of Kiln's result `a` against the ncnn reference `b` away from the border. The wheel
/// turns slightly negative outputs into 255 when it converts to 8 bits (a wrap along hard
/// edges, 0.8% of this image's pixels) where Kiln clamps to 0 (or, averaging TTA's passes,
/// nearly 0): those are counted, not compared.
fn psnr_against_ncnn(a: &[u8], b: &[u8], w: usize, h: usize, margin: usize) -> (f64, usize) {
    let mut sum = 0.0;
    let mut n = 0.0;
    let mut wrapped = 0;
    for y in margin..h - margin {
        for x in margin..w - margin {
            for c in 0..3 {
                let i = (y * w + x) * 3 + c;
                if a[i] < 16 && b[i] == 255 {
                    wrapped += 1;
                    continue;
                }
                sum += (a[i] as f64 - b[i] as f64).powi(2);
                n += 1.0;
            }
        }
    }
    (10.0 * (255.0f64 * 255.0 / (sum / n).max(1e-12)).log10(), wrapped)
}

fn upscale(engine: &Engine, device: &DeviceId, input: &Path, out: &Path, settings: UpscaleSettings) -> PathBuf {
    let outcome = engine
        .upscale_file(
            UpscaleRequest {
                input,
                output_dir: out,
                output_file: None,
                model: &bundled_model(),
                device_id: device,
                settings: &settings,
                owner: "test".into(),
            },
            &mut |_| true,
        )
        .unwrap();
    PathBuf::from(outcome.output)
}

/// A job dropped on the queue runs on the software GPU with the bundled model and writes a
/// PNG that matches the ncnn reference and carries Kiln's metadata.
#[tokio::test(flavor = "multi_thread")]
async fn a_submitted_image_is_upscaled_through_the_queue_on_the_software_gpu() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let gpu = software_gpu_id(&call(&engine, "devices.list", Value::Null).await);
    let inputs = data.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(fixture("ncnn_input.png"), inputs.join("photo.png")).unwrap();
    engine.start_workers(Scope::All);

    let submitted = call(
        &engine,
        "jobs.submit",
        json!({
            "inputs": [{ "from": "path", "path": inputs.join("photo.png") }, { "from": "path", "path": "/etc/passwd" }],
            "steps": [{ "kind": "upscale", "tile": 64 }],
            "output_dir": data.path().join("out"),
            "device_id": gpu,
        }),
    )
    .await;
    // Paths outside the allowed roots are refused, the rest goes on.
    assert_eq!(submitted["skipped"][0]["input"], json!("/etc/passwd"));
    assert!(submitted["skipped"][0]["reason"].as_str().unwrap().contains("outside"), "{submitted:#}");
    let id = submitted["jobs"][0]["id"].as_i64().unwrap();
    let details = wait_for(&engine, id, HANG_GUARD).await;
    let job = &details["job"];
    assert_eq!(job["state"], json!("done"), "{details:#}");
    assert_eq!(job["device_id"], json!(gpu), "pinned to the software GPU, it runs there");
    let output = PathBuf::from(job["outcomes"][0]["output"].as_str().unwrap());
    assert_eq!(output.file_name().unwrap(), "photo_x4.png");
    let lines: Vec<&str> = details["log"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert!(lines.iter().any(|l| l.contains("tiles of at most 64 px")), "{lines:?}");

    let result = images::decode_file(&output).unwrap();
    assert_eq!(result.image.dimensions(), (384, 384));
    let kiln: Value = serde_json::from_str(&images::read_kiln_json(&output).unwrap()).unwrap();
    assert_eq!(kiln["model"], json!("realesr-animevideov3-x4.param"));
    assert_eq!(kiln["tile"], json!(64));

    let ncnn = images::decode_file(&fixture("ncnn_animevideov3_x4.png")).unwrap();
    let (psnr, wrapped) =
        psnr_against_ncnn(result.image.to_rgb8().as_raw(), ncnn.image.to_rgb8().as_raw(), 384, 384, 18 * 4);
    assert!(psnr > 50.0 && wrapped < 384 * 384 * 3 / 50, "PSNR against ncnn-Vulkan {psnr:.1} dB, {wrapped} wrapped");

    // The result is in the gallery, with a thumbnail for the UI.
    let gallery = call(&engine, "gallery.list", Value::Null).await;
    assert_eq!(gallery[0]["id"], json!(id));
    let thumbnail = call(&engine, "jobs.image", json!({ "id": id, "which": "output", "max_side": 128 })).await;
    assert_eq!((thumbnail["width"].as_u64(), thumbnail["mime"].as_str()), (Some(128), Some("image/webp")));
    engine.shutdown();
}

/// Tiles blend without seams: on both devices, 64-pixel tiles (9 of them, overlapping by 32)
/// and one whole-image tile agree to 2/255, and both match the ncnn reference.
#[test]
fn tiled_and_whole_image_results_agree_on_both_devices() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let list = tokio::runtime::Runtime::new().unwrap().block_on(call(&engine, "devices.list", Value::Null));
    let gpu = DeviceId(software_gpu_id(&list));
    let input = fixture("ncnn_input.png");
    for device in [gpu, DeviceId::cpu()] {
        let out = data.path().join(device.0.replace(':', "_"));
        let whole = upscale(&engine, &device, &input, &out, UpscaleSettings { tile: Some(1024), ..Default::default() });
        let tiled = upscale(&engine, &device, &input, &out, UpscaleSettings { tile: Some(64), ..Default::default() });
        assert_eq!(tiled.file_name().unwrap(), "ncnn_input_x4-1.png", "a second result never overwrites the first");
        let (whole, tiled) = (images::decode_file(&whole).unwrap().image, images::decode_file(&tiled).unwrap().image);
        let worst = max_difference(&whole, &tiled);
        assert!(worst <= 2, "{device}: tiled and whole results differ by {worst}/255");
        let ncnn = images::decode_file(&fixture("ncnn_animevideov3_x4.png")).unwrap().image.to_rgb8();
        let (psnr, _) = psnr_against_ncnn(whole.to_rgb8().as_raw(), ncnn.as_raw(), 384, 384, 18 * 4);
        assert!(psnr > 50.0, "{device}: PSNR against ncnn-Vulkan {psnr:.1} dB");
    }
}

/// TTA is the mean of the network's results on the eight flips and transposes of the input,
/// each turned back: checked against eight plain runs on transformed files, averaged here.
/// Each plain result is rounded to 8 bits on its own, so they agree within 1/255 wherever no
/// run had to clamp (TTA averages before it clamps; hard edges overshoot below 0).
#[test]
fn tta_averages_the_eight_orientations() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let out = data.path().join("out");
    let cpu = DeviceId::cpu();
    let source = images::decode_file(&fixture("ncnn_input.png")).unwrap().image;
    let forward = |mut image: DynamicImage, k: usize| {
        if k & 1 != 0 {
            image = image.fliph();
        }
        if k & 2 != 0 {
            image = image.flipv();
        }
        if k & 4 != 0 {
            image = image.rotate90().fliph(); // the transpose
        }
        image
    };
    let back = |mut image: DynamicImage, k: usize| {
        if k & 4 != 0 {
            image = image.rotate90().fliph();
        }
        if k & 2 != 0 {
            image = image.flipv();
        }
        if k & 1 != 0 {
            image = image.fliph();
        }
        image
    };
    let mut sum = vec![0.0f32; 384 * 384 * 3];
    let mut clamped = vec![false; 384 * 384 * 3];
    for k in 0..8 {
        let input = data.path().join(format!("turn{k}.png"));
        images::write(&forward(source.clone(), k), &input, OutputFormat::Png, 100, &Default::default()).unwrap();
        let result = images::decode_file(&upscale(&engine, &cpu, &input, &out, UpscaleSettings::default())).unwrap();
        for ((s, c), v) in sum.iter_mut().zip(&mut clamped).zip(back(result.image, k).to_rgb8().as_raw()) {
            *s += *v as f32 / 8.0;
            *c |= *v == 0 || *v == 255;
        }
    }
    let input = data.path().join("source.png");
    std::fs::copy(fixture("ncnn_input.png"), &input).unwrap();
    let tta = UpscaleSettings { tta: true, ..Default::default() };
    let averaged = images::decode_file(&upscale(&engine, &cpu, &input, &out, tta)).unwrap().image.to_rgb8();
    let compared: Vec<f32> = averaged
        .as_raw()
        .iter()
        .zip(&sum)
        .zip(&clamped)
        .filter(|(_, c)| !**c)
        .map(|((a, s), _)| (*a as f32 - s).abs())
        .collect();
    assert!(compared.len() > sum.len() * 9 / 10, "most pixels compare: {}", compared.len());
    let worst = compared.iter().fold(0.0f32, |w, d| w.max(*d));
    assert!(worst <= 1.0, "TTA differs from the mean of eight plain runs by {worst}/255");
}

/// Alpha goes through the model (or a resize), 16-bit stays 16-bit in PNG, other sizes come
/// from a resize after the model, and a two-step workflow feeds one step into the next.
#[tokio::test(flavor = "multi_thread")]
async fn alpha_sixteen_bit_sizes_and_workflows() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let gpu = DeviceId(software_gpu_id(&call(&engine, "devices.list", Value::Null).await));
    // A 16-bit RGBA image: a colour ramp, and an alpha disc.
    let (w, h) = (40u32, 32u32);
    let mut pixels = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let inside = ((x as f32 - 20.0).powi(2) + (y as f32 - 16.0).powi(2)).sqrt() < 12.0;
            pixels.extend_from_slice(&[(x * 1600) as u16, (y * 2000) as u16, 30000, if inside { 65535 } else { 0 }]);
        }
    }
    let input = data.path().join("disc.png");
    let image = DynamicImage::ImageRgba16(image::ImageBuffer::from_raw(w, h, pixels).unwrap());
    images::write(&image, &input, OutputFormat::Png, 100, &Default::default()).unwrap();
    let out = data.path().join("out");

    for alpha in [AlphaMode::Model, AlphaMode::Resize] {
        let path = upscale(&engine, &gpu, &input, &out, UpscaleSettings { alpha, ..Default::default() });
        let result = images::decode_file(&path).unwrap();
        assert!(result.is_16_bit() && result.has_alpha(), "{alpha:?}");
        assert_eq!(result.image.dimensions(), (160, 128));
        // The disc is still there: opaque at its centre, clear in the corner.
        let rgba = result.image.to_rgba16();
        assert!(rgba.get_pixel(80, 64).0[3] > 60000, "{alpha:?}");
        assert!(rgba.get_pixel(2, 2).0[3] < 5000, "{alpha:?}");
    }

    let half = upscale(
        &engine,
        &gpu,
        &input,
        &out,
        UpscaleSettings { size: OutputSize::Scale { scale: 2.0 }, format: OutputFormat::Webp, ..Default::default() },
    );
    assert!(half.display().to_string().ends_with("disc_x2.webp"));
    assert_eq!(images::decode_file(&half).unwrap().image.dimensions(), (80, 64));
    let wide = upscale(
        &engine,
        &gpu,
        &input,
        &out,
        UpscaleSettings { size: OutputSize::Width { width: 100 }, format: OutputFormat::Jpeg, ..Default::default() },
    );
    assert_eq!(images::decode_file(&wide).unwrap().image.dimensions(), (100, 80));

    // A workflow: ×0.5 after the model (so ×2), then the model again (×4): ×8 in all.
    engine.start_workers(Scope::All);
    let submitted = call(
        &engine,
        "jobs.submit",
        json!({
            "inputs": [{ "from": "path", "path": input }],
            "steps": [{ "kind": "upscale", "size": { "by": "scale", "scale": 2.0 } }, { "kind": "upscale", "alpha": "resize" }],
            "output_dir": out,
            "device_id": gpu,
        }),
    )
    .await;
    let id = submitted["jobs"][0]["id"].as_i64().unwrap();
    assert_eq!(submitted["jobs"][0]["kind"], json!("workflow"));
    let details = wait_for(&engine, id, HANG_GUARD).await;
    assert_eq!(details["job"]["state"], json!("done"), "{details:#}");
    let outcomes = details["job"]["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!((outcomes[1]["input_width"].as_u64(), outcomes[1]["output_width"].as_u64()), (Some(80), Some(320)));
    let work = data.path().join("work").join(id.to_string());
    assert!(!work.exists(), "the work folder goes when the job is done");
    // A job leaves its folder when it fails or is cancelled (a retry resumes from it); taking the
    // job out of the history takes the folder too.
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("step-1.png"), b"left by a stopped step").unwrap();
    assert_eq!(call(&engine, "jobs.remove", json!({ "ids": [id] })).await["ids"], json!([id]));
    assert!(!work.exists(), "a removed job's work folder goes with it");
    engine.shutdown();
}

/// A budget barely above the weights forces the smallest tiles; the job still finishes.
/// (Out-of-memory retries with smaller tiles are tested with an injected failure beside the
/// tiler, `postprocessing::tiling`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_budget_means_small_tiles_not_a_failure() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let gpu = software_gpu_id(&call(&engine, "devices.list", Value::Null).await);
    let weights = std::fs::metadata(bundled_model().with_extension("bin")).unwrap().len() * 2;
    call(&engine, "memory.set_budget", json!({ "device_id": gpu, "bytes": weights + (1 << 20) })).await;
    // The tile comes from the budget and the image's width (the band of output rows); a short
    // strip of the fixture keeps the width and needs 7×3 tiles, not 7×7.
    let input = fixture_crop(96, 32, &data.path().join("in.png"));
    engine.start_workers(Scope::All);
    let submitted = call(
        &engine,
        "jobs.submit",
        json!({
            "inputs": [{ "from": "path", "path": input }],
            "steps": [{ "kind": "upscale" }],
            "output_dir": data.path(),
            "device_id": gpu,
        }),
    )
    .await;
    // 49 tiles of 32 pixels (the whole fixture) on the software GPU beside the other tests were
    // 3/4 done after 300 s on a slower 2-core machine; these are 21.
    let details = wait_for(&engine, submitted["jobs"][0]["id"].as_i64().unwrap(), HANG_GUARD).await;
    assert_eq!(details["job"]["state"], json!("done"), "{details:#}");
    assert_eq!(details["job"]["outcomes"][0]["tile"], json!(32), "{details:#}");
    engine.shutdown();
}

/// Uploads (a browser's drop) are checked as images before they are kept; a running job
/// stops at its next tile when cancelled, and a cancelled job can be retried.
#[tokio::test(flavor = "multi_thread")]
async fn uploads_cancel_and_retry() {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    // On the software GPU, whose tiles are slow enough for the cancel to land mid-job.
    let gpu = software_gpu_id(&call(&engine, "devices.list", Value::Null).await);
    // 16-pixel tiles: 7×7 of them over a 32-pixel piece of the fixture (15×15 over the whole).
    let png = std::fs::read(fixture_crop(32, 32, &data.path().join("piece.png"))).unwrap();
    let encoded = kiln_engine::processing::ops::base64_encode(&png);
    let submitted = call(
        &engine,
        "jobs.submit",
        json!({
            "inputs": [
                { "from": "upload", "name": "../../drop.png", "data_base64": encoded },
                { "from": "upload", "name": "broken.png", "data_base64": kiln_engine::processing::ops::base64_encode(&png[..200]) },
            ],
            "steps": [{ "kind": "upscale", "tile": 16 }],
            "output_dir": data.path().join("out"),
            "batch_name": "drop",
            "device_id": gpu,
        }),
    )
    .await;
    assert_eq!(submitted["skipped"][0]["input"], json!("broken.png"), "{submitted:#}");
    let job = &submitted["jobs"][0];
    assert!(
        Path::new(job["spec"]["input"].as_str().unwrap())
            .starts_with(data.path().canonicalize().unwrap().join("uploads"))
    );
    let id = job["id"].as_i64().unwrap();

    engine.start_workers(Scope::All);
    // Cancel once the first tiles are done.
    let started = Instant::now();
    loop {
        let details = call(&engine, "jobs.get", json!({ "id": id })).await;
        if details["job"]["progress"].as_f64().unwrap() > 0.0 {
            break;
        }
        assert!(started.elapsed() < HANG_GUARD, "{details:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    call(&engine, "jobs.cancel", json!({ "ids": [id] })).await;
    let details = wait_for(&engine, id, HANG_GUARD).await;
    assert_eq!(details["job"]["state"], json!("cancelled"), "{details:#}");
    assert!(details["job"]["progress"].as_f64().unwrap() < 1.0);
    call(&engine, "jobs.retry", json!({ "ids": [id] })).await;
    let details = wait_for(&engine, id, HANG_GUARD).await;
    assert_eq!(details["job"]["state"], json!("done"), "{details:#}");
    assert_eq!(details["job"]["attempts"], json!(2));
    let list = call(&engine, "jobs.list", Value::Null).await;
    assert_eq!(list["batches"][0]["name"], json!("drop"));
    // Without a hardware GPU, jobs no one pinned go to the CPU backend, and the list says why.
    let workers = list["workers"].as_array().unwrap();
    let cpu = workers.iter().find(|w| w["device_id"] == json!("cpu")).expect("the CPU's worker");
    assert_eq!(cpu["takes_any"], json!(true), "{list:#}");
    assert!(cpu["routing"].as_str().unwrap().contains("software rasteriser"), "{list:#}");
    let software = workers.iter().find(|w| w["device_id"] == json!(gpu)).unwrap();
    assert_eq!(software["takes_any"], json!(false));
    assert_eq!(software["speeds"][0]["jobs"], json!(1), "its finished job is measured: {list:#}");
    engine.shutdown();
}
