//! Linux hardware-monitoring files of a card (`device/hwmon/hwmonN/`).
//!
//! Follows the kernel's sysfs-interface document (Documentation/hwmon/sysfs-interface.rst):
//! temperatures in millidegrees Celsius, power and power caps in microwatts, energy in
//! microjoules, fan speed in RPM, `pwm` duty 0..255, frequencies in Hz.

use std::path::{Path, PathBuf};

use super::sysfs::{read_trimmed, read_u64};

/// One hwmon directory's readings at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HwmonReading {
    /// Driver name in the `name` file (`amdgpu`, `i915`, `xe`, `nouveau`).
    pub name: String,
    /// Temperatures by label (`edge`, `junction`, `mem`, `pkg`, `vram`), °C. An unlabelled
    /// `tempN_input` gets the label `tempN`.
    pub temperatures: Vec<(String, f64)>,
    /// Average or instantaneous power, watts.
    pub power_watts: Option<f64>,
    /// The enforced power cap and its range, watts.
    pub power_cap_watts: Option<f64>,
    pub power_cap_min_watts: Option<f64>,
    pub power_cap_max_watts: Option<f64>,
    /// Cumulative energy counter, microjoules (Intel cards report power only this way).
    pub energy_microjoules: Option<u64>,
    pub fan_rpm: Option<f64>,
    pub fan_percent: Option<f64>,
    /// Frequencies by label (`sclk`, `mclk`), MHz.
    pub frequencies_mhz: Vec<(String, f64)>,
}

impl HwmonReading {
    pub fn temperature(&self, labels: &[&str]) -> Option<f64> {
        labels.iter().find_map(|label| self.temperatures.iter().find(|(l, _)| l == label).map(|(_, v)| *v))
    }

    pub fn frequency(&self, label: &str) -> Option<f64> {
        self.frequencies_mhz.iter().find(|(l, _)| l == label).map(|(_, v)| *v)
    }
}

/// The first `hwmonN` directory under a card's `device/hwmon`, if the driver registered one.
pub fn find(device_dir: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(device_dir.join("hwmon"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("hwmon")))
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// Reads every channel the directory offers; absent or unreadable files stay `None`.
pub fn read(dir: &Path) -> HwmonReading {
    let mut reading =
        HwmonReading { name: read_trimmed(&dir.join("name")).unwrap_or_default(), ..HwmonReading::default() };
    for index in 1..=8 {
        let input = dir.join(format!("temp{index}_input"));
        if let Some(millidegrees) = read_u64(&input) {
            let label = read_trimmed(&dir.join(format!("temp{index}_label"))).unwrap_or_else(|| format!("temp{index}"));
            reading.temperatures.push((label, millidegrees as f64 / 1000.0));
        }
        let frequency = dir.join(format!("freq{index}_input"));
        if let Some(hz) = read_u64(&frequency) {
            let label = read_trimmed(&dir.join(format!("freq{index}_label"))).unwrap_or_else(|| format!("freq{index}"));
            reading.frequencies_mhz.push((label, hz as f64 / 1e6));
        }
    }
    let microwatts = |name: &str| read_u64(&dir.join(name)).map(|uw| uw as f64 / 1e6);
    reading.power_watts = microwatts("power1_average").or_else(|| microwatts("power1_input"));
    // amdgpu calls its cap `power1_cap`; i915 and xe call it `power1_max`.
    reading.power_cap_watts = microwatts("power1_cap").or_else(|| microwatts("power1_max"));
    reading.power_cap_min_watts = microwatts("power1_cap_min");
    reading.power_cap_max_watts = microwatts("power1_cap_max").or_else(|| microwatts("power1_rated_max"));
    reading.energy_microjoules = read_u64(&dir.join("energy1_input"));
    reading.fan_rpm = read_u64(&dir.join("fan1_input")).map(|rpm| rpm as f64);
    if let Some(pwm) = read_u64(&dir.join("pwm1")) {
        let max = read_u64(&dir.join("pwm1_max")).unwrap_or(255).max(1);
        reading.fan_percent = Some(100.0 * pwm as f64 / max as f64);
    }
    reading
}

/// The file that sets the power cap, in microwatts, with the unit scale it takes.
pub fn power_cap_file(dir: &Path) -> Option<PathBuf> {
    ["power1_cap", "power1_max"].iter().map(|name| dir.join(name)).find(|path| path.exists())
}
