//! Where loaded models live: host weights in the RAM cache, networks on devices, and the
//! ledger entry of each. Loads are serialised (one reads the disk at a time, so loading a model
//! twice never costs twice); the state lock is only held for bookkeeping, never while reading
//! files or uploading to a device. Uploads run on the device's owner thread, and a network that
//! leaves a device has its weights dropped there (`compute::owner`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{Allocation, AllocationKind, CachedModel, ResidentModel};
use crate::compute::{ComputeError, DeviceOwner, Expected, Priority};
use crate::devices::DeviceId;
use crate::devices::sampler::unix_ms;
use crate::error::{ApiError, ErrorCode};
use crate::nets::weights::HostWeights;
use crate::nets::{Precision, Upscaler, UpscalerError};

/// Where a load found the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// Already resident on the device.
    Resident,
    /// Uploaded from the RAM cache.
    RamCache,
    /// Read from disk, then uploaded.
    Disk,
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct LoadResult {
    pub path: String,
    pub device_id: DeviceId,
    pub bytes: u64,
    pub source: LoadSource,
    pub seconds: f64,
    /// Models evicted from the device to make room.
    pub evicted: Vec<String>,
}

struct RamEntry {
    weights: Arc<HostWeights>,
    bytes: u64,
    pinned: bool,
    last_used_ms: u64,
}

struct Resident {
    upscaler: Arc<Upscaler>,
    /// Where the weights are dropped when the network leaves the device.
    owner: Arc<DeviceOwner>,
    precision: Precision,
    bytes: u64,
    loaded_at_ms: u64,
    last_used_ms: u64,
    allocation: u64,
}

#[derive(Default)]
struct State {
    ram: HashMap<PathBuf, RamEntry>,
    hits: u64,
    misses: u64,
    devices: HashMap<DeviceId, HashMap<PathBuf, Resident>>,
    ledger: Vec<Allocation>,
    next_allocation: u64,
}

/// A ledger entry for working memory, removed on drop.
pub struct WorkingMemory {
    residency: std::sync::Weak<Residency>,
    id: u64,
}

impl Drop for WorkingMemory {
    fn drop(&mut self) {
        if let Some(residency) = self.residency.upgrade() {
            residency.state().ledger.retain(|a| a.id != self.id);
        }
    }
}

/// Every loaded model, with budgets enforced by the caller's figures.
#[derive(Default)]
pub struct Residency {
    state: Mutex<State>,
    loading: Mutex<()>,
}

fn name_of(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn too_big(what: &str, bytes: u64, budget: u64) -> ApiError {
    ApiError::new(
        ErrorCode::OutOfMemory,
        format!(
            "{what} needs {:.1} MiB but the budget is {:.1} MiB: raise the budget on the Memory page",
            bytes as f64 / 1048576.0,
            budget as f64 / 1048576.0
        ),
    )
    .with_details(serde_json::json!({ "needed_bytes": bytes, "budget_bytes": budget }))
}

impl Residency {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Host weights from the RAM cache, or read from disk and cached within `ram_budget`.
    pub fn host_weights(&self, path: &Path, ram_budget: u64) -> Result<(Arc<HostWeights>, bool), UpscalerError> {
        {
            let mut state = self.state();
            if let Some(entry) = state.ram.get_mut(path) {
                entry.last_used_ms = unix_ms();
                let weights = entry.weights.clone();
                state.hits += 1;
                return Ok((weights, true));
            }
            state.misses += 1;
        }
        let weights = Arc::new(HostWeights::read(path)?);
        let bytes = weights.bytes();
        let mut state = self.state();
        if bytes <= ram_budget {
            Self::evict_ram(&mut state, ram_budget - bytes);
            let used: u64 = state.ram.values().map(|e| e.bytes).sum();
            if used + bytes <= ram_budget {
                state.ram.insert(
                    path.to_path_buf(),
                    RamEntry { weights: weights.clone(), bytes, pinned: false, last_used_ms: unix_ms() },
                );
            }
        } else {
            tracing::info!("{} ({} bytes) is larger than the RAM cache; not cached", path.display(), bytes);
        }
        Ok((weights, false))
    }

    /// Drops unpinned RAM entries, least recently used first, until at most `keep` bytes remain.
    fn evict_ram(state: &mut State, keep: u64) {
        loop {
            let used: u64 = state.ram.values().map(|e| e.bytes).sum();
            if used <= keep {
                return;
            }
            let Some(oldest) =
                state.ram.iter().filter(|(_, e)| !e.pinned).min_by_key(|(_, e)| e.last_used_ms).map(|(p, _)| p.clone())
            else {
                return;
            };
            state.ram.remove(&oldest);
        }
    }

    /// Loads `path` onto `device` in f32 (see [`Residency::load_as`]).
    pub fn load(
        self: &Arc<Self>,
        device_id: &DeviceId,
        device: &Arc<DeviceOwner>,
        path: &Path,
        budget: u64,
        ram_budget: u64,
    ) -> Result<(Arc<Upscaler>, LoadResult), ApiError> {
        self.load_as(device_id, device, path, budget, ram_budget, Precision::F32)
    }

    /// Loads `path` onto `device` in `precision` within `budget` bytes of resident weights there,
    /// evicting the least recently used models no one holds. A model alone over the budget is
    /// refused. A model resident in another precision is replaced, unless work holds it: then
    /// that work's copy serves.
    ///
    /// Runs on the device's owner thread (called from elsewhere, it goes there and waits): the
    /// one-load-at-a-time lock is only ever held on an owner thread, never by a thread waiting
    /// for an owner. The H100 soak (docs/reliability.md) found the deadlock that prevents: a
    /// `models.load` holding the lock while its upload waited behind a job, the job on the
    /// owner waiting for the lock, until the watchdog called it a stall 180 s later.
    pub fn load_as(
        self: &Arc<Self>,
        device_id: &DeviceId,
        device: &Arc<DeviceOwner>,
        path: &Path,
        budget: u64,
        ram_budget: u64,
        precision: Precision,
    ) -> Result<(Arc<Upscaler>, LoadResult), ApiError> {
        if !device.on_this_thread() {
            let (this, id, owner, file) = (self.clone(), device_id.clone(), device.clone(), path.to_path_buf());
            let expected = Expected::new(std::time::Duration::from_secs(300));
            return device.run(format!("loading {}", name_of(path)), Priority::Long, expected, move |_| {
                this.load_as(&id, &owner, &file, budget, ram_budget, precision)
            })?;
        }
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let result = |bytes, source, evicted| LoadResult {
            path: path.display().to_string(),
            device_id: device_id.clone(),
            bytes,
            source,
            seconds: started.elapsed().as_secs_f64(),
            evicted,
        };
        let replaced = {
            let mut state = self.state();
            let residents = state.devices.entry(device_id.clone()).or_default();
            match residents.get_mut(path) {
                Some(resident) if resident.precision == precision || Arc::strong_count(&resident.upscaler) > 1 => {
                    resident.last_used_ms = unix_ms();
                    return Ok((resident.upscaler.clone(), result(resident.bytes, LoadSource::Resident, vec![])));
                }
                Some(_) => {
                    let replaced = residents.remove(path);
                    let allocation = replaced.as_ref().map(|r| r.allocation);
                    state.ledger.retain(|a| Some(a.id) != allocation);
                    replaced
                }
                None => None,
            }
        };
        release(replaced.into_iter().collect());
        let (weights, from_ram) = self.host_weights(path, ram_budget)?;
        let bytes = weights.bytes() / 4 * precision.bytes();
        if bytes > budget {
            return Err(too_big(&name_of(path), bytes, budget));
        }
        let (evicted, fits) = self.make_room(device_id, budget - bytes);
        if !fits {
            return Err(ApiError::new(
                ErrorCode::OutOfMemory,
                format!("{} does not fit: the device's budget is held by models in use", name_of(path)),
            )
            .with_details(serde_json::json!({ "evicted": evicted })));
        }
        // Upload, and wait for the device so the load is really done when this returns. Out of
        // memory once: release everything evictable and the pools' reserve, then try again.
        let upload = || {
            let weights = weights.clone();
            // Repacking the weights for Kiln's kernels compiles them on first use: seconds on a
            // GPU, a minute or more on a software rasteriser.
            let expected = Expected::new(std::time::Duration::from_secs(300));
            device.run(format!("uploading {}", name_of(path)), Priority::Long, expected, move |device| {
                let upscaler = Upscaler::build(&weights, device, precision)?;
                device.sync().map_err(|e| UpscalerError::Model(format!("the device failed: {e:?}")))?;
                Ok::<_, UpscalerError>(upscaler)
            })
        };
        let upscaler = match upload() {
            Err(ComputeError::OutOfMemory(_)) => {
                self.make_room(device_id, 0);
                let _ = device.run("pool release", Priority::Short, Expected::short(), |d| d.memory_cleanup());
                upload()
            }
            other => other,
        }??;
        let upscaler = Arc::new(upscaler);
        let now = unix_ms();
        let mut state = self.state();
        state.next_allocation += 1;
        let allocation = state.next_allocation;
        state.ledger.push(Allocation {
            id: allocation,
            device_id: device_id.clone(),
            owner: name_of(path),
            component: "network".into(),
            kind: AllocationKind::Weights,
            bytes,
            since_ms: now,
            path: Some(path.display().to_string()),
        });
        state.devices.entry(device_id.clone()).or_default().insert(
            path.to_path_buf(),
            Resident {
                upscaler: upscaler.clone(),
                owner: device.clone(),
                precision,
                bytes,
                loaded_at_ms: now,
                last_used_ms: now,
                allocation,
            },
        );
        let source = if from_ram { LoadSource::RamCache } else { LoadSource::Disk };
        Ok((upscaler, result(bytes, source, evicted)))
    }

    /// Evicts models no one holds from `device_id`, least recently used first, until at most
    /// `keep` bytes of weights remain. Returns what it evicted and whether the rest fits (models
    /// in use alone may exceed `keep`).
    fn make_room(&self, device_id: &DeviceId, keep: u64) -> (Vec<String>, bool) {
        let mut released = Vec::new();
        let outcome = self.evict(device_id, keep, &mut released);
        release(released);
        outcome
    }

    fn evict(&self, device_id: &DeviceId, keep: u64, released: &mut Vec<Resident>) -> (Vec<String>, bool) {
        let mut state = self.state();
        let mut evicted = Vec::new();
        loop {
            let residents = state.devices.entry(device_id.clone()).or_default();
            let used: u64 = residents.values().map(|r| r.bytes).sum();
            if used <= keep {
                return (evicted, true);
            }
            let Some(oldest) = residents
                .iter()
                .filter(|(_, r)| Arc::strong_count(&r.upscaler) == 1)
                .min_by_key(|(_, r)| r.last_used_ms)
                .map(|(p, _)| p.clone())
            else {
                return (evicted, false);
            };
            let resident = residents.remove(&oldest).expect("present");
            state.ledger.retain(|a| a.id != resident.allocation);
            evicted.push(oldest.display().to_string());
            released.push(resident);
        }
    }

    /// Removes a model from a device (or, with `None`, from every device and the RAM cache).
    /// Returns whether anything was unloaded. A model held by running work stays until the work
    /// ends, and this says so.
    pub fn unload(&self, path: &Path, device_id: Option<&DeviceId>) -> Result<bool, ApiError> {
        let mut state = self.state();
        let mut any = false;
        let mut released = Vec::new();
        let ids: Vec<DeviceId> = match device_id {
            Some(id) => vec![id.clone()],
            None => state.devices.keys().cloned().collect(),
        };
        for id in ids {
            let Some(residents) = state.devices.get_mut(&id) else { continue };
            if let Some(resident) = residents.get(path) {
                if Arc::strong_count(&resident.upscaler) > 1 {
                    return Err(ApiError::new(
                        ErrorCode::Busy,
                        format!("{} is in use by running work on {id}", name_of(path)),
                    ));
                }
                let allocation = resident.allocation;
                if let Some(removed) = residents.remove(path) {
                    released.push(removed);
                }
                state.ledger.retain(|a| a.id != allocation);
                any = true;
            }
        }
        if device_id.is_none() {
            any |= state.ram.remove(path).is_some();
        }
        drop(state);
        release(released);
        Ok(any)
    }

    /// Evicts models no one holds, least recently used first, until the weights on the device
    /// fit `budget`; returns what was evicted (models in use stay, even over the budget).
    pub fn fit(&self, device_id: &DeviceId, budget: u64) -> Vec<String> {
        self.make_room(device_id, budget).0
    }

    /// Unloads every model no one holds from a device; returns their paths.
    pub fn clear(&self, device_id: &DeviceId) -> Vec<String> {
        self.make_room(device_id, 0).0
    }

    pub fn pin(&self, path: &Path, pinned: bool) -> bool {
        match self.state().ram.get_mut(path) {
            Some(entry) => {
                entry.pinned = pinned;
                true
            }
            None => false,
        }
    }

    /// The resident network, marked used now (a job holds the `Arc` while it runs).
    pub fn resident(&self, device_id: &DeviceId, path: &Path) -> Option<Arc<Upscaler>> {
        let mut state = self.state();
        let resident = state.devices.get_mut(device_id)?.get_mut(path)?;
        resident.last_used_ms = unix_ms();
        Some(resident.upscaler.clone())
    }

    pub fn residents(&self, device_id: &DeviceId) -> Vec<ResidentModel> {
        let state = self.state();
        let mut models: Vec<ResidentModel> = state
            .devices
            .get(device_id)
            .into_iter()
            .flatten()
            .map(|(path, r)| ResidentModel {
                path: path.display().to_string(),
                name: name_of(path),
                bytes: r.bytes,
                loaded_at_ms: r.loaded_at_ms,
                last_used_ms: r.last_used_ms,
                in_use: Arc::strong_count(&r.upscaler) > 1,
            })
            .collect();
        models.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
        models
    }

    /// Devices holding `path`.
    pub fn devices_holding(&self, path: &Path) -> Vec<DeviceId> {
        let state = self.state();
        let mut ids: Vec<DeviceId> =
            state.devices.iter().filter(|(_, r)| r.contains_key(path)).map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids
    }

    pub fn in_ram(&self, path: &Path) -> bool {
        self.state().ram.contains_key(path)
    }

    pub fn ram(&self) -> (Vec<CachedModel>, u64, u64) {
        let state = self.state();
        let mut models: Vec<CachedModel> = state
            .ram
            .iter()
            .map(|(path, e)| CachedModel {
                path: path.display().to_string(),
                name: name_of(path),
                bytes: e.bytes,
                pinned: e.pinned,
                last_used_ms: e.last_used_ms,
            })
            .collect();
        models.sort_by_key(|m| std::cmp::Reverse(m.last_used_ms));
        (models, state.hits, state.misses)
    }

    /// Applies a smaller RAM budget now.
    pub fn trim_ram(&self, budget: u64) {
        Self::evict_ram(&mut self.state(), budget);
    }

    /// Records working memory (activations, workspace) that running work holds on a device;
    /// the entry goes when the returned guard drops.
    pub fn hold_working(self: &Arc<Self>, entry: Allocation) -> WorkingMemory {
        let mut state = self.state();
        state.next_allocation += 1;
        let id = state.next_allocation;
        state.ledger.push(Allocation { id, ..entry });
        WorkingMemory { residency: Arc::downgrade(self), id }
    }

    pub fn ledger(&self) -> Vec<Allocation> {
        self.state().ledger.clone()
    }

    pub fn weights_on(&self, device_id: &DeviceId) -> u64 {
        self.state().devices.get(device_id).map_or(0, |r| r.values().map(|r| r.bytes).sum())
    }

    /// When `path` was last used on any device or in RAM.
    pub fn last_used(&self, path: &Path) -> Option<u64> {
        let state = self.state();
        let on_devices = state.devices.values().filter_map(|r| r.get(path)).map(|r| r.last_used_ms);
        on_devices.chain(state.ram.get(path).map(|e| e.last_used_ms)).max()
    }
}

/// Frees the weights of models that left a device, outside the residency lock, on the device's
/// owner thread. Ones still held elsewhere are freed by their last holder (a job, whose work
/// runs on that thread).
fn release(residents: Vec<Resident>) {
    for Resident { upscaler, owner, .. } in residents {
        if let Some(upscaler) = Arc::into_inner(upscaler) {
            owner.dispose(upscaler);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upscalers").join(name)
    }

    const BIG: u64 = 1 << 30;

    fn cpu() -> (DeviceId, Arc<DeviceOwner>) {
        let owner = DeviceOwner::start("test CPU", burn::tensor::Device::flex()).unwrap();
        (DeviceId("cpu".into()), Arc::new(owner))
    }

    #[test]
    fn loading_twice_costs_once_and_the_ram_cache_counts_hits() {
        let residency = Arc::new(Residency::default());
        let (id, device) = cpu();
        let path = fixture("compact_x4.pth");
        let (first, result) = residency.load(&id, &device, &path, BIG, BIG).unwrap();
        assert_eq!(result.source, LoadSource::Disk);
        let (second, again) = residency.load(&id, &device, &path, BIG, BIG).unwrap();
        assert_eq!(again.source, LoadSource::Resident);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(residency.ledger().len(), 1);
        assert_eq!(residency.ledger()[0].bytes, result.bytes);
        drop((first, second));
        assert!(residency.unload(&path, Some(&id)).unwrap());
        assert!(residency.ledger().is_empty());
        // Still in RAM: the next load uploads from there.
        let (_, warm) = residency.load(&id, &device, &path, BIG, BIG).unwrap();
        assert_eq!(warm.source, LoadSource::RamCache);
        let (_, hits, misses) = residency.ram();
        assert_eq!((hits, misses), (1, 1));
    }

    #[test]
    fn budgets_evict_the_least_recently_used_model_no_one_holds() {
        let residency = Arc::new(Residency::default());
        let (id, device) = cpu();
        let (a, b) = (fixture("compact_x4.pth"), fixture("compact_x2.legacy.pth"));
        let (_, first) = residency.load(&id, &device, &a, BIG, BIG).unwrap();
        let (_, second) = residency.load(&id, &device, &b, BIG, BIG).unwrap();
        // Room for the larger model alone: loading it again after b was used evicts b.
        let budget = first.bytes.max(second.bytes);
        residency.unload(&a, Some(&id)).unwrap();
        let (held, result) = residency.load(&id, &device, &a, budget, BIG).unwrap();
        assert_eq!(result.evicted, vec![b.display().to_string()]);
        // A model in use is never evicted: b cannot come back while a is held.
        let error = residency.load(&id, &device, &b, budget, BIG).unwrap_err();
        assert_eq!(error.code, ErrorCode::OutOfMemory);
        assert!(residency.unload(&a, Some(&id)).is_err(), "held models stay");
        drop(held);
        // A model alone over the budget is a clear error.
        let error = residency.load(&id, &device, &b, 10, BIG).unwrap_err();
        assert!(error.message.contains("budget"), "{}", error.message);
    }

    #[test]
    fn a_lower_budget_evicts_the_oldest_models_no_one_holds() {
        let residency = Arc::new(Residency::default());
        let (id, device) = cpu();
        let (a, b) = (fixture("compact_x4.pth"), fixture("compact_x2.legacy.pth"));
        let (_, first) = residency.load(&id, &device, &a, BIG, BIG).unwrap();
        let (held, _) = residency.load(&id, &device, &b, BIG, BIG).unwrap();
        // b is held by work: only a can go, and b stays even over the budget.
        assert_eq!(residency.fit(&id, 1), vec![a.display().to_string()]);
        assert_eq!(residency.weights_on(&id), residency.residents(&id)[0].bytes);
        drop(held);
        assert_eq!(residency.fit(&id, 1), vec![b.display().to_string()]);
        assert_eq!(residency.weights_on(&id), 0);
        assert!(first.bytes > 0);
    }

    #[test]
    fn the_ram_cache_keeps_to_its_budget_and_pins() {
        let residency = Arc::new(Residency::default());
        let (a, b) = (fixture("compact_x4.pth"), fixture("compact_x2.legacy.pth"));
        let (weights, _) = residency.host_weights(&a, BIG).unwrap();
        let budget = weights.bytes() + 1;
        assert!(residency.pin(&a, true));
        residency.host_weights(&b, budget).unwrap();
        // a is pinned, so b could not be cached beside it.
        assert!(residency.in_ram(&a) && !residency.in_ram(&b));
        residency.pin(&a, false);
        residency.host_weights(&b, budget).unwrap();
        assert!(!residency.in_ram(&a) && residency.in_ram(&b));
    }
}
