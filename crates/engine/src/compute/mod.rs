//! Kiln's compute devices: burn devices opened on demand per Kiln device, their memory pools,
//! and the boundary where a panic inside GPU code becomes a typed error.
//!
//! burn devices initialise lazily (the wgpu device and cubecl's pools come up on first use), so
//! a device counts as open here once Kiln has run work on it; only open devices report pools.
//!
//! burn answers a pool reading on the device's fusion runner, after whatever that runner is
//! doing: a tile's synchronisation waits for the GPU, a first launch compiles its kernels. Such a
//! reading waited 4.9-6.8 s behind one small job on lavapipe, and the background sampler's tick
//! reads every device under one lock. So the sampler takes [`ComputeDevices::pool_usage_within`]:
//! at most one reading in flight a device, on a thread of its own, waited for
//! [`READING_WAIT`] at most, else the last reading that came back ([`PoolReadings`]). What the
//! UI asks for (the memory map, a device's advice) waits [`UI_READING_WAIT`] the same way and
//! says when its figures are the last reading ([`ComputeDevices::recent_pool_usage`]); what sizes
//! work (a job's tiles, a model's admission, a release) waits for an exact answer
//! ([`ComputeDevices::pool_usage`]).

pub mod benchmark;
pub mod kernels;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use burn::backend::{WgpuBackend, WgpuDevice, WgpuDeviceKind};
use burn::tensor::Device;

use crate::devices::discovery::{ComputeTarget, WgpuSelector};
use crate::devices::{DeviceId, GraphicsBackend, PoolUsage};
use crate::error::{ApiError, ErrorCode};

/// Why GPU work failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComputeError {
    #[error("the device ran out of memory: {0}")]
    OutOfMemory(String),
    #[error("GPU work failed: {0}")]
    Failed(String),
    #[error("{0} has no compute backend Kiln can use")]
    NoBackend(DeviceId),
}

impl From<ComputeError> for ApiError {
    fn from(error: ComputeError) -> Self {
        let code = match error {
            ComputeError::OutOfMemory(_) => ErrorCode::OutOfMemory,
            ComputeError::Failed(_) => ErrorCode::ComputeFailed,
            ComputeError::NoBackend(_) => ErrorCode::Unsupported,
        };
        ApiError::new(code, error.to_string())
    }
}

/// Runs GPU work, turning a panic inside burn or cubecl (out of memory, a lost device, a
/// kernel that failed to compile) into a typed error rather than a crash.
pub fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, ComputeError> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned());
        ComputeError::from_message(message)
    })
}

impl ComputeError {
    /// A failure reported as text by burn or cubecl (a panic, an execution error), typed by
    /// what it says: running out of memory becomes [`ComputeError::OutOfMemory`], which callers
    /// retry with less memory.
    pub fn from_message(message: String) -> Self {
        let lower = message.to_ascii_lowercase();
        if lower.contains("out of memory") || lower.contains("can't allocate") || lower.contains("outofmemory") {
            Self::OutOfMemory(message)
        } else {
            Self::Failed(message)
        }
    }
}

/// The burn device for a compute target.
pub fn burn_device(target: ComputeTarget) -> Device {
    match target {
        ComputeTarget::Flex => Device::flex(),
        ComputeTarget::Wgpu { backend, selector } => {
            let kind = match selector {
                WgpuSelector::Discrete(n) => WgpuDeviceKind::DiscreteGpu(n),
                WgpuSelector::Integrated(n) => WgpuDeviceKind::IntegratedGpu(n),
                WgpuSelector::Virtual(n) => WgpuDeviceKind::VirtualGpu(n),
                WgpuSelector::Cpu => WgpuDeviceKind::Cpu,
                WgpuSelector::Other(n) => WgpuDeviceKind::Other(n),
            };
            let api = match backend {
                GraphicsBackend::Vulkan => WgpuBackend::Vulkan,
                GraphicsBackend::Metal => WgpuBackend::Metal,
                GraphicsBackend::Dx12 => WgpuBackend::Dx12,
                GraphicsBackend::Gl => WgpuBackend::Gl,
                _ => WgpuBackend::Auto,
            };
            Device::new(WgpuDevice::new(kind).on(api))
        }
    }
}

/// How long the background sampler waits for a pool reading before it uses the last one.
pub(crate) const READING_WAIT: Duration = Duration::from_millis(100);

/// How long a query from the UI waits for a pool reading before it takes the last one.
pub(crate) const UI_READING_WAIT: Duration = Duration::from_millis(500);

/// A pool reading for the UI: the figures, and whether they are the last reading that came back
/// because the device is still busy with work queued before this one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RecentPools {
    pub usage: Option<PoolUsage>,
    pub pending: bool,
}

/// An open device: its burn device and its pool readings.
struct OpenDevice {
    device: Device,
    readings: Arc<PoolReadings>,
}

/// The burn devices Kiln has run work on.
#[derive(Default)]
pub struct ComputeDevices {
    open: Mutex<HashMap<DeviceId, OpenDevice>>,
}

impl ComputeDevices {
    /// The device for `id`, marked open from now on.
    pub fn open(&self, id: &DeviceId, target: ComputeTarget) -> Device {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let entry = open
            .entry(id.clone())
            .or_insert_with(|| OpenDevice { device: burn_device(target), readings: Arc::default() });
        entry.device.clone()
    }

    pub fn is_open(&self, id: &DeviceId) -> bool {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// What Kiln's pools hold on `id` once the device's runner has done what was queued before
    /// this call; `None` when Kiln never ran work there.
    pub fn pool_usage(&self, id: &DeviceId) -> Option<PoolUsage> {
        let (device, readings) = self.device_and_readings(id)?;
        let usage = read_pools(&device);
        readings.state.lock().unwrap_or_else(|e| e.into_inner()).last = usage;
        usage
    }

    /// What Kiln's pools hold on `id`, waiting behind the device's work for `wait` at most (then
    /// the last reading that came back); `None` when Kiln never ran work there, or no reading
    /// has come back yet.
    pub fn pool_usage_within(&self, id: &DeviceId, wait: Duration) -> Option<PoolUsage> {
        self.recent_pool_usage(id, wait).usage
    }

    /// As [`Self::pool_usage_within`], saying whether the figures are the last reading (the
    /// device still busy after `wait`).
    pub fn recent_pool_usage(&self, id: &DeviceId, wait: Duration) -> RecentPools {
        let Some((device, readings)) = self.device_and_readings(id) else {
            return RecentPools::default();
        };
        readings.read(move || read_pools(&device), wait)
    }

    fn device_and_readings(&self, id: &DeviceId) -> Option<(Device, Arc<PoolReadings>)> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let entry = open.get(id)?;
        Some((entry.device.clone(), entry.readings.clone()))
    }

    /// Releases the memory Kiln's pools hold but do not use; returns the usage before and after.
    pub fn release(&self, id: &DeviceId) -> Result<Option<(PoolUsage, PoolUsage)>, ComputeError> {
        let Some((device, _)) = self.device_and_readings(id) else {
            return Ok(None);
        };
        let before = self.pool_usage(id).unwrap_or_default();
        guarded(|| {
            let _ = device.sync();
            device.memory_cleanup();
        })?;
        let after = self.pool_usage(id).unwrap_or_default();
        Ok(Some((before, after)))
    }
}

/// burn's pool reading for `device`, waiting as long as the device's runner takes.
fn read_pools(device: &Device) -> Option<PoolUsage> {
    let usage = guarded(|| device.memory_pool_usage()).ok()??;
    Some(PoolUsage {
        allocations: usage.number_allocs,
        bytes_in_use: usage.bytes_in_use,
        bytes_padding: usage.bytes_padding,
        bytes_reserved: usage.bytes_reserved,
    })
}

/// One device's pool readings: at most one in flight, and the last that came back.
#[derive(Default)]
pub(crate) struct PoolReadings {
    state: Mutex<ReadingState>,
    answered: Condvar,
}

#[derive(Default)]
struct ReadingState {
    last: Option<PoolUsage>,
    in_flight: bool,
}

impl PoolReadings {
    /// Starts `reading` on a thread of its own unless one is already in flight, waits up to
    /// `wait` for the one in flight, and returns the last reading that came back (`pending`
    /// when that is an older one).
    pub(crate) fn read(
        self: &Arc<Self>,
        reading: impl FnOnce() -> Option<PoolUsage> + Send + 'static,
        wait: Duration,
    ) -> RecentPools {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.in_flight {
            let readings = Arc::clone(self);
            let started = std::thread::Builder::new().name("kiln-pool-reading".into()).spawn(move || {
                let usage = reading();
                let mut state = readings.state.lock().unwrap_or_else(|e| e.into_inner());
                (state.last, state.in_flight) = (usage, false);
                readings.answered.notify_all();
            });
            state.in_flight = started.is_ok();
        }
        let (state, _) =
            self.answered.wait_timeout_while(state, wait, |s| s.in_flight).unwrap_or_else(|e| e.into_inner());
        RecentPools { usage: state.last, pending: state.in_flight }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_typed_errors() {
        let oom = guarded(|| -> () { panic!("can't allocate buffer of size 4246732800") }).unwrap_err();
        assert!(matches!(oom, ComputeError::OutOfMemory(_)));
        let other = guarded(|| -> () { panic!("{}", String::from("device lost")) }).unwrap_err();
        assert_eq!(other, ComputeError::Failed("device lost".into()));
        assert_eq!(ApiError::from(other).code, ErrorCode::ComputeFailed);
        assert_eq!(guarded(|| 3).unwrap(), 3);
    }

    /// A reading stuck behind the device's work does not hold its callers: they get the last
    /// reading after the wait, no second reading starts while one is in flight, and its answer
    /// is what the next caller sees.
    #[test]
    fn a_slow_pool_reading_does_not_hold_its_callers() {
        let readings = Arc::new(PoolReadings::default());
        let first = PoolUsage { allocations: 1, ..Default::default() };
        assert_eq!(
            readings.read(move || Some(first), Duration::from_secs(10)),
            RecentPools { usage: Some(first), pending: false }
        );

        let (release, released) = std::sync::mpsc::channel::<()>();
        let second = PoolUsage { allocations: 2, ..Default::default() };
        // Bounded, so a `read` that waited for it would fail the elapsed check, not hang.
        let slow = move || {
            let _ = released.recv_timeout(Duration::from_secs(30));
            Some(second)
        };
        let started = std::time::Instant::now();
        assert_eq!(
            readings.read(slow, Duration::from_millis(50)),
            RecentPools { usage: Some(first), pending: true },
            "the last reading while one is stuck, said to be so"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let never = move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            None
        };
        assert_eq!(readings.read(never, Duration::from_millis(10)).usage, Some(first));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0, "no second reading while one is in flight");
        release.send(()).unwrap();
        let state = readings.state.lock().unwrap();
        let (state, _) = readings.answered.wait_timeout_while(state, Duration::from_secs(10), |s| s.in_flight).unwrap();
        assert_eq!(state.last, Some(second), "the stuck reading's answer is kept when it comes");
    }

    #[test]
    fn unopened_devices_report_no_pools() {
        let devices = ComputeDevices::default();
        assert_eq!(devices.pool_usage(&DeviceId::cpu()), None);
        assert_eq!(devices.pool_usage_within(&DeviceId::cpu(), READING_WAIT), None);
        assert_eq!(devices.recent_pool_usage(&DeviceId::cpu(), UI_READING_WAIT), RecentPools::default());
        assert_eq!(devices.release(&DeviceId::cpu()).unwrap(), None);
    }
}
