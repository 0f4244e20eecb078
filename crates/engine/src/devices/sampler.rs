//! The background sampler: every `interval_ms` it reads every device, judges health, appends to
//! the history ring buffers and publishes a telemetry event.
//!
//! A plain OS thread (telemetry reads are blocking file and driver calls) holding only a weak
//! reference to the engine, so dropping the engine ends it. Its CPU cost per tick is measured in
//! `benches/sampler.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::health::{self, DeviceHealth, HealthLevel, HealthReason};
use super::history::History;
use super::status::Reading;
use super::{DeviceStatus, MetricSource};
use crate::engine::EngineState;
use crate::events::KilnEvent;

/// The latest reading and health of each device, and their history.
pub struct LiveState {
    pub latest: Vec<DeviceStatus>,
    pub health: Vec<DeviceHealth>,
    pub history: History,
}

impl LiveState {
    pub fn new(history_rows: usize) -> Self {
        Self { latest: Vec::new(), health: Vec::new(), history: History::new(history_rows) }
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One sample of every device. Samples never overlap: the whole tick holds the telemetry lock,
/// which a rescan also holds while it swaps the device list, so history stays in time order
/// and never gains rows for a device that was just removed. `pool_wait` bounds how long a
/// device's pool reading may hold the tick (`None`: until it answers); see `compute`.
pub(crate) fn tick(state: &EngineState, pool_wait: Option<Duration>) {
    let mut telemetry = state.telemetry.lock().unwrap_or_else(|e| e.into_inner());
    let devices = state.devices.read().unwrap_or_else(|e| e.into_inner()).clone();
    let now = unix_ms();
    let mut statuses = telemetry.sample(&devices, now);
    for status in &mut statuses {
        let pools = match pool_wait {
            Some(wait) => state.compute.pool_usage_within(&status.device_id, wait),
            None => state.compute.pool_usage(&status.device_id),
        };
        if let Some(pools) = pools {
            status.kiln_pools = Some(Reading::new(pools, MetricSource::Cubecl));
        }
    }
    let settings = state.settings.read().unwrap_or_else(|e| e.into_inner()).clone();
    let health: Vec<DeviceHealth> = statuses
        .iter()
        .zip(devices.iter())
        .map(|(status, bound)| {
            let mut health = health::evaluate(bound.device.kind, status, &settings.health);
            if let Some(stall) = state.compute.stall(&status.device_id) {
                health.add(HealthReason {
                    level: HealthLevel::Critical,
                    code: "device_stalled".into(),
                    message: stall.describe(),
                });
            }
            health
        })
        .collect();
    {
        let mut live = state.live.write().unwrap_or_else(|e| e.into_inner());
        let rows = settings.telemetry.history_rows();
        if live.history.capacity() != rows {
            live.history.set_capacity(rows);
        }
        live.history.push(&statuses);
        live.latest = statuses.clone();
        live.health = health.clone();
    }
    let _ = state.events.send(KilnEvent::Telemetry { sampled_at_ms: now, statuses, health });
    drop(telemetry);
}

/// Starts the sampling thread.
pub(crate) fn spawn(state: Weak<EngineState>, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("kiln-telemetry".into()).spawn(move || {
        let mut last = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            // Read the interval every pass, so a new setting takes effect within 100 ms.
            let interval = match state.upgrade() {
                Some(state) => Duration::from_millis(
                    state.settings.read().unwrap_or_else(|e| e.into_inner()).telemetry.interval_ms as u64,
                ),
                None => return,
            };
            let due = last + interval;
            let now = Instant::now();
            if now < due {
                std::thread::sleep((due - now).min(Duration::from_millis(100)));
                continue;
            }
            // After a stall (a suspended laptop) count again from now rather than catching up.
            last = if now > due + interval { now } else { due };
            let Some(state) = state.upgrade() else { return };
            tick(&state, Some(crate::compute::READING_WAIT));
        }
    });
    if let Err(error) = spawned {
        tracing::error!("could not start the telemetry thread: {error}");
    }
}
