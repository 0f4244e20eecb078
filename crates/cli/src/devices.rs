//! `kiln devices`: the device table, a JSON snapshot, benchmarks, power limits and
//! recommendations, through the same engine operations the UI calls.

use anyhow::bail;
use clap::{Args, Subcommand};
use kiln_engine::devices::{
    DeviceHealth, DeviceRef, DeviceSnapshot, DeviceStatus, HealthLevel, NoInput, SetPowerLimit,
};
use kiln_engine::{Engine, EngineOptions};

use crate::table;

#[derive(Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// Print a JSON snapshot of every device instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Action {
    /// Measure matmul TFLOP/s and memory bandwidth through burn.
    Benchmark {
        /// Device id or row number from `kiln devices` (default: every device Kiln computes on).
        device: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show power limits, or set one with --set (where the driver permits).
    Power {
        device: String,
        /// New limit in watts.
        #[arg(long)]
        set: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Recommended precision, memory budget and tile size.
    Optimize {
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Everything about one device: drivers, capabilities, limits, power (JSON).
    Show { device: String },
}

fn start() -> anyhow::Result<Engine> {
    let mut options = EngineOptions::standard();
    options.background_sampling = false;
    Ok(Engine::start(options)?)
}

/// A device named by id or by its row number in the table.
pub(crate) async fn resolve(engine: &Engine, name: &str) -> anyhow::Result<DeviceRef> {
    let list = engine.devices_list(NoInput {}).await?;
    if let Some(device) = list.devices.iter().find(|d| d.id.as_str() == name) {
        return Ok(DeviceRef { device_id: device.id.clone() });
    }
    if let Some(device) = name.parse::<usize>().ok().and_then(|i| list.devices.get(i)) {
        return Ok(DeviceRef { device_id: device.id.clone() });
    }
    let known: Vec<&str> = list.devices.iter().map(|d| d.id.as_str()).collect();
    bail!("no device {name:?}; devices are {}", known.join(", "))
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let engine = tokio::task::spawn_blocking(start).await??;
    match args.action {
        None => {
            // Rates (CPU load, engine time, energy) need two readings.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let sampler = engine.clone();
            tokio::task::spawn_blocking(move || sampler.sample_now()).await?;
            let snapshot = engine.devices_snapshot(NoInput {}).await?;
            if args.json {
                print_json(&snapshot)
            } else {
                println!("{}", render_table(&snapshot.devices));
                Ok(())
            }
        }
        Some(Action::Benchmark { device, json }) => benchmark(&engine, device, json).await,
        Some(Action::Power { device, set, json }) => {
            let target = resolve(&engine, &device).await?;
            let info = match set {
                Some(watts) => {
                    engine.devices_set_power_limit(SetPowerLimit { device_id: target.device_id, watts }).await?
                }
                None => engine.devices_power(target).await?,
            };
            if json {
                return print_json(&info);
            }
            let l = &info.limits;
            let opt = |v: Option<f64>| v.map_or("-".to_owned(), |w| format!("{w:.0} W"));
            println!(
                "{}: limit {:.0} W (enforced {}, default {}, range {} to {}); {}",
                info.device_id,
                l.current_watts,
                opt(l.enforced_watts),
                opt(l.default_watts),
                opt(l.min_watts),
                opt(l.max_watts),
                info.can_set_reason
            );
            Ok(())
        }
        Some(Action::Optimize { device, json }) => {
            let r = engine.devices_optimize(resolve(&engine, &device).await?).await?;
            if json {
                return print_json(&r);
            }
            println!("{}:", r.device_id);
            println!("  precision  {:?}: {}", r.precision, r.precision_reason);
            println!("  budget     {}: {}", table::bytes(r.memory_budget_bytes), r.budget_reason);
            println!("  tile       {} px: {}", r.tile_size, r.tile_reason);
            Ok(())
        }
        Some(Action::Show { device }) => print_json(&engine.devices_details(resolve(&engine, &device).await?).await?),
    }
}

async fn benchmark(engine: &Engine, device: Option<String>, json: bool) -> anyhow::Result<()> {
    let targets = match device {
        Some(name) => vec![resolve(engine, &name).await?],
        None => engine
            .devices_list(NoInput {})
            .await?
            .devices
            .into_iter()
            .filter(|d| d.compute_backend.is_some())
            .map(|d| DeviceRef { device_id: d.id })
            .collect(),
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for target in targets {
        let details = engine.devices_details(target.clone()).await?;
        if !json {
            eprintln!("Benchmarking {} ({}) ...", details.device.name, target.device_id);
        }
        // One device failing does not stop the others.
        let result = match engine.devices_benchmark(target.clone()).await {
            Ok(result) => result,
            Err(error) => {
                eprintln!("benchmark on {} failed: {} ({:?})", target.device_id, error.message, error.code);
                failures.push(target.device_id);
                continue;
            }
        };
        if !json {
            let peaks = kiln_engine::devices::peaks::lookup(&details.device.name);
            println!("{} ({}) on {}:", details.device.name, result.device_id, result.backend);
            for m in &result.matmul {
                let peak = peaks.as_ref().map(|p| if m.dtype == "f16" { p.fp16_tflops } else { p.fp32_tflops });
                let share = peak
                    .map(|p| format!("  (published peak {p} TFLOP/s: {:.0}%)", 100.0 * m.tflops / p))
                    .unwrap_or_default();
                println!("  matmul {} {}³: {:.2} TFLOP/s over {} runs{share}", m.dtype, m.size, m.tflops, m.iterations);
            }
            if let Some(b) = &result.bandwidth {
                let share = peaks
                    .as_ref()
                    .map(|p| {
                        format!(
                            "  (published {} GB/s: {:.0}%)",
                            p.memory_gb_per_s,
                            100.0 * b.gb_per_s / p.memory_gb_per_s
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "  memory bandwidth: {:.1} GB/s ({} read+written per pass){share}",
                    b.gb_per_s,
                    table::bytes(b.bytes_per_pass)
                );
            }
            for skipped in &result.skipped {
                println!("  skipped: {skipped}");
            }
        }
        results.push(result);
    }
    if json {
        print_json(&results)?;
    }
    if !failures.is_empty() {
        let ids: Vec<String> = failures.iter().map(ToString::to_string).collect();
        bail!("the benchmark failed on {}", ids.join(", "));
    }
    Ok(())
}

fn render_table(devices: &[DeviceSnapshot]) -> String {
    let header = ["#", "ID", "NAME", "KIND", "COMPUTE", "UTIL", "MEMORY", "TEMP", "POWER", "HEALTH"];
    let rows: Vec<Vec<String>> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let status = d.status.clone().unwrap_or_default();
            vec![
                i.to_string(),
                d.device.id.to_string(),
                d.device.name.clone(),
                d.device.kind.as_str().to_owned(),
                d.device.compute_backend.clone().unwrap_or_else(|| "-".into()),
                status.utilization_percent.as_ref().map_or("-".into(), |r| format!("{:.0}%", r.value)),
                memory(&status),
                status.temperature_c.as_ref().map_or("-".into(), |r| format!("{:.0}°C", r.value)),
                power(&status),
                health(d.health.as_ref()),
            ]
        })
        .collect();
    let mut out = table::render(&header, &rows);
    for d in devices {
        if let Some(h) = d.health.as_ref().filter(|h| h.level != HealthLevel::Ok) {
            for reason in &h.reasons {
                out.push_str(&format!("\n  {}: {}", d.device.id, reason.message));
            }
        }
    }
    out
}

fn memory(status: &DeviceStatus) -> String {
    match (&status.memory_used_bytes, &status.memory_total_bytes) {
        (Some(used), Some(total)) => format!("{} / {}", table::bytes(used.value), table::bytes(total.value)),
        (None, Some(total)) => format!("? / {}", table::bytes(total.value)),
        _ => "-".into(),
    }
}

fn power(status: &DeviceStatus) -> String {
    match (&status.power_watts, &status.power_limit_watts) {
        (Some(p), Some(l)) => format!("{:.0} / {:.0} W", p.value, l.value),
        (Some(p), None) => format!("{:.0} W", p.value),
        _ => "-".into(),
    }
}

fn health(h: Option<&DeviceHealth>) -> String {
    match h.map(|h| h.level) {
        Some(HealthLevel::Ok) => "ok".into(),
        Some(HealthLevel::Warning) => "warning".into(),
        Some(HealthLevel::Critical) => "critical".into(),
        None => "-".into(),
    }
}
