//! The CPU and system RAM through `sysinfo`: load per core, frequency, memory, swap, and the
//! package temperature where the platform exposes one.

use sysinfo::{Components, System};

use crate::devices::MetricSource;
use crate::devices::status::{CpuStatus, DeviceStatus, fill};

/// The processor as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuIdentity {
    pub brand: String,
    pub vendor: String,
    pub logical_cores: u32,
    pub physical_cores: Option<u32>,
    pub memory_total_bytes: u64,
}

pub struct SystemSource {
    system: System,
    components: Components,
}

impl Default for SystemSource {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemSource {
    pub fn new() -> Self {
        let mut system = System::new();
        // CPU usage is a rate: the first refresh only sets the baseline.
        system.refresh_cpu_usage();
        system.refresh_cpu_frequency();
        system.refresh_memory();
        Self { system, components: Components::new_with_refreshed_list() }
    }

    pub fn identity(&self) -> CpuIdentity {
        let cpus = self.system.cpus();
        let brand = cpus.first().map(|c| c.brand().trim().to_owned()).unwrap_or_default();
        CpuIdentity {
            brand: if brand.is_empty() { format!("{} CPU", System::cpu_arch()) } else { brand },
            vendor: cpus.first().map(|c| c.vendor_id().to_owned()).unwrap_or_default(),
            logical_cores: cpus.len() as u32,
            physical_cores: System::physical_core_count().map(|n| n as u32),
            memory_total_bytes: self.system.total_memory(),
        }
    }

    /// Fills the CPU device's status: utilisation is CPU load, memory is system RAM.
    pub fn read(&mut self, status: &mut DeviceStatus) {
        self.system.refresh_cpu_usage();
        self.system.refresh_cpu_frequency();
        self.system.refresh_memory();
        self.components.refresh(false);
        let source = MetricSource::Sysinfo;
        let cpus = self.system.cpus();
        fill(&mut status.utilization_percent, Some(self.system.global_cpu_usage() as f64), source);
        fill(&mut status.memory_used_bytes, Some(self.system.used_memory()), source);
        fill(&mut status.memory_total_bytes, Some(self.system.total_memory()), source);
        fill(&mut status.temperature_c, self.package_temperature(), source);
        let frequency = cpus.iter().map(|c| c.frequency() as f64).fold(0.0, f64::max);
        if frequency > 0.0 {
            fill(&mut status.clock_graphics_mhz, Some(frequency), source);
        }
        let load = System::load_average();
        status.cpu = Some(CpuStatus {
            logical_cores: cpus.len() as u32,
            physical_cores: System::physical_core_count().map(|n| n as u32),
            core_percent: cpus.iter().map(|c| c.cpu_usage() as f64).collect(),
            frequency_mhz: frequency,
            load_average: (!cfg!(windows)).then_some([load.one, load.five, load.fifteen]),
            swap_used_bytes: self.system.used_swap(),
            swap_total_bytes: self.system.total_swap(),
        });
        if status.temperature_c.is_none() {
            status.unavailable(source, "no CPU temperature sensor is exposed on this machine");
        }
    }

    /// The package sensor (`Package id 0`, `Tctl`, `Tdie`), else the hottest CPU-ish sensor.
    fn package_temperature(&self) -> Option<f64> {
        let readings: Vec<(String, f64)> = self
            .components
            .iter()
            .filter_map(|c| Some((c.label().to_owned(), c.temperature()? as f64)))
            .filter(|(_, t)| t.is_finite() && *t > 0.0)
            .collect();
        let preferred = ["Package id 0", "Tctl", "Tdie", "CPU"];
        preferred
            .iter()
            .find_map(|want| readings.iter().find(|(label, _)| label.contains(want)))
            .map(|(_, t)| *t)
            .or_else(|| {
                readings
                    .iter()
                    .filter(|(label, _)| {
                        let l = label.to_ascii_lowercase();
                        l.contains("cpu") || l.contains("core") || l.contains("k10temp")
                    })
                    .map(|(_, t)| *t)
                    .reduce(f64::max)
            })
    }
}

/// A process's short name (`/proc/PID/comm` on Linux, the executable's file name on Windows),
/// empty when it cannot be read.
pub fn process_name(proc_root: &std::path::Path, pid: u32) -> String {
    #[cfg(windows)]
    {
        let _ = proc_root;
        super::windows::process_name(pid)
    }
    #[cfg(not(windows))]
    {
        std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DeviceId;

    #[test]
    fn reads_this_machine() {
        let mut source = SystemSource::new();
        let identity = source.identity();
        assert!(identity.logical_cores >= 1);
        assert!(identity.memory_total_bytes > 0);
        let mut status = DeviceStatus::new(DeviceId::cpu(), 0);
        source.read(&mut status);
        let cpu = status.cpu.expect("CPU figures");
        assert_eq!(cpu.core_percent.len() as u32, identity.logical_cores);
        let used = status.memory_used_bytes.unwrap().value;
        let total = status.memory_total_bytes.unwrap().value;
        assert!(used > 0 && used <= total, "{used} of {total}");
    }
}
