//! Kiln's compute devices: burn devices opened on demand per Kiln device, their memory pools,
//! and the boundary where a panic inside GPU code becomes a typed error.
//!
//! burn devices initialise lazily (the wgpu device and cubecl's pools come up on first use), so
//! a device counts as open here once Kiln has run work on it; only open devices report pools.

pub mod benchmark;
pub mod kernels;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

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

/// The burn devices Kiln has run work on.
#[derive(Default)]
pub struct ComputeDevices {
    open: Mutex<HashMap<DeviceId, (ComputeTarget, Device)>>,
}

impl ComputeDevices {
    /// The device for `id`, marked open from now on.
    pub fn open(&self, id: &DeviceId, target: ComputeTarget) -> Device {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.entry(id.clone()).or_insert_with(|| (target, burn_device(target))).1.clone()
    }

    pub fn is_open(&self, id: &DeviceId) -> bool {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// What Kiln's pools hold on `id`; `None` when Kiln never ran work there.
    pub fn pool_usage(&self, id: &DeviceId) -> Option<PoolUsage> {
        let device = self.open.lock().unwrap_or_else(|e| e.into_inner()).get(id)?.1.clone();
        let usage = guarded(|| device.memory_pool_usage()).ok()??;
        Some(PoolUsage {
            allocations: usage.number_allocs,
            bytes_in_use: usage.bytes_in_use,
            bytes_padding: usage.bytes_padding,
            bytes_reserved: usage.bytes_reserved,
        })
    }

    /// Releases the memory Kiln's pools hold but do not use; returns the usage before and after.
    pub fn release(&self, id: &DeviceId) -> Result<Option<(PoolUsage, PoolUsage)>, ComputeError> {
        let Some(device) = self.open.lock().unwrap_or_else(|e| e.into_inner()).get(id).map(|d| d.1.clone()) else {
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

    #[test]
    fn unopened_devices_report_no_pools() {
        let devices = ComputeDevices::default();
        assert_eq!(devices.pool_usage(&DeviceId::cpu()), None);
        assert_eq!(devices.release(&DeviceId::cpu()).unwrap(), None);
    }
}
