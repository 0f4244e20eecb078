//! The engine's one typed API: every operation by name, with its kind (query or mutation), input
//! and output types. Both doors (the Tauri shell and the HTTP server) call [`dispatch`] and hold
//! no logic of their own; the TypeScript client is generated from the same table (`typegen`).
//!
//! Queries never change state (the HTTP door serves them on GET); mutations may (POST only).

pub mod typegen;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

use crate::compute::benchmark::BenchmarkResult;
use crate::devices::*;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorCode};
use crate::library::Library;
use crate::library::ops::{FolderRef, ModelRef};
use crate::memory::ops::{LoadModel, PinModel, SetBudget, TransferModel, UnloadModel, Unloaded};
use crate::memory::residency::LoadResult;
use crate::memory::{Allocation, DeviceMemory, MemoryStatus};
use crate::processing::Job;
use crate::processing::Session;
use crate::processing::ops::{
    Changed, GalleryQuery, ImageData, ImageRequest, JobDetails, JobIds, JobList, JobQuery, JobRef, NewSession,
    OpenResult, QueueFlags, SessionControl, SetPriority, SubmitJobs, Submitted,
};
use crate::settings::Settings;
use kiln_models::ModelInfo;

/// Whether an operation may change state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Query,
    Mutation,
}

/// An operation's name, kind and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    pub kind: OperationKind,
    pub doc: &'static str,
}

/// Parses an operation's input; `null` stands for an empty object.
fn parse_input<T: for<'de> Deserialize<'de>>(operation: &str, input: Value) -> Result<T, ApiError> {
    let input = if input.is_null() { Value::Object(Default::default()) } else { input };
    serde_json::from_value(input).map_err(|error| {
        ApiError::invalid_input(format!("{operation}: {error}"))
            .with_details(serde_json::json!({ "operation": operation }))
    })
}

fn to_value<T: Serialize>(output: T) -> Result<Value, ApiError> {
    serde_json::to_value(output).map_err(|e| ApiError::internal(format!("could not encode the result: {e}")))
}

macro_rules! operations {
    ($( $(#[doc = $doc:literal])* $kind:ident $name:literal => $method:ident($input:ty) -> $output:ty; )*) => {
        /// Every operation, in the order the API documents them.
        pub const OPERATIONS: &[Operation] = &[
            $( Operation { name: $name, kind: OperationKind::$kind, doc: concat!($($doc, "\n",)*) }, )*
        ];

        /// Runs the named operation on JSON input and returns JSON output.
        pub async fn dispatch(engine: &Engine, name: &str, input: Value) -> Result<Value, ApiError> {
            match name {
                $( $name => to_value(engine.$method(parse_input::<$input>(name, input)?).await?), )*
                _ => Err(ApiError::new(ErrorCode::UnknownOperation, format!("no operation named {name:?}"))
                    .with_details(serde_json::json!({ "operation": name }))),
            }
        }

        /// Registers every input and output type with the TypeScript generator.
        pub(crate) fn register_types(types: &mut typegen::TypeSet) {
            $( types.add::<$input>(); types.add::<$output>(); )*
        }

        /// `(name, input TypeScript type, output TypeScript type)` of every operation.
        pub(crate) fn signatures(cfg: &ts_rs::Config) -> Vec<(&'static str, String, String)> {
            vec![ $( ($name, <$input as TS>::name(cfg), <$output as TS>::name(cfg)), )* ]
        }
    };
}

operations! {
    /// Kiln's version, build and data folder.
    Query "app.info" => app_info(NoInput) -> AppInfo;
    /// The settings in force.
    Query "settings.get" => settings_get(NoInput) -> Settings;
    /// Validates, saves and applies new settings.
    Mutation "settings.update" => settings_update(Settings) -> Settings;
    /// Every device Kiln sees.
    Query "devices.list" => devices_list(NoInput) -> DeviceList;
    /// Every device with its latest reading and health (`kiln devices --json`).
    Query "devices.snapshot" => devices_snapshot(NoInput) -> Snapshot;
    /// A device with drivers, capabilities, power limits and its last benchmark.
    Query "devices.details" => devices_details(DeviceRef) -> DeviceDetails;
    /// The drivers and runtimes serving a device.
    Query "devices.drivers" => devices_drivers(DeviceRef) -> Vec<DriverInfo>;
    /// Precisions, features and limits of a device's compute adapter.
    Query "devices.capabilities" => devices_capabilities(DeviceRef) -> Capabilities;
    /// A device's latest reading.
    Query "devices.status" => devices_status(DeviceRef) -> DeviceStatus;
    /// A device's health with its reasons.
    Query "devices.health" => devices_health(DeviceRef) -> DeviceHealth;
    /// A device's recent readings, in columns.
    Query "devices.history" => devices_history(HistoryRequest) -> DeviceHistory;
    /// Recommended precision, memory budget and tile size for a device.
    Query "devices.optimize" => devices_optimize(DeviceRef) -> Recommendation;
    /// A device's power limits and whether Kiln may change them.
    Query "devices.power" => devices_power(DeviceRef) -> PowerInfo;
    /// Sets a device's power limit where the driver permits.
    Mutation "devices.set_power_limit" => devices_set_power_limit(SetPowerLimit) -> PowerInfo;
    /// Measures matmul throughput and memory bandwidth through burn.
    Mutation "devices.benchmark" => devices_benchmark(DeviceRef) -> BenchmarkResult;
    /// Releases the memory Kiln's compute pools hold on a device.
    Mutation "devices.reset" => devices_reset(DeviceRef) -> ResetResult;
    /// Finds devices again.
    Mutation "devices.rescan" => devices_rescan(NoInput) -> DeviceList;
    /// Every model in Kiln's model folders, with what it is and where it is loaded.
    Query "models.list" => models_list(NoInput) -> Library;
    /// What one model file is: format, architecture, scale, parameters, dtypes, metadata.
    Query "models.inspect" => models_inspect(ModelRef) -> ModelInfo;
    /// Adds a folder to the library.
    Mutation "models.add_folder" => models_add_folder(FolderRef) -> Library;
    /// Removes a folder the user added.
    Mutation "models.remove_folder" => models_remove_folder(FolderRef) -> Library;
    /// Loads a model onto a device within its budget (from the RAM cache when there).
    Mutation "models.load" => models_load(LoadModel) -> LoadResult;
    /// Unloads a model from a device, or from everywhere.
    Mutation "models.unload" => models_unload(UnloadModel) -> Unloaded;
    /// Pins a model in the RAM cache, or lets it go.
    Mutation "models.pin" => models_pin(PinModel) -> MemoryStatus;
    /// The memory map: every device's memory split by owner, and the RAM cache.
    Query "memory.status" => memory_status(NoInput) -> MemoryStatus;
    /// One device's memory split by owner.
    Query "memory.usage" => memory_usage(DeviceRef) -> DeviceMemory;
    /// Every allocation Kiln holds (the ledger).
    Query "memory.allocations" => memory_allocations(NoInput) -> Vec<Allocation>;
    /// Unloads every model no running work holds from a device.
    Mutation "memory.clear" => memory_clear(DeviceRef) -> Unloaded;
    /// Releases the pool memory Kiln reserves but does not use.
    Mutation "memory.cleanup" => memory_cleanup(DeviceRef) -> DeviceMemory;
    /// Moves a model to another device, or to RAM only.
    Mutation "memory.transfer" => memory_transfer(TransferModel) -> MemoryStatus;
    /// Sets a device's budget, or returns it to the default share.
    Mutation "memory.set_budget" => memory_set_budget(SetBudget) -> DeviceMemory;
    /// The queue: jobs in run order then finished ones, batches, sessions, workers.
    Query "jobs.list" => jobs_list(JobQuery) -> JobList;
    /// A job with its log.
    Query "jobs.get" => jobs_get(JobRef) -> JobDetails;
    /// A job's input or result as image bytes, or a cached thumbnail of it.
    Query "jobs.image" => jobs_image(ImageRequest) -> ImageData;
    /// Queues files, folders or uploaded images, each through the given steps.
    Mutation "jobs.submit" => jobs_submit(SubmitJobs) -> Submitted;
    /// Cancels jobs; running ones stop at their next tile.
    Mutation "jobs.cancel" => jobs_cancel(JobIds) -> Changed;
    /// Holds jobs; running ones stop at their next tile and resume at the same step.
    Mutation "jobs.pause" => jobs_pause(JobIds) -> Changed;
    /// Queues held jobs again.
    Mutation "jobs.resume" => jobs_resume(JobIds) -> Changed;
    /// Queues failed or cancelled jobs again, at the step they stopped on.
    Mutation "jobs.retry" => jobs_retry(JobIds) -> Changed;
    /// Deletes finished jobs from the history; their files stay.
    Mutation "jobs.remove" => jobs_remove(JobIds) -> Changed;
    /// Puts a waiting job first.
    Mutation "jobs.move_to_front" => jobs_move_to_front(JobRef) -> Changed;
    /// Puts waiting jobs in this order, in the places they held.
    Mutation "jobs.reorder" => jobs_reorder(JobIds) -> Changed;
    /// Sets a job's priority (higher runs first).
    Mutation "jobs.set_priority" => jobs_set_priority(SetPriority) -> Changed;
    /// Opens a result, or its folder, with the desktop's default application.
    Mutation "jobs.open" => jobs_open(OpenResult) -> Changed;
    /// Starts no new job until resumed (running ones finish).
    Mutation "queue.pause" => queue_pause(NoInput) -> QueueFlags;
    /// Lets the queue start jobs again.
    Mutation "queue.resume" => queue_resume(NoInput) -> QueueFlags;
    /// A named group of jobs, started at once or collecting jobs until started.
    Mutation "sessions.create" => sessions_create(NewSession) -> Session;
    /// Starts, pauses, resumes or cancels a session's jobs together.
    Mutation "sessions.control" => sessions_control(SessionControl) -> Session;
    /// Finished results, newest first, with their settings and timings.
    Query "gallery.list" => gallery_list(GalleryQuery) -> Vec<Job>;
}

/// What this Kiln is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AppInfo {
    pub version: String,
    /// Compute backends compiled in (`vulkan`, `metal`, `dx12`, `cpu`).
    pub backends: Vec<String>,
    /// Backends not compiled in, and why.
    pub backends_missing: Vec<String>,
    pub data_dir: String,
    pub pid: u32,
}

impl Engine {
    pub async fn app_info(&self, _: NoInput) -> Result<AppInfo, ApiError> {
        let mut backends = Vec::new();
        if cfg!(feature = "vulkan") {
            backends.push("vulkan".to_owned());
        }
        if cfg!(windows) {
            backends.push("dx12".to_owned());
        }
        if cfg!(feature = "metal") || cfg!(target_os = "macos") {
            backends.push("metal".to_owned());
        }
        backends.push("cpu".to_owned());
        Ok(AppInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            backends,
            backends_missing: vec![
                "cuda: burn 0.22's CUDA backend downloads LLVM while it builds, which this build cannot do".to_owned(),
            ],
            data_dir: self.data_dir().display().to_string(),
            pid: std::process::id(),
        })
    }

    pub async fn settings_get(&self, _: NoInput) -> Result<Settings, ApiError> {
        Ok(self.settings())
    }

    pub async fn settings_update(&self, settings: Settings) -> Result<Settings, ApiError> {
        settings.validate()?;
        let saved = settings.clone();
        self.blocking(move |engine| {
            // One writer at a time: the file and the settings in force never disagree.
            let mut current = engine.state.settings.write().unwrap_or_else(|e| e.into_inner());
            engine.state.settings_file.save(&saved)?;
            *current = saved;
            Ok::<_, ApiError>(())
        })
        .await??;
        self.emit(crate::events::KilnEvent::SettingsChanged { settings: settings.clone() });
        Ok(settings)
    }
}

/// The operation with this name.
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.name == name)
}
