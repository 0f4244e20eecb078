//! Linux DRM cards in sysfs (`/sys/class/drm/cardN`): identity for discovery and readings for
//! amdgpu, i915 and xe (and the PCIe link of any card).
//!
//! Sources: the kernel's amdgpu documentation (Documentation/gpu/amdgpu/thermal.rst:
//! `gpu_busy_percent`, `mem_busy_percent`, `mem_info_vram_*`, `pp_dpm_sclk`), i915's
//! `gt_*_freq_mhz` files, xe's `tile0/gt0/freq0/*` files, and the PCI core's
//! `current_link_speed`/`current_link_width` attributes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::hwmon::{self, HwmonReading};
use super::sysfs::{pcie_generation, read_hex, read_key_values, read_trimmed, read_u64};
use crate::devices::MetricSource;
use crate::devices::status::{DeviceStatus, PcieLink, fill};

/// One card as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrmCard {
    /// `card1`.
    pub name: String,
    /// `/sys/class/drm/card1/device`.
    pub device_dir: PathBuf,
    /// `/sys/class/drm/card1`.
    pub card_dir: PathBuf,
    /// Kernel driver: `amdgpu`, `i915`, `xe`, `nvidia`, `nouveau`, `virtio_gpu`...
    pub driver: String,
    /// `0000:03:00.0`.
    pub pci_bus_id: Option<String>,
    pub vendor_id: Option<u32>,
    pub device_id: Option<u32>,
    pub hwmon_dir: Option<PathBuf>,
}

/// Every `cardN` (connectors such as `card0-DP-1` and render nodes are skipped), in order.
pub fn list_cards(sys: &Path) -> Vec<DrmCard> {
    let Ok(entries) = std::fs::read_dir(sys.join("class/drm")) else {
        return Vec::new();
    };
    let mut cards: Vec<DrmCard> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let is_card =
                name.strip_prefix("card").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            is_card.then(|| read_card(&entry.path(), name))
        })
        .collect();
    cards.sort_by_key(|card| card.name.trim_start_matches("card").parse::<u32>().unwrap_or(0));
    cards
}

fn read_card(card_dir: &Path, name: String) -> DrmCard {
    let device_dir = card_dir.join("device");
    let uevent = read_key_values(&device_dir.join("uevent"));
    let value = |key: &str| uevent.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let driver = value("DRIVER")
        .or_else(|| {
            std::fs::read_link(device_dir.join("driver"))
                .ok()
                .and_then(|target| target.file_name()?.to_str().map(str::to_owned))
        })
        .unwrap_or_default();
    let pci_bus_id = value("PCI_SLOT_NAME").map(|id| id.to_ascii_lowercase()).or_else(|| {
        // `device` links to the PCI function's directory, named after its address.
        let target = std::fs::canonicalize(&device_dir).ok()?;
        let name = target.file_name()?.to_str()?;
        looks_like_pci_address(name).then(|| name.to_ascii_lowercase())
    });
    DrmCard {
        name,
        hwmon_dir: hwmon::find(&device_dir),
        vendor_id: read_hex(&device_dir.join("vendor")),
        device_id: read_hex(&device_dir.join("device")),
        card_dir: card_dir.to_path_buf(),
        device_dir,
        driver,
        pci_bus_id,
    }
}

/// Dedicated VRAM size where sysfs tells it (amdgpu, xe); i915 keeps it behind an ioctl.
pub fn vram_total(card: &DrmCard) -> Option<u64> {
    read_u64(&card.device_dir.join("mem_info_vram_total"))
        .or_else(|| read_u64(&card.device_dir.join("tile0/physical_vram_size_bytes")))
}

fn looks_like_pci_address(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() == 12 && bytes[4] == b':' && bytes[7] == b':' && bytes[10] == b'.'
}

/// Counters kept between samples to turn cumulative values into rates.
#[derive(Debug, Default)]
pub struct DrmRates {
    /// Card name -> (sample time ms, energy µJ).
    energy: HashMap<String, (u64, u64)>,
}

impl DrmRates {
    /// Watts from two readings of a microjoule counter; `None` on the first sample or a reset.
    fn power(&mut self, card: &str, now_ms: u64, energy_uj: u64) -> Option<f64> {
        let previous = self.energy.insert(card.to_owned(), (now_ms, energy_uj));
        let (then_ms, then_uj) = previous?;
        let dt_s = now_ms.checked_sub(then_ms)? as f64 / 1000.0;
        let de_j = energy_uj.checked_sub(then_uj)? as f64 / 1e6;
        (dt_s > 0.0).then(|| de_j / dt_s)
    }
}

/// Fills `status` with what sysfs and hwmon say about `card`. Values already set by a preferred
/// source (NVML) stay.
pub fn read(card: &DrmCard, status: &mut DeviceStatus, rates: &mut DrmRates, now_ms: u64) {
    let dir = &card.device_dir;
    read_pcie_link(dir, status);
    let hwmon = card.hwmon_dir.as_deref().map(hwmon::read);
    match card.driver.as_str() {
        "amdgpu" | "radeon" => read_amdgpu(dir, status, hwmon.as_ref()),
        "i915" => read_i915(card, status),
        "xe" => read_xe(dir, status),
        _ => {}
    }
    if let Some(hwmon) = hwmon {
        read_hwmon(card, &hwmon, status, rates, now_ms);
    } else if !matches!(card.driver.as_str(), "nvidia") {
        status.unavailable(MetricSource::Hwmon, format!("{} registers no hwmon device", card.name));
    }
}

fn read_pcie_link(dir: &Path, status: &mut DeviceStatus) {
    let link = PcieLink {
        generation: read_trimmed(&dir.join("current_link_speed")).as_deref().and_then(pcie_generation),
        width: read_u64(&dir.join("current_link_width")).map(|w| w as u32),
        max_generation: read_trimmed(&dir.join("max_link_speed")).as_deref().and_then(pcie_generation),
        max_width: read_u64(&dir.join("max_link_width")).map(|w| w as u32),
    };
    if link.generation.is_some() || link.width.is_some() {
        fill(&mut status.pcie_link, Some(link), MetricSource::Sysfs);
    }
}

fn read_amdgpu(dir: &Path, status: &mut DeviceStatus, hwmon: Option<&HwmonReading>) {
    let source = MetricSource::Sysfs;
    fill(&mut status.utilization_percent, read_u64(&dir.join("gpu_busy_percent")).map(|v| v as f64), source);
    fill(&mut status.memory_busy_percent, read_u64(&dir.join("mem_busy_percent")).map(|v| v as f64), source);
    fill(&mut status.memory_used_bytes, read_u64(&dir.join("mem_info_vram_used")), source);
    fill(&mut status.memory_total_bytes, read_u64(&dir.join("mem_info_vram_total")), source);
    // hwmon's freqN_input is the live clock; pp_dpm_* lists the states with `*` on the active one.
    let sclk = parse_dpm_table(&dir.join("pp_dpm_sclk"));
    let mclk = parse_dpm_table(&dir.join("pp_dpm_mclk"));
    let live = |label: &str| hwmon.and_then(|h| h.frequency(label));
    fill(&mut status.clock_graphics_mhz, live("sclk").or(sclk.active), MetricSource::Hwmon);
    fill(&mut status.clock_memory_mhz, live("mclk").or(mclk.active), MetricSource::Hwmon);
    fill(&mut status.clock_graphics_max_mhz, sclk.max, source);
    fill(&mut status.clock_memory_max_mhz, mclk.max, source);
}

fn read_i915(card: &DrmCard, status: &mut DeviceStatus) {
    let dir = &card.card_dir;
    let mhz = |name: &str| read_u64(&dir.join(name)).map(|v| v as f64);
    fill(
        &mut status.clock_graphics_mhz,
        mhz("gt_act_freq_mhz").or_else(|| mhz("gt_cur_freq_mhz")),
        MetricSource::Sysfs,
    );
    fill(
        &mut status.clock_graphics_max_mhz,
        mhz("gt_RP0_freq_mhz").or_else(|| mhz("gt_max_freq_mhz")),
        MetricSource::Sysfs,
    );
}

fn read_xe(dir: &Path, status: &mut DeviceStatus) {
    let freq = dir.join("tile0/gt0/freq0");
    let mhz = |name: &str| read_u64(&freq.join(name)).map(|v| v as f64);
    fill(&mut status.clock_graphics_mhz, mhz("act_freq").or_else(|| mhz("cur_freq")), MetricSource::Sysfs);
    fill(&mut status.clock_graphics_max_mhz, mhz("rp0_freq").or_else(|| mhz("max_freq")), MetricSource::Sysfs);
    fill(&mut status.memory_total_bytes, read_u64(&dir.join("tile0/physical_vram_size_bytes")), MetricSource::Sysfs);
}

fn read_hwmon(card: &DrmCard, hwmon: &HwmonReading, status: &mut DeviceStatus, rates: &mut DrmRates, now_ms: u64) {
    let source = MetricSource::Hwmon;
    // amdgpu labels edge/junction/mem; xe labels pkg/vram; others leave temp1 unlabelled.
    fill(&mut status.temperature_c, hwmon.temperature(&["edge", "pkg", "temp1"]), source);
    fill(&mut status.temperature_hotspot_c, hwmon.temperature(&["junction"]), source);
    fill(&mut status.temperature_memory_c, hwmon.temperature(&["mem", "vram"]), source);
    let power =
        hwmon.power_watts.or_else(|| hwmon.energy_microjoules.and_then(|uj| rates.power(&card.name, now_ms, uj)));
    fill(&mut status.power_watts, power, source);
    fill(&mut status.power_limit_watts, hwmon.power_cap_watts, source);
    fill(&mut status.fan_rpm, hwmon.fan_rpm, source);
    fill(&mut status.fan_percent, hwmon.fan_percent, source);
}

/// An amdgpu DPM table (`0: 500Mhz`, `1: 1800Mhz *`): the active state and the top state, MHz.
#[derive(Debug, Default, PartialEq)]
pub struct DpmTable {
    pub active: Option<f64>,
    pub max: Option<f64>,
}

fn parse_dpm_table(path: &Path) -> DpmTable {
    parse_dpm_text(&std::fs::read_to_string(path).unwrap_or_default())
}

pub fn parse_dpm_text(text: &str) -> DpmTable {
    let mut table = DpmTable::default();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(':') else { continue };
        let rest = rest.trim();
        let number: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(mhz) = number.parse::<f64>() else { continue };
        table.max = Some(table.max.map_or(mhz, |m: f64| m.max(mhz)));
        if rest.ends_with('*') {
            table.active = Some(mhz);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpm_tables_give_active_and_max() {
        let table = parse_dpm_text("0: 500Mhz\n1: 1800Mhz *\n2: 2500Mhz\n");
        assert_eq!(table, DpmTable { active: Some(1800.0), max: Some(2500.0) });
        assert_eq!(parse_dpm_text(""), DpmTable::default());
    }

    #[test]
    fn energy_counters_become_watts() {
        let mut rates = DrmRates::default();
        assert_eq!(rates.power("card0", 1_000, 5_000_000), None);
        // 30 J over 2 s.
        assert_eq!(rates.power("card0", 3_000, 35_000_000), Some(15.0));
        // A counter that went backwards (driver reload) gives nothing rather than a negative.
        assert_eq!(rates.power("card0", 4_000, 1_000), None);
    }

    #[test]
    fn pci_addresses_are_recognised() {
        assert!(looks_like_pci_address("0000:03:00.0"));
        assert!(!looks_like_pci_address("card0"));
    }
}
