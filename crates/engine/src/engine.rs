//! The engine value both doors hold: settings, devices, live telemetry, compute devices, the
//! model library, loaded models and the event bus. Cheap to clone (one `Arc`); every operation is a method on it (see `api`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::broadcast;

use crate::compute::ComputeDevices;
use crate::compute::benchmark::BenchmarkResult;
use crate::devices::DeviceId;
use crate::devices::discovery::BoundDevice;
use crate::devices::sampler::{self, LiveState};
use crate::devices::telemetry::{Telemetry, TelemetryOptions};
use crate::error::{ApiError, ErrorCode};
use crate::events::KilnEvent;
use crate::settings::{Settings, SettingsFile};

/// How to start an engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where settings, file hashes, Kiln's own model folder, the job queue and uploads live.
    pub data_dir: PathBuf,
    pub telemetry: TelemetryOptions,
    /// Sample devices in the background (off for one-shot CLI commands and some tests).
    pub background_sampling: bool,
}

impl EngineOptions {
    /// The user's data folder (`$KILN_DATA_DIR`, else e.g. `~/.local/share/kiln`), real `/sys`
    /// and `/proc`, NVML from the driver, background sampling on.
    pub fn standard() -> Self {
        let data_dir = std::env::var_os("KILN_DATA_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::data_dir().map(|d| d.join("kiln")))
            .unwrap_or_else(|| PathBuf::from(".kiln"));
        Self { data_dir, telemetry: TelemetryOptions::default(), background_sampling: true }
    }
}

/// Everything the engine holds. Reached through [`Engine`].
pub(crate) struct EngineState {
    pub options: EngineOptions,
    pub settings_file: SettingsFile,
    pub settings: RwLock<Settings>,
    pub devices: RwLock<Arc<Vec<BoundDevice>>>,
    pub telemetry: Mutex<Telemetry>,
    pub live: RwLock<LiveState>,
    pub events: broadcast::Sender<KilnEvent>,
    pub compute: ComputeDevices,
    pub benchmarks: Mutex<HashMap<DeviceId, BenchmarkResult>>,
    pub benchmarks_running: Mutex<HashSet<DeviceId>>,
    pub stop: Arc<AtomicBool>,
    pub library: crate::library::ModelLibrary,
    pub residency: Arc<crate::memory::residency::Residency>,
    pub processing: Arc<crate::processing::workers::Processing>,
}

impl Drop for EngineState {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Kiln's engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) state: Arc<EngineState>,
}

impl Engine {
    /// Loads settings, finds devices, takes a first reading and, if asked, starts sampling.
    /// Blocking (GPU enumeration): call it before entering async code or from a blocking task.
    pub fn start(options: EngineOptions) -> Result<Self, ApiError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            ApiError::new(ErrorCode::Io, format!("cannot create the data folder {}: {e}", options.data_dir.display()))
        })?;
        let settings_file = SettingsFile::new(&options.data_dir);
        let settings = settings_file.load();
        let mut telemetry = Telemetry::open(options.telemetry.clone());
        let devices = telemetry.discover();
        let processing = crate::processing::workers::Processing::open(&options.data_dir).map_err(|e| {
            ApiError::new(ErrorCode::Io, format!("cannot open the job queue in {}: {e}", options.data_dir.display()))
        })?;
        let (events, _) = broadcast::channel(1024);
        let live = LiveState::new(settings.telemetry.history_rows());
        let engine = Self {
            state: Arc::new(EngineState {
                settings_file,
                settings: RwLock::new(settings),
                devices: RwLock::new(Arc::new(devices)),
                telemetry: Mutex::new(telemetry),
                live: RwLock::new(live),
                events,
                compute: ComputeDevices::default(),
                benchmarks: Mutex::new(HashMap::new()),
                benchmarks_running: Mutex::new(HashSet::new()),
                stop: Arc::new(AtomicBool::new(false)),
                library: crate::library::ModelLibrary::open(&options.data_dir),
                residency: Default::default(),
                processing: Arc::new(processing),
                options,
            }),
        };
        engine.sample_now();
        if engine.state.options.background_sampling {
            sampler::spawn(Arc::downgrade(&engine.state), engine.state.stop.clone());
            crate::library::ops::spawn_watcher(Arc::downgrade(&engine.state), engine.state.stop.clone());
        }
        tracing::info!(
            "engine started: {} devices, data in {}",
            engine.devices().len(),
            engine.state.options.data_dir.display()
        );
        Ok(engine)
    }

    /// Stops background sampling, and the workers once the job each runs ends (a process that
    /// exits first leaves its job to the next start). Operations keep working; statuses stop
    /// updating.
    pub fn shutdown(&self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }

    /// Ends the process with `code`, Kiln's state safe first: sampling and the workers stop, the
    /// jobs this process runs go back to the queue at the step each was on (the next start
    /// resumes them at once), the queue's connection stays held so nothing is written after, and
    /// the output is flushed. Then the process ends without the C library's exit handlers: the
    /// GPU driver's threads still run, and tearing its static state down beside them corrupted
    /// the heap at exit on the software GPU ("corrupted size vs. prev_size in fastbins", seen
    /// from `kiln serve` after SIGINT and from `kiln upscale`). Settings are written when they
    /// change, so nothing else is held in memory.
    pub fn exit(&self, code: i32) -> ! {
        self.shutdown();
        let processing = &self.state.processing;
        let _held = match processing.store.stop_owner(&processing.owner) {
            Ok((back, held)) => {
                if !back.is_empty() {
                    tracing::info!("{} running jobs queued again for the next start", back.len());
                }
                Some(held)
            }
            Err(error) => {
                tracing::warn!("could not queue the running jobs again (the next start will): {error}");
                None
            }
        };
        crate::process::exit_now(code)
    }

    /// Every event from now on: telemetry ticks, device and settings changes, benchmarks.
    pub fn subscribe(&self) -> broadcast::Receiver<KilnEvent> {
        self.state.events.subscribe()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.state.options.data_dir
    }

    pub(crate) fn devices(&self) -> Arc<Vec<BoundDevice>> {
        self.state.devices.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn settings(&self) -> Settings {
        self.state.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn emit(&self, event: KilnEvent) {
        // No subscriber is fine: nobody is watching.
        let _ = self.state.events.send(event);
    }

    /// Reads every device now, updates history and health, and tells subscribers (waiting for
    /// each device's pool reading, unlike the background ticks).
    pub fn sample_now(&self) {
        sampler::tick(&self.state, None);
    }
}
