//! Events the engine publishes to every subscriber (the desktop window, browsers over the event
//! stream): telemetry ticks, device list and settings changes, benchmark progress, models, jobs.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::compute::benchmark::BenchmarkResult;
use crate::devices::{Device, DeviceHealth, DeviceId, DeviceStatus};
use crate::error::ApiError;
use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KilnEvent {
    /// A new reading of every device.
    Telemetry {
        sampled_at_ms: u64,
        statuses: Vec<DeviceStatus>,
        health: Vec<DeviceHealth>,
    },
    /// Devices were found again (a rescan).
    DevicesChanged {
        devices: Vec<Device>,
    },
    SettingsChanged {
        settings: Settings,
    },
    BenchmarkStarted {
        device_id: DeviceId,
    },
    BenchmarkFinished {
        result: BenchmarkResult,
    },
    BenchmarkFailed {
        device_id: DeviceId,
        error: ApiError,
    },
    /// The model library or where models are loaded changed.
    ModelsChanged,
    /// A job was queued, started, paused, finished, failed or cancelled.
    JobChanged {
        job: Box<crate::processing::Job>,
    },
    /// A running job's progress (at most ten a second per job).
    JobProgress {
        progress: crate::processing::JobProgress,
    },
    /// Jobs were added, reordered or removed, or the queue was paused or resumed: fetch the list.
    QueueChanged,
}
