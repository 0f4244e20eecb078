//! Device health: ok, warning or critical, with every reason spelled out.
//!
//! Judged from one status against thresholds people can change: die and hotspot temperature,
//! memory pressure, throttling for heat or power delivery, and errors the driver reports
//! (uncorrected ECC). A metric that is not read is not judged.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{DeviceId, DeviceKind, DeviceStatus, ThrottleReason};
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum HealthLevel {
    Ok,
    Warning,
    Critical,
}

/// One reason for a level above ok.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct HealthReason {
    pub level: HealthLevel,
    /// Stable key: `temperature`, `hotspot_temperature`, `memory_pressure`, `throttling`,
    /// `ecc_errors`, `device_stalled` (the device's watchdog saw Kiln's work there stop).
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct DeviceHealth {
    pub device_id: DeviceId,
    pub level: HealthLevel,
    pub reasons: Vec<HealthReason>,
}

impl DeviceHealth {
    /// Adds a reason judged outside the readings (a stalled device), raising the level to it.
    pub fn add(&mut self, reason: HealthReason) {
        self.level = self.level.max(reason.level);
        self.reasons.push(reason);
    }
}

/// Where warnings and critical alerts start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct HealthThresholds {
    pub gpu_temperature_warning_c: f64,
    pub gpu_temperature_critical_c: f64,
    pub hotspot_temperature_warning_c: f64,
    pub hotspot_temperature_critical_c: f64,
    pub cpu_temperature_warning_c: f64,
    pub cpu_temperature_critical_c: f64,
    pub memory_warning_percent: f64,
    pub memory_critical_percent: f64,
}

impl Default for HealthThresholds {
    /// GPU figures sit below common slowdown points (NVIDIA boards slow down near 87-90 °C,
    /// AMD junction limits are 105-110 °C); memory pressure warns where allocations start to
    /// fail under fragmentation.
    fn default() -> Self {
        Self {
            gpu_temperature_warning_c: 83.0,
            gpu_temperature_critical_c: 90.0,
            hotspot_temperature_warning_c: 95.0,
            hotspot_temperature_critical_c: 105.0,
            cpu_temperature_warning_c: 85.0,
            cpu_temperature_critical_c: 95.0,
            memory_warning_percent: 90.0,
            memory_critical_percent: 97.0,
        }
    }
}

impl HealthThresholds {
    pub fn validate(&self) -> Result<(), ApiError> {
        let pairs = [
            ("GPU temperature", self.gpu_temperature_warning_c, self.gpu_temperature_critical_c, 30.0, 130.0),
            (
                "hotspot temperature",
                self.hotspot_temperature_warning_c,
                self.hotspot_temperature_critical_c,
                30.0,
                130.0,
            ),
            ("CPU temperature", self.cpu_temperature_warning_c, self.cpu_temperature_critical_c, 30.0, 130.0),
            ("memory use", self.memory_warning_percent, self.memory_critical_percent, 10.0, 100.0),
        ];
        for (name, warning, critical, low, high) in pairs {
            if !(low..=high).contains(&warning) || !(low..=high).contains(&critical) {
                return Err(ApiError::invalid_input(format!("{name} thresholds must lie between {low} and {high}")));
            }
            if warning > critical {
                return Err(ApiError::invalid_input(format!(
                    "the {name} warning ({warning}) must not be above the critical threshold ({critical})"
                )));
            }
        }
        Ok(())
    }
}

/// Judges one status.
pub fn evaluate(kind: DeviceKind, status: &DeviceStatus, t: &HealthThresholds) -> DeviceHealth {
    let mut reasons = Vec::new();
    let mut judge = |value: Option<f64>, warning: f64, critical: f64, code: &str, what: &str, unit: &str| {
        let Some(value) = value else { return };
        let level = if value >= critical {
            HealthLevel::Critical
        } else if value >= warning {
            HealthLevel::Warning
        } else {
            return;
        };
        let limit = if level == HealthLevel::Critical { critical } else { warning };
        reasons.push(HealthReason {
            level,
            code: code.to_owned(),
            message: format!("{what} is {value:.0}{unit} (at or above {limit:.0}{unit})"),
        });
    };
    let temperature = status.temperature_c.as_ref().map(|r| r.value);
    if kind == DeviceKind::Cpu {
        judge(
            temperature,
            t.cpu_temperature_warning_c,
            t.cpu_temperature_critical_c,
            "temperature",
            "CPU temperature",
            " °C",
        );
    } else {
        judge(
            temperature,
            t.gpu_temperature_warning_c,
            t.gpu_temperature_critical_c,
            "temperature",
            "GPU temperature",
            " °C",
        );
    }
    let hotspot = status.temperature_hotspot_c.as_ref().map(|r| r.value);
    judge(
        hotspot,
        t.hotspot_temperature_warning_c,
        t.hotspot_temperature_critical_c,
        "hotspot_temperature",
        "Hotspot temperature",
        " °C",
    );
    let what = if kind == DeviceKind::Cpu { "System RAM in use" } else { "VRAM in use" };
    judge(status.memory_percent(), t.memory_warning_percent, t.memory_critical_percent, "memory_pressure", what, "%");

    if let Some(throttle) = &status.throttle_reasons {
        let distress: Vec<&str> = throttle
            .value
            .iter()
            .filter(|r| r.is_distress())
            .map(|r| match r {
                ThrottleReason::HardwareSlowdown => "hardware slowdown (heat or power brake)",
                ThrottleReason::ThermalSlowdown => "thermal slowdown",
                ThrottleReason::PowerBrake => "external power brake",
                _ => "throttling",
            })
            .collect();
        if !distress.is_empty() {
            let critical = throttle.value.contains(&ThrottleReason::HardwareSlowdown);
            reasons.push(HealthReason {
                level: if critical { HealthLevel::Critical } else { HealthLevel::Warning },
                code: "throttling".to_owned(),
                message: format!("The driver is holding clocks down: {}", distress.join(", ")),
            });
        }
    }
    if let Some(ecc) = &status.ecc_uncorrected_errors
        && ecc.value > 0
    {
        reasons.push(HealthReason {
            level: HealthLevel::Critical,
            code: "ecc_errors".to_owned(),
            message: format!(
                "{} uncorrected memory errors since the driver loaded; results may be wrong until the card is reset",
                ecc.value
            ),
        });
    }
    let level = reasons.iter().map(|r| r.level).max().unwrap_or(HealthLevel::Ok);
    DeviceHealth { device_id: status.device_id.clone(), level, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{MetricSource, Reading};

    fn gpu(temp: f64, used: u64, total: u64) -> DeviceStatus {
        let mut s = DeviceStatus::new(DeviceId("pci:0000:01:00.0".into()), 0);
        s.temperature_c = Some(Reading::new(temp, MetricSource::Nvml));
        s.memory_used_bytes = Some(Reading::new(used, MetricSource::Nvml));
        s.memory_total_bytes = Some(Reading::new(total, MetricSource::Nvml));
        s
    }

    #[test]
    fn a_cool_idle_card_is_ok() {
        let health = evaluate(DeviceKind::DiscreteGpu, &gpu(40.0, 1, 100), &HealthThresholds::default());
        assert_eq!(health.level, HealthLevel::Ok);
        assert!(health.reasons.is_empty());
    }

    #[test]
    fn heat_and_memory_pressure_are_named() {
        let health = evaluate(DeviceKind::DiscreteGpu, &gpu(85.0, 98, 100), &HealthThresholds::default());
        assert_eq!(health.level, HealthLevel::Critical);
        let codes: Vec<_> = health.reasons.iter().map(|r| (r.code.as_str(), r.level)).collect();
        assert_eq!(codes, vec![("temperature", HealthLevel::Warning), ("memory_pressure", HealthLevel::Critical)]);
        assert_eq!(health.reasons[0].message, "GPU temperature is 85 °C (at or above 83 °C)");
    }

    #[test]
    fn thresholds_are_configurable() {
        let strict = HealthThresholds { gpu_temperature_warning_c: 35.0, ..HealthThresholds::default() };
        assert_eq!(evaluate(DeviceKind::DiscreteGpu, &gpu(40.0, 1, 100), &strict).level, HealthLevel::Warning);
    }

    #[test]
    fn throttling_and_ecc_errors() {
        let mut s = gpu(50.0, 1, 100);
        s.throttle_reasons =
            Some(Reading::new(vec![ThrottleReason::Idle, ThrottleReason::ThermalSlowdown], MetricSource::Nvml));
        assert_eq!(evaluate(DeviceKind::DiscreteGpu, &s, &HealthThresholds::default()).level, HealthLevel::Warning);
        s.ecc_uncorrected_errors = Some(Reading::new(2, MetricSource::Nvml));
        let health = evaluate(DeviceKind::DiscreteGpu, &s, &HealthThresholds::default());
        assert_eq!(health.level, HealthLevel::Critical);
        assert!(health.reasons.iter().any(|r| r.code == "ecc_errors"));
    }

    #[test]
    fn unread_metrics_are_not_judged() {
        let s = DeviceStatus::new(DeviceId::cpu(), 0);
        assert_eq!(evaluate(DeviceKind::Cpu, &s, &HealthThresholds::default()).level, HealthLevel::Ok);
    }

    #[test]
    fn inverted_thresholds_are_refused() {
        let bad = HealthThresholds {
            memory_warning_percent: 99.0,
            memory_critical_percent: 90.0,
            ..HealthThresholds::default()
        };
        assert!(bad.validate().is_err());
    }
}
