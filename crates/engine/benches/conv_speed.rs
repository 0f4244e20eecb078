//! Where an upscaler's time goes: every convolution shape of RRDBNet (x4plus) and
//! SRVGGNetCompact, timed on the first GPU that computes, in f16 and f32, through burn's
//! `conv2d` (NCHW, its autotuned kernel, bias added inside) and through each form of Kiln's own
//! kernel (NHWC, bias and activation fused); TFLOP/s from the multiply-adds, and the largest
//! difference between Kiln's result and burn's as a check. Which kernel burn's autotune picked
//! is read from cubecl's autotune log and printed after the table (`autotune` lines). Then the
//! whole networks with random weights on one tile, burn's operations against Kiln's kernels
//! (megapixels of input per second). Every figure is given on the host's clock and, where the
//! device has timestamp queries, on the device's (see [`time`]).
//!
//!   cargo bench -p kiln-engine --bench conv_speed [-- SIDE] [--only TEXT]
//!
//! SIDE is the input tile side the body convolutions run at (default 512; the ×2 and ×4 stages
//! run at 2 and 4 times it, as in a tile of a real upscale); the 64->64 1920×1080 convolution
//! the issue tracker quotes is always included. `--only TEXT` keeps the shapes whose name
//! contains TEXT (`--only networks`: the whole networks alone). Under `cargo test` it runs a few small shapes
//! once, as a smoke test. Prints one JSON object per measurement.

mod support;

use std::time::Instant;

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Distribution, FloatDType, ProfileOptions, Tensor, TimingMethod};
use kiln_engine::compute::kernels::conv::CmmaBlock;
use kiln_engine::compute::kernels::{self, ConvOp, KernelChoice};
use serde_json::{Value, json};

/// One convolution of a network: input channels, output channels, the side it runs at (×
/// the tile side / 8) and whether it reads a ×2 upsampled input.
struct Shape {
    name: &'static str,
    cin: usize,
    cout: usize,
    /// Output side as a multiple of the tile side, in eighths (8 = the tile side).
    eighths: usize,
    upsample: usize,
}

const SHAPES: &[Shape] = &[
    Shape { name: "rrdb.conv_first 3->64", cin: 3, cout: 64, eighths: 8, upsample: 1 },
    Shape { name: "rrdb.rdb.conv1 64->32", cin: 64, cout: 32, eighths: 8, upsample: 1 },
    Shape { name: "rrdb.rdb.conv2 96->32", cin: 96, cout: 32, eighths: 8, upsample: 1 },
    Shape { name: "rrdb.rdb.conv3 128->32", cin: 128, cout: 32, eighths: 8, upsample: 1 },
    Shape { name: "rrdb.rdb.conv4 160->32", cin: 160, cout: 32, eighths: 8, upsample: 1 },
    Shape { name: "rrdb.rdb.conv5 192->64", cin: 192, cout: 64, eighths: 8, upsample: 1 },
    Shape { name: "rrdb.conv_body 64->64", cin: 64, cout: 64, eighths: 8, upsample: 1 },
    Shape { name: "rrdb.conv_up1 64->64 (x2 in)", cin: 64, cout: 64, eighths: 16, upsample: 2 },
    Shape { name: "rrdb.conv_up2 64->64 (x2 in)", cin: 64, cout: 64, eighths: 32, upsample: 2 },
    Shape { name: "rrdb.conv_hr 64->64 (x4)", cin: 64, cout: 64, eighths: 32, upsample: 1 },
    Shape { name: "rrdb.conv_last 64->3 (x4)", cin: 64, cout: 3, eighths: 32, upsample: 1 },
    Shape { name: "compact.last 64->48", cin: 64, cout: 48, eighths: 8, upsample: 1 },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().all(|a| a != "--bench");
    // `--only TEXT`: the shapes whose name contains TEXT (`--only networks`: the networks only).
    let only_at = args.iter().position(|a| a == "--only").map(|i| i + 1);
    let only = only_at.and_then(|i| args.get(i)).cloned();
    let side: usize =
        args.iter().enumerate().filter(|&(i, _)| Some(i) != only_at).find_map(|(_, a)| a.parse().ok()).unwrap_or(512);
    // cubecl reads its configuration from the working directory: log autotune's choices.
    let scratch = std::env::temp_dir().join(format!("kiln-conv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let log = scratch.join("autotune.log");
    std::fs::write(
        scratch.join("cubecl.toml"),
        format!("[autotune]\ndisable_cache = true\n[autotune.logger]\nlevel = \"minimal\"\nfile = {:?}\n", log),
    )
    .unwrap();
    std::env::set_current_dir(&scratch).unwrap();

    let bench = support::BenchEngine::start();
    let engine = &bench.engine;
    let gpu = bench.device_to_measure();
    let id = gpu["id"].as_str().unwrap().to_owned();
    let device: Device = engine.compute_device(&kiln_engine::devices::DeviceId(id)).expect("the device opens");
    let f16 = device.supports_dtype(DType::F16);

    // (name, cin, cout, height, width, upsample)
    let mut problems: Vec<(String, usize, usize, usize, usize, usize)> = Vec::new();
    if smoke {
        problems.push(("smoke 64->32".into(), 64, 32, 24, 20, 1));
        problems.push(("smoke 3->64 (x2 in)".into(), 3, 64, 16, 12, 2));
    } else {
        for s in SHAPES {
            let out = side * s.eighths / 8;
            problems.push((s.name.to_owned(), s.cin, s.cout, out, out, s.upsample));
        }
        problems.push(("issue: 64->64 1920x1080".into(), 64, 64, 1080, 1920, 1));
        problems.retain(|p| only.as_ref().is_none_or(|o| p.0.contains(o.as_str())));
    }
    let mut precisions = vec![FloatDType::F32];
    if f16 && !smoke {
        precisions.insert(0, FloatDType::F16);
    }
    for (name, cin, cout, height, width, upsample) in problems {
        for &dtype in &precisions {
            let (in_h, in_w) = (height / upsample, width / upsample);
            let input =
                Tensor::<4>::random([1, cin, in_h, in_w], Distribution::Uniform(-1.0, 1.0), &device).cast(dtype);
            let weight = Tensor::<4>::random([cout, cin, 3, 3], Distribution::Uniform(-0.1, 0.1), &device).cast(dtype);
            let bias = Tensor::<1>::random([cout], Distribution::Uniform(-0.1, 0.1), &device).cast(dtype);
            let slope = Tensor::<1>::full([cout], 1.0, &device).cast(dtype);
            let flops = 2.0 * (height * width * 9 * cin * cout) as f64;

            // burn: the upsampling (when there is one) is part of what it must do.
            let burn_input = if upsample > 1 {
                burn::tensor::module::interpolate(
                    input.clone(),
                    burn::tensor::ops::InterpolateOptions::new(burn::tensor::ops::InterpolateMode::Nearest)
                        .with_output_size([height, width]),
                )
            } else {
                input.clone()
            };
            let burn_run = || {
                conv2d(
                    burn_input.clone(),
                    weight.clone(),
                    Some(bias.clone()),
                    ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                )
            };
            let (burn_s, burn_out) = time(&device, smoke, burn_run);
            report(&gpu, &name, dtype, "burn conv2d (NCHW)", burn_s, flops, None);

            // Laid out NHWC once, outside the timing (a permuted view would be copied every run).
            let nhwc = Tensor::<4>::from_data(input.permute([0, 2, 3, 1]).into_data(), &device).cast(dtype);
            let packed = kernels::pack_weight(weight.clone());
            let expected: Vec<f32> =
                burn_out.permute([0, 2, 3, 1]).cast(FloatDType::F32).into_data().try_to_vec::<f32>().unwrap();
            let mut choices = vec![("kiln tiled".to_owned(), KernelChoice::Tiled)];
            if dtype == FloatDType::F16 {
                choices.push(("kiln best (cmma where offered)".to_owned(), KernelChoice::Best));
                for block in cmma_blocks(cout > 32) {
                    choices.push((block_label(block), KernelChoice::Cmma(block)));
                }
            }
            for (label, choice) in choices {
                let op = ConvOp { upsample, choice, ..ConvOp::new(3) };
                let run = || kernels::conv(nhwc.clone(), packed.clone(), bias.clone(), slope.clone(), op);
                let (timing, out) = time(&device, smoke, run);
                let ours: Vec<f32> = out.cast(FloatDType::F32).into_data().try_to_vec::<f32>().unwrap();
                let error = largest_difference(&ours, &expected);
                report(&gpu, &name, dtype, &label, timing, flops, Some(error));
            }
            device.memory_cleanup();
        }
    }
    if !smoke && only.as_ref().is_none_or(|o| o == "networks") {
        networks(&gpu, &device, side, &precisions);
    }
    if let Ok(text) = std::fs::read_to_string(&log) {
        for line in text.lines().filter(|l| l.starts_with("Fastest result") && l.contains("ConvAutotuneKey")) {
            println!("{}", json!({ "autotune": line }));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Whole networks with random weights (speed does not depend on their values) on one
/// `side`² tile: RRDBNet x4plus (23 blocks) and SRVGGNetCompact animevideov3 (16 convs), on
/// burn's operations and on Kiln's kernels; megapixels of input per second.
fn networks(gpu: &Value, device: &Device, side: usize, precisions: &[FloatDType]) {
    use kiln_engine::nets::compact::{CompactNet, ConvPrelu};
    use kiln_engine::nets::fused::{FusedCompactNet, FusedRrdbNet, PackedDenseBlock};
    use kiln_engine::nets::layers::Conv3x3;
    use kiln_engine::nets::rrdbnet::{Rdb, Rrdb, RrdbNet};
    for &dtype in precisions {
        let conv = |cin: usize, cout: usize| Conv3x3 {
            weight: Tensor::<4>::random([cout, cin, 3, 3], Distribution::Uniform(-0.03, 0.03), device).cast(dtype),
            bias: Tensor::<1>::random([cout], Distribution::Uniform(-0.01, 0.01), device).cast(dtype),
        };
        let rdb = || Rdb {
            conv1: conv(64, 32),
            conv2: conv(96, 32),
            conv3: conv(128, 32),
            conv4: conv(160, 32),
            conv5: conv(192, 64),
        };
        let rrdb = RrdbNet {
            conv_first: conv(3, 64),
            body: (0..23).map(|_| Rrdb { rdb1: rdb(), rdb2: rdb(), rdb3: rdb() }).collect(),
            conv_body: conv(64, 64),
            conv_up: vec![conv(64, 64), conv(64, 64)],
            conv_hr: conv(64, 64),
            conv_last: conv(64, 3),
            pixel_unshuffle: 1,
        };
        let compact = CompactNet {
            body: (0..17)
                .map(|i| ConvPrelu {
                    conv: conv(if i == 0 { 3 } else { 64 }, 64),
                    alpha: Tensor::<1>::full([64], 0.25, device).cast(dtype),
                })
                .collect(),
            last: conv(64, 48),
            scale: 4,
        };
        // One residual dense block as the network runs it (five convolutions in one workspace),
        // against the per-shape figures above, which time each convolution on its own.
        let features = Tensor::<4>::random([1, side, side, 64], Distribution::Uniform(-1.0, 1.0), device).cast(dtype);
        let flops = 2.0 * (side * side * 9) as f64 * (64 + 96 + 128 + 160) as f64 * 32.0
            + 2.0 * (side * side * 9 * 192 * 64) as f64;
        let mut choices = vec![("kiln best".to_owned(), KernelChoice::Best)];
        if dtype == FloatDType::F16 {
            choices.extend(cmma_blocks(false).into_iter().map(|b| (block_label(b), KernelChoice::Cmma(b))));
        }
        for (label, choice) in &choices {
            let block = PackedDenseBlock::new(&rrdb.body[0].rdb1, *choice);
            let (timing, _) = time(device, false, || block.forward(features.clone()));
            report(gpu, "rrdb.rdb dense block (conv1-5, as the network runs it)", dtype, label, timing, flops, None);
        }
        let x = Tensor::<4>::random([1, 3, side, side], Distribution::Uniform(0.0, 1.0), device).cast(dtype);
        let fused_rrdb = FusedRrdbNet::new(&rrdb, KernelChoice::Best);
        let fused_compact = FusedCompactNet::new(&compact, KernelChoice::Best);
        type Run<'a> = Box<dyn Fn() -> Tensor<4> + Sync + 'a>;
        let pairs: Vec<(&str, Run, Run)> = vec![
            ("x4plus", Box::new(|| rrdb.forward(x.clone())), Box::new(|| fused_rrdb.forward(x.clone()))),
            ("animevideov3", Box::new(|| compact.forward(x.clone())), Box::new(|| fused_compact.forward(x.clone()))),
        ];
        let values =
            |t: &Tensor<4>| -> Vec<f32> { t.clone().cast(FloatDType::F32).into_data().try_to_vec::<f32>().unwrap() };
        // Each network's output on Kiln's default kernels, to check the other block shapes by.
        let mut outputs = Vec::new();
        for (net, burn_run, kiln_run) in pairs {
            // burn's direct f32 kernel takes about a minute a run of x4plus.
            let skip_burn = dtype == FloatDType::F32 && net == "x4plus" && side > 256;
            let burn = (!skip_burn).then(|| time(device, false, burn_run));
            let kiln = time(device, false, kiln_run);
            let ours = values(&kiln.1);
            // The two implementations on the same weights: the largest difference (random
            // weights keep values near 0..1).
            let difference = burn.as_ref().map(|(_, out)| largest_difference(&values(out), &ours));
            for (kernels, timing) in [("burn ops", burn.as_ref().map(|b| b.0)), ("kiln kernels", Some(kiln.0))] {
                let Some(timing) = timing else { continue };
                report_network(gpu, net, dtype, kernels, side, timing, difference);
            }
            outputs.push(ours);
        }
        // x4plus with its ×4 tail in one piece (as before the bands; a 512² tile's tail is
        // five bands), against the default's output.
        let unbanded = fused_rrdb.clone().with_tail_band_bytes(usize::MAX);
        let (timing, out) = time(device, false, || unbanded.forward(x.clone()));
        let difference = largest_difference(&values(&out), &outputs[0]);
        report_network(gpu, "x4plus", dtype, "kiln kernels, tail unbanded", side, timing, Some(difference));
        // The networks on each tensor-core block shape, checked against the default's output.
        if dtype == FloatDType::F16 {
            for block in cmma_blocks(false) {
                let rrdb_net = FusedRrdbNet::new(&rrdb, KernelChoice::Cmma(block));
                let compact_net = FusedCompactNet::new(&compact, KernelChoice::Cmma(block));
                let runs: [(&str, Run); 2] = [
                    ("x4plus", Box::new(|| rrdb_net.forward(x.clone()))),
                    ("animevideov3", Box::new(|| compact_net.forward(x.clone()))),
                ];
                for ((net, run), expected) in runs.into_iter().zip(&outputs) {
                    let (timing, out) = time(device, false, run);
                    let difference = largest_difference(&values(&out), expected);
                    report_network(gpu, net, dtype, &block_label(block), side, timing, Some(difference));
                }
            }
        }
        device.memory_cleanup();
    }
}

/// The tensor-core block shapes compared with the one Kiln runs (`with_narrow`: also with
/// 32-channel blocks, for convolutions of more than 32 outputs).
fn cmma_blocks(with_narrow: bool) -> Vec<CmmaBlock> {
    let mut blocks = Vec::new();
    for narrow in if with_narrow { vec![false, true] } else { vec![false] } {
        for (planes, prefetch, stacked) in [
            (8, true, false),
            (8, false, false),
            (8, true, true),
            (8, false, true),
            (4, true, false),
            (4, false, false),
        ] {
            blocks.push(CmmaBlock { narrow, planes, prefetch, stacked });
        }
    }
    blocks
}

fn block_label(block: CmmaBlock) -> String {
    format!(
        "kiln cmma, {} planes{}{}{}{}",
        block.planes,
        if block.stacked { " stacked" } else { "" },
        if block.prefetch { ", prefetch" } else { "" },
        if block.narrow { ", 32-channel blocks" } else { "" },
        if block == CmmaBlock::BEST { " (best)" } else { "" },
    )
}

/// How long one run takes: `wall`, host-clock seconds, and `device`, the device's own clock
/// (timestamp queries: what the GPU spent, without the host's launch overhead), where the device
/// has one. After one run that compiles and tunes, runs go on for at least [`WARM_SECONDS`]
/// (a GPU's clocks rise from idle over tens of milliseconds: a short burst of runs times a
/// slower GPU, by up to 2× on the H200), then three batches of at least [`BATCH_SECONDS`] each
/// are queued back to back with one synchronisation a batch; each figure is the fastest batch
/// divided by its runs.
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    device: Option<f64>,
}

const WARM_SECONDS: f64 = 0.3;
const BATCH_SECONDS: f64 = 0.05;

fn time(device: &Device, smoke: bool, run: impl Fn() -> Tensor<4> + Sync) -> (Timing, Tensor<4>) {
    let mut out = run();
    device.sync().unwrap();
    let (reps, batches) = if smoke {
        (1, 1)
    } else {
        let started = Instant::now();
        let mut runs = 0;
        while started.elapsed().as_secs_f64() < WARM_SECONDS {
            for _ in 0..5 {
                out = run();
            }
            device.sync().unwrap();
            runs += 5;
        }
        let each = started.elapsed().as_secs_f64() / runs as f64;
        ((BATCH_SECONDS / each).ceil().clamp(10.0, 1000.0) as usize, 3)
    };
    let mut wall = f64::INFINITY;
    let mut on_device: Option<f64> = None;
    for _ in 0..batches {
        let started = Instant::now();
        // `flush`: fusion's last queued operations run inside the window, not after it.
        let (last, duration) = device
            .profile_with(ProfileOptions::default().flush(), || {
                let mut last = run();
                for _ in 1..reps {
                    last = run();
                }
                last
            })
            .expect("a profile window opens and closes");
        device.sync().unwrap();
        wall = wall.min(started.elapsed().as_secs_f64() / reps as f64);
        out = last;
        if duration.timing_method() == TimingMethod::Device
            && let Some(ticks) = pollster::block_on(duration.resolve())
        {
            let seconds = ticks.duration().as_secs_f64() / reps as f64;
            on_device = Some(on_device.map_or(seconds, |best| best.min(seconds)));
        }
    }
    (Timing { wall, device: on_device }, out)
}

fn report(gpu: &Value, name: &str, dtype: FloatDType, kernel: &str, timing: Timing, flops: f64, error: Option<f32>) {
    println!(
        "{}",
        json!({
            "device": gpu["name"],
            "conv": name,
            "dtype": format!("{dtype:?}").to_lowercase(),
            "kernel": kernel,
            "ms": timing.wall * 1e3,
            "tflops": flops / timing.wall / 1e12,
            "device_ms": timing.device.map(|s| s * 1e3),
            "device_tflops": timing.device.map(|s| flops / s / 1e12),
            "max_abs_diff_vs_burn": error,
        })
    );
}

/// The largest absolute difference between two outputs of the same shape.
fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
}

/// One network's figure; `difference` is the largest difference from burn's operations (for
/// the default kernels and burn's own row) or from Kiln's default (for the other block shapes).
fn report_network(
    gpu: &Value,
    net: &str,
    dtype: FloatDType,
    kernels: &str,
    side: usize,
    timing: Timing,
    difference: Option<f32>,
) {
    let mpx = (side * side) as f64 / 1e6;
    println!(
        "{}",
        json!({
            "device": gpu["name"], "network": net, "dtype": format!("{dtype:?}").to_lowercase(),
            "kernels": kernels, "input": format!("{side}x{side}"), "ms": timing.wall * 1e3,
            "mpx_per_s": mpx / timing.wall, "device_ms": timing.device.map(|s| s * 1e3),
            "device_mpx_per_s": timing.device.map(|s| mpx / s), "max_abs_diff": difference,
        })
    );
}
