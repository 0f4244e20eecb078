//! CPU cost of one telemetry tick: every source read for every device, as the background sampler
//! does once a second. Run with `cargo bench -p kiln-engine --bench sampler`.
//!
//! Measures this machine's real sources (NVML where a driver is present, sysfs, sysinfo, wgpu
//! adapters found at start) and, separately, the Linux DRM path on the AMD fixture tree, where
//! fdinfo scanning and hwmon parsing dominate. Reports wall time and the thread's CPU time.

use std::path::PathBuf;
use std::time::Instant;

use kiln_engine::devices::telemetry::sysfs::SystemRoots;
use kiln_engine::devices::telemetry::{Telemetry, TelemetryOptions};

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn measure(label: &str, options: TelemetryOptions, ticks: usize) {
    let mut telemetry = Telemetry::open(options);
    let devices = telemetry.discover();
    // The first tick sets rate baselines (CPU load, fdinfo engine time).
    telemetry.sample(&devices, 0);
    let mut wall = Vec::with_capacity(ticks);
    let mut cpu = Vec::with_capacity(ticks);
    for i in 0..ticks {
        let (w0, c0) = (Instant::now(), thread_cpu_ns());
        let statuses = telemetry.sample(&devices, 1000 * (i as u64 + 1));
        cpu.push((thread_cpu_ns() - c0) as f64 / 1e6);
        wall.push(w0.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(statuses);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (wall_mean, cpu_mean) = (mean(&wall), mean(&cpu));
    println!(
        "{label}: {} devices, {ticks} ticks: wall {wall_mean:.3} ms mean / {:.3} ms median; CPU {cpu_mean:.3} ms mean / {:.3} ms median per tick ({:.3}% of one core at 1 Hz)",
        devices.len(),
        median(&mut wall),
        median(&mut cpu),
        cpu_mean / 10.0,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    measure("this machine", TelemetryOptions::default(), 50);
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/machines/amd-rx7900xtx");
    measure(
        "fixture amdgpu + fdinfo",
        TelemetryOptions { roots: SystemRoots::under(&fixture), skip_wgpu: true, ..TelemetryOptions::default() },
        200,
    );
}
