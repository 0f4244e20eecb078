//! Recommended settings for a device, derived from what it can do and what memory is free.
//!
//! - Precision: f16 where the compute adapter has shader-f16 (half the memory traffic, tensor
//!   cores where they exist), else f32; f32 on burn's CPU backend.
//! - Memory budget: 0.8 × min(0.75 × total, free), chaiNNer's rule for upscaling budgets
//!   (../shared/FIELD_GUIDE.md §2): headroom for the driver, other programs and fragmentation.
//! - Tile size: the largest multiple of 32 whose working set fits the budget, for the heaviest
//!   network Kiln runs per tile (RRDBNet x4: about 6 KiB of activations and workspace per input
//!   pixel in f16, 12 KiB in f32), kept so the 4× feature map stays inside one storage buffer.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{Device, DeviceId, DeviceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F16,
    F32,
}

/// Bytes of working memory per input pixel of an RRDBNet x4 tile.
const BYTES_PER_PIXEL_F16: u64 = 6 << 10;
const BYTES_PER_PIXEL_F32: u64 = 12 << 10;
const MIN_TILE: u32 = 32;
const MAX_TILE: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Recommendation {
    pub device_id: DeviceId,
    pub precision: Precision,
    pub precision_reason: String,
    /// Memory Kiln should keep itself within on this device.
    pub memory_budget_bytes: u64,
    pub budget_reason: String,
    /// Input tile edge for upscaling, pixels.
    pub tile_size: u32,
    pub tile_reason: String,
}

/// What the recommendation is computed from.
#[derive(Debug, Clone, Default)]
pub struct MemoryPicture {
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    /// Memory Kiln itself holds there already (it may reuse it).
    pub kiln_bytes: u64,
}

pub fn recommend(device: &Device, memory: &MemoryPicture) -> Recommendation {
    let compute = device.adapters.iter().find(|a| Some(a.backend.as_str()) == device.compute_backend.as_deref());
    let (precision, precision_reason) = match (device.kind, compute) {
        (DeviceKind::Cpu, _) => (Precision::F32, "burn's CPU backend computes f32 fastest".to_owned()),
        (_, Some(adapter)) if adapter.features.shader_f16 => {
            (Precision::F16, format!("{} offers shader-f16: half the memory traffic of f32", adapter.backend.as_str()))
        }
        (_, Some(adapter)) => (Precision::F32, format!("{} has no shader-f16", adapter.backend.as_str())),
        (_, None) => (Precision::F32, "no compute adapter: f32 is the safe default".to_owned()),
    };

    let (budget, budget_reason) = match (memory.total_bytes, memory.used_bytes) {
        (Some(total), used) => {
            let free = total.saturating_sub(used.unwrap_or(0)) + memory.kiln_bytes;
            let budget = (0.8 * (0.75 * total as f64).min(free as f64)) as u64;
            (
                budget,
                format!(
                    "0.8 × min(75% of {}, {} free): room for the driver, other programs and fragmentation",
                    gib(total),
                    gib(free)
                ),
            )
        }
        (None, _) => (1 << 30, "memory size unknown: 1 GiB, a size nearly every device has".to_owned()),
    };

    let per_pixel = match precision {
        Precision::F16 => BYTES_PER_PIXEL_F16,
        Precision::F32 => BYTES_PER_PIXEL_F32,
    };
    let mut tile = (((budget / per_pixel) as f64).sqrt() as u32 / MIN_TILE * MIN_TILE).clamp(MIN_TILE, MAX_TILE);
    // The 4x feature map of one tile (64 channels, 16 pixels per input pixel) is one buffer.
    if let Some(limit) = compute.map(|a| a.limits.max_storage_buffer_binding_size).filter(|l| *l > 0) {
        let element = if precision == Precision::F16 { 2 } else { 4 };
        let fit = ((limit / (64 * 16 * element)) as f64).sqrt() as u32 / MIN_TILE * MIN_TILE;
        tile = tile.min(fit.max(MIN_TILE));
    }
    let tile_reason = format!(
        "largest multiple of {MIN_TILE} px whose RRDBNet x4 working set (~{} KiB per input pixel in {}) fits the budget",
        per_pixel >> 10,
        if precision == Precision::F16 { "f16" } else { "f32" }
    );
    Recommendation {
        device_id: device.id.clone(),
        precision,
        precision_reason,
        memory_budget_bytes: budget,
        budget_reason,
        tile_size: tile,
        tile_reason,
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{Adapter, AdapterFeatures, AdapterLimits, GraphicsBackend, Vendor};

    fn gpu(shader_f16: bool) -> Device {
        Device {
            id: DeviceId("pci:0000:01:00.0".into()),
            name: "GPU".into(),
            kind: DeviceKind::DiscreteGpu,
            vendor: Vendor::from_pci_id(0x10de),
            pci_device_id: None,
            pci_bus_id: None,
            uuid: None,
            memory_total_bytes: Some(80 << 30),
            compute_backend: Some("vulkan".into()),
            adapters: vec![Adapter {
                backend: GraphicsBackend::Vulkan,
                name: "GPU".into(),
                kind: DeviceKind::DiscreteGpu,
                vendor_id: 0x10de,
                device_id: 0,
                pci_bus_id: None,
                driver: String::new(),
                driver_info: String::new(),
                computes: true,
                compute_note: None,
                features: AdapterFeatures { shader_f16, ..AdapterFeatures::default() },
                limits: AdapterLimits { max_storage_buffer_binding_size: 4 << 30, ..AdapterLimits::default() },
            }],
            sources: vec![],
        }
    }

    #[test]
    fn a_big_idle_card_gets_f16_and_large_tiles() {
        let memory = MemoryPicture { total_bytes: Some(80 << 30), used_bytes: Some(1 << 30), kiln_bytes: 0 };
        let r = recommend(&gpu(true), &memory);
        assert_eq!(r.precision, Precision::F16);
        assert_eq!(r.memory_budget_bytes, (0.8 * 0.75 * (80u64 << 30) as f64) as u64);
        assert_eq!(r.tile_size, MAX_TILE);
    }

    #[test]
    fn a_busy_card_gets_what_is_free() {
        let memory = MemoryPicture { total_bytes: Some(8 << 30), used_bytes: Some(7 << 30), kiln_bytes: 0 };
        let r = recommend(&gpu(false), &memory);
        assert_eq!(r.precision, Precision::F32);
        assert_eq!(r.memory_budget_bytes, (0.8 * (1u64 << 30) as f64) as u64);
        // sqrt(0.8 GiB / 12 KiB) = 264 -> 256
        assert_eq!(r.tile_size, 256);
    }

    #[test]
    fn unknown_memory_is_conservative() {
        let r = recommend(&gpu(true), &MemoryPicture::default());
        assert_eq!(r.memory_budget_bytes, 1 << 30);
        assert!(r.tile_size >= MIN_TILE && r.tile_size.is_multiple_of(MIN_TILE));
    }
}
