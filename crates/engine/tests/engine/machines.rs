//! Telemetry read from fixture trees laid out like real AMD, i915, xe and NVIDIA-without-NVML
//! machines: the sysfs, hwmon and fdinfo parsers end to end, through discovery and sampling.

use kiln_engine::devices::telemetry::nvml::NvmlMode;
use kiln_engine::devices::telemetry::sysfs::SystemRoots;
use kiln_engine::devices::telemetry::{Telemetry, TelemetryOptions};
use kiln_engine::devices::{DeviceKind, DeviceStatus, MetricSource};

fn telemetry(root: &std::path::Path) -> Telemetry {
    Telemetry::open(TelemetryOptions { roots: SystemRoots::under(root), nvml: NvmlMode::Disabled, skip_wgpu: true })
}

fn gpu_status(statuses: &[DeviceStatus]) -> &DeviceStatus {
    statuses.iter().find(|s| s.device_id.as_str().starts_with("pci:")).expect("a GPU status")
}

fn value<T: Clone>(reading: &Option<kiln_engine::devices::Reading<T>>, source: MetricSource) -> T {
    let reading = reading.as_ref().expect("a reading");
    assert_eq!(reading.source, source);
    reading.value.clone()
}

#[test]
fn amdgpu_machine() {
    let root = super::machine("amd-rx7900xtx");
    let mut telemetry = telemetry(root.path());
    let devices = telemetry.discover();
    assert_eq!(devices.len(), 2, "the card (connector and render node skipped) and the CPU");
    let card = &devices[0].device;
    assert_eq!(card.id.as_str(), "pci:0000:03:00.0");
    assert_eq!(card.vendor.name, "AMD");
    assert_eq!(card.pci_device_id, Some(0x744c));
    assert_eq!(card.memory_total_bytes, Some(25_753_026_560));
    let sources: Vec<_> = card.sources.iter().map(|s| (s.source, s.available)).collect();
    assert_eq!(sources, vec![(MetricSource::Sysfs, true), (MetricSource::Hwmon, true), (MetricSource::Fdinfo, true)]);

    let statuses = telemetry.sample(&devices, 1_000);
    let s = gpu_status(&statuses);
    assert_eq!(value(&s.utilization_percent, MetricSource::Sysfs), 37.0);
    assert_eq!(value(&s.memory_busy_percent, MetricSource::Sysfs), 12.0);
    assert_eq!(value(&s.memory_used_bytes, MetricSource::Sysfs), 3_221_225_472);
    assert_eq!(value(&s.temperature_c, MetricSource::Hwmon), 52.0);
    assert_eq!(value(&s.temperature_hotspot_c, MetricSource::Hwmon), 68.0);
    assert_eq!(value(&s.temperature_memory_c, MetricSource::Hwmon), 60.0);
    assert_eq!(value(&s.power_watts, MetricSource::Hwmon), 215.0);
    assert_eq!(value(&s.power_limit_watts, MetricSource::Hwmon), 303.0);
    assert_eq!(value(&s.fan_rpm, MetricSource::Hwmon), 1450.0);
    assert_eq!(value(&s.fan_percent, MetricSource::Hwmon), 40.0);
    assert_eq!(value(&s.clock_graphics_mhz, MetricSource::Hwmon), 1950.0);
    assert_eq!(value(&s.clock_memory_mhz, MetricSource::Hwmon), 1249.0);
    assert_eq!(value(&s.clock_graphics_max_mhz, MetricSource::Sysfs), 2526.0);
    let link = value(&s.pcie_link, MetricSource::Sysfs);
    assert_eq!((link.generation, link.width, link.max_generation), (Some(4), Some(16), Some(4)));
    // Two fds of one client count once; the CPU device is there too.
    let processes = value(&s.processes, MetricSource::Fdinfo);
    let summary: Vec<_> = processes.iter().map(|p| (p.name.as_str(), p.pid, p.memory_bytes)).collect();
    assert_eq!(summary, vec![("blender", 1234, Some(2 << 30)), ("kiln", 5678, Some(1 << 30))]);
    assert!(statuses.iter().any(|s| s.device_id.as_str() == "cpu" && s.cpu.is_some()));
}

#[test]
fn i915_machine_reads_clocks_and_turns_energy_into_watts() {
    let root = super::machine("intel-arc-a770-i915");
    let mut telemetry = telemetry(root.path());
    let devices = telemetry.discover();
    let card = &devices[0].device;
    assert_eq!((card.vendor.name.as_str(), card.kind), ("Intel", DeviceKind::Other));
    let first = telemetry.sample(&devices, 1_000);
    let s = gpu_status(&first);
    assert_eq!(value(&s.clock_graphics_mhz, MetricSource::Sysfs), 2100.0);
    assert_eq!(value(&s.clock_graphics_max_mhz, MetricSource::Sysfs), 2400.0);
    assert_eq!(value(&s.power_limit_watts, MetricSource::Hwmon), 190.0);
    assert_eq!(value(&s.fan_rpm, MetricSource::Hwmon), 1100.0);
    assert!(s.power_watts.is_none(), "power from an energy counter needs two samples");
    assert_eq!(value(&s.memory_used_bytes, MetricSource::Fdinfo), 512 << 20);
    let link = value(&s.pcie_link, MetricSource::Sysfs);
    assert_eq!((link.generation, link.width), (Some(1), Some(1)));

    // 45 J over the next 500 ms is 90 W; 100 ms of render time over that window is 20%.
    let hwmon = root.path().join("sys/class/drm/card0/device/hwmon/hwmon3/energy1_input");
    std::fs::write(&hwmon, format!("{}\n", 123_456_789_012u64 + 45_000_000)).unwrap();
    let fdinfo = root.path().join("proc/4321/fdinfo/31");
    let text = std::fs::read_to_string(&fdinfo).unwrap();
    std::fs::write(&fdinfo, text.replace("7000000000 ns", "7100000000 ns")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let second = telemetry.sample(&devices, 1_500);
    let s = gpu_status(&second);
    assert_eq!(value(&s.power_watts, MetricSource::Hwmon), 90.0);
    let utilization = value(&s.utilization_percent, MetricSource::Fdinfo);
    // The wall clock between samples is at least the 500 ms slept, so at most 20%.
    assert!(utilization > 10.0 && utilization <= 20.0, "{utilization}");
    let processes = value(&s.processes, MetricSource::Fdinfo);
    assert_eq!(processes[0].name, "firefox");
}

#[test]
fn xe_machine_reads_vram_size_and_busy_cycles() {
    let root = super::machine("intel-arc-b580-xe");
    let mut telemetry = telemetry(root.path());
    let devices = telemetry.discover();
    assert_eq!(devices[0].device.memory_total_bytes, Some(12_884_901_888));
    telemetry.sample(&devices, 1_000);
    let fdinfo = root.path().join("proc/999/fdinfo/4");
    let text = std::fs::read_to_string(&fdinfo).unwrap();
    let text = text
        .replace("drm-cycles-rcs:\t123456", "drm-cycles-rcs:\t723456")
        .replace("drm-total-cycles-rcs:\t9876543", "drm-total-cycles-rcs:\t10876543");
    std::fs::write(&fdinfo, text).unwrap();
    let statuses = telemetry.sample(&devices, 2_000);
    let s = gpu_status(&statuses);
    assert_eq!(value(&s.memory_total_bytes, MetricSource::Sysfs), 12_884_901_888);
    assert_eq!(value(&s.memory_used_bytes, MetricSource::Fdinfo), 1 << 30);
    assert_eq!(value(&s.utilization_percent, MetricSource::Fdinfo), 60.0);
    assert_eq!(value(&s.clock_graphics_mhz, MetricSource::Sysfs), 2850.0);
    assert_eq!(value(&s.temperature_c, MetricSource::Hwmon), 47.0);
    assert_eq!(value(&s.temperature_memory_c, MetricSource::Hwmon), 52.0);
    assert_eq!(value(&s.processes, MetricSource::Fdinfo)[0].name, "ComfyUI");
}

#[test]
fn nvidia_card_without_nvml_reads_as_not_available() {
    let root = super::machine("nvidia-without-nvml");
    let mut telemetry = Telemetry::open(TelemetryOptions {
        roots: SystemRoots::under(root.path()),
        nvml: NvmlMode::Library(root.path().join("libnvidia-ml.so.1")),
        skip_wgpu: true,
    });
    let devices = telemetry.discover();
    let card = &devices[0].device;
    assert_eq!(card.vendor.name, "NVIDIA");
    let nvml = card.sources.iter().find(|s| s.source == MetricSource::Nvml).unwrap();
    assert!(!nvml.available);
    assert!(nvml.detail.contains("could not be loaded"), "{}", nvml.detail);
    let statuses = telemetry.sample(&devices, 1_000);
    let s = gpu_status(&statuses);
    assert!(s.utilization_percent.is_none() && s.memory_used_bytes.is_none());
    assert!(s.unavailable.iter().any(|u| u.source == MetricSource::Nvml));
    // What sysfs does know still shows.
    assert_eq!(value(&s.pcie_link, MetricSource::Sysfs).generation, Some(4));
}
