//! A device's live readings: every metric optional, every value tagged with where it came from.
//!
//! A missing driver or a metric a card does not report leaves the field empty and adds an
//! [`Unavailable`] line saying why; it is never an error.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::devices::DeviceId;

/// Where a reading comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    /// NVIDIA's management library, loaded at run time.
    Nvml,
    /// Linux `/sys/class/drm/cardN/device` files (amdgpu, i915, xe).
    Sysfs,
    /// Linux hardware monitoring (`hwmon`) files of the card.
    Hwmon,
    /// Linux `/proc/PID/fdinfo`: per-client DRM memory and engine time.
    Fdinfo,
    /// Windows DXGI adapter descriptions and budgets.
    Dxgi,
    /// Windows performance counters (`GPU Engine`, `GPU Adapter Memory`, `GPU Process Memory`).
    Pdh,
    /// The operating system's CPU and memory counters, through `sysinfo`.
    Sysinfo,
    /// wgpu's adapter enumeration.
    Wgpu,
    /// cubecl's memory pools for the compute device Kiln opened.
    Cubecl,
}

/// One value and its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Reading<T> {
    pub value: T,
    pub source: MetricSource,
}

impl<T> Reading<T> {
    pub fn new(value: T, source: MetricSource) -> Self {
        Self { value, source }
    }
}

/// The PCIe link a card is trained at, and the best it could do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PcieLink {
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_generation: Option<u32>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
}

/// Why the card is running below its clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleReason {
    /// Idle: nothing to run (not a problem).
    Idle,
    /// Held by an application's clock setting.
    ApplicationClocks,
    /// At the power limit (software power cap).
    PowerCap,
    /// Hardware slowdown: temperature or power brake asserted by the board.
    HardwareSlowdown,
    /// Driver-side thermal slowdown.
    ThermalSlowdown,
    /// External power brake (power supply signalling).
    PowerBrake,
    /// Clocks synchronised with another GPU.
    SyncBoost,
    /// Display clock setting.
    DisplayClocks,
}

impl ThrottleReason {
    /// Whether the reason means the card is being held back by heat or power delivery.
    pub fn is_distress(self) -> bool {
        matches!(self, Self::HardwareSlowdown | Self::ThermalSlowdown | Self::PowerBrake)
    }
}

/// A process holding memory or time on a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct GpuProcess {
    pub pid: u32,
    pub name: String,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Share of the busiest engine this process used since the last sample.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_percent: Option<f64>,
    /// `compute`, `graphics`, or `compute+graphics` where the driver says.
    pub kind: String,
    /// Whether this is Kiln itself.
    pub is_kiln: bool,
}

/// What Kiln's own compute pools hold on the device (cubecl's allocator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct PoolUsage {
    pub allocations: u64,
    pub bytes_in_use: u64,
    pub bytes_padding: u64,
    pub bytes_reserved: u64,
}

/// Processor figures for the CPU device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct CpuStatus {
    pub logical_cores: u32,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_cores: Option<u32>,
    /// Per logical core, percent.
    pub core_percent: Vec<f64>,
    pub frequency_mhz: f64,
    /// 1, 5 and 15 minute load averages (not on Windows).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_average: Option<[f64; 3]>,
    pub swap_used_bytes: u64,
    pub swap_total_bytes: u64,
}

/// A source that does not feed this device, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Unavailable {
    pub source: MetricSource,
    pub reason: String,
}

/// Everything read about one device at one moment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS)]
pub struct DeviceStatus {
    pub device_id: DeviceId,
    /// Unix time of the sample, milliseconds.
    pub sampled_at_ms: u64,
    /// Busiest engine, percent (CPU load for the CPU).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_percent: Option<Reading<f64>>,
    /// Memory controller busy, percent.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_busy_percent: Option<Reading<f64>>,
    /// VRAM in use by every process (system RAM for the CPU).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<Reading<u64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<Reading<u64>>,
    /// The main die temperature (edge on AMD, GPU on NVIDIA, package on CPUs).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<Reading<f64>>,
    /// Hottest spot of the die (AMD junction).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_hotspot_c: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_memory_c: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_watts: Option<Reading<f64>>,
    /// The limit the board enforces now.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_watts: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_graphics_mhz: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_memory_mhz: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_graphics_max_mhz: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_memory_max_mhz: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_percent: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_rpm: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_link: Option<Reading<PcieLink>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_tx_bytes_per_s: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_rx_bytes_per_s: Option<Reading<f64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_reasons: Option<Reading<Vec<ThrottleReason>>>,
    /// Uncorrected ECC errors since the driver loaded.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_uncorrected_errors: Option<Reading<u64>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Reading<Vec<GpuProcess>>>,
    /// Kiln's own compute pools on this device, where Kiln has opened it.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kiln_pools: Option<Reading<PoolUsage>>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStatus>,
    /// Sources that gave nothing for this device this time, and why.
    pub unavailable: Vec<Unavailable>,
}

impl DeviceStatus {
    pub fn new(device_id: DeviceId, sampled_at_ms: u64) -> Self {
        Self { device_id, sampled_at_ms, ..Self::default() }
    }

    /// Records that `source` gave nothing, once per source.
    pub fn unavailable(&mut self, source: MetricSource, reason: impl Into<String>) {
        if !self.unavailable.iter().any(|u| u.source == source) {
            self.unavailable.push(Unavailable { source, reason: reason.into() });
        }
    }

    /// Share of memory in use, percent, where both figures are known.
    pub fn memory_percent(&self) -> Option<f64> {
        let used = self.memory_used_bytes.as_ref()?.value as f64;
        let total = self.memory_total_bytes.as_ref()?.value as f64;
        (total > 0.0).then(|| 100.0 * used / total)
    }
}

/// Fills `slot` with `value` unless an earlier, preferred source already did.
pub(crate) fn fill<T>(slot: &mut Option<Reading<T>>, value: Option<T>, source: MetricSource) {
    if slot.is_none()
        && let Some(value) = value
    {
        *slot = Some(Reading::new(value, source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_sources_win() {
        let mut slot = None;
        fill(&mut slot, Some(1.0), MetricSource::Nvml);
        fill(&mut slot, Some(2.0), MetricSource::Sysfs);
        assert_eq!(slot, Some(Reading::new(1.0, MetricSource::Nvml)));
    }

    #[test]
    fn memory_percent_needs_both_figures() {
        let mut status = DeviceStatus::new(DeviceId::cpu(), 0);
        assert_eq!(status.memory_percent(), None);
        status.memory_used_bytes = Some(Reading::new(25, MetricSource::Sysinfo));
        status.memory_total_bytes = Some(Reading::new(100, MetricSource::Sysinfo));
        assert_eq!(status.memory_percent(), Some(25.0));
    }

    #[test]
    fn missing_metrics_are_left_out_of_json() {
        let status = DeviceStatus::new(DeviceId::cpu(), 5);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json, serde_json::json!({ "device_id": "cpu", "sampled_at_ms": 5, "unavailable": [] }));
    }
}
