//! Finding devices: every wgpu adapter on every backend, merged per physical card with what
//! NVML, sysfs and DXGI say, plus the CPU.
//!
//! Cards are keyed by PCI address where any source reports one (Vulkan's PCI bus info, NVML,
//! sysfs); adapters without one join a card with the same vendor and device id, or stand alone
//! (software rasterisers, which appear once per API and are grouped by name).

use std::sync::Mutex;

use super::device::{Adapter, AdapterFeatures, AdapterLimits, Device, DeviceId, DeviceKind, GraphicsBackend, Vendor};
use super::telemetry::drm::DrmCard;
use super::telemetry::nvml::NvmlIdentity;
use super::telemetry::pdh_names::Luid;
use super::telemetry::system::CpuIdentity;

/// How burn's wgpu runtime addresses an adapter: the nth adapter of its type on one backend.
/// Mirrors cubecl-wgpu's `WgpuDeviceKind` selection (each type counts from zero on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WgpuSelector {
    Discrete(usize),
    Integrated(usize),
    Virtual(usize),
    Cpu,
    Other(usize),
}

/// Where Kiln's compute for a device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComputeTarget {
    Wgpu {
        backend: GraphicsBackend,
        selector: WgpuSelector,
    },
    /// burn's pure-Rust CPU backend.
    Flex,
}

impl ComputeTarget {
    pub fn backend_name(&self) -> String {
        match self {
            Self::Wgpu { backend, .. } => backend.as_str().to_owned(),
            Self::Flex => "cpu".to_owned(),
        }
    }
}

/// An adapter and how to open it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterProbe {
    pub adapter: Adapter,
    pub selector: WgpuSelector,
}

/// An adapter as DXGI lists it (Windows), reduced to what merging needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DxgiIdentity {
    pub name: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub luid: Luid,
    pub dedicated_video_memory: u64,
    pub software: bool,
}

/// Which telemetry sources read a device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Binding {
    pub nvml_index: Option<u32>,
    pub drm_card: Option<DrmCard>,
    pub dxgi_luid: Option<Luid>,
    pub compute: Option<ComputeTarget>,
}

/// A device and the handles that read and run it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundDevice {
    pub device: Device,
    pub binding: Binding,
    /// What each source is, for the device's source list.
    pub(crate) adapters: Vec<AdapterProbe>,
}

/// Everything the sources found, before merging.
#[derive(Debug, Clone, Default)]
pub struct Sightings {
    pub adapters: Vec<AdapterProbe>,
    pub nvml: Vec<NvmlIdentity>,
    pub drm: Vec<DrmCard>,
    pub dxgi: Vec<DxgiIdentity>,
    pub cpu: Option<CpuIdentity>,
}

/// wgpu instances are kept for the life of the process: the Vulkan loader is not safe against
/// instances being created and destroyed on several threads at once (cubecl keeps its own the
/// same way), and discovery must never race a compute device coming up.
static INSTANCES: Mutex<Vec<(GraphicsBackend, wgpu::Instance)>> = Mutex::new(Vec::new());

/// Every adapter wgpu finds, backend by backend, in the order burn's runtime would see them.
pub fn probe_wgpu() -> Vec<AdapterProbe> {
    let mut instances = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    let backends = [
        (wgpu::Backends::VULKAN, GraphicsBackend::Vulkan),
        (wgpu::Backends::METAL, GraphicsBackend::Metal),
        (wgpu::Backends::DX12, GraphicsBackend::Dx12),
        (wgpu::Backends::GL, GraphicsBackend::Gl),
    ];
    let mut probes = Vec::new();
    for (bits, backend) in backends {
        if !wgpu::Instance::enabled_backend_features().contains(bits) {
            continue;
        }
        let instance = match instances.iter().find(|(b, _)| *b == backend) {
            Some((_, instance)) => instance.clone(),
            None => {
                let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                    backends: bits,
                    ..wgpu::InstanceDescriptor::new_without_display_handle()
                });
                instances.push((backend, instance.clone()));
                instance
            }
        };
        let adapters = pollster::block_on(instance.enumerate_adapters(bits));
        let mut counters = [0usize; 4];
        for adapter in adapters {
            let info = adapter.get_info();
            let mut next = |slot: usize| {
                let index = counters[slot];
                counters[slot] += 1;
                index
            };
            let selector = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => WgpuSelector::Discrete(next(0)),
                wgpu::DeviceType::IntegratedGpu => WgpuSelector::Integrated(next(1)),
                wgpu::DeviceType::VirtualGpu => WgpuSelector::Virtual(next(2)),
                wgpu::DeviceType::Cpu => WgpuSelector::Cpu,
                wgpu::DeviceType::Other => WgpuSelector::Other(next(3)),
            };
            probes.push(AdapterProbe { adapter: describe(&adapter, &info, backend), selector });
        }
    }
    probes
}

/// Whether a Vulkan adapter offers `VK_KHR_workgroup_memory_explicit_layout`.
#[cfg(not(any(target_os = "macos", target_os = "ios", target_family = "wasm")))]
fn explicit_workgroup_layout(adapter: &wgpu::Adapter) -> bool {
    // SAFETY: the hal adapter is only read, while `adapter` is alive.
    unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }.is_some_and(|hal| {
        hal.physical_device_capabilities().supports_extension(c"VK_KHR_workgroup_memory_explicit_layout")
    })
}

#[cfg(any(target_os = "macos", target_os = "ios", target_family = "wasm"))]
fn explicit_workgroup_layout(_: &wgpu::Adapter) -> bool {
    false
}

fn describe(adapter: &wgpu::Adapter, info: &wgpu::AdapterInfo, backend: GraphicsBackend) -> Adapter {
    let features = adapter.features();
    let limits = adapter.limits();
    let explicit_layout = backend == GraphicsBackend::Vulkan && explicit_workgroup_layout(adapter);
    let compute_note = match backend {
        GraphicsBackend::Vulkan if cfg!(feature = "vulkan") && !explicit_layout => Some(
            "this Vulkan driver lacks VK_KHR_workgroup_memory_explicit_layout, without which burn 0.22's SPIR-V \
             kernels (cubecl 0.11) are invalid and crash the driver"
                .to_owned(),
        ),
        // OpenGL compute is the path of last resort for software rasterisers (above); on real
        // GPUs Kiln uses Vulkan, DX12 or Metal, and NVIDIA's GL driver loses the device under
        // wgpu's compute validation.
        GraphicsBackend::Gl if info.device_type != wgpu::DeviceType::Cpu => {
            Some("Kiln computes on hardware GPUs through Vulkan, DX12 or Metal, not OpenGL".to_owned())
        }
        backend if !backend.computes() => Some(format!("burn does not compute through {}", backend.as_str())),
        _ => None,
    };
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu,
        wgpu::DeviceType::Cpu => DeviceKind::SoftwareGpu,
        wgpu::DeviceType::Other => DeviceKind::Other,
    };
    Adapter {
        backend,
        name: info.name.clone(),
        kind,
        vendor_id: info.vendor,
        device_id: info.device,
        pci_bus_id: (!info.device_pci_bus_id.is_empty()).then(|| info.device_pci_bus_id.to_ascii_lowercase()),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        computes: compute_note.is_none(),
        compute_note,
        features: AdapterFeatures {
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            shader_int64: features.contains(wgpu::Features::SHADER_INT64),
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            cooperative_matrix: features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
            workgroup_memory_explicit_layout: explicit_layout,
            all: features.iter_names().map(|(name, _)| name.to_owned()).collect(),
        },
        limits: AdapterLimits {
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size: [
                limits.max_compute_workgroup_size_x,
                limits.max_compute_workgroup_size_y,
                limits.max_compute_workgroup_size_z,
            ],
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
        },
    }
}

/// One card being assembled from its sightings.
#[derive(Default)]
struct Card {
    pci_bus_id: Option<String>,
    vendor_id: Option<u32>,
    device_id: Option<u32>,
    nvml: Option<NvmlIdentity>,
    drm: Option<DrmCard>,
    dxgi: Option<DxgiIdentity>,
    adapters: Vec<AdapterProbe>,
}

impl Card {
    fn matches_ids(&self, vendor: u32, device: u32) -> bool {
        self.vendor_id == Some(vendor) && self.device_id == Some(device)
    }

    /// Every name a source gave this card.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.nvml
            .iter()
            .map(|n| n.name.as_str())
            .chain(self.dxgi.iter().map(|d| d.name.as_str()))
            .chain(self.adapters.iter().map(|a| a.adapter.name.as_str()))
    }
}

/// Merges sightings into devices: GPUs in bus order, then adapters without a bus, then the CPU.
pub fn merge(sightings: Sightings) -> Vec<BoundDevice> {
    let mut cards: Vec<Card> = Vec::new();
    let by_bus = |cards: &mut Vec<Card>, bus: &str| -> usize {
        match cards.iter().position(|c| c.pci_bus_id.as_deref() == Some(bus)) {
            Some(i) => i,
            None => {
                cards.push(Card { pci_bus_id: Some(bus.to_owned()), ..Card::default() });
                cards.len() - 1
            }
        }
    };
    for identity in sightings.nvml {
        let index = match &identity.pci_bus_id {
            Some(bus) => by_bus(&mut cards, bus),
            None => {
                cards.push(Card::default());
                cards.len() - 1
            }
        };
        let card = &mut cards[index];
        card.vendor_id = Some(0x10de);
        card.device_id = card.device_id.or(identity.pci_device_id);
        card.nvml = Some(identity);
    }
    for drm in sightings.drm {
        let Some(bus) = drm.pci_bus_id.clone() else { continue };
        let index = by_bus(&mut cards, &bus);
        let card = &mut cards[index];
        card.vendor_id = card.vendor_id.or(drm.vendor_id);
        card.device_id = card.device_id.or(drm.device_id);
        card.drm = Some(drm);
    }
    for dxgi in sightings.dxgi.into_iter().filter(|d| !d.software) {
        let free = cards.iter().position(|c| c.dxgi.is_none() && c.matches_ids(dxgi.vendor_id, dxgi.device_id));
        match free {
            Some(i) => cards[i].dxgi = Some(dxgi),
            None => cards.push(Card {
                vendor_id: Some(dxgi.vendor_id),
                device_id: Some(dxgi.device_id),
                dxgi: Some(dxgi),
                ..Card::default()
            }),
        }
    }
    // Adapters: by bus where known, else the k-th adapter with an id pair on a backend joins the
    // k-th card with that pair; software adapters group by name.
    let mut software: Vec<(String, Vec<AdapterProbe>)> = Vec::new();
    for probe in sightings.adapters {
        let adapter = &probe.adapter;
        if adapter.kind == DeviceKind::SoftwareGpu {
            match software.iter_mut().find(|(name, _)| *name == adapter.name) {
                Some((_, list)) => list.push(probe),
                None => software.push((adapter.name.clone(), vec![probe])),
            }
            continue;
        }
        if let Some(bus) = adapter.pci_bus_id.clone() {
            // A card first seen without a bus address (DXGI) is this one if the ids match.
            let known = cards.iter().any(|c| c.pci_bus_id.as_deref() == Some(bus.as_str()));
            let adopt = cards
                .iter()
                .position(|c| c.pci_bus_id.is_none() && c.matches_ids(adapter.vendor_id, adapter.device_id));
            if let (false, Some(i)) = (known, adopt) {
                cards[i].pci_bus_id = Some(bus.clone());
            }
            let index = by_bus(&mut cards, &bus);
            let card = &mut cards[index];
            card.vendor_id = card.vendor_id.or(Some(adapter.vendor_id));
            card.device_id = card.device_id.or(Some(adapter.device_id));
            card.adapters.push(probe);
            continue;
        }
        let (vendor, device, backend) = (adapter.vendor_id, adapter.device_id, adapter.backend);
        let free = |c: &Card| !c.adapters.iter().any(|a| a.adapter.backend == backend);
        // OpenGL drivers report no device id: match by the renderer name (`NVIDIA H200/PCIe/SSE2`
        // for the card NVML calls `NVIDIA H200`).
        let slot = cards.iter().position(|c| c.matches_ids(vendor, device) && free(c)).or_else(|| {
            cards
                .iter()
                .position(|c| free(c) && c.names().any(|name| !name.is_empty() && adapter.name.starts_with(name)))
        });
        match slot {
            Some(i) => cards[i].adapters.push(probe),
            None => cards.push(Card {
                vendor_id: Some(vendor),
                device_id: Some(device),
                adapters: vec![probe],
                ..Card::default()
            }),
        }
    }
    cards.sort_by(|a, b| a.pci_bus_id.is_none().cmp(&b.pci_bus_id.is_none()).then(a.pci_bus_id.cmp(&b.pci_bus_id)));

    let mut devices: Vec<BoundDevice> = cards.into_iter().map(card_device).collect();
    devices.extend(software.into_iter().map(|(name, adapters)| software_device(name, adapters)));
    if let Some(cpu) = sightings.cpu {
        devices.push(cpu_device(cpu));
    }
    // Identical cards without bus addresses would share an id: number the later ones.
    let mut seen = std::collections::HashMap::new();
    for bound in &mut devices {
        let count = seen.entry(bound.device.id.clone()).or_insert(0u32);
        *count += 1;
        if *count > 1 {
            bound.device.id = DeviceId(format!("{}#{count}", bound.device.id));
        }
    }
    devices
}

/// The adapter Kiln computes through: the first that computes, by platform preference.
fn compute_adapter(adapters: &[AdapterProbe]) -> Option<&AdapterProbe> {
    let order: &[GraphicsBackend] = if cfg!(target_os = "macos") {
        &[GraphicsBackend::Metal, GraphicsBackend::Vulkan, GraphicsBackend::Gl]
    } else {
        &[GraphicsBackend::Vulkan, GraphicsBackend::Dx12, GraphicsBackend::Metal, GraphicsBackend::Gl]
    };
    order.iter().find_map(|backend| adapters.iter().find(|a| a.adapter.backend == *backend && a.adapter.computes))
}

fn card_device(card: Card) -> BoundDevice {
    let compute = compute_adapter(&card.adapters)
        .map(|probe| ComputeTarget::Wgpu { backend: probe.adapter.backend, selector: probe.selector });
    let main_adapter = compute_adapter(&card.adapters)
        .or_else(|| card.adapters.iter().find(|a| a.adapter.backend != GraphicsBackend::Gl))
        .or(card.adapters.first());
    let name = card
        .nvml
        .as_ref()
        .map(|n| n.name.clone())
        .or_else(|| main_adapter.map(|a| a.adapter.name.clone()))
        .or_else(|| card.dxgi.as_ref().map(|d| d.name.clone()))
        .unwrap_or_else(|| {
            let driver = card.drm.as_ref().map_or("GPU", |d| d.driver.as_str());
            format!("{driver} {:04x}:{:04x}", card.vendor_id.unwrap_or(0), card.device_id.unwrap_or(0))
        });
    let kind = main_adapter.map(|a| a.adapter.kind).unwrap_or(if card.nvml.is_some() {
        DeviceKind::DiscreteGpu
    } else {
        DeviceKind::Other
    });
    let memory_total_bytes = card
        .nvml
        .as_ref()
        .and_then(|n| n.memory_total_bytes)
        .or_else(|| super::telemetry::drm::vram_total(card.drm.as_ref()?))
        .or_else(|| card.dxgi.as_ref().map(|d| d.dedicated_video_memory).filter(|m| *m > 0));
    let id = match &card.pci_bus_id {
        Some(bus) => DeviceId::pci(bus),
        None => match main_adapter {
            Some(a) => DeviceId::adapter(a.adapter.backend, &a.adapter.name),
            None => DeviceId(format!("gpu:{:04x}:{:04x}", card.vendor_id.unwrap_or(0), card.device_id.unwrap_or(0))),
        },
    };
    let device = Device {
        id,
        name,
        kind,
        vendor: card.vendor_id.map(Vendor::from_pci_id).unwrap_or(Vendor { pci_id: None, name: "Unknown".into() }),
        pci_device_id: card.device_id,
        pci_bus_id: card.pci_bus_id.clone(),
        uuid: card.nvml.as_ref().and_then(|n| n.uuid.clone()),
        memory_total_bytes,
        compute_backend: compute.map(|c| c.backend_name()),
        adapters: card.adapters.iter().map(|p| p.adapter.clone()).collect(),
        sources: Vec::new(),
    };
    BoundDevice {
        device,
        binding: Binding {
            nvml_index: card.nvml.as_ref().map(|n| n.index),
            drm_card: card.drm,
            dxgi_luid: card.dxgi.as_ref().map(|d| d.luid),
            compute,
        },
        adapters: card.adapters,
    }
}

fn software_device(name: String, adapters: Vec<AdapterProbe>) -> BoundDevice {
    // Named after its Vulkan (or DX12, Metal) adapter even when it computes through GL.
    let main = adapters.iter().find(|a| a.adapter.backend != GraphicsBackend::Gl).unwrap_or(&adapters[0]).clone();
    let compute = compute_adapter(&adapters)
        .map(|probe| ComputeTarget::Wgpu { backend: probe.adapter.backend, selector: probe.selector });
    let device = Device {
        id: DeviceId::adapter(main.adapter.backend, &name),
        name,
        kind: DeviceKind::SoftwareGpu,
        vendor: Vendor::from_pci_id(main.adapter.vendor_id),
        pci_device_id: None,
        pci_bus_id: None,
        uuid: None,
        memory_total_bytes: None,
        compute_backend: compute.map(|c| c.backend_name()),
        adapters: adapters.iter().map(|p| p.adapter.clone()).collect(),
        sources: Vec::new(),
    };
    BoundDevice { device, binding: Binding { compute, ..Binding::default() }, adapters }
}

fn cpu_device(cpu: CpuIdentity) -> BoundDevice {
    let vendor_name = match cpu.vendor.as_str() {
        "GenuineIntel" => "Intel",
        "AuthenticAMD" => "AMD",
        "" => "Unknown",
        other => other,
    };
    let device = Device {
        id: DeviceId::cpu(),
        name: cpu.brand,
        kind: DeviceKind::Cpu,
        vendor: Vendor { pci_id: None, name: vendor_name.to_owned() },
        pci_device_id: None,
        pci_bus_id: None,
        uuid: None,
        memory_total_bytes: Some(cpu.memory_total_bytes),
        compute_backend: Some(ComputeTarget::Flex.backend_name()),
        adapters: Vec::new(),
        sources: Vec::new(),
    };
    BoundDevice {
        device,
        binding: Binding { compute: Some(ComputeTarget::Flex), ..Binding::default() },
        adapters: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(
        backend: GraphicsBackend,
        name: &str,
        kind: DeviceKind,
        vendor: u32,
        device: u32,
        bus: Option<&str>,
    ) -> Adapter {
        Adapter {
            backend,
            name: name.into(),
            kind,
            vendor_id: vendor,
            device_id: device,
            pci_bus_id: bus.map(Into::into),
            driver: String::new(),
            driver_info: String::new(),
            computes: backend.computes(),
            compute_note: None,
            features: AdapterFeatures::default(),
            limits: AdapterLimits::default(),
        }
    }

    fn probe(adapter: Adapter, selector: WgpuSelector) -> AdapterProbe {
        AdapterProbe { adapter, selector }
    }

    fn cpu() -> CpuIdentity {
        CpuIdentity {
            brand: "AMD EPYC 9654".into(),
            vendor: "AuthenticAMD".into(),
            logical_cores: 2,
            physical_cores: Some(1),
            memory_total_bytes: 24 << 30,
        }
    }

    #[test]
    fn an_nvidia_card_seen_by_vulkan_gl_and_nvml_is_one_device() {
        let sightings = Sightings {
            adapters: vec![
                probe(
                    adapter(
                        GraphicsBackend::Vulkan,
                        "NVIDIA H100 80GB HBM3",
                        DeviceKind::DiscreteGpu,
                        0x10de,
                        0x2330,
                        Some("0000:01:00.0"),
                    ),
                    WgpuSelector::Discrete(0),
                ),
                probe(
                    adapter(
                        GraphicsBackend::Gl,
                        "NVIDIA H100 80GB HBM3/PCIe/SSE2",
                        DeviceKind::Other,
                        0x10de,
                        0x2330,
                        None,
                    ),
                    WgpuSelector::Other(0),
                ),
            ],
            nvml: vec![NvmlIdentity {
                index: 0,
                name: "NVIDIA H100 80GB HBM3".into(),
                uuid: Some("GPU-1234".into()),
                pci_bus_id: Some("0000:01:00.0".into()),
                pci_device_id: Some(0x2330),
                memory_total_bytes: Some(85_520_809_984),
            }],
            cpu: Some(cpu()),
            ..Sightings::default()
        };
        let devices = merge(sightings);
        assert_eq!(devices.len(), 2);
        let gpu = &devices[0];
        assert_eq!(gpu.device.id.as_str(), "pci:0000:01:00.0");
        assert_eq!(gpu.device.kind, DeviceKind::DiscreteGpu);
        assert_eq!(gpu.device.adapters.len(), 2);
        assert_eq!(gpu.device.uuid.as_deref(), Some("GPU-1234"));
        assert_eq!(gpu.device.memory_total_bytes, Some(85_520_809_984));
        assert_eq!(gpu.binding.nvml_index, Some(0));
        assert_eq!(
            gpu.binding.compute,
            Some(ComputeTarget::Wgpu { backend: GraphicsBackend::Vulkan, selector: WgpuSelector::Discrete(0) })
        );
        assert_eq!(devices[1].device.id.as_str(), "cpu");
        assert_eq!(devices[1].device.vendor.name, "AMD");
        assert_eq!(devices[1].binding.compute, Some(ComputeTarget::Flex));
    }

    #[test]
    fn an_opengl_adapter_without_ids_joins_its_card_by_name() {
        let sightings = Sightings {
            adapters: vec![
                probe(
                    adapter(
                        GraphicsBackend::Vulkan,
                        "NVIDIA H200",
                        DeviceKind::DiscreteGpu,
                        0x10de,
                        0x2335,
                        Some("0000:00:06.0"),
                    ),
                    WgpuSelector::Discrete(0),
                ),
                probe(
                    adapter(GraphicsBackend::Gl, "NVIDIA H200/PCIe/SSE2", DeviceKind::Other, 0x10de, 0, None),
                    WgpuSelector::Other(0),
                ),
            ],
            nvml: vec![NvmlIdentity {
                index: 0,
                name: "NVIDIA H200".into(),
                uuid: None,
                pci_bus_id: Some("0000:00:06.0".into()),
                pci_device_id: Some(0x2335),
                memory_total_bytes: None,
            }],
            ..Sightings::default()
        };
        let devices = merge(sightings);
        assert_eq!(devices.len(), 1, "{:?}", devices.iter().map(|d| &d.device.id).collect::<Vec<_>>());
        assert_eq!(devices[0].device.adapters.len(), 2);
    }

    #[test]
    fn two_identical_cards_stay_apart() {
        let nvml = |index: u32, bus: &str| NvmlIdentity {
            index,
            name: "NVIDIA GeForce RTX 4090".into(),
            uuid: None,
            pci_bus_id: Some(bus.into()),
            pci_device_id: Some(0x2684),
            memory_total_bytes: None,
        };
        let sightings = Sightings {
            adapters: vec![
                probe(
                    adapter(
                        GraphicsBackend::Vulkan,
                        "RTX 4090",
                        DeviceKind::DiscreteGpu,
                        0x10de,
                        0x2684,
                        Some("0000:41:00.0"),
                    ),
                    WgpuSelector::Discrete(0),
                ),
                probe(
                    adapter(
                        GraphicsBackend::Vulkan,
                        "RTX 4090",
                        DeviceKind::DiscreteGpu,
                        0x10de,
                        0x2684,
                        Some("0000:01:00.0"),
                    ),
                    WgpuSelector::Discrete(1),
                ),
            ],
            nvml: vec![nvml(0, "0000:01:00.0"), nvml(1, "0000:41:00.0")],
            ..Sightings::default()
        };
        let devices = merge(sightings);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].binding.nvml_index, Some(0));
        assert_eq!(
            devices[0].binding.compute,
            Some(ComputeTarget::Wgpu { backend: GraphicsBackend::Vulkan, selector: WgpuSelector::Discrete(1) })
        );
        assert_eq!(devices[1].binding.nvml_index, Some(1));
    }

    #[test]
    fn an_amd_card_joins_its_sysfs_entry_by_ids_when_vulkan_gives_no_bus() {
        let card = DrmCard {
            name: "card1".into(),
            device_dir: "/nonexistent/card1/device".into(),
            card_dir: "/nonexistent/card1".into(),
            driver: "amdgpu".into(),
            pci_bus_id: Some("0000:03:00.0".into()),
            vendor_id: Some(0x1002),
            device_id: Some(0x744c),
            hwmon_dir: None,
        };
        let sightings = Sightings {
            adapters: vec![probe(
                adapter(
                    GraphicsBackend::Vulkan,
                    "AMD Radeon RX 7900 XTX (RADV NAVI31)",
                    DeviceKind::DiscreteGpu,
                    0x1002,
                    0x744c,
                    None,
                ),
                WgpuSelector::Discrete(0),
            )],
            drm: vec![card],
            ..Sightings::default()
        };
        let devices = merge(sightings);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].device.id.as_str(), "pci:0000:03:00.0");
        assert_eq!(devices[0].device.name, "AMD Radeon RX 7900 XTX (RADV NAVI31)");
        assert!(devices[0].binding.drm_card.is_some());
        assert_eq!(devices[0].device.compute_backend.as_deref(), Some("vulkan"));
    }

    #[test]
    fn software_adapters_group_by_name_across_apis() {
        let name = "llvmpipe (LLVM 15.0.6, 256 bits)";
        let sightings = Sightings {
            adapters: vec![
                probe(
                    adapter(GraphicsBackend::Vulkan, name, DeviceKind::SoftwareGpu, 0x10005, 0, None),
                    WgpuSelector::Cpu,
                ),
                probe(adapter(GraphicsBackend::Gl, name, DeviceKind::SoftwareGpu, 0x10005, 0, None), WgpuSelector::Cpu),
            ],
            cpu: Some(cpu()),
            ..Sightings::default()
        };
        let devices = merge(sightings);
        assert_eq!(devices.len(), 2);
        let lavapipe = &devices[0];
        assert_eq!(lavapipe.device.kind, DeviceKind::SoftwareGpu);
        assert_eq!(lavapipe.device.id.as_str(), "adapter:vulkan:llvmpipe-llvm-15-0-6-256-bits");
        assert_eq!(lavapipe.device.adapters.len(), 2);
        assert_eq!(
            lavapipe.binding.compute,
            Some(ComputeTarget::Wgpu { backend: GraphicsBackend::Vulkan, selector: WgpuSelector::Cpu })
        );
    }

    #[test]
    fn a_dxgi_card_and_its_vulkan_adapter_with_a_bus_are_one_device() {
        let sightings = Sightings {
            dxgi: vec![DxgiIdentity {
                name: "AMD Radeon RX 7900 XTX".into(),
                vendor_id: 0x1002,
                device_id: 0x744c,
                luid: (0, 0xd1b2),
                dedicated_video_memory: 24 << 30,
                software: false,
            }],
            adapters: vec![probe(
                adapter(
                    GraphicsBackend::Vulkan,
                    "AMD Radeon RX 7900 XTX",
                    DeviceKind::DiscreteGpu,
                    0x1002,
                    0x744c,
                    Some("0000:03:00.0"),
                ),
                WgpuSelector::Discrete(0),
            )],
            ..Sightings::default()
        };
        let devices = merge(sightings);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].device.id.as_str(), "pci:0000:03:00.0");
        assert_eq!(devices[0].binding.dxgi_luid, Some((0, 0xd1b2)));
        assert!(devices[0].binding.compute.is_some());
    }

    #[test]
    fn identical_cards_without_buses_get_distinct_ids() {
        let sightings = Sightings {
            adapters: vec![
                probe(
                    adapter(GraphicsBackend::Dx12, "Card", DeviceKind::DiscreteGpu, 0x10de, 1, None),
                    WgpuSelector::Discrete(0),
                ),
                probe(
                    adapter(GraphicsBackend::Dx12, "Card", DeviceKind::DiscreteGpu, 0x10de, 1, None),
                    WgpuSelector::Discrete(1),
                ),
            ],
            ..Sightings::default()
        };
        let ids: Vec<String> = merge(sightings).into_iter().map(|d| d.device.id.0).collect();
        assert_eq!(ids, vec!["adapter:dx12:card", "adapter:dx12:card#2"]);
    }

    #[test]
    fn a_vulkan_driver_burn_cannot_use_hands_compute_to_gl() {
        let name = "llvmpipe (LLVM 15.0.6, 256 bits)";
        let mut vulkan = adapter(GraphicsBackend::Vulkan, name, DeviceKind::SoftwareGpu, 0x10005, 0, None);
        vulkan.computes = false;
        vulkan.compute_note = Some("no explicit workgroup layout".into());
        let sightings = Sightings {
            adapters: vec![
                probe(vulkan, WgpuSelector::Cpu),
                probe(adapter(GraphicsBackend::Gl, name, DeviceKind::SoftwareGpu, 0x10005, 0, None), WgpuSelector::Cpu),
            ],
            ..Sightings::default()
        };
        let devices = merge(sightings);
        assert_eq!(devices[0].device.id.as_str(), "adapter:vulkan:llvmpipe-llvm-15-0-6-256-bits");
        assert_eq!(devices[0].device.compute_backend.as_deref(), Some("gl"));
        assert_eq!(
            devices[0].binding.compute,
            Some(ComputeTarget::Wgpu { backend: GraphicsBackend::Gl, selector: WgpuSelector::Cpu })
        );
    }

    #[test]
    fn no_gpu_at_all_still_lists_the_cpu() {
        let devices = merge(Sightings { cpu: Some(cpu()), ..Sightings::default() });
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].device.kind, DeviceKind::Cpu);
        assert_eq!(devices[0].device.memory_total_bytes, Some(24 << 30));
    }
}
