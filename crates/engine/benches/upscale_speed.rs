//! Upscaling speed on the first GPU that computes: megapixels of input per second through
//! Kiln's tiled path (tile chosen from the device's budget, as jobs do), for each model given,
//! at 512×512 and 1920×1080, in f16 and f32; with the pool's peak and the device's used-memory
//! peak (NVML on NVIDIA). Run with
//!   cargo bench -p kiln-engine --bench upscale_speed -- MODEL_FILE...
//! (under `cargo test`, with no model given, it runs the bundled model once on a small input, as
//! a smoke test of the same path). Prints one JSON object per run.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use kiln_engine::nets::weights::HostWeights;
use kiln_engine::nets::{Kernels, Precision, Upscaler};
use kiln_engine::postprocessing::tiling::{self, Planes, Readout, TileOptions};
use kiln_engine::postprocessing::upscale::{NetRunner, auto_tile_for, buffer_tile_limit};
use kiln_engine::{Engine, dispatch};
use serde_json::{Value, json};

/// Untimed runs after the first, before the timed ones (see conv_speed's, which showed short
/// bursts on a GPU fresh from idle timed up to 2× slow).
const WARM_SECONDS: f64 = 0.3;

fn main() {
    let models: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).filter(|a| a.is_file()).collect();
    let smoke = models.is_empty();
    let with_burn = std::env::args().any(|a| a == "--with-burn");
    let models = if smoke {
        vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param"),
        ]
    } else {
        models
    };
    let bench = support::BenchEngine::start();
    let engine = &bench.engine;
    let call = |op: &str, input: Value| bench.call(op, input);
    let gpu = bench.device_to_measure();
    let id = gpu["id"].as_str().unwrap().to_owned();
    let capabilities = call("devices.capabilities", json!({ "device_id": id }));
    let f16 = capabilities["features"]["shader_f16"].as_bool().unwrap_or(false);
    let buffer_limit = capabilities["limits"]["max_storage_buffer_binding_size"].as_u64().filter(|l| *l > 0);
    let used = |engine: &Engine| {
        engine.sample_now();
        bench
            .rt
            .block_on(dispatch(engine, "devices.status", json!({ "device_id": id })))
            .ok()
            .and_then(|s| s["memory_used_bytes"]["value"].as_u64())
    };
    let memory = call("memory.usage", json!({ "device_id": id }));
    let budget = memory["budget_bytes"].as_u64().unwrap();
    let device: Device = engine.compute_device(&kiln_engine::devices::DeviceId(id.clone())).expect("the device opens");

    let sizes: &[(usize, usize)] = if smoke { &[(48, 40)] } else { &[(512, 512), (1920, 1080)] };
    let precisions: Vec<Precision> = if smoke {
        vec![Precision::F32]
    } else if f16 {
        vec![Precision::F16, Precision::F32]
    } else {
        vec![Precision::F32]
    };
    for model in &models {
        let weights = HostWeights::read(model).expect("the model reads");
        let mut implementations = vec![Kernels::best_for(&device)];
        if with_burn && implementations[0] != Kernels::Burn {
            implementations.push(Kernels::Burn);
        }
        for (&precision, &kernels) in precisions.iter().flat_map(|p| implementations.iter().map(move |k| (p, k))) {
            let upscaler =
                Arc::new(Upscaler::build_with(&weights, &device, precision, kernels).expect("the model loads"));
            let free = budget.saturating_sub(weights.bytes());
            for &(w, h) in sizes {
                let tile = auto_tile_for(&upscaler, free, w as u32, false)
                    .min(buffer_limit.map_or(usize::MAX, |l| buffer_tile_limit(&upscaler, l, w as u32)));
                // burn's f32 convolutions fall to its direct kernel: tens of seconds a 1080p image.
                if kernels == Kernels::Burn && precision == Precision::F32 && w * h > 1_000_000 {
                    continue;
                }
                let mut image = Planes::zeros(3, w, h);
                for (i, v) in image.data.iter_mut().enumerate() {
                    *v = ((i * 2654435761) % 1000) as f32 / 1000.0;
                }
                let mut runner = NetRunner::new(upscaler.clone(), device.clone(), false);
                let options = TileOptions { max_tile: tile, ..Default::default() };
                let before = used(engine);
                let (mut tiles, mut tile_shape) = (0, (0, 0));
                // The first pass compiles and tunes kernels for the tile shapes.
                let warm = Instant::now();
                tiling::upscale(&image, &mut runner, options, Readout::Rgb8, &mut |e| {
                    if let tiling::TileEvent::Tile { total, tile_width, tile_height, .. } = e {
                        tiles = total;
                        tile_shape = (tile_width, tile_height);
                    }
                    true
                })
                .expect("the upscale runs");
                let first = warm.elapsed().as_secs_f64();
                // Then untimed runs for WARM_SECONDS: the first run compiles on the host while the
                // GPU idles, and a GPU's clocks take tens of milliseconds to rise again.
                let warming = Instant::now();
                while !smoke && warming.elapsed().as_secs_f64() < WARM_SECONDS {
                    tiling::upscale(&image, &mut runner, options, Readout::Rgb8, &mut |_| true)
                        .expect("the upscale runs");
                }
                // One run for the smoke test and for large f32 inputs (seconds each), else three.
                let reps = if smoke || (w * h > 1_000_000 && precision == Precision::F32) { 1 } else { 3 };
                let started = Instant::now();
                for _ in 0..reps {
                    tiling::upscale(&image, &mut runner, options, Readout::Rgb8, &mut |_| true)
                        .expect("the upscale runs");
                }
                let seconds = started.elapsed().as_secs_f64() / reps as f64;
                // The same job read back as f32 planes (resized or 16-bit outputs), once.
                let started = Instant::now();
                let planes = tiling::upscale(&image, &mut runner, options, Readout::Planes, &mut |_| true)
                    .expect("the upscale runs")
                    .into_planes();
                let planes_seconds = started.elapsed().as_secs_f64();
                // On the device measured: the 8-bit read-back against the f32 one, and (on the
                // smaller input) 128-pixel tiles, many bands, against the job's own tiles, in
                // 8-bit steps (the input is noise, the worst case for tile seams).
                let mut run = |options: TileOptions| {
                    tiling::upscale(&image, &mut runner, options, Readout::Rgb8, &mut |_| true)
                        .expect("the upscale runs")
                        .into_planes()
                };
                let packed = run(options);
                let steps = |a: &Planes, b: &Planes| {
                    let d: Vec<f32> = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs() * 255.0).collect();
                    json!({ "max": d.iter().fold(0.0f32, |m, v| m.max(*v)), "mean": d.iter().sum::<f32>() / d.len() as f32 })
                };
                let mut checks = json!({ "rgb8_vs_f32_readout": steps(&packed, &planes) });
                if w * h < 1_000_000 && !smoke {
                    checks["tiles_128_vs_job_tiles"] = steps(&run(TileOptions { max_tile: 128, ..options }), &packed);
                }
                // The network alone on one tile, waited for on the device (no read-back), after
                // one untimed run: a contiguous input is a new shape to burn's fusion, whose
                // tuning would otherwise be timed (animevideov3's tiles read 2-3× slow).
                let x = Tensor::<4>::zeros([1, 3, tile_shape.1, tile_shape.0], &device);
                let _ = upscaler.forward(x.clone());
                device.sync().unwrap();
                let network = {
                    let started = Instant::now();
                    for _ in 0..reps {
                        let _ = upscaler.forward(x.clone());
                    }
                    device.sync().unwrap();
                    started.elapsed().as_secs_f64() / reps as f64
                };
                // Reading a whole result's worth of f32 back: three times in one piece (is the
                // first read's staging memory reused?), then in pieces of the tiler's READ_BYTES,
                // as the tiler reads.
                let scale = upscaler.net_scale;
                let (out_w, out_h) = (w * scale, h * scale);
                let result = Tensor::<4>::zeros([1, 3, out_h, out_w], &device);
                device.sync().unwrap();
                let timed = |read: &dyn Fn()| {
                    let started = Instant::now();
                    read();
                    started.elapsed().as_secs_f64()
                };
                let whole: Vec<f64> = (0..3)
                    .map(|_| timed(&|| drop(result.clone().try_into_vec_as::<f32>().expect("the read-back"))))
                    .collect();
                let rows = (tiling::READ_BYTES / (out_w * 3 * 4)).max(1);
                let pieces: Vec<f64> = (0..2)
                    .map(|_| {
                        timed(&|| {
                            for y in (0..out_h).step_by(rows) {
                                let piece = result.clone().slice([0..1, 0..3, y..(y + rows).min(out_h), 0..out_w]);
                                drop(piece.try_into_vec_as::<f32>().expect("the read-back"));
                            }
                        })
                    })
                    .collect();
                // Host memory for an 8-bit result, written once (the page faults a job pays).
                let host_bytes = timed(&|| drop(std::hint::black_box(vec![1u8; out_w * out_h * 3])));
                let read_back = json!({ "whole": whole, "pieces": pieces, "rgb8_result_memory": host_bytes });
                let after = used(engine);
                let pool = call("memory.usage", json!({ "device_id": id }))["pool"].clone();
                let mpx = (w * h) as f64 / 1e6;
                println!(
                    "{}",
                    json!({
                        "device": gpu["name"],
                        "model": model.file_stem().map(|s| s.to_string_lossy().into_owned()),
                        "input": format!("{w}x{h}"),
                        "precision": precision,
                        "kernels": format!("{kernels:?}"),
                        "tile": tile,
                        "tiles": tiles,
                        "first_run_s": first,
                        "seconds": seconds,
                        "network_seconds_per_tile": network,
                        // What the job spends beyond the network (all tiles): the upload, the
                        // blend, the read-back, the copy into the result, waiting between tiles.
                        "beyond_network_seconds": seconds - network * tiles as f64,
                        "read_back_f32_seconds": read_back,
                        "planes_readout_seconds": planes_seconds,
                        "checks_in_8_bit_steps": checks,
                        "mpx_per_s": mpx / seconds,
                        "pool": pool,
                        "device_used_delta_bytes": before.zip(after).map(|(b, a)| a as i64 - b as i64),
                    })
                );
                drop(runner);
                let _ = call("memory.cleanup", json!({ "device_id": id }));
            }
        }
    }
}
