//! NVIDIA cards through NVML (`nvml-wrapper`), loaded at run time.
//!
//! `libnvidia-ml.so` / `nvml.dll` ships with the driver, not with Kiln: without it (no NVIDIA
//! driver, a container without the library) NVML reads as "not available" with the loader's
//! reason, and nothing else changes.

use std::ffi::OsStr;
use std::path::PathBuf;

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use crate::devices::power::{PowerError, PowerLimits, PowerTarget};
use crate::devices::status::{DeviceStatus, GpuProcess, PcieLink, Reading, fill};
use crate::devices::{MetricSource, ThrottleReason};

/// How to find NVML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NvmlMode {
    /// The driver's library on the usual search path.
    #[default]
    Auto,
    /// Do not load NVML at all.
    Disabled,
    /// Load the library from this path.
    Library(PathBuf),
}

/// A card as NVML names it, for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmlIdentity {
    pub index: u32,
    pub name: String,
    pub uuid: Option<String>,
    /// `0000:01:00.0` (NVML's own form has an 8-digit domain).
    pub pci_bus_id: Option<String>,
    pub pci_device_id: Option<u32>,
    pub memory_total_bytes: Option<u64>,
}

/// Driver-level versions NVML reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmlDriver {
    pub driver_version: String,
    pub nvml_version: String,
    /// `12.8` style.
    pub cuda_driver_version: Option<String>,
}

pub struct NvmlSource {
    nvml: Result<Nvml, String>,
}

impl NvmlSource {
    pub fn open(mode: &NvmlMode) -> Self {
        let nvml = match mode {
            NvmlMode::Disabled => Err("NVML disabled by configuration".to_owned()),
            NvmlMode::Auto => Nvml::init().map_err(|e| describe_init_error(&e)),
            NvmlMode::Library(path) => {
                Nvml::builder().lib_path(OsStr::new(path.as_os_str())).init().map_err(|e| describe_init_error(&e))
            }
        };
        if let Err(reason) = &nvml {
            tracing::debug!("NVML not available: {reason}");
        }
        Self { nvml }
    }

    /// Why NVML gives nothing, or `None` when it is loaded.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.nvml.as_ref().err().map(String::as_str)
    }

    pub fn driver(&self) -> Option<NvmlDriver> {
        let nvml = self.nvml.as_ref().ok()?;
        Some(NvmlDriver {
            driver_version: nvml.sys_driver_version().unwrap_or_default(),
            nvml_version: nvml.sys_nvml_version().unwrap_or_default(),
            cuda_driver_version: nvml
                .sys_cuda_driver_version()
                .ok()
                .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
        })
    }

    pub fn identities(&self) -> Vec<NvmlIdentity> {
        let Ok(nvml) = &self.nvml else { return Vec::new() };
        let count = nvml.device_count().unwrap_or(0);
        (0..count)
            .filter_map(|index| {
                let device = nvml.device_by_index(index).ok()?;
                let pci = device.pci_info().ok();
                Some(NvmlIdentity {
                    index,
                    name: device.name().unwrap_or_else(|_| format!("NVIDIA GPU {index}")),
                    uuid: device.uuid().ok(),
                    pci_bus_id: pci.as_ref().and_then(|p| normalise_bus_id(&p.bus_id)),
                    pci_device_id: pci.as_ref().map(|p| p.pci_device_id >> 16),
                    memory_total_bytes: device.memory_info().ok().map(|m| m.total),
                })
            })
            .collect()
    }

    /// Fills `status` with every metric NVML gives for the card at `index`.
    pub fn read(&self, index: u32, status: &mut DeviceStatus, process_name: &dyn Fn(u32) -> String, kiln_pid: u32) {
        let nvml = match &self.nvml {
            Ok(nvml) => nvml,
            Err(reason) => {
                status.unavailable(MetricSource::Nvml, reason.clone());
                return;
            }
        };
        let device = match nvml.device_by_index(index) {
            Ok(device) => device,
            Err(error) => {
                status.unavailable(MetricSource::Nvml, format!("device {index}: {error}"));
                return;
            }
        };
        let source = MetricSource::Nvml;
        if let Ok(rates) = device.utilization_rates() {
            fill(&mut status.utilization_percent, Some(rates.gpu as f64), source);
            fill(&mut status.memory_busy_percent, Some(rates.memory as f64), source);
        }
        if let Ok(memory) = device.memory_info() {
            fill(&mut status.memory_used_bytes, Some(memory.used), source);
            fill(&mut status.memory_total_bytes, Some(memory.total), source);
        }
        fill(&mut status.temperature_c, device.temperature(TemperatureSensor::Gpu).ok().map(f64::from), source);
        fill(&mut status.power_watts, device.power_usage().ok().map(milliwatts), source);
        fill(&mut status.power_limit_watts, device.enforced_power_limit().ok().map(milliwatts), source);
        let clock = |c: Clock| device.clock_info(c).ok().map(f64::from);
        let max_clock = |c: Clock| device.max_clock_info(c).ok().map(f64::from);
        fill(&mut status.clock_graphics_mhz, clock(Clock::Graphics), source);
        fill(&mut status.clock_memory_mhz, clock(Clock::Memory), source);
        fill(&mut status.clock_graphics_max_mhz, max_clock(Clock::Graphics), source);
        fill(&mut status.clock_memory_max_mhz, max_clock(Clock::Memory), source);
        if device.num_fans().unwrap_or(0) > 0 {
            fill(&mut status.fan_percent, device.fan_speed(0).ok().map(f64::from), source);
        }
        let link = PcieLink {
            generation: device.current_pcie_link_gen().ok(),
            width: device.current_pcie_link_width().ok(),
            max_generation: device.max_pcie_link_gen().ok(),
            max_width: device.max_pcie_link_width().ok(),
        };
        if link.generation.is_some() || link.width.is_some() {
            fill(&mut status.pcie_link, Some(link), source);
        }
        // NVML reports KB/s over a 20 ms window.
        let kbps = |c: PcieUtilCounter| device.pcie_throughput(c).ok().map(|k| k as f64 * 1024.0);
        fill(&mut status.pcie_tx_bytes_per_s, kbps(PcieUtilCounter::Send), source);
        fill(&mut status.pcie_rx_bytes_per_s, kbps(PcieUtilCounter::Receive), source);
        if let Ok(reasons) = device.current_throttle_reasons() {
            fill(&mut status.throttle_reasons, Some(throttle_reasons(reasons)), source);
        }
        let ecc = device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile);
        fill(&mut status.ecc_uncorrected_errors, ecc.ok(), source);

        let mut processes: Vec<GpuProcess> = Vec::new();
        let lists =
            [("compute", device.running_compute_processes()), ("graphics", device.running_graphics_processes())];
        for (kind, list) in lists {
            for info in list.into_iter().flatten() {
                let memory = match info.used_gpu_memory {
                    UsedGpuMemory::Used(bytes) => Some(bytes),
                    UsedGpuMemory::Unavailable => None,
                };
                if let Some(existing) = processes.iter_mut().find(|p| p.pid == info.pid) {
                    existing.kind = "compute+graphics".to_owned();
                    existing.memory_bytes = existing.memory_bytes.max(memory);
                    continue;
                }
                let mut name = process_name(info.pid);
                if name.is_empty() {
                    name = nvml.sys_process_name(info.pid, 64).unwrap_or_default();
                }
                processes.push(GpuProcess {
                    pid: info.pid,
                    name,
                    memory_bytes: memory,
                    engine_percent: None,
                    kind: kind.to_owned(),
                    is_kiln: info.pid == kiln_pid,
                });
            }
        }
        processes.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes.unwrap_or(0)));
        if status.processes.is_none() {
            status.processes = Some(Reading::new(processes, source));
        }
    }

    pub fn power_limits(&self, index: u32) -> Result<PowerLimits, PowerError> {
        let nvml = self.nvml.as_ref().map_err(|reason| PowerError::Unsupported(reason.clone()))?;
        let device = nvml.device_by_index(index).map_err(driver_error)?;
        let constraints = device.power_management_limit_constraints().ok();
        Ok(PowerLimits {
            target: PowerTarget::Nvml,
            current_watts: device.power_management_limit().map(milliwatts).map_err(driver_error)?,
            enforced_watts: device.enforced_power_limit().ok().map(milliwatts),
            default_watts: device.power_management_limit_default().ok().map(milliwatts),
            min_watts: constraints.as_ref().map(|c| milliwatts(c.min_limit)),
            max_watts: constraints.as_ref().map(|c| milliwatts(c.max_limit)),
        })
    }

    pub fn set_power_limit(&self, index: u32, watts: f64) -> Result<(), PowerError> {
        let nvml = self.nvml.as_ref().map_err(|reason| PowerError::Unsupported(reason.clone()))?;
        let mut device = nvml.device_by_index(index).map_err(driver_error)?;
        device.set_power_management_limit((watts * 1000.0).round() as u32).map_err(|error| match error {
            NvmlError::NoPermission => PowerError::PermissionDenied(
                "the NVIDIA driver allows power limits to be set by root only (as `nvidia-smi -pl` does)".to_owned(),
            ),
            NvmlError::NotSupported => {
                PowerError::Unsupported("this card does not allow its power limit to be changed".to_owned())
            }
            other => driver_error(other),
        })
    }
}

fn driver_error(error: NvmlError) -> PowerError {
    PowerError::Driver(format!("NVML: {error}"))
}

fn milliwatts(mw: u32) -> f64 {
    mw as f64 / 1000.0
}

fn describe_init_error(error: &NvmlError) -> String {
    match error {
        NvmlError::LibloadingError(inner) => {
            format!("the NVIDIA management library could not be loaded ({inner}); no NVIDIA driver here")
        }
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".to_owned(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_owned(),
        other => format!("NVML failed to start: {other}"),
    }
}

/// NVML's `00000000:01:00.0` as sysfs and Vulkan write it: `0000:01:00.0`.
pub fn normalise_bus_id(bus_id: &str) -> Option<String> {
    let bus_id = bus_id.trim().trim_end_matches('\0').to_ascii_lowercase();
    let (domain, rest) = bus_id.split_once(':')?;
    let domain = u32::from_str_radix(domain, 16).ok()?;
    Some(format!("{domain:04x}:{rest}"))
}

fn throttle_reasons(reasons: ThrottleReasons) -> Vec<ThrottleReason> {
    let table = [
        (ThrottleReasons::GPU_IDLE, ThrottleReason::Idle),
        (ThrottleReasons::APPLICATIONS_CLOCKS_SETTING, ThrottleReason::ApplicationClocks),
        (ThrottleReasons::SW_POWER_CAP, ThrottleReason::PowerCap),
        (ThrottleReasons::HW_SLOWDOWN, ThrottleReason::HardwareSlowdown),
        (ThrottleReasons::HW_THERMAL_SLOWDOWN, ThrottleReason::HardwareSlowdown),
        (ThrottleReasons::SW_THERMAL_SLOWDOWN, ThrottleReason::ThermalSlowdown),
        (ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN, ThrottleReason::PowerBrake),
        (ThrottleReasons::SYNC_BOOST, ThrottleReason::SyncBoost),
        (ThrottleReasons::DISPLAY_CLOCK_SETTING, ThrottleReason::DisplayClocks),
    ];
    let mut out: Vec<ThrottleReason> = Vec::new();
    for (flag, reason) in table {
        if reasons.contains(flag) && !out.contains(&reason) {
            out.push(reason);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_ids_are_normalised() {
        assert_eq!(normalise_bus_id("00000000:01:00.0").as_deref(), Some("0000:01:00.0"));
        assert_eq!(normalise_bus_id("00000001:C1:00.0").as_deref(), Some("0001:c1:00.0"));
        assert_eq!(normalise_bus_id("junk"), None);
    }

    #[test]
    fn a_missing_library_reads_as_not_available() {
        let source = NvmlSource::open(&NvmlMode::Library("/nonexistent/libnvidia-ml.so.1".into()));
        let reason = source.unavailable_reason().expect("NVML cannot load from a missing path");
        assert!(reason.contains("could not be loaded"), "{reason}");
        assert!(source.identities().is_empty());
        assert!(source.driver().is_none());
        let mut status = DeviceStatus::default();
        source.read(0, &mut status, &|_| String::new(), 0);
        assert_eq!(status.unavailable.len(), 1);
        assert_eq!(status.unavailable[0].source, MetricSource::Nvml);
        assert!(matches!(source.power_limits(0), Err(PowerError::Unsupported(_))));
    }

    #[test]
    fn throttle_flags_map_once_each() {
        let reasons = throttle_reasons(
            ThrottleReasons::HW_SLOWDOWN | ThrottleReasons::HW_THERMAL_SLOWDOWN | ThrottleReasons::SW_POWER_CAP,
        );
        assert_eq!(reasons, vec![ThrottleReason::PowerCap, ThrottleReason::HardwareSlowdown]);
    }
}
