//! Out-of-memory sweep: for 20 tile sizes, the device's memory budget set just below and just
//! above what a job's tile of that size needs (the model's weights, the network's working
//! memory per tile pixel and whatever the tile, the tiler's band of output rows: the figures
//! `auto_tile_for` plans with), then a queued upscale job of an image that one tile of that size
//! covers. Each job must finish (with the tile the budget allows, any out-of-memory retries read
//! from its log) or fail with an error code: never abort, never hang. One more job runs with a
//! budget below the model's weights, which must fail with `out_of_memory`. Part of issue 16's
//! soak and fault suite (docs/reliability.md). Run with
//!   cargo bench -p kiln-engine --bench oom_sweep -- --device ID [--model PATH] [--precision f16|f32]
//!     [--tiles 20] [--max-tile 2048]
//! With no arguments (`cargo test --benches`, scripts/test-benches.sh) it runs a tiny real
//! version on the CPU device with the bundled model: one tile size, checked against the plan.
//! Prints a markdown table and one JSON line.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_engine::devices::DeviceId;
use kiln_engine::nets::weights::HostWeights;
use kiln_engine::nets::{Precision, Upscaler};
use kiln_engine::postprocessing::upscale::{auto_tile_for, band_bytes_per_row, buffer_tile_limit};
use kiln_engine::processing::ops::SubmitJobs;
use kiln_engine::processing::store::Scope;
use serde_json::{Value, json};

/// Mirrored pixels the tiler adds around an image (`TileOptions::default().border`): an image
/// this much smaller than the tile on each side fits one tile.
const BORDER: usize = 16;

/// What the sweep asks of the plan: the network's figures for one model, precision and device.
struct Plan {
    weights: u64,
    per_pixel: u64,
    fixed: u64,
    scale: usize,
    multiple: usize,
    buffer_limit: Option<u64>,
    upscaler: Upscaler,
}

impl Plan {
    /// Device memory a job needs for a tile of side `tile` on an image `width` pixels wide.
    fn need(&self, tile: usize, width: u32) -> u64 {
        let t = tile as u64;
        self.weights + self.fixed + self.per_pixel * t * t + band_bytes_per_row(width, self.scale) * t
    }

    /// The tile a job picks with `budget` on an image `width` pixels wide, as the job does.
    fn tile_for(&self, budget: u64, width: u32) -> usize {
        let tile = auto_tile_for(&self.upscaler, budget.saturating_sub(self.weights), width, false);
        let tile = match self.buffer_limit.map(|l| buffer_tile_limit(&self.upscaler, l, width)) {
            Some(cap) if cap < tile => cap,
            _ => tile,
        };
        (tile / self.multiple * self.multiple).max(self.multiple)
    }
}

struct Row {
    need_tile: usize,
    side: u32,
    budget: u64,
    need: u64,
    case: &'static str,
    planned: Option<usize>,
    outcome: Value,
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// A deterministic RGB test image (gradients and a checker) as a PNG file.
fn write_input(path: &Path, side: u32) {
    let image = image::RgbImage::from_fn(side, side, |x, y| {
        let checker = if ((x / 6) + (y / 6)) % 2 == 0 { 40 } else { 0 };
        image::Rgb([
            ((x * 255 / side.max(2)) + checker) as u8,
            ((y * 255 / side.max(2)) as u8).wrapping_add(if (x * 3 + y * 2) % 97 < 30 { 90 } else { 0 }),
            ((x + y) * 2 % 256) as u8,
        ])
    });
    image.save(path).expect("the input image writes");
}

fn main() {
    let device_arg = arg("--device");
    let model_arg = arg("--model");
    let tiny = device_arg.is_none() && model_arg.is_none();
    let bench = support::BenchEngine::start();
    let engine = &bench.engine;
    let call = |op: &str, input: Value| bench.rt.block_on(kiln_engine::dispatch(engine, op, input));

    let device = match &device_arg {
        Some(id) => id.clone(),
        None if tiny => DeviceId::CPU.to_owned(),
        None => bench.device_to_measure()["id"].as_str().unwrap().to_owned(),
    };
    let model = match &model_arg {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param"),
    };
    let model = model.canonicalize().unwrap_or_else(|e| panic!("the model {}: {e}", model.display()));
    let capabilities = call("devices.capabilities", json!({ "device_id": device })).expect("the device exists");
    let f16 = capabilities["features"]["shader_f16"].as_bool().unwrap_or(false);
    let precision = match arg("--precision").as_deref() {
        Some("f16") => Precision::F16,
        Some("f32") => Precision::F32,
        _ if f16 && !tiny => Precision::F16,
        _ => Precision::F32,
    };

    // The network's figures, from a copy built on the device before any job runs (nothing else
    // uses the device yet), then released.
    let plan = {
        let weights = HostWeights::read(&model).expect("the model reads");
        let burn_device = engine.compute_device(&DeviceId(device.clone())).expect("the device opens");
        let upscaler = Upscaler::build(&weights, &burn_device, precision).expect("the model builds");
        Plan {
            weights: weights.bytes() / 4 * precision.bytes(),
            per_pixel: upscaler.working_bytes_per_pixel(),
            fixed: upscaler.working_bytes_fixed(),
            scale: upscaler.net_scale,
            multiple: upscaler.size_multiple().max(1),
            buffer_limit: capabilities["limits"]["max_storage_buffer_binding_size"].as_u64().filter(|l| *l > 0),
            upscaler,
        }
    };

    // Tile sides: --tiles (20) from 64 to --max-tile (2048), evenly spaced in ratio; one for the
    // tiny run.
    let tiles: Vec<usize> = if tiny {
        vec![64]
    } else {
        let count = arg("--tiles").and_then(|n| n.parse().ok()).unwrap_or(20usize);
        let hi = arg("--max-tile").and_then(|n| n.parse::<f64>().ok()).unwrap_or(2048.0).clamp(64.0, 2048.0);
        let lo = 64f64;
        let mut tiles: Vec<usize> = (0..count)
            .map(|i| {
                let t = lo * (hi / lo).powf(i as f64 / (count.max(2) - 1) as f64);
                ((t / 32.0).round() as usize * 32).clamp(64, 2048)
            })
            .collect();
        tiles.dedup();
        tiles
    };

    // Every job's budget and the tile the plan gives it, while the copy is at hand; then the
    // copy goes, so that the jobs find the device as a user's job would.
    let mut rows = Vec::new();
    for &tile in &tiles {
        let side = (tile - 2 * BORDER) as u32;
        let need = plan.need(tile, side);
        // Just: 1/64 of the step to the next tile size (at least 1 KiB), so the plan gives this
        // size above and the next smaller one below.
        let delta = ((plan.need(tile + 32, side) - need) / 64).max(1024);
        for (case, budget) in [("below", need - delta), ("above", need + delta)] {
            let planned = Some(plan.tile_for(budget, side));
            rows.push(Row { need_tile: tile, side, budget, need, case, planned, outcome: Value::Null });
        }
    }
    // The model itself does not fit: the job must fail with out_of_memory, not abort.
    let (side, budget) = ((tiles[0] - 2 * BORDER) as u32, plan.weights / 2);
    rows.push(Row {
        need_tile: 0,
        side,
        budget,
        need: plan.weights,
        case: "below the weights",
        planned: None,
        outcome: Value::Null,
    });
    let (weights_bytes, per_pixel, fixed) = (plan.weights, plan.per_pixel, plan.fixed);
    plan.upscaler.release();
    let _ = call("memory.cleanup", json!({ "device_id": device }));

    let work = engine.data_dir().join("oom-sweep");
    std::fs::create_dir_all(&work).expect("the work folder");
    engine.start_workers(Scope::All);
    let job_limit = Duration::from_secs(if tiny { 120 } else { 1800 });
    let run_job = |budget: u64, side: u32| -> Value {
        call("memory.set_budget", json!({ "device_id": device, "bytes": budget })).expect("the budget sets");
        let input = work.join(format!("in_{side}.png"));
        if !input.exists() {
            write_input(&input, side);
        }
        let request: SubmitJobs = serde_json::from_value(json!({
            "inputs": [{ "from": "path", "path": input }],
            "steps": [{ "kind": "upscale", "model": model, "precision": precision }],
            "output_dir": work.join("out"),
            "device_id": device,
        }))
        .expect("a valid request");
        let started = Instant::now();
        let submitted = engine.submit_jobs(request, true).expect("the job queues");
        let id = submitted.jobs[0].id;
        loop {
            let details = call("jobs.get", json!({ "id": id })).expect("the job is in the queue");
            let job = &details["job"];
            let state = job["state"].as_str().unwrap_or_default().to_owned();
            if matches!(state.as_str(), "done" | "failed" | "cancelled") {
                let log: Vec<&str> =
                    details["log"].as_array().unwrap().iter().filter_map(|l| l["message"].as_str()).collect();
                let retries = log.iter().filter(|m| m.contains("out of memory")).count();
                let outcome = job["outcomes"].as_array().and_then(|o| o.last()).cloned().unwrap_or(Value::Null);
                if let Some(output) = outcome["output"].as_str() {
                    let _ = std::fs::remove_file(output);
                }
                return json!({
                    "state": state,
                    "tile": outcome["tile"],
                    "oom_retries": retries,
                    "error_code": job["error"]["code"],
                    "error": job["error"]["message"],
                    "seconds": started.elapsed().as_secs_f64(),
                });
            }
            if started.elapsed() > job_limit {
                let _ = call("jobs.cancel", json!({ "ids": [id] }));
                return json!({ "state": "hung", "seconds": started.elapsed().as_secs_f64(), "log": details["log"] });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    for row in &mut rows {
        row.outcome = run_job(row.budget, row.side);
    }
    let _ = call("memory.set_budget", json!({ "device_id": device }));

    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!(
        "oom_sweep: {} on {device}, {precision:?}: weights {:.1} MiB, {} B per tile pixel, {:.1} MiB fixed\n",
        model.file_name().unwrap().to_string_lossy(),
        mib(weights_bytes),
        per_pixel,
        mib(fixed)
    );
    println!(
        "| tile need | image | budget | budget - need | planned tile | outcome | tile used | OOM retries | error code | s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let o = &r.outcome;
        println!(
            "| {} | {}² | {:.2} MiB | {:+.3} MiB | {} | {} | {} | {} | {} | {:.1} |",
            if r.need_tile > 0 { r.need_tile.to_string() } else { "-".into() },
            r.side,
            mib(r.budget),
            mib(r.budget) - mib(r.need),
            r.planned.map_or("-".into(), |t| t.to_string()),
            o["state"].as_str().unwrap_or("?"),
            o["tile"].as_u64().map_or("-".into(), |t| t.to_string()),
            o["oom_retries"].as_u64().unwrap_or(0),
            o["error_code"].as_str().unwrap_or("-"),
            o["seconds"].as_f64().unwrap_or(0.0),
        );
    }
    let report: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({ "tile_need": r.need_tile, "side": r.side, "case": r.case, "budget_bytes": r.budget,
                    "need_bytes": r.need, "planned_tile": r.planned, "outcome": r.outcome })
        })
        .collect();
    println!(
        "{}",
        json!({ "device": device, "model": model.file_name().map(|n| n.to_string_lossy()), "precision": precision,
                "weights_bytes": weights_bytes, "per_pixel_bytes": per_pixel, "fixed_bytes": fixed, "rows": report })
    );

    // What must hold: no hang anywhere; the model that does not fit fails as out_of_memory;
    // and in the tiny run (no real shortage on the CPU) every job finishes with the planned tile.
    let mut problems = Vec::new();
    for r in &rows {
        let state = r.outcome["state"].as_str().unwrap_or_default();
        if state == "hung" {
            problems.push(format!("tile {} {}: no final state within {job_limit:?}", r.need_tile, r.case));
        }
        if r.planned.is_none() && r.outcome["error_code"] != "out_of_memory" {
            problems.push(format!("a budget below the weights gave {state} ({})", r.outcome["error_code"]));
        }
        if tiny && r.planned.is_some() && (state != "done" || r.outcome["tile"].as_u64() != r.planned.map(|t| t as u64))
        {
            problems.push(format!(
                "tile {} {}: {state} with tile {} (planned {:?})",
                r.need_tile, r.case, r.outcome["tile"], r.planned
            ));
        }
    }
    drop(bench);
    if !problems.is_empty() {
        eprintln!("oom_sweep: {}", problems.join("; "));
    }
    kiln_engine::process::exit_now(if problems.is_empty() { 0 } else { 1 })
}
