//! The devices domain's operations, as methods on [`Engine`] with their request and response
//! types: list, snapshot, details, drivers, capabilities, status, health, history, optimize,
//! benchmark, reset, power and rescan.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::discovery::{BoundDevice, ComputeTarget};
use super::optimize::{self, MemoryPicture, Recommendation};
use super::power::{self, PowerError, PowerLimits, PowerTarget};
use super::sampler::unix_ms;
use super::{
    AdapterFeatures, AdapterLimits, Device, DeviceHealth, DeviceHistory, DeviceId, DeviceKind, DeviceStatus, PoolUsage,
    PublishedPeaks, peaks,
};
use crate::compute::benchmark::{self, BenchmarkPlan, BenchmarkResult};
use crate::compute::{ComputeError, DeviceOwner, Expected, Priority};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorCode};
use crate::events::KilnEvent;

/// An operation that takes no input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct NoInput {}

/// Names one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DeviceRef {
    pub device_id: DeviceId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct DeviceList {
    pub devices: Vec<Device>,
}

/// One device with its latest reading and health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct DeviceSnapshot {
    pub device: Device,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeviceStatus>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<DeviceHealth>,
}

/// Every device at one moment, like `nvtop -s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Snapshot {
    pub taken_at_ms: u64,
    pub kiln_version: String,
    pub host: HostInfo,
    pub devices: Vec<DeviceSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
}

/// A driver or runtime component that serves a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DriverInfo {
    /// What it is: `Vulkan driver`, `NVIDIA driver`, `CUDA driver API`, `kernel module`...
    pub component: String,
    pub name: String,
    pub version: String,
}

/// A precision and whether Kiln can compute in it here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PrecisionSupport {
    pub dtype: String,
    pub supported: bool,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Capabilities {
    pub device_id: DeviceId,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_backend: Option<String>,
    pub precisions: Vec<PrecisionSupport>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<AdapterFeatures>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AdapterLimits>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
}

/// Power limits and whether Kiln may change them here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct PowerInfo {
    pub device_id: DeviceId,
    pub limits: PowerLimits,
    pub can_set: bool,
    pub can_set_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct SetPowerLimit {
    pub device_id: DeviceId,
    pub watts: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct HistoryRequest {
    pub device_id: DeviceId,
    /// Only rows newer than this Unix millisecond time.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

/// What releasing Kiln's pools did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ResetResult {
    pub device_id: DeviceId,
    /// Whether Kiln had compute pools open there at all.
    pub had_pools: bool,
    pub released_bytes: u64,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<PoolUsage>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<PoolUsage>,
}

/// Everything the details panel shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct DeviceDetails {
    pub device: Device,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeviceStatus>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<DeviceHealth>,
    pub drivers: Vec<DriverInfo>,
    pub capabilities: Capabilities,
    /// Power limits, or why they cannot be read.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerInfo>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_unavailable: Option<String>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_benchmark: Option<BenchmarkResult>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_peaks: Option<PublishedPeaks>,
}

impl Engine {
    /// Runs `work` on a thread meant for blocking (driver calls, locks held for a sample, file
    /// writes), so async callers (the Tauri runtime, the HTTP server) are never stalled.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Engine) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || work(engine))
            .await
            .map_err(|e| ApiError::internal(format!("a worker task ended abnormally: {e}")))
    }

    /// The owner thread of the burn device that computes for Kiln device `id` (started on first
    /// use): every piece of burn work for the device goes through it (`compute::owner`).
    pub fn device_owner(&self, id: &DeviceId) -> Result<Arc<DeviceOwner>, ApiError> {
        let bound = self.bound(id)?;
        let target = bound.binding.compute.ok_or_else(|| ComputeError::NoBackend(id.clone()))?;
        Ok(self.state.compute.owner(id, target, &bound.device.name)?)
    }

    /// The burn device that computes for Kiln device `id`, for benches and tests that run alone
    /// in their process and time burn calls on their own thread. Kiln's own work goes through
    /// [`Engine::device_owner`]; mixing the two on one device from two threads at once is what
    /// the owner exists to prevent.
    pub fn compute_device(&self, id: &DeviceId) -> Result<burn::tensor::Device, ApiError> {
        let bound = self.bound(id)?;
        let target = bound.binding.compute.ok_or_else(|| ComputeError::NoBackend(id.clone()))?;
        Ok(crate::compute::burn_device(target))
    }

    pub(crate) fn bound(&self, id: &DeviceId) -> Result<BoundDevice, ApiError> {
        self.devices().iter().find(|d| &d.device.id == id).cloned().ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("no device {id}"))
                .with_details(serde_json::json!({ "device_id": id }))
        })
    }

    pub(crate) fn latest_status(&self, id: &DeviceId) -> Option<DeviceStatus> {
        self.latest(id).0
    }

    fn latest(&self, id: &DeviceId) -> (Option<DeviceStatus>, Option<DeviceHealth>) {
        let live = self.state.live.read().unwrap_or_else(|e| e.into_inner());
        (
            live.latest.iter().find(|s| &s.device_id == id).cloned(),
            live.health.iter().find(|h| &h.device_id == id).cloned(),
        )
    }

    /// Every device Kiln sees.
    pub async fn devices_list(&self, _: NoInput) -> Result<DeviceList, ApiError> {
        Ok(DeviceList { devices: self.devices().iter().map(|d| d.device.clone()).collect() })
    }

    /// Every device with its latest reading and health.
    pub async fn devices_snapshot(&self, _: NoInput) -> Result<Snapshot, ApiError> {
        let devices = self
            .devices()
            .iter()
            .map(|bound| {
                let (status, health) = self.latest(&bound.device.id);
                DeviceSnapshot { device: bound.device.clone(), status, health }
            })
            .collect();
        Ok(Snapshot {
            taken_at_ms: unix_ms(),
            kiln_version: env!("CARGO_PKG_VERSION").to_owned(),
            host: HostInfo {
                hostname: sysinfo::System::host_name().unwrap_or_default(),
                os: sysinfo::System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_owned()),
                kernel: sysinfo::System::kernel_version().unwrap_or_default(),
            },
            devices,
        })
    }

    pub async fn devices_status(&self, input: DeviceRef) -> Result<DeviceStatus, ApiError> {
        self.bound(&input.device_id)?;
        self.latest(&input.device_id)
            .0
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("{} has not been sampled yet", input.device_id)))
    }

    pub async fn devices_health(&self, input: DeviceRef) -> Result<DeviceHealth, ApiError> {
        self.bound(&input.device_id)?;
        self.latest(&input.device_id)
            .1
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("{} has not been sampled yet", input.device_id)))
    }

    pub async fn devices_history(&self, input: HistoryRequest) -> Result<DeviceHistory, ApiError> {
        self.bound(&input.device_id)?;
        let live = self.state.live.read().unwrap_or_else(|e| e.into_inner());
        Ok(live.history.get(&input.device_id, input.since_ms).unwrap_or(DeviceHistory {
            device_id: input.device_id,
            t_ms: Vec::new(),
            series: Vec::new(),
        }))
    }

    pub async fn devices_drivers(&self, input: DeviceRef) -> Result<Vec<DriverInfo>, ApiError> {
        let bound = self.bound(&input.device_id)?;
        self.blocking(move |engine| engine.drivers_of(&bound)).await
    }

    fn drivers_of(&self, bound: &BoundDevice) -> Vec<DriverInfo> {
        let mut drivers: Vec<DriverInfo> = Vec::new();
        for adapter in &bound.device.adapters {
            let entry = DriverInfo {
                component: format!("{} driver", adapter.backend.as_str()),
                name: adapter.driver.clone(),
                version: adapter.driver_info.clone(),
            };
            if !drivers.contains(&entry) {
                drivers.push(entry);
            }
        }
        if bound.binding.nvml_index.is_some() {
            let telemetry = self.state.telemetry.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(nvml) = telemetry.nvml().driver() {
                drivers.push(DriverInfo {
                    component: "NVIDIA driver".into(),
                    name: "nvidia".into(),
                    version: nvml.driver_version,
                });
                if let Some(cuda) = nvml.cuda_driver_version {
                    drivers.push(DriverInfo {
                        component: "CUDA driver API".into(),
                        name: "libcuda".into(),
                        version: cuda,
                    });
                }
                drivers.push(DriverInfo {
                    component: "NVML".into(),
                    name: "libnvidia-ml".into(),
                    version: nvml.nvml_version,
                });
            }
        }
        if let Some(card) = &bound.binding.drm_card {
            let sys = self.state.options.telemetry.roots.sys.clone();
            let version = super::telemetry::sysfs::read_trimmed(&sys.join("module").join(&card.driver).join("version"))
                .or_else(|| sysinfo::System::kernel_version().map(|k| format!("in kernel {k}")))
                .unwrap_or_default();
            drivers.push(DriverInfo { component: "kernel module".into(), name: card.driver.clone(), version });
        }
        if bound.binding.compute == Some(ComputeTarget::Flex) {
            drivers.push(DriverInfo {
                component: "compute backend".into(),
                name: "burn Flex (pure-Rust CPU)".into(),
                version: "burn 0.22".into(),
            });
        }
        drivers
    }

    pub async fn devices_capabilities(&self, input: DeviceRef) -> Result<Capabilities, ApiError> {
        let bound = self.bound(&input.device_id)?;
        Ok(capabilities_of(&bound))
    }

    pub async fn devices_details(&self, input: DeviceRef) -> Result<DeviceDetails, ApiError> {
        let bound = self.bound(&input.device_id)?;
        let (status, health) = self.latest(&input.device_id);
        let for_worker = bound.clone();
        let (power, drivers) =
            self.blocking(move |engine| (engine.power_info(&for_worker), engine.drivers_of(&for_worker))).await?;
        let (power, power_unavailable) = match power {
            Ok(info) => (Some(info), None),
            Err(error) => (None, Some(error.message)),
        };
        Ok(DeviceDetails {
            drivers,
            capabilities: capabilities_of(&bound),
            last_benchmark: self
                .state
                .benchmarks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&input.device_id)
                .cloned(),
            published_peaks: peaks::lookup(&bound.device.name),
            device: bound.device,
            status,
            health,
            power,
            power_unavailable,
        })
    }

    pub async fn devices_optimize(&self, input: DeviceRef) -> Result<Recommendation, ApiError> {
        let bound = self.bound(&input.device_id)?;
        let (status, _) = self.latest(&input.device_id);
        // Off the async runtime: a busy device's reading waits up to UI_READING_WAIT.
        let id = input.device_id.clone();
        let pools = self
            .blocking(move |engine| engine.state.compute.pool_usage_within(&id, crate::compute::UI_READING_WAIT))
            .await?;
        let mut memory = MemoryPicture {
            total_bytes: status
                .as_ref()
                .and_then(|s| s.memory_total_bytes.as_ref().map(|r| r.value))
                .or(bound.device.memory_total_bytes),
            used_bytes: status.as_ref().and_then(|s| s.memory_used_bytes.as_ref().map(|r| r.value)),
            kiln_bytes: pools.map_or(0, |p| p.bytes_reserved),
        };
        // Software adapters and the CPU work in system RAM.
        if matches!(bound.device.kind, DeviceKind::SoftwareGpu) {
            let (cpu, _) = self.latest(&DeviceId::cpu());
            memory.total_bytes = cpu.as_ref().and_then(|s| s.memory_total_bytes.as_ref().map(|r| r.value));
            memory.used_bytes = cpu.as_ref().and_then(|s| s.memory_used_bytes.as_ref().map(|r| r.value));
        }
        Ok(optimize::recommend(&bound.device, &memory))
    }

    /// Measures matmul throughput and memory bandwidth on the device through burn.
    ///
    /// The measurement runs in its own task: a caller that goes away (a closed browser tab)
    /// does not cut it short, and its result and events still arrive.
    pub async fn devices_benchmark(&self, input: DeviceRef) -> Result<BenchmarkResult, ApiError> {
        let bound = self.bound(&input.device_id)?;
        let target = bound.binding.compute.ok_or_else(|| ComputeError::NoBackend(input.device_id.clone()))?;
        let running = Running::claim(self, &input.device_id)?;
        let engine = self.clone();
        tokio::spawn(async move {
            let _running = running;
            let id = bound.device.id.clone();
            engine.emit(KilnEvent::BenchmarkStarted { device_id: id.clone() });
            let shader_f16 = bound
                .device
                .adapters
                .iter()
                .find(|a| Some(a.backend.as_str()) == bound.device.compute_backend.as_deref())
                .is_some_and(|a| a.features.shader_f16);
            let plan = BenchmarkPlan::for_device(bound.device.kind, bound.device.memory_total_bytes, shader_f16);
            let outcome = engine
                .blocking(move |engine| {
                    let started = std::time::Instant::now();
                    let owner = engine.state.compute.owner(&bound.device.id, target, &bound.device.name)?;
                    // Each timed measurement is a step; a step on a software rasteriser (compile,
                    // tune, repeat for half a second) takes seconds.
                    let expected = Expected::new(std::time::Duration::from_secs(120));
                    let (matmul, bandwidth, skipped) =
                        owner
                            .run("benchmark", Priority::Long, expected, move |device| benchmark::run(device, plan))??;
                    Ok::<_, ComputeError>(BenchmarkResult {
                        device_id: bound.device.id.clone(),
                        backend: target.backend_name(),
                        finished_at_ms: unix_ms(),
                        matmul,
                        bandwidth: Some(bandwidth),
                        skipped,
                        wall_seconds: started.elapsed().as_secs_f64(),
                    })
                })
                .await
                .and_then(|r| r.map_err(ApiError::from));
            match &outcome {
                Ok(result) => {
                    engine.state.benchmarks.lock().unwrap_or_else(|e| e.into_inner()).insert(id, result.clone());
                    engine.emit(KilnEvent::BenchmarkFinished { result: result.clone() });
                }
                Err(error) => engine.emit(KilnEvent::BenchmarkFailed { device_id: id, error: error.clone() }),
            }
            outcome
        })
        .await
        .map_err(|e| ApiError::internal(format!("the benchmark task ended abnormally: {e}")))?
    }

    /// Releases the memory Kiln's compute pools hold on the device.
    pub async fn devices_reset(&self, input: DeviceRef) -> Result<ResetResult, ApiError> {
        self.bound(&input.device_id)?;
        let id = input.device_id.clone();
        let released = self
            .blocking(move |engine| {
                let released = engine.state.compute.release(&id);
                engine.sample_now();
                released
            })
            .await??;
        Ok(match released {
            Some((before, after)) => ResetResult {
                device_id: input.device_id,
                had_pools: true,
                released_bytes: before.bytes_reserved.saturating_sub(after.bytes_reserved),
                before: Some(before),
                after: Some(after),
            },
            None => ResetResult {
                device_id: input.device_id,
                had_pools: false,
                released_bytes: 0,
                before: None,
                after: None,
            },
        })
    }

    fn power_info(&self, bound: &BoundDevice) -> Result<PowerInfo, ApiError> {
        let id = bound.device.id.clone();
        if let Some(index) = bound.binding.nvml_index {
            let telemetry = self.state.telemetry.lock().unwrap_or_else(|e| e.into_inner());
            let limits = telemetry.nvml().power_limits(index)?;
            let root = is_root();
            return Ok(PowerInfo {
                device_id: id,
                limits,
                can_set: root,
                can_set_reason: if root {
                    "running as root: NVML accepts new limits".into()
                } else {
                    "the NVIDIA driver lets only root change power limits".into()
                },
            });
        }
        if let Some(hwmon) = bound.binding.drm_card.as_ref().and_then(|c| c.hwmon_dir.clone()) {
            let limits = power::hwmon_limits(&hwmon)?;
            let writable = power::hwmon_writable(&hwmon);
            return Ok(PowerInfo {
                device_id: id,
                limits,
                can_set: writable,
                can_set_reason: if writable {
                    "the hwmon power cap file is writable".into()
                } else {
                    "the hwmon power cap file is writable by root only".into()
                },
            });
        }
        Err(PowerError::Unsupported(match bound.device.kind {
            DeviceKind::Cpu => "Kiln does not manage CPU power limits".to_owned(),
            DeviceKind::SoftwareGpu => "a software adapter has no power limit of its own".to_owned(),
            _ => format!("no driver interface Kiln knows exposes {}'s power limit", bound.device.name),
        })
        .into())
    }

    pub async fn devices_power(&self, input: DeviceRef) -> Result<PowerInfo, ApiError> {
        let bound = self.bound(&input.device_id)?;
        self.blocking(move |engine| engine.power_info(&bound)).await?
    }

    /// Sets the power limit where the driver permits; otherwise a clear error says why not.
    pub async fn devices_set_power_limit(&self, input: SetPowerLimit) -> Result<PowerInfo, ApiError> {
        let bound = self.bound(&input.device_id)?;
        self.blocking(move |engine| engine.set_power_limit(&bound, input.watts)).await?
    }

    fn set_power_limit(&self, bound: &BoundDevice, watts: f64) -> Result<PowerInfo, ApiError> {
        let input = SetPowerLimit { device_id: bound.device.id.clone(), watts };
        let current = self.power_info(bound)?;
        current.limits.check(input.watts)?;
        match current.limits.target {
            PowerTarget::Nvml => {
                let index = bound.binding.nvml_index.expect("an NVML limit comes from an NVML card");
                let telemetry = self.state.telemetry.lock().unwrap_or_else(|e| e.into_inner());
                telemetry.nvml().set_power_limit(index, input.watts)?;
            }
            PowerTarget::Hwmon => {
                let hwmon = bound.binding.drm_card.as_ref().and_then(|c| c.hwmon_dir.clone());
                power::set_hwmon_limit(&hwmon.expect("an hwmon limit comes from an hwmon directory"), input.watts)?;
            }
        }
        self.power_info(bound)
    }

    /// Finds devices again (after a driver was installed or a card appeared).
    pub async fn devices_rescan(&self, _: NoInput) -> Result<DeviceList, ApiError> {
        let list = self
            .blocking(|engine| {
                // Under the telemetry lock, so no sample mixes the old and the new device list.
                let list = {
                    let mut telemetry = engine.state.telemetry.lock().unwrap_or_else(|e| e.into_inner());
                    let devices = telemetry.discover();
                    let list: Vec<Device> = devices.iter().map(|d| d.device.clone()).collect();
                    let ids: Vec<DeviceId> = list.iter().map(|d| d.id.clone()).collect();
                    *engine.state.devices.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(devices);
                    engine.state.live.write().unwrap_or_else(|e| e.into_inner()).history.forget_others(&ids);
                    list
                };
                engine.sample_now();
                list
            })
            .await?;
        self.emit(KilnEvent::DevicesChanged { devices: list.clone() });
        Ok(DeviceList { devices: list })
    }
}

/// Marks a device as benchmarking until dropped, so two benchmarks never share a device and a
/// failed or abandoned one never leaves it marked.
struct Running {
    engine: Engine,
    id: DeviceId,
}

impl Running {
    fn claim(engine: &Engine, id: &DeviceId) -> Result<Self, ApiError> {
        let mut running = engine.state.benchmarks_running.lock().unwrap_or_else(|e| e.into_inner());
        if !running.insert(id.clone()) {
            return Err(ApiError::new(ErrorCode::Busy, format!("a benchmark is already running on {id}")));
        }
        Ok(Self { engine: engine.clone(), id: id.clone() })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.engine.state.benchmarks_running.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

fn capabilities_of(bound: &BoundDevice) -> Capabilities {
    let device = &bound.device;
    let compute = device.adapters.iter().find(|a| Some(a.backend.as_str()) == device.compute_backend.as_deref());
    let precisions = match (bound.binding.compute, compute) {
        (Some(ComputeTarget::Flex), _) => vec![
            PrecisionSupport { dtype: "f32".into(), supported: true, note: "burn Flex".into() },
            PrecisionSupport {
                dtype: "f16".into(),
                supported: true,
                note: "converted per operation; slower than f32 on most CPUs".into(),
            },
            PrecisionSupport { dtype: "bf16".into(), supported: true, note: "converted per operation".into() },
        ],
        (Some(_), Some(adapter)) => vec![
            PrecisionSupport {
                dtype: "f32".into(),
                supported: true,
                note: format!("{} compute shaders", adapter.backend.as_str()),
            },
            PrecisionSupport {
                dtype: "f16".into(),
                supported: adapter.features.shader_f16,
                note: if adapter.features.shader_f16 {
                    "shader-f16".into()
                } else {
                    "the adapter lacks shader-f16".into()
                },
            },
            PrecisionSupport {
                dtype: "bf16".into(),
                supported: false,
                note: "wgpu shaders store bf16 but do not compute in it".into(),
            },
        ],
        _ => Vec::new(),
    };
    Capabilities {
        device_id: device.id.clone(),
        compute_backend: device.compute_backend.clone(),
        precisions,
        features: compute.map(|a| a.features.clone()),
        limits: compute.map(|a| a.limits.clone()),
        memory_total_bytes: device.memory_total_bytes,
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc_geteuid() == 0 }
}

#[cfg(unix)]
unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}
