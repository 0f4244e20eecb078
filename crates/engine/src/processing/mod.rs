//! The processing domain: a persistent job queue (SQLite, WAL) with priorities, pause/resume,
//! cancel and retry; batches (one drop, one folder), sessions (named groups started, paused and
//! cancelled together) and workflows (ordered steps, each step's output the next step's input);
//! one worker per device; progress events; a log per job; the results index behind the gallery.
//!
//! Crash safety: every change is a committed transaction; a job whose process died (`kill -9`,
//! a power cut) is found on the next start, or by any other Kiln process, and queued again at
//! the step it was on.

pub mod ops;
pub mod routing;
pub mod store;
pub mod workers;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::devices::DeviceId;
use crate::error::ApiError;
use crate::postprocessing::upscale::{UpscaleOutcome, UpscaleSettings};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    /// Held: not started until resumed.
    Paused,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Paused, Self::Done, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Finished one way or another.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// One step of a workflow. Each step reads one image file and writes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Upscale(UpscaleSettings),
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Upscale(_) => "upscale",
        }
    }
}

/// What a job does: its input and its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct JobSpec {
    /// The input file (canonical path).
    pub input: String,
    pub steps: Vec<Step>,
    /// Where the last step writes its result.
    pub output_dir: String,
}

/// What a finished step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepOutcome {
    Upscale(UpscaleOutcome),
}

impl StepOutcome {
    pub fn output(&self) -> &str {
        match self {
            Self::Upscale(o) => &o.output,
        }
    }
}

/// A job as lists and events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Job {
    pub id: i64,
    /// The first step's kind (`upscale`), or `workflow` for several steps.
    pub kind: String,
    /// The input's file name.
    pub name: String,
    pub state: JobState,
    /// Higher runs first; equal priorities run in queue order.
    pub priority: i32,
    pub position: f64,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<i64>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    /// The device the user asked for; absent: any device Kiln picks.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_request: Option<DeviceId>,
    /// The device running it, or that ran it.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    pub spec: JobSpec,
    /// The step running, or next to run (0-based).
    pub step: u32,
    /// What the finished steps produced, in order.
    pub outcomes: Vec<StepOutcome>,
    /// 0 to 1 over the whole job.
    pub progress: f64,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    pub attempts: u32,
    pub created_ms: u64,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
}

impl Job {
    /// The final result file, once done.
    pub fn output(&self) -> Option<&str> {
        (self.state == JobState::Done).then(|| self.outcomes.last().map(|o| o.output())).flatten()
    }
}

/// Jobs submitted together: one drop, one folder, one CLI call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Batch {
    pub id: i64,
    pub name: String,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    pub created_ms: u64,
    /// Jobs by state, and the mean progress.
    pub jobs: u32,
    pub done: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub progress: f64,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Collecting jobs; none run until it starts.
    Idle,
    Active,
    Paused,
    Cancelled,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Idle, Self::Active, Self::Paused, Self::Cancelled].into_iter().find(|s| s.as_str() == text)
    }
}

/// A named group of jobs started, paused, resumed and cancelled together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Session {
    pub id: i64,
    pub name: String,
    pub state: SessionState,
    pub created_ms: u64,
    pub jobs: u32,
    pub done: u32,
    pub progress: f64,
}

/// A line of a job's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct LogLine {
    pub at_ms: u64,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// Live progress of a running job (not stored; the stored figure is updated per tile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct JobProgress {
    pub job_id: i64,
    pub device_id: DeviceId,
    /// 0 to 1 over the whole job.
    pub progress: f64,
    pub step: u32,
    pub steps: u32,
    pub step_kind: String,
    pub tiles_done: u32,
    pub tiles_total: u32,
    /// Seconds left, once there is a rate to go by.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
    pub elapsed_s: f64,
}
