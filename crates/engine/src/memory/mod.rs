//! The memory domain: where Kiln's bytes are. A RAM cache of model weights (least recently used
//! first out, within a byte budget, with pinning), models resident on each compute device
//! (within a per-device budget, evicting the least recently used model no job holds), and a
//! ledger of every allocation Kiln made, which `ops` merges with cubecl's pool figures and the
//! device's own readings into the VRAM map.

pub mod ops;
pub mod residency;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::devices::{DeviceId, PoolUsage};

/// What an allocation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AllocationKind {
    /// A model's parameters.
    Weights,
    /// Intermediate tensors of running work.
    Activations,
    /// Scratch space of running work.
    Workspace,
}

/// One allocation Kiln made on a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Allocation {
    pub id: u64,
    pub device_id: DeviceId,
    /// Who holds it: a model's name, or a job.
    pub owner: String,
    /// The part of the owner: `network`, `unet`, `vae`...
    pub component: String,
    pub kind: AllocationKind,
    pub bytes: u64,
    /// Unix time, milliseconds.
    pub since_ms: u64,
    /// The model file, for model weights.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A model resident on a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ResidentModel {
    pub path: String,
    pub name: String,
    pub bytes: u64,
    pub loaded_at_ms: u64,
    pub last_used_ms: u64,
    /// Held by running work: not evicted.
    pub in_use: bool,
}

/// One device's memory, as the VRAM map draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct DeviceMemory {
    pub device_id: DeviceId,
    pub name: String,
    /// The device's memory, where it says (the driver for GPUs; system RAM for the CPU).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Used by everyone, as the device reports it.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Used by other processes: the device's figure less what Kiln's pools reserve.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_bytes: Option<u64>,
    /// Model weights Kiln keeps here (the ledger).
    pub kiln_weights_bytes: u64,
    /// Kiln's working memory: what the pools hold in use beyond the weights.
    pub kiln_working_bytes: u64,
    /// cubecl's pool figures, once Kiln has run work here.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolUsage>,
    /// Whether `pool` (and the working memory from it) is the last reading that came back: the
    /// device was still busy with earlier work (a job's tile, a first launch's compilation).
    #[serde(default)]
    pub pool_pending: bool,
    /// How much Kiln may keep resident here.
    pub budget_bytes: u64,
    /// How the budget was set: `setting` or the default fraction it came from.
    pub budget_source: String,
    pub models: Vec<ResidentModel>,
}

/// A model held in the RAM cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct CachedModel {
    pub path: String,
    pub name: String,
    pub bytes: u64,
    pub pinned: bool,
    pub last_used_ms: u64,
}

/// The RAM cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct RamCacheStatus {
    pub budget_bytes: u64,
    pub used_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub models: Vec<CachedModel>,
}

/// Everything the Memory page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct MemoryStatus {
    pub devices: Vec<DeviceMemory>,
    pub ram: RamCacheStatus,
}

/// Memory settings people change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct MemorySettings {
    /// The RAM cache's budget as a share of system RAM (0.05 to 0.9).
    pub ram_cache_fraction: f64,
    /// Each device's default budget as a share of the memory not used by other processes
    /// (0.1 to 0.98).
    pub vram_budget_fraction: f64,
    /// Budgets set per device, in bytes.
    pub vram_budget_bytes: std::collections::BTreeMap<String, u64>,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self { ram_cache_fraction: 0.25, vram_budget_fraction: 0.8, vram_budget_bytes: Default::default() }
    }
}

impl MemorySettings {
    pub fn validate(&self) -> Result<(), crate::error::ApiError> {
        if !(0.05..=0.9).contains(&self.ram_cache_fraction) {
            return Err(crate::error::ApiError::invalid_input(format!(
                "the RAM cache share must be 0.05 to 0.9, not {}",
                self.ram_cache_fraction
            )));
        }
        if !(0.1..=0.98).contains(&self.vram_budget_fraction) {
            return Err(crate::error::ApiError::invalid_input(format!(
                "the device budget share must be 0.1 to 0.98, not {}",
                self.vram_budget_fraction
            )));
        }
        Ok(())
    }
}
