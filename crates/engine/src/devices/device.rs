//! What a device is: one physical card (or the CPU), with every graphics adapter that reaches it.
//!
//! A card is usually seen several times (Vulkan, OpenGL, DX12, NVML, sysfs); discovery merges
//! those sightings into one [`Device`] keyed by its PCI address where one is known.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A device's stable name, the same across restarts: `pci:0000:01:00.0` for a card on a bus,
/// `cpu` for the processor, `adapter:<backend>:<slug>` for an adapter with no bus address
/// (software rasterisers such as lavapipe).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(transparent)]
pub struct DeviceId(pub String);

impl DeviceId {
    pub const CPU: &'static str = "cpu";

    pub fn cpu() -> Self {
        Self(Self::CPU.to_owned())
    }

    pub fn pci(bus_id: &str) -> Self {
        Self(format!("pci:{bus_id}"))
    }

    pub fn adapter(backend: GraphicsBackend, name: &str) -> Self {
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        Self(format!("adapter:{}:{slug}", backend.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What sort of device this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    DiscreteGpu,
    IntegratedGpu,
    VirtualGpu,
    /// A GPU API implemented on the CPU (Mesa lavapipe/llvmpipe, WARP, SwiftShader).
    SoftwareGpu,
    /// The processor and system RAM.
    Cpu,
    Other,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiscreteGpu => "discrete",
            Self::IntegratedGpu => "integrated",
            Self::VirtualGpu => "virtual",
            Self::SoftwareGpu => "software",
            Self::Cpu => "cpu",
            Self::Other => "other",
        }
    }

    pub fn is_gpu(self) -> bool {
        matches!(self, Self::DiscreteGpu | Self::IntegratedGpu | Self::VirtualGpu)
    }
}

/// A graphics API through which wgpu reaches an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum GraphicsBackend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
    BrowserWebGpu,
    Noop,
}

impl GraphicsBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vulkan => "vulkan",
            Self::Metal => "metal",
            Self::Dx12 => "dx12",
            Self::Gl => "gl",
            Self::BrowserWebGpu => "webgpu",
            Self::Noop => "noop",
        }
    }

    /// Whether burn's wgpu runtime can compute on this API at all (OpenGL ES 3.1 compute
    /// shaders through WGSL; Kiln uses it only where no better API works).
    pub fn computes(self) -> bool {
        matches!(self, Self::Vulkan | Self::Metal | Self::Dx12 | Self::Gl)
    }
}

/// The company behind a device, from its PCI vendor id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Vendor {
    /// PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x106b Apple, 0x10005 Mesa).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<u32>,
    pub name: String,
}

impl Vendor {
    pub fn from_pci_id(id: u32) -> Self {
        let name = match id {
            0x10de => "NVIDIA",
            0x1002 | 0x1022 => "AMD",
            0x8086 => "Intel",
            0x106b => "Apple",
            0x5143 => "Qualcomm",
            0x13b5 => "ARM",
            0x1010 => "Imagination",
            0x14e4 => "Broadcom",
            0x1414 => "Microsoft",
            0x10005 => "Mesa",
            0x1ae0 => "Google",
            _ => "Unknown",
        };
        Self { pci_id: Some(id), name: name.to_owned() }
    }
}

/// One wgpu adapter: the device as one graphics API sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Adapter {
    pub backend: GraphicsBackend,
    pub name: String,
    pub kind: DeviceKind,
    pub vendor_id: u32,
    pub device_id: u32,
    /// `0000:01:00.0` where the API reports it (Vulkan's PCI bus info extension).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<String>,
    pub driver: String,
    pub driver_info: String,
    /// Whether Kiln can run burn's kernels through this adapter.
    pub computes: bool,
    /// Why not, when it cannot.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_note: Option<String>,
    pub features: AdapterFeatures,
    pub limits: AdapterLimits,
}

/// The wgpu features that matter for Kiln's kernels, and the full list for the details panel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct AdapterFeatures {
    /// `f16` in shaders: half-precision storage and arithmetic.
    pub shader_f16: bool,
    /// Subgroup (warp/wave) operations.
    pub subgroups: bool,
    /// 64-bit integers in shaders.
    pub shader_int64: bool,
    /// GPU timestamps for profiling.
    pub timestamp_query: bool,
    /// Cooperative matrices (tensor cores) through wgpu's experimental feature.
    pub cooperative_matrix: bool,
    /// Vulkan only: `VK_KHR_workgroup_memory_explicit_layout`. burn 0.22's SPIR-V compiler
    /// (cubecl 0.11) emits invalid shared-memory code without it, which crashes drivers such
    /// as Mesa's lavapipe, so Kiln computes through another API of the device then.
    pub workgroup_memory_explicit_layout: bool,
    /// Every feature the adapter reports, by wgpu's name.
    pub all: Vec<String>,
}

/// The adapter limits that bound what Kiln can run in one dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct AdapterLimits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size: [u32; 3],
    pub max_compute_workgroups_per_dimension: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
}

/// A device as Kiln lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Device {
    pub id: DeviceId,
    pub name: String,
    pub kind: DeviceKind,
    pub vendor: Vendor,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_device_id: Option<u32>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<String>,
    /// The driver's unique id (NVML's `GPU-…` UUID).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Dedicated memory: VRAM for a card, system RAM for the CPU. Absent where no source says.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    /// The API Kiln computes with on this device, if any: `vulkan`, `dx12`, `metal`, or `cpu`
    /// (burn's pure-Rust Flex backend).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_backend: Option<String>,
    pub adapters: Vec<Adapter>,
    /// Which telemetry sources feed this device, and why the others do not.
    pub sources: Vec<SourceState>,
}

/// Whether a telemetry source feeds a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SourceState {
    pub source: crate::devices::MetricSource,
    pub available: bool,
    /// Why not, or what it reads ("NVML 12.580, driver 580.159.04").
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_ids_are_slugs() {
        let id = DeviceId::adapter(GraphicsBackend::Vulkan, "llvmpipe (LLVM 15.0.6, 256 bits)");
        assert_eq!(id.as_str(), "adapter:vulkan:llvmpipe-llvm-15-0-6-256-bits");
    }

    #[test]
    fn vendors_by_pci_id() {
        assert_eq!(Vendor::from_pci_id(0x10de).name, "NVIDIA");
        assert_eq!(Vendor::from_pci_id(0x10005).name, "Mesa");
        assert_eq!(Vendor::from_pci_id(0xdead).name, "Unknown");
    }
}
