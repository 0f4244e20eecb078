//! Many upscales at once on one GPU, watched for a hang: `THREADS` threads (default 4) each
//! upscale small images through the bundled compact model in 16-pixel tiles (a device sync a
//! tile, 8-bit and f32 read-backs), while the engine's own sampler and one more thread read the
//! device's memory pools every 2 ms. It prints how many upscales finished in `STRESS_SECONDS`
//! (default 120), the slowest of those pool readings and the longest gap between two of the
//! sampler's telemetry events, or `HANG` and exits with 3 when none finished for 30 s while the
//! process sat idle (a deadlock, not slow work).
//!
//!   cargo run --example concurrent_upscales [-- single]
//!
//! `single` runs every thread on one cubecl stream (`StreamPolicy::Single`) instead of one
//! stream a thread, which is how the two compare (docs/performance.md, "Concurrent jobs").
//! Linux only (the idle check reads /proc).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use cubecl_environment::stream::{StreamPolicy, set_policy};
use kiln_engine::devices::DeviceId;
use kiln_engine::nets::weights::HostWeights;
use kiln_engine::nets::{Kernels, Precision, Upscaler};
use kiln_engine::postprocessing::tiling::{self, Planes, Readout, TileOptions};
use kiln_engine::postprocessing::upscale::NetRunner;
use kiln_engine::{Engine, EngineOptions, dispatch};
use serde_json::Value;

fn main() {
    let single = std::env::args().any(|a| a == "single");
    if single {
        set_policy(StreamPolicy::Single);
    }
    let setting = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (threads, seconds) = (setting("THREADS", 4) as usize, setting("STRESS_SECONDS", 120));

    let data = std::env::temp_dir().join(format!("kiln-concurrent-{}", std::process::id()));
    let mut options = EngineOptions::standard();
    options.data_dir = data.clone();
    let engine = Engine::start(options).expect("the engine starts");
    let list =
        tokio::runtime::Runtime::new().unwrap().block_on(dispatch(&engine, "devices.list", Value::Null)).unwrap();
    let gpu = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["compute_backend"].as_str().is_some_and(|b| b != "flex"))
        .expect("a GPU that computes")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let device: Device = engine.compute_device(&DeviceId(gpu.clone())).unwrap();
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param"
    );
    let weights = HostWeights::read(std::path::Path::new(model)).expect("the bundled model reads");
    let upscaler =
        Arc::new(Upscaler::build_with(&weights, &device, Precision::F32, Kernels::best_for(&device)).unwrap());

    // The longest gap between two of the background sampler's telemetry events (one a second
    // when nothing holds a tick up).
    let longest_gap = Arc::new(AtomicU64::new(0));
    {
        let (mut events, longest_gap) = (engine.subscribe(), longest_gap.clone());
        std::thread::spawn(move || {
            let mut previous: Option<Instant> = None;
            while let Ok(event) = events.blocking_recv() {
                if matches!(event, kiln_engine::events::KilnEvent::Telemetry { .. }) {
                    if let Some(previous) = previous {
                        longest_gap.fetch_max(previous.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                    previous = Some(Instant::now());
                }
            }
        });
    }
    let finished = Arc::new(AtomicU64::new(0));
    for t in 0..threads {
        let (device, upscaler, finished) = (device.clone(), upscaler.clone(), finished.clone());
        std::thread::spawn(move || {
            // Each thread its own image size, so tile shapes differ between threads.
            let mut image = Planes::zeros(3, 14 + 2 * t, 12);
            for (i, v) in image.data.iter_mut().enumerate() {
                *v = ((i * 2654435761 + t) % 1000) as f32 / 1000.0;
            }
            let options = TileOptions { max_tile: 16, min_tile: 8, overlap: 4, border: 2 };
            let readout = if t % 2 == 0 { Readout::Rgb8 } else { Readout::Planes };
            loop {
                let mut runner = NetRunner::new(upscaler.clone(), device.clone(), false);
                tiling::upscale(&image, &mut runner, options, readout, &mut |_| true).expect("the upscale runs");
                finished.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let slowest_reading = Arc::new(AtomicU64::new(0));
    {
        let slowest = slowest_reading.clone();
        std::thread::spawn(move || {
            loop {
                let asked = Instant::now();
                let _ = device.memory_pool_usage();
                slowest.fetch_max(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }

    let started = Instant::now();
    let (mut last, mut last_change) = (0, Instant::now());
    // CPU seconds at each of the last 20 seconds: idle when they grew by less than half a second.
    let mut cpu = VecDeque::from(vec![0.0; 20]);
    let outcome = loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = finished.load(Ordering::Relaxed);
        cpu.push_back(cpu_seconds());
        let idle = cpu[cpu.len() - 1] - cpu.pop_front().unwrap() < 0.5;
        // The first upscale compiles every kernel: minutes on a software GPU.
        let patience = Duration::from_secs(if now == 0 { 600 } else { 30 });
        if now != last {
            (last, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > patience && idle {
            break Err(now);
        }
        if started.elapsed() > Duration::from_secs(seconds) {
            break Ok(now);
        }
    };
    let _ = std::fs::remove_dir_all(&data);
    let streams = if single { "one stream" } else { "a stream a thread" };
    match outcome {
        Ok(n) => println!(
            "{gpu}: {n} upscales in {seconds} s, {threads} threads, {streams}; no hang; slowest pool reading {:.1} ms; \
             longest gap between telemetry samples {} ms",
            slowest_reading.load(Ordering::Relaxed) as f64 / 1000.0,
            longest_gap.load(Ordering::Relaxed)
        ),
        Err(n) => {
            println!(
                "{gpu}: HANG after {n} upscales, {:.0} s, {threads} threads, {streams}",
                started.elapsed().as_secs_f64()
            );
            std::process::exit(3);
        }
    }
    std::process::exit(0);
}

/// CPU seconds this process has used, user and system (0 where /proc cannot be read).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
