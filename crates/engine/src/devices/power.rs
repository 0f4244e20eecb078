//! Power limits: read them wherever the driver tells, set them only where the driver permits.
//!
//! NVIDIA through NVML (`nvmlDeviceSetPowerManagementLimit`, root only), AMD and Intel discrete
//! cards through their hwmon cap file (`power1_cap` on amdgpu, `power1_max` on i915/xe, in
//! microwatts, root only). Everything else answers with a clear `unsupported` error.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::devices::telemetry::hwmon;
use crate::error::{ApiError, ErrorCode};

/// What controls the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PowerTarget {
    Nvml,
    Hwmon,
}

/// A device's power limits, watts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct PowerLimits {
    pub target: PowerTarget,
    /// The limit set now.
    pub current_watts: f64,
    /// The limit the board enforces (the lowest of every limit in force).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_watts: Option<f64>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_watts: Option<f64>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_watts: Option<f64>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_watts: Option<f64>,
}

impl PowerLimits {
    /// Refuses a request outside the driver's range before the driver sees it.
    pub fn check(&self, watts: f64) -> Result<(), PowerError> {
        if !watts.is_finite() || watts <= 0.0 {
            return Err(PowerError::OutOfRange(format!("{watts} W is not a power limit")));
        }
        if let Some(min) = self.min_watts
            && watts < min
        {
            return Err(PowerError::OutOfRange(format!("{watts} W is below this card's minimum of {min} W")));
        }
        if let Some(max) = self.max_watts
            && watts > max
        {
            return Err(PowerError::OutOfRange(format!("{watts} W is above this card's maximum of {max} W")));
        }
        Ok(())
    }
}

/// Why a power limit could not be read or set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PowerError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    Driver(String),
}

impl From<PowerError> for ApiError {
    fn from(error: PowerError) -> Self {
        let code = match error {
            PowerError::Unsupported(_) => ErrorCode::Unsupported,
            PowerError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            PowerError::OutOfRange(_) => ErrorCode::InvalidInput,
            PowerError::Driver(_) => ErrorCode::DriverError,
        };
        ApiError::new(code, error.to_string())
    }
}

/// Reads the hwmon power cap of a card.
pub fn hwmon_limits(hwmon_dir: &Path) -> Result<PowerLimits, PowerError> {
    let reading = hwmon::read(hwmon_dir);
    let current = reading
        .power_cap_watts
        .ok_or_else(|| PowerError::Unsupported(format!("{} exposes no power cap", hwmon_dir.display())))?;
    Ok(PowerLimits {
        target: PowerTarget::Hwmon,
        current_watts: current,
        enforced_watts: Some(current),
        default_watts: super::telemetry::sysfs::read_u64(&hwmon_dir.join("power1_cap_default"))
            .map(|uw| uw as f64 / 1e6),
        min_watts: reading.power_cap_min_watts,
        max_watts: reading.power_cap_max_watts,
    })
}

/// Writes a new cap, after checking it against the card's range.
pub fn set_hwmon_limit(hwmon_dir: &Path, watts: f64) -> Result<PowerLimits, PowerError> {
    let limits = hwmon_limits(hwmon_dir)?;
    limits.check(watts)?;
    let file: PathBuf =
        hwmon::power_cap_file(hwmon_dir).ok_or_else(|| PowerError::Unsupported("no power cap file".to_owned()))?;
    let microwatts = (watts * 1e6).round() as u64;
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|mut f| f.write_all(format!("{microwatts}\n").as_bytes()));
    match write {
        Ok(()) => hwmon_limits(hwmon_dir),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => Err(PowerError::PermissionDenied(
            format!("writing {} needs root: the kernel lets only root change power caps", file.display()),
        )),
        Err(error) => Err(PowerError::Driver(format!("the driver refused {}: {error}", file.display()))),
    }
}

/// Whether this process could write the cap file (opening for writing changes nothing).
pub fn hwmon_writable(hwmon_dir: &Path) -> bool {
    hwmon::power_cap_file(hwmon_dir).is_some_and(|file| std::fs::OpenOptions::new().write(true).open(file).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(dir: &Path) {
        std::fs::write(dir.join("name"), "amdgpu\n").unwrap();
        std::fs::write(dir.join("power1_cap"), "303000000\n").unwrap();
        std::fs::write(dir.join("power1_cap_min"), "0\n").unwrap();
        std::fs::write(dir.join("power1_cap_max"), "339000000\n").unwrap();
        std::fs::write(dir.join("power1_cap_default"), "303000000\n").unwrap();
    }

    #[test]
    fn reads_and_sets_an_amdgpu_cap_in_microwatts() {
        let dir = kiln_testdir::TempDir::new();
        card(dir.path());
        let limits = hwmon_limits(dir.path()).unwrap();
        assert_eq!(limits.current_watts, 303.0);
        assert_eq!(limits.max_watts, Some(339.0));
        assert_eq!(limits.default_watts, Some(303.0));
        let after = set_hwmon_limit(dir.path(), 250.5).unwrap();
        assert_eq!(after.current_watts, 250.5);
        assert_eq!(std::fs::read_to_string(dir.path().join("power1_cap")).unwrap(), "250500000\n");
    }

    #[test]
    fn refuses_limits_outside_the_range_without_writing() {
        let dir = kiln_testdir::TempDir::new();
        card(dir.path());
        let error = set_hwmon_limit(dir.path(), 400.0).unwrap_err();
        assert!(matches!(error, PowerError::OutOfRange(_)), "{error}");
        assert!(matches!(set_hwmon_limit(dir.path(), f64::NAN), Err(PowerError::OutOfRange(_))));
        assert_eq!(std::fs::read_to_string(dir.path().join("power1_cap")).unwrap(), "303000000\n");
    }

    #[test]
    fn a_card_without_a_cap_is_unsupported() {
        let dir = kiln_testdir::TempDir::new();
        std::fs::write(dir.path().join("name"), "nouveau\n").unwrap();
        let error = hwmon_limits(dir.path()).unwrap_err();
        assert_eq!(ApiError::from(error).code, ErrorCode::Unsupported);
    }
}
