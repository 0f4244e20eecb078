//! Kiln's compute devices: each Kiln device's burn device reached through its owner thread
//! ([`owner`]: all burn work for a device runs there, one piece at a time, under a watchdog),
//! their memory pools, and the boundary where a panic inside GPU code becomes a typed error.
//!
//! burn devices initialise lazily (the wgpu device and cubecl's pools come up on first use), so
//! a device counts as open here once Kiln has run work on it; only open devices report pools.
//!
//! A pool reading is a short request to the device's owner, served between the steps of what
//! runs there: after the current tile of a job, which on a software rasteriser can take a
//! minute. The background sampler's tick reads every device under one lock, so it takes
//! [`ComputeDevices::pool_usage_within`]: at most one reading in flight a device, waited for
//! [`READING_WAIT`] at most, else the last reading that came back ([`PoolReadings`]). What the
//! UI asks for (the memory map, a device's advice) waits [`UI_READING_WAIT`] the same way and
//! says when its figures are the last reading ([`ComputeDevices::recent_pool_usage`]); what sizes
//! work (a job's tiles, a model's admission, a release) waits for an exact answer
//! ([`ComputeDevices::pool_usage`]).

pub mod benchmark;
pub mod kernels;
pub mod owner;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use burn::backend::{WgpuBackend, WgpuDevice, WgpuDeviceKind};
use burn::tensor::Device;
pub use owner::{DeviceOwner, Expected, Priority, Reporter, between_steps};

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
    /// The device's watchdog saw its work stop making progress (see [`owner`]).
    #[error("{0}")]
    Stalled(String),
}

impl From<ComputeError> for ApiError {
    fn from(error: ComputeError) -> Self {
        let code = match error {
            ComputeError::OutOfMemory(_) => ErrorCode::OutOfMemory,
            ComputeError::Failed(_) => ErrorCode::ComputeFailed,
            ComputeError::NoBackend(_) => ErrorCode::Unsupported,
            ComputeError::Stalled(_) => ErrorCode::DeviceStalled,
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
/// because the device is still busy with earlier work.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RecentPools {
    pub usage: Option<PoolUsage>,
    pub pending: bool,
}

/// A device this engine has run work on: its owner and its pool readings.
struct OpenDevice {
    owner: Arc<DeviceOwner>,
    readings: Arc<PoolReadings>,
}

/// The devices this engine has run work on, each reached through its owner thread.
#[derive(Default)]
pub struct ComputeDevices {
    open: Mutex<HashMap<DeviceId, OpenDevice>>,
}

impl ComputeDevices {
    /// The owner of `id`'s burn device (`target`), the device marked open from now on. `name`
    /// names the owner's threads.
    pub fn owner(&self, id: &DeviceId, target: ComputeTarget, name: &str) -> Result<Arc<DeviceOwner>, ComputeError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = open.get(id) {
            return Ok(entry.owner.clone());
        }
        let owner = owner::owner_for(target, name)?;
        open.insert(id.clone(), OpenDevice { owner: owner.clone(), readings: Arc::default() });
        Ok(owner)
    }

    /// The owner of `id`, if this engine opened it.
    pub fn opened(&self, id: &DeviceId) -> Option<Arc<DeviceOwner>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.owner.clone())
    }

    pub fn is_open(&self, id: &DeviceId) -> bool {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// What Kiln's pools hold on `id` once the device's owner has finished the step it is on;
    /// `None` when Kiln never ran work there (or the device is stalled).
    pub fn pool_usage(&self, id: &DeviceId) -> Option<PoolUsage> {
        let (owner, readings) = self.owner_and_readings(id)?;
        let usage = owner.run("pool reading", Priority::Short, Expected::short(), read_pools).ok()?;
        readings.state.lock().unwrap_or_else(|e| e.into_inner()).last = usage;
        usage
    }

    /// What Kiln's pools hold on `id`, waiting for the device's current step for `wait` at
    /// most (then the last reading that came back); `None` when Kiln never ran work there, or
    /// no reading has come back yet.
    pub fn pool_usage_within(&self, id: &DeviceId, wait: Duration) -> Option<PoolUsage> {
        self.recent_pool_usage(id, wait).usage
    }

    /// As [`Self::pool_usage_within`], saying whether the figures are the last reading (the
    /// device still busy after `wait`).
    pub fn recent_pool_usage(&self, id: &DeviceId, wait: Duration) -> RecentPools {
        let Some((owner, readings)) = self.owner_and_readings(id) else {
            return RecentPools::default();
        };
        readings.read(
            move |reading| owner.post("pool reading", Priority::Short, move |device| reading(read_pools(device))),
            wait,
        )
    }

    fn owner_and_readings(&self, id: &DeviceId) -> Option<(Arc<DeviceOwner>, Arc<PoolReadings>)> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let entry = open.get(id)?;
        Some((entry.owner.clone(), entry.readings.clone()))
    }

    /// Releases the memory Kiln's pools hold but do not use; returns the usage before and after.
    pub fn release(&self, id: &DeviceId) -> Result<Option<(PoolUsage, PoolUsage)>, ComputeError> {
        let Some((owner, readings)) = self.owner_and_readings(id) else {
            return Ok(None);
        };
        let (before, after) = owner.run("pool release", Priority::Short, Expected::short(), |device| {
            let before = read_pools(device);
            let _ = device.sync();
            device.memory_cleanup();
            (before, read_pools(device))
        })?;
        readings.state.lock().unwrap_or_else(|e| e.into_inner()).last = after;
        Ok(Some((before.unwrap_or_default(), after.unwrap_or_default())))
    }

    /// The stall the device's watchdog reports, for its health.
    pub fn stall(&self, id: &DeviceId) -> Option<owner::Stall> {
        self.opened(id)?.stall()
    }
}

/// burn's pool reading for `device`, on the device's owner thread.
fn read_pools(device: &Device) -> Option<PoolUsage> {
    let usage = guarded(|| device.memory_pool_usage()).ok()??;
    Some(PoolUsage {
        allocations: usage.number_allocs,
        bytes_in_use: usage.bytes_in_use,
        bytes_padding: usage.bytes_padding,
        bytes_reserved: usage.bytes_reserved,
    })
}

/// One device's pool readings: at most one in flight, and the last that came back. The reading
/// itself runs on the device's owner as a short request, served between the steps of whatever
/// runs there; a step on a software rasteriser can take a minute, so callers wait a bounded time
/// and take the last reading.
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

/// Hands a reading's answer back to [`PoolReadings`].
pub(crate) type Answer = Box<dyn FnOnce(Option<PoolUsage>) + Send>;

impl PoolReadings {
    /// Starts a reading through `start` (which queues it and says whether it did; the reading
    /// calls the answer it is given) unless one is already in flight, waits up to `wait` for
    /// the one in flight, and returns the last reading that came back (`pending` when that is
    /// an older one).
    pub(crate) fn read(self: &Arc<Self>, start: impl FnOnce(Answer) -> bool, wait: Duration) -> RecentPools {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.in_flight {
            let readings = Arc::clone(self);
            let answer: Answer = Box::new(move |usage| {
                let mut state = readings.state.lock().unwrap_or_else(|e| e.into_inner());
                (state.last, state.in_flight) = (usage, false);
                readings.answered.notify_all();
            });
            state.in_flight = true;
            drop(state);
            let queued = start(answer);
            state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !queued {
                state.in_flight = false;
            }
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
        let answer_now = |usage: Option<PoolUsage>| {
            move |answer: Answer| {
                answer(usage);
                true
            }
        };
        assert_eq!(
            readings.read(answer_now(Some(first)), Duration::from_secs(10)),
            RecentPools { usage: Some(first), pending: false }
        );

        let (release, released) = std::sync::mpsc::channel::<()>();
        let second = PoolUsage { allocations: 2, ..Default::default() };
        // Bounded, so a `read` that waited for it would fail the elapsed check, not hang.
        let slow = move |answer: Answer| {
            std::thread::spawn(move || {
                let _ = released.recv_timeout(Duration::from_secs(30));
                answer(Some(second));
            });
            true
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
        let never = move |answer: Answer| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            answer(None);
            true
        };
        assert_eq!(readings.read(never, Duration::from_millis(10)).usage, Some(first));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0, "no second reading while one is in flight");
        release.send(()).unwrap();
        let state = readings.state.lock().unwrap();
        let (state, _) = readings.answered.wait_timeout_while(state, Duration::from_secs(10), |s| s.in_flight).unwrap();
        assert_eq!(state.last, Some(second), "the stuck reading's answer is kept when it comes");
        drop(state);
        let refused = |_: Answer| false;
        assert_eq!(
            readings.read(refused, Duration::from_secs(10)),
            RecentPools { usage: Some(second), pending: false },
            "a reading a stalled device did not queue is not waited for"
        );
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
