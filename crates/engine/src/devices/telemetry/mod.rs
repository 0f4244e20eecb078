//! Telemetry sources and the one place that asks each of them about each device.
//!
//! Sources, in order of preference for a metric they both give: NVML, then sysfs/hwmon/fdinfo
//! (Linux), then DXGI/PDH (Windows), then sysinfo (CPU and RAM). A source that is missing or
//! fails leaves its metrics empty and says why; it never stops the others.

pub mod drm;
pub mod fdinfo;
pub mod hwmon;
pub mod nvml;
pub mod pdh_names;
pub mod sysfs;
pub mod system;
#[cfg(windows)]
pub mod windows;

use std::time::Instant;

use self::drm::DrmRates;
use self::fdinfo::FdinfoRates;
use self::nvml::{NvmlMode, NvmlSource};
use self::sysfs::SystemRoots;
use self::system::SystemSource;
use super::MetricSource;
use super::device::{DeviceKind, SourceState};
use super::discovery::{self, BoundDevice, Sightings};
use super::status::{DeviceStatus, Reading, fill};

/// Where telemetry reads from, and what it may load.
#[derive(Debug, Clone, Default)]
pub struct TelemetryOptions {
    pub roots: SystemRoots,
    pub nvml: NvmlMode,
    /// Enumerate wgpu adapters (off only in tests that read fixture trees).
    pub skip_wgpu: bool,
}

/// Every telemetry source, opened once.
pub struct Telemetry {
    options: TelemetryOptions,
    nvml: NvmlSource,
    system: SystemSource,
    drm_rates: DrmRates,
    fdinfo_rates: FdinfoRates,
    #[cfg(windows)]
    pdh: windows::PdhSource,
    #[cfg(windows)]
    dxgi: Vec<windows::DxgiAdapter>,
    started: Instant,
    kiln_pid: u32,
}

impl Telemetry {
    pub fn open(options: TelemetryOptions) -> Self {
        Self {
            nvml: NvmlSource::open(&options.nvml),
            system: SystemSource::new(),
            drm_rates: DrmRates::default(),
            fdinfo_rates: FdinfoRates::default(),
            #[cfg(windows)]
            pdh: windows::PdhSource::open(),
            #[cfg(windows)]
            dxgi: Vec::new(),
            started: Instant::now(),
            kiln_pid: std::process::id(),
            options,
        }
    }

    pub fn nvml(&self) -> &NvmlSource {
        &self.nvml
    }

    pub fn roots(&self) -> &SystemRoots {
        &self.options.roots
    }

    /// Finds every device and binds the sources that read it.
    pub fn discover(&mut self) -> Vec<BoundDevice> {
        let sightings = Sightings {
            adapters: if self.options.skip_wgpu { Vec::new() } else { discovery::probe_wgpu() },
            nvml: self.nvml.identities(),
            drm: drm::list_cards(&self.options.roots.sys),
            dxgi: self.dxgi_identities(),
            cpu: Some(self.system.identity()),
        };
        let mut devices = discovery::merge(sightings);
        for bound in &mut devices {
            bound.device.sources = self.sources_of(bound);
        }
        devices
    }

    #[cfg(windows)]
    fn dxgi_identities(&mut self) -> Vec<discovery::DxgiIdentity> {
        self.dxgi = windows::list_adapters();
        self.dxgi
            .iter()
            .cloned()
            .map(|a| discovery::DxgiIdentity {
                name: a.name,
                vendor_id: a.vendor_id,
                device_id: a.device_id,
                luid: a.luid,
                dedicated_video_memory: a.dedicated_video_memory,
                software: a.software,
            })
            .collect()
    }

    #[cfg(not(windows))]
    fn dxgi_identities(&mut self) -> Vec<discovery::DxgiIdentity> {
        Vec::new()
    }

    fn sources_of(&self, bound: &BoundDevice) -> Vec<SourceState> {
        let device = &bound.device;
        let mut sources = Vec::new();
        let mut add = |source, available, detail: String| sources.push(SourceState { source, available, detail });
        if !device.adapters.is_empty() {
            let mut apis: Vec<&str> = device.adapters.iter().map(|a| a.backend.as_str()).collect();
            apis.dedup();
            add(MetricSource::Wgpu, true, format!("adapters on {}", apis.join(", ")));
        }
        if device.kind == DeviceKind::Cpu {
            add(MetricSource::Sysinfo, true, "CPU load, frequency, RAM and swap".to_owned());
            return sources;
        }
        if device.kind == DeviceKind::SoftwareGpu {
            return sources;
        }
        if device.vendor.pci_id == Some(0x10de) {
            match (bound.binding.nvml_index, self.nvml.unavailable_reason(), self.nvml.driver()) {
                (Some(index), _, Some(driver)) => add(
                    MetricSource::Nvml,
                    true,
                    format!("GPU {index}, driver {}, NVML {}", driver.driver_version, driver.nvml_version),
                ),
                (_, Some(reason), _) => add(MetricSource::Nvml, false, reason.to_owned()),
                _ => add(MetricSource::Nvml, false, "NVML does not list this card".to_owned()),
            }
        }
        if cfg!(target_os = "linux") {
            match &bound.binding.drm_card {
                Some(card) => {
                    add(MetricSource::Sysfs, true, format!("{} ({})", card.name, card.driver));
                    match &card.hwmon_dir {
                        Some(dir) => add(MetricSource::Hwmon, true, dir.display().to_string()),
                        None => add(MetricSource::Hwmon, false, format!("{} registers no hwmon device", card.driver)),
                    }
                    if reads_fdinfo(&card.driver) {
                        add(MetricSource::Fdinfo, true, "per-process memory and engine time".to_owned());
                    }
                }
                None => add(MetricSource::Sysfs, false, "no DRM card in /sys/class/drm for this device".to_owned()),
            }
        }
        if cfg!(windows) {
            match bound.binding.dxgi_luid {
                Some(_) => {
                    add(MetricSource::Dxgi, true, "adapter description and dedicated memory".to_owned());
                    add(
                        MetricSource::Pdh,
                        self.pdh_reason().is_none(),
                        self.pdh_reason().unwrap_or("GPU engine and memory counters").to_owned(),
                    );
                }
                None => add(MetricSource::Dxgi, false, "DXGI does not list this adapter".to_owned()),
            }
        }
        sources
    }

    #[cfg(windows)]
    fn pdh_reason(&self) -> Option<&str> {
        self.pdh.unavailable_reason()
    }

    #[cfg(not(windows))]
    fn pdh_reason(&self) -> Option<&str> {
        None
    }

    /// Nanoseconds since telemetry opened, on the monotonic clock.
    fn monotonic_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// One reading of every device.
    pub fn sample(&mut self, devices: &[BoundDevice], now_ms: u64) -> Vec<DeviceStatus> {
        let proc_root = self.options.roots.proc.clone();
        let process_name = |pid: u32| system::process_name(&proc_root, pid);
        let needs_fdinfo = devices.iter().any(|d| d.binding.drm_card.as_ref().is_some_and(|c| reads_fdinfo(&c.driver)));
        let fdinfo = if needs_fdinfo {
            let clients = fdinfo::scan(&proc_root);
            let now_ns = self.monotonic_ns();
            self.fdinfo_rates.usage(&clients, now_ns, process_name, self.kiln_pid)
        } else {
            Default::default()
        };
        #[cfg(windows)]
        let pdh = self.pdh.collect();

        let mut statuses = Vec::with_capacity(devices.len());
        for bound in devices {
            let mut status = DeviceStatus::new(bound.device.id.clone(), now_ms);
            let binding = &bound.binding;
            if let Some(index) = binding.nvml_index {
                self.nvml.read(index, &mut status, &process_name, self.kiln_pid);
            } else if bound.device.vendor.pci_id == Some(0x10de)
                && let Some(reason) = self.nvml.unavailable_reason()
            {
                status.unavailable(MetricSource::Nvml, reason);
            }
            if let Some(card) = &binding.drm_card {
                drm::read(card, &mut status, &mut self.drm_rates, now_ms);
                if let Some(bus) = &card.pci_bus_id
                    && let Some(usage) = fdinfo.get(bus)
                {
                    let source = MetricSource::Fdinfo;
                    fill(&mut status.utilization_percent, usage.utilization_percent, source);
                    if card.driver != "amdgpu" {
                        // i915 and xe have no device-wide VRAM counter in sysfs.
                        fill(&mut status.memory_used_bytes, Some(usage.vram_bytes), source);
                    }
                    if status.processes.is_none() {
                        status.processes = Some(Reading::new(usage.processes.clone(), source));
                    }
                }
            }
            #[cfg(windows)]
            if let Some(luid) = binding.dxgi_luid {
                if let (Some(usage), Some(adapter)) = (pdh.get(&luid), self.dxgi.iter().find(|a| a.luid == luid)) {
                    usage.apply(adapter, &mut status, &process_name, self.kiln_pid);
                }
            }
            match bound.device.kind {
                DeviceKind::Cpu => self.system.read(&mut status),
                DeviceKind::SoftwareGpu => status.unavailable(
                    MetricSource::Wgpu,
                    "a software adapter runs on the CPU: its load and memory are the CPU device's",
                ),
                _ => {}
            }
            statuses.push(status);
        }
        statuses
    }
}

/// Drivers whose per-client fdinfo carries memory and engine time Kiln can use.
fn reads_fdinfo(driver: &str) -> bool {
    matches!(driver, "amdgpu" | "i915" | "xe")
}
