//! Per-client GPU usage from `/proc/PID/fdinfo`, the DRM usage-stats format
//! (the kernel's Documentation/gpu/drm-usage-stats.rst), as nvtop and intel_gpu_top read it.
//!
//! Each open DRM file reports `drm-driver`, `drm-pdev` (PCI address), `drm-client-id`, engine
//! busy time (`drm-engine-<name>: N ns`, with `drm-engine-capacity-<name>`), or busy cycles
//! against total cycles (`drm-cycles-<class>` and `drm-total-cycles-<class>`, xe), and memory per
//! region (`drm-total-<region>`, `drm-resident-<region>`; older amdgpu `drm-memory-vram`).
//! Engine figures are cumulative, so utilisation needs two samples.

use std::collections::HashMap;
use std::path::Path;

use crate::devices::GpuProcess;

/// One DRM client (an open file description) at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrmClient {
    pub pid: u32,
    pub driver: String,
    pub pdev: Option<String>,
    pub client_id: u64,
    /// Engine name -> cumulative busy nanoseconds.
    pub engine_ns: Vec<(String, u64)>,
    /// Engine name -> how many such engines (busy time may exceed wall time by this factor).
    pub engine_capacity: Vec<(String, u32)>,
    /// Engine class -> (busy cycles, total cycles).
    pub cycles: Vec<(String, u64, u64)>,
    /// Device-local memory this client holds, bytes.
    pub vram_bytes: u64,
}

/// Parses one fdinfo file; `None` when it is not a DRM client.
pub fn parse(pid: u32, text: &str) -> Option<DrmClient> {
    let mut client = DrmClient { pid, ..DrmClient::default() };
    let mut has_client_id = false;
    let mut resident = 0u64;
    let mut total = 0u64;
    let mut legacy_vram = 0u64;
    let mut total_cycles: HashMap<String, u64> = HashMap::new();
    let mut busy_cycles: Vec<(String, u64)> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "drm-driver" => client.driver = value.to_owned(),
            "drm-pdev" => client.pdev = Some(value.to_ascii_lowercase()),
            "drm-client-id" => {
                client.client_id = value.parse().ok()?;
                has_client_id = true;
            }
            key => {
                if let Some(name) = key.strip_prefix("drm-engine-capacity-") {
                    if let Ok(n) = value.parse() {
                        client.engine_capacity.push((name.to_owned(), n));
                    }
                } else if let Some(name) = key.strip_prefix("drm-engine-") {
                    if let Some(ns) = value.strip_suffix("ns").and_then(|v| v.trim().parse().ok()) {
                        client.engine_ns.push((name.to_owned(), ns));
                    }
                } else if let Some(class) = key.strip_prefix("drm-total-cycles-") {
                    if let Ok(n) = value.parse() {
                        total_cycles.insert(class.to_owned(), n);
                    }
                } else if let Some(class) = key.strip_prefix("drm-cycles-") {
                    if let Ok(n) = value.parse() {
                        busy_cycles.push((class.to_owned(), n));
                    }
                } else if let Some(region) = key.strip_prefix("drm-resident-") {
                    if is_device_local(region) {
                        resident = resident.saturating_add(parse_bytes(value).unwrap_or(0));
                    }
                } else if let Some(region) = key.strip_prefix("drm-total-") {
                    if is_device_local(region) {
                        total = total.saturating_add(parse_bytes(value).unwrap_or(0));
                    }
                } else if key == "drm-memory-vram" {
                    legacy_vram = parse_bytes(value).unwrap_or(0);
                }
            }
        }
    }
    if !has_client_id {
        return None;
    }
    client.cycles = busy_cycles
        .into_iter()
        .filter_map(|(class, busy)| Some((class.clone(), busy, *total_cycles.get(&class)?)))
        .collect();
    // Resident is what occupies VRAM now; total includes evicted buffers.
    client.vram_bytes = if resident > 0 {
        resident
    } else if legacy_vram > 0 {
        legacy_vram
    } else {
        total
    };
    Some(client)
}

/// VRAM-like regions: amdgpu and xe `vram*`, i915 `local*`.
fn is_device_local(region: &str) -> bool {
    region.starts_with("vram") || region.starts_with("local")
}

/// `123`, `123 KiB`, `4 MiB`, `1 GiB` to bytes.
pub fn parse_bytes(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let number: u64 = parts.next()?.parse().ok()?;
    let scale = match parts.next() {
        None => 1,
        Some("KiB") => 1 << 10,
        Some("MiB") => 1 << 20,
        Some("GiB") => 1 << 30,
        Some(_) => return None,
    };
    number.checked_mul(scale)
}

/// Every DRM client of every process Kiln may inspect, once each (a client opened by one process
/// and inherited by another is counted for the first).
pub fn scan(proc_root: &Path) -> Vec<DrmClient> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    let mut clients = Vec::new();
    let mut pids: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    for pid in pids {
        let pid_dir = proc_root.join(pid.to_string());
        let Ok(fds) = std::fs::read_dir(pid_dir.join("fd")) else { continue };
        for fd in fds.filter_map(|e| e.ok()) {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            if !target.starts_with("/dev/dri/") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(pid_dir.join("fdinfo").join(fd.file_name())) else {
                continue;
            };
            if let Some(client) = parse(pid, &text)
                && seen.insert((client.pdev.clone(), client.client_id))
            {
                clients.push(client);
            }
        }
    }
    clients
}

/// What the clients of one device add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceUsage {
    /// Busiest engine class, percent; `None` until two samples exist.
    pub utilization_percent: Option<f64>,
    pub vram_bytes: u64,
    pub processes: Vec<GpuProcess>,
}

#[derive(Debug, Clone)]
struct ClientCounters {
    at_ns: u64,
    engine_ns: Vec<(String, u64)>,
    cycles: Vec<(String, u64, u64)>,
}

/// Keeps the previous sample of each client to turn cumulative counters into percentages.
#[derive(Debug, Default)]
pub struct FdinfoRates {
    previous: HashMap<(Option<String>, u64), ClientCounters>,
}

impl FdinfoRates {
    /// Usage per PCI address from one scan taken at monotonic time `now_ns`.
    pub fn usage(
        &mut self,
        clients: &[DrmClient],
        now_ns: u64,
        process_name: impl Fn(u32) -> String,
        kiln_pid: u32,
    ) -> HashMap<String, DeviceUsage> {
        // pdev -> engine -> summed busy percent over clients.
        let mut engines: HashMap<String, HashMap<String, f64>> = HashMap::new();
        // (pdev, pid) -> (vram, busiest engine percent)
        let mut per_process: HashMap<(String, u32), (u64, Option<f64>)> = HashMap::new();
        let mut next = HashMap::new();
        for client in clients {
            let Some(pdev) = client.pdev.clone() else { continue };
            let key = (client.pdev.clone(), client.client_id);
            let busy = self.previous.get(&key).map(|prev| client_busy(prev, client, now_ns));
            next.insert(
                key,
                ClientCounters { at_ns: now_ns, engine_ns: client.engine_ns.clone(), cycles: client.cycles.clone() },
            );
            let device = engines.entry(pdev.clone()).or_default();
            let mut busiest: Option<f64> = None;
            if let Some(busy) = &busy {
                for (engine, percent) in busy {
                    *device.entry(engine.clone()).or_default() += percent;
                    busiest = Some(busiest.map_or(*percent, |b| b.max(*percent)));
                }
            }
            let entry = per_process.entry((pdev, client.pid)).or_default();
            entry.0 = entry.0.saturating_add(client.vram_bytes);
            entry.1 = match (entry.1, busiest) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        let had_previous = !self.previous.is_empty();
        self.previous = next;

        let mut usage: HashMap<String, DeviceUsage> = HashMap::new();
        for ((pdev, pid), (vram, engine_percent)) in per_process {
            let device = usage.entry(pdev).or_default();
            device.vram_bytes = device.vram_bytes.saturating_add(vram);
            device.processes.push(GpuProcess {
                pid,
                name: process_name(pid),
                memory_bytes: Some(vram),
                engine_percent: engine_percent.map(|p| p.min(100.0)),
                kind: "graphics".to_owned(),
                is_kiln: pid == kiln_pid,
            });
        }
        for (pdev, device) in usage.iter_mut() {
            device.processes.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes.unwrap_or(0)));
            if had_previous {
                let busiest = engines.get(pdev).and_then(|e| e.values().copied().reduce(f64::max)).unwrap_or(0.0);
                device.utilization_percent = Some(busiest.min(100.0));
            }
        }
        usage
    }
}

/// Busy percent per engine class of one client between two samples.
fn client_busy(previous: &ClientCounters, client: &DrmClient, now_ns: u64) -> Vec<(String, f64)> {
    let mut busy = Vec::new();
    let wall_ns = now_ns.saturating_sub(previous.at_ns);
    if wall_ns > 0 {
        for (engine, ns) in &client.engine_ns {
            let Some((_, before)) = previous.engine_ns.iter().find(|(e, _)| e == engine) else {
                continue;
            };
            let capacity = client.engine_capacity.iter().find(|(e, _)| e == engine).map_or(1, |(_, n)| (*n).max(1));
            let delta = ns.saturating_sub(*before) as f64;
            busy.push((engine.clone(), 100.0 * delta / (wall_ns as f64 * capacity as f64)));
        }
    }
    for (class, cycles, total) in &client.cycles {
        let Some((_, c0, t0)) = previous.cycles.iter().find(|(c, _, _)| c == class) else {
            continue;
        };
        let dt = total.saturating_sub(*t0);
        if dt > 0 {
            busy.push((class.clone(), 100.0 * cycles.saturating_sub(*c0) as f64 / dt as f64));
        }
    }
    busy
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMDGPU: &str = "pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1077\ndrm-driver:\tamdgpu\n\
        drm-client-id:\t17\ndrm-pdev:\t0000:03:00.0\npasid:\t32770\ndrm-memory-vram:\t524288 KiB\n\
        drm-memory-gtt:\t2048 KiB\ndrm-memory-cpu:\t0 KiB\ndrm-resident-vram:\t524288 KiB\n\
        drm-total-gtt:\t2048 KiB\ndrm-engine-gfx:\t1000000000 ns\ndrm-engine-compute:\t0 ns\n";

    #[test]
    fn parses_amdgpu_clients() {
        let client = parse(42, AMDGPU).unwrap();
        assert_eq!(client.driver, "amdgpu");
        assert_eq!(client.pdev.as_deref(), Some("0000:03:00.0"));
        assert_eq!(client.client_id, 17);
        assert_eq!(client.vram_bytes, 512 << 20);
        assert_eq!(client.engine_ns[0], ("gfx".to_owned(), 1_000_000_000));
    }

    #[test]
    fn non_drm_files_are_not_clients() {
        assert_eq!(parse(1, "pos:\t0\nflags:\t0100002\n"), None);
    }

    #[test]
    fn byte_units() {
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("3 KiB"), Some(3072));
        assert_eq!(parse_bytes("2 GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("2 parsecs"), None);
        assert_eq!(parse_bytes("18446744073709551615 KiB"), None, "overflow is refused, not a panic");
    }

    #[test]
    fn engine_time_becomes_utilisation_on_the_second_sample() {
        let mut rates = FdinfoRates::default();
        let mut client = parse(42, AMDGPU).unwrap();
        let first = rates.usage(&[client.clone()], 0, |_| "game".into(), 1);
        assert_eq!(first["0000:03:00.0"].utilization_percent, None);
        assert_eq!(first["0000:03:00.0"].vram_bytes, 512 << 20);
        // 250 ms of gfx time over one second.
        client.engine_ns[0].1 += 250_000_000;
        let second = rates.usage(&[client], 1_000_000_000, |_| "game".into(), 1);
        let device = &second["0000:03:00.0"];
        assert_eq!(device.utilization_percent, Some(25.0));
        assert_eq!(device.processes[0].engine_percent, Some(25.0));
        assert_eq!(device.processes[0].name, "game");
    }

    #[test]
    fn xe_cycles_become_utilisation() {
        let text = "drm-driver:\txe\ndrm-client-id:\t3\ndrm-pdev:\t0000:00:02.0\n\
            drm-cycles-rcs:\t1000\ndrm-total-cycles-rcs:\t10000\ndrm-total-vram0:\t4096 KiB\n";
        let mut rates = FdinfoRates::default();
        let mut client = parse(7, text).unwrap();
        assert_eq!(client.vram_bytes, 4 << 20);
        rates.usage(&[client.clone()], 0, |_| String::new(), 0);
        client.cycles[0].1 += 600;
        client.cycles[0].2 += 1000;
        let usage = rates.usage(&[client], 5, |_| String::new(), 0);
        assert_eq!(usage["0000:00:02.0"].utilization_percent, Some(60.0));
    }
}
