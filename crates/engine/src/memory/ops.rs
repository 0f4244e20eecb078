//! The memory operations: the VRAM map (ledger + pool figures + the device's own readings),
//! loading and unloading models within budgets, clearing, cleaning up pools, transfers and
//! budgets.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::residency::LoadResult;
use super::{Allocation, DeviceMemory, MemoryStatus, RamCacheStatus};
use crate::compute::{RecentPools, UI_READING_WAIT};
use crate::devices::{DeviceId, DeviceKind, DeviceRef, NoInput};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorCode};
use crate::events::KilnEvent;

/// Load a model of the library onto a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct LoadModel {
    pub path: String,
    pub device_id: DeviceId,
}

/// Unload a model from one device, or (without `device_id`) from every device and RAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UnloadModel {
    pub path: String,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
}

/// Move a model: onto device `to`, or (without `to`) into RAM only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct TransferModel {
    pub path: String,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DeviceId>,
}

/// A device's budget in bytes, or (without `bytes`) back to the default share. A lower budget
/// evicts at once the least recently used models no running work holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SetBudget {
    pub device_id: DeviceId,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// Keep a model in the RAM cache whatever its age (or let it go again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PinModel {
    pub path: String,
    pub pinned: bool,
}

/// What was unloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Unloaded {
    pub paths: Vec<String>,
}

impl Engine {
    /// The RAM cache budget: a share of system RAM.
    pub(crate) fn ram_budget(&self) -> u64 {
        let total = self
            .latest_status(&DeviceId(DeviceId::CPU.into()))
            .and_then(|s| s.memory_total_bytes.map(|r| r.value))
            .unwrap_or(8 << 30);
        (total as f64 * self.settings().memory.ram_cache_fraction) as u64
    }

    /// A device's memory figures and budget, merged from the ledger, the pools and the device;
    /// the pools' figures exact, waiting behind work queued on the device (what sizes work).
    pub(crate) fn device_memory(&self, id: &DeviceId) -> Result<DeviceMemory, ApiError> {
        self.memory_picture(id, None)
    }

    /// The same for the UI: the pools' figures wait [`UI_READING_WAIT`] at most for a busy
    /// device, then are its last reading, marked `pool_pending`.
    pub(crate) fn device_memory_now(&self, id: &DeviceId) -> Result<DeviceMemory, ApiError> {
        self.memory_picture(id, Some(UI_READING_WAIT))
    }

    fn memory_picture(&self, id: &DeviceId, pool_wait: Option<Duration>) -> Result<DeviceMemory, ApiError> {
        let bound = self.bound(id)?;
        let status = self.latest_status(id);
        let cpu = self.latest_status(&DeviceId(DeviceId::CPU.into()));
        // Software GPUs and the CPU compute in system memory.
        let in_ram = matches!(bound.device.kind, DeviceKind::Cpu | DeviceKind::SoftwareGpu);
        let figures = if in_ram { cpu.as_ref() } else { status.as_ref() };
        let total = figures.and_then(|s| s.memory_total_bytes.as_ref().map(|r| r.value));
        let used = figures.and_then(|s| s.memory_used_bytes.as_ref().map(|r| r.value));
        let pools = match pool_wait {
            Some(wait) => self.state.compute.recent_pool_usage(id, wait),
            None => RecentPools { usage: self.state.compute.pool_usage(id), pending: false },
        };
        let pool = pools.usage;
        let reserved = pool.map_or(0, |p| p.bytes_reserved);
        let weights = self.state.residency.weights_on(id);
        let settings = self.settings().memory;
        let other = used.map(|u| u.saturating_sub(reserved));
        let (budget, source) = match settings.vram_budget_bytes.get(&id.0) {
            Some(bytes) => (*bytes, "setting".to_owned()),
            None => {
                let available = total.map(|t| t.saturating_sub(other.unwrap_or(0))).unwrap_or(0);
                let share = settings.vram_budget_fraction;
                ((available as f64 * share) as u64, format!("{:.0}% of the memory others leave", share * 100.0))
            }
        };
        Ok(DeviceMemory {
            device_id: id.clone(),
            name: bound.device.name.clone(),
            total_bytes: total,
            used_bytes: used,
            other_bytes: other,
            kiln_weights_bytes: weights,
            kiln_working_bytes: pool.map_or(0, |p| p.bytes_in_use.saturating_sub(weights)),
            pool,
            pool_pending: pools.pending,
            budget_bytes: budget,
            budget_source: source,
            models: self.state.residency.residents(id),
        })
    }

    pub async fn memory_status(&self, _: NoInput) -> Result<MemoryStatus, ApiError> {
        self.blocking(|engine| engine.memory_map()).await?
    }

    pub(crate) fn memory_map(&self) -> Result<MemoryStatus, ApiError> {
        let mut devices = Vec::new();
        for bound in self.devices().iter().filter(|d| d.binding.compute.is_some()) {
            devices.push(self.device_memory_now(&bound.device.id)?);
        }
        let (models, hits, misses) = self.state.residency.ram();
        Ok(MemoryStatus {
            devices,
            ram: RamCacheStatus {
                budget_bytes: self.ram_budget(),
                used_bytes: models.iter().map(|m| m.bytes).sum(),
                hits,
                misses,
                models,
            },
        })
    }

    pub async fn memory_usage(&self, input: DeviceRef) -> Result<DeviceMemory, ApiError> {
        self.blocking(move |engine| engine.device_memory_now(&input.device_id)).await?
    }

    pub async fn memory_allocations(&self, _: NoInput) -> Result<Vec<Allocation>, ApiError> {
        Ok(self.state.residency.ledger())
    }

    pub async fn models_load(&self, input: LoadModel) -> Result<LoadResult, ApiError> {
        let result = self
            .blocking(move |engine| {
                let path = engine.library_path(&input.path)?;
                let owner = engine.device_owner(&input.device_id)?;
                let budget = engine.device_memory(&input.device_id)?.budget_bytes;
                let (_, result) =
                    engine.state.residency.load(&input.device_id, &owner, &path, budget, engine.ram_budget())?;
                Ok::<_, ApiError>(result)
            })
            .await??;
        self.emit(KilnEvent::ModelsChanged);
        Ok(result)
    }

    pub async fn models_unload(&self, input: UnloadModel) -> Result<Unloaded, ApiError> {
        let unloaded = self
            .blocking(move |engine| {
                let path = engine.library_path(&input.path)?;
                let holding = engine.state.residency.devices_holding(&path);
                let any = engine.state.residency.unload(&path, input.device_id.as_ref())?;
                // Give the memory back to the driver, not only to Kiln's pools.
                for id in holding.iter().filter(|id| input.device_id.as_ref().is_none_or(|d| d == *id)) {
                    engine.state.compute.release(id)?;
                }
                Ok::<_, ApiError>(if any { vec![path.display().to_string()] } else { vec![] })
            })
            .await??;
        self.emit(KilnEvent::ModelsChanged);
        Ok(Unloaded { paths: unloaded })
    }

    pub async fn models_pin(&self, input: PinModel) -> Result<MemoryStatus, ApiError> {
        self.blocking(move |engine| {
            let path = engine.library_path(&input.path)?;
            if !engine.state.residency.pin(&path, input.pinned) {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("{} is not in the RAM cache: load it first", input.path),
                ));
            }
            engine.memory_map()
        })
        .await?
    }

    /// Unloads every model no running work holds from a device, and releases its pools.
    pub async fn memory_clear(&self, input: DeviceRef) -> Result<Unloaded, ApiError> {
        let paths = self
            .blocking(move |engine| {
                engine.bound(&input.device_id)?;
                let paths = engine.state.residency.clear(&input.device_id);
                engine.state.compute.release(&input.device_id)?;
                Ok::<_, ApiError>(paths)
            })
            .await??;
        self.emit(KilnEvent::ModelsChanged);
        Ok(Unloaded { paths })
    }

    /// Releases the pool memory Kiln reserves but does not use (the seed's "defragment").
    pub async fn memory_cleanup(&self, input: DeviceRef) -> Result<DeviceMemory, ApiError> {
        self.blocking(move |engine| {
            engine.state.compute.release(&input.device_id)?;
            engine.device_memory(&input.device_id)
        })
        .await?
    }

    /// Moves a model onto another device (and off the others), or to RAM only.
    pub async fn memory_transfer(&self, input: TransferModel) -> Result<MemoryStatus, ApiError> {
        let path = self
            .blocking({
                let p = input.path.clone();
                move |engine| engine.library_path(&p)
            })
            .await??;
        let holding = self.state.residency.devices_holding(&path);
        if let Some(to) = &input.to {
            self.models_load(LoadModel { path: input.path.clone(), device_id: to.clone() }).await?;
        } else {
            let ram = self.ram_budget();
            let p = path.clone();
            self.blocking(move |engine| engine.state.residency.host_weights(&p, ram)).await??;
        }
        for id in holding.into_iter().filter(|id| Some(id) != input.to.as_ref()) {
            self.models_unload(UnloadModel { path: input.path.clone(), device_id: Some(id) }).await?;
        }
        self.memory_status(NoInput {}).await
    }

    pub async fn memory_set_budget(&self, input: SetBudget) -> Result<DeviceMemory, ApiError> {
        self.bound(&input.device_id)?;
        let mut settings = self.settings();
        match input.bytes {
            Some(bytes) => settings.memory.vram_budget_bytes.insert(input.device_id.0.clone(), bytes),
            None => settings.memory.vram_budget_bytes.remove(&input.device_id.0),
        };
        self.settings_update(settings).await?;
        // A lower budget applies now: the least recently used models no work holds go first.
        let id = input.device_id.clone();
        let evicted = self
            .blocking(move |engine| {
                let budget = engine.device_memory(&id)?.budget_bytes;
                let evicted = engine.state.residency.fit(&id, budget);
                if !evicted.is_empty() {
                    engine.state.compute.release(&id)?;
                }
                Ok::<_, ApiError>(evicted)
            })
            .await??;
        if !evicted.is_empty() {
            self.emit(KilnEvent::ModelsChanged);
        }
        self.memory_usage(DeviceRef { device_id: input.device_id }).await
    }
}
