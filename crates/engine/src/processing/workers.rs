//! The workers: one thread per compute device, each taking the next job it may run, running
//! its steps (each step's output the next one's input), reporting progress, honouring pause and
//! cancel at every tile, and writing the outcome. A panic inside a job fails that job only.
//!
//! Which devices take jobs nobody pinned: see `routing` (the hardware GPUs; without one, the
//! CPU backend before a software rasteriser, unless the last jobs measured it faster). A job
//! pinned to a device runs there whatever its class.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::routing::{self, ModelSpeed};
use super::store::{Control, JobFilter, Scope, Store, StoreError};
use super::{Job, JobProgress, JobState, Step, StepOutcome};
use crate::devices::{DeviceId, DeviceKind};
use crate::engine::{Engine, EngineState};
use crate::error::{ApiError, ErrorCode};
use crate::events::KilnEvent;
use crate::postprocessing::images::OutputFormat;
use crate::postprocessing::upscale::{UpscaleEvent, UpscaleRequest};

/// How long a running job may stay silent before another process takes it back.
const STALE_MS: u64 = 120_000;

/// How often a running job's process proves itself alive ([`JobBeat`]), whatever its tiles take.
const BEAT_EVERY: Duration = Duration::from_secs(15);

/// How many finished jobs the routing's speeds come from.
const MEASURED_JOBS: u32 = 200;

/// How long a routing decision stands before the workers measure again.
const ROUTES_FOR: Duration = Duration::from_secs(5);

/// A device's worker, as the queue page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct WorkerStatus {
    pub device_id: DeviceId,
    pub device_name: String,
    /// Whether it takes jobs no one pinned to a device.
    pub takes_any: bool,
    /// Why it does or does not (its kind, or what was measured).
    pub routing: String,
    /// How fast its last finished jobs ran, per model.
    pub speeds: Vec<ModelSpeed>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
}

/// The queue, its wake-up signal and this process's workers.
pub struct Processing {
    pub store: Store,
    /// This process, as running jobs name their owner: `pid:start time`.
    pub owner: String,
    wake: (Mutex<u64>, Condvar),
    pub(crate) workers: Mutex<HashMap<DeviceId, WorkerStatus>>,
    /// When the workers' routes were last decided.
    routed: Mutex<Option<Instant>>,
}

/// Whether the process an owner string names is still running.
fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else { return false };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else { return false };
    let pid = sysinfo::Pid::from_u32(pid);
    let mut system = sysinfo::System::new();
    system.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
    system.process(pid).is_some_and(|p| p.start_time() == start)
}

fn own_owner() -> String {
    let pid = sysinfo::Pid::from_u32(std::process::id());
    let mut system = sysinfo::System::new();
    system.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
    let start = system.process(pid).map_or(0, |p| p.start_time());
    format!("{}:{start}", std::process::id())
}

impl Processing {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            store: Store::open(&data_dir.join("queue.db"))?,
            owner: own_owner(),
            wake: (Mutex::new(0), Condvar::new()),
            workers: Mutex::new(HashMap::new()),
            routed: Mutex::new(None),
        })
    }

    /// Wakes idle workers: something was queued or resumed.
    pub fn notify(&self) {
        let mut generation = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.wake.1.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let generation = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        let seen = *generation;
        let _ = self.wake.1.wait_timeout_while(generation, timeout, |g| *g == seen);
    }

    /// Takes back jobs whose process died; returns their ids.
    pub fn reclaim(&self) -> Vec<i64> {
        let own = self.owner.clone();
        match self.store.reclaim(&|owner| owner == own || owner_alive(owner), STALE_MS) {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!("could not check for interrupted jobs: {error}");
                vec![]
            }
        }
    }

    pub fn workers(&self) -> Vec<WorkerStatus> {
        let mut workers: Vec<WorkerStatus> =
            self.workers.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        workers.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        workers
    }

    fn set_running(&self, device: &DeviceId, job: Option<i64>) {
        if let Some(w) = self.workers.lock().unwrap_or_else(|e| e.into_inner()).get_mut(device) {
            w.job_id = job;
        }
    }
}

impl Engine {
    /// The job queue's store.
    pub fn queue(&self) -> &Store {
        &self.state.processing.store
    }

    /// Starts one worker per compute device (once per device) taking jobs in `scope`. Jobs an
    /// earlier run of Kiln left running are queued again first.
    pub fn start_workers(&self, scope: Scope) {
        let processing = &self.state.processing;
        let reclaimed = processing.reclaim();
        if !reclaimed.is_empty() {
            tracing::info!("{} interrupted jobs queued again", reclaimed.len());
            self.emit(KilnEvent::QueueChanged);
        }
        let devices = self.devices();
        for bound in devices.iter().filter(|d| d.binding.compute.is_some()) {
            let id = bound.device.id.clone();
            {
                let mut workers = processing.workers.lock().unwrap_or_else(|e| e.into_inner());
                if workers.contains_key(&id) {
                    continue;
                }
                workers.insert(
                    id.clone(),
                    WorkerStatus {
                        device_id: id.clone(),
                        device_name: bound.device.name.clone(),
                        takes_any: false,
                        routing: String::new(),
                        speeds: Vec::new(),
                        job_id: None,
                    },
                );
            }
            let state = Arc::downgrade(&self.state);
            let scope = scope.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("kiln-worker-{id}"))
                .spawn(move || worker_loop(state, id, scope));
            if let Err(error) = spawned {
                tracing::error!("could not start a worker: {error}");
            }
        }
        // The Queue page shows each worker's route from the start.
        *processing.routed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.route_workers();
    }

    /// The workers as the Queue page shows them, their routes decided from the jobs finished
    /// up to now.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.route_workers();
        self.state.processing.workers()
    }

    /// Whether `device`'s worker takes jobs no one pinned, deciding every worker's route again
    /// when the last decision is older than [`ROUTES_FOR`].
    fn takes_unpinned(&self, device: &DeviceId) -> bool {
        let processing = &self.state.processing;
        let stale = {
            let mut routed = processing.routed.lock().unwrap_or_else(|e| e.into_inner());
            let stale = routed.is_none_or(|at| at.elapsed() > ROUTES_FOR);
            if stale {
                *routed = Some(Instant::now());
            }
            stale
        };
        if stale {
            self.route_workers();
        }
        let workers = processing.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.get(device).is_some_and(|w| w.takes_any)
    }

    /// Decides which workers take unpinned jobs from their devices' kinds and the speeds of
    /// the last finished jobs (`routing`).
    fn route_workers(&self) {
        let processing = &self.state.processing;
        let filter = JobFilter { states: vec![JobState::Done], limit: Some(MEASURED_JOBS), ..JobFilter::default() };
        let finished = processing.store.list(&filter).unwrap_or_else(|error| {
            tracing::warn!("could not read the finished jobs' speeds: {error}");
            Vec::new()
        });
        let outcomes = finished.iter().flat_map(|job| &job.outcomes).map(|outcome| match outcome {
            StepOutcome::Upscale(upscale) => upscale,
        });
        let speeds = routing::speeds(outcomes);
        let devices = self.devices();
        let mut workers = processing.workers.lock().unwrap_or_else(|e| e.into_inner());
        let computing: Vec<(DeviceId, DeviceKind)> = devices
            .iter()
            .filter(|d| workers.contains_key(&d.device.id))
            .map(|d| (d.device.id.clone(), d.device.kind))
            .collect();
        for ((id, _), route) in computing.iter().zip(routing::routes(&computing, &speeds)) {
            if let Some(worker) = workers.get_mut(id) {
                worker.takes_any = route.takes_any;
                worker.routing = route.reason;
                worker.speeds = speeds.get(id).cloned().unwrap_or_default();
            }
        }
    }
}

fn worker_loop(state: Weak<EngineState>, device: DeviceId, scope: Scope) {
    let mut last_reclaim = Instant::now();
    loop {
        let Some(state) = state.upgrade() else { return };
        if state.stop.load(Ordering::Relaxed) {
            return;
        }
        let engine = Engine { state };
        let processing = engine.state.processing.clone();
        if last_reclaim.elapsed() > Duration::from_secs(15) {
            last_reclaim = Instant::now();
            if !processing.reclaim().is_empty() {
                engine.emit(KilnEvent::QueueChanged);
            }
        }
        let takes_any = engine.takes_unpinned(&device);
        match processing.store.claim(&device, takes_any, &scope, &processing.owner) {
            Ok(Some(job)) => {
                processing.set_running(&device, Some(job.id));
                run_job(&engine, job, &device);
                processing.set_running(&device, None);
            }
            Ok(None) => {
                drop(engine);
                processing.wait(Duration::from_millis(500));
            }
            Err(error) => {
                tracing::warn!("the worker for {device} could not read the queue: {error}");
                drop(engine);
                processing.wait(Duration::from_secs(2));
            }
        }
    }
}

/// Sends a job's new state to subscribers.
pub(crate) fn announce(engine: &Engine, id: i64) {
    if let Ok(Some(job)) = engine.state.processing.store.get(id) {
        engine.emit(KilnEvent::JobChanged { job: Box::new(job) });
    }
}

/// Where a job writes a step's result: the job's output folder for the last step, its work
/// folder (lossless PNG) before that.
fn work_dir(engine: &Engine, id: i64) -> PathBuf {
    engine.data_dir().join("work").join(id.to_string())
}

/// Deletes a job's intermediate results: once it is done, or gone from the history.
pub(crate) fn discard_work(engine: &Engine, id: i64) {
    let dir = work_dir(engine, id);
    if let Err(error) = std::fs::remove_dir_all(&dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("job {id}: could not delete {}: {error}", dir.display());
    }
}

/// Beats for a running job on a thread of its own until dropped, so that a job whose tiles are
/// slow (minutes for a first tile on a busy software GPU) is never taken for one whose process
/// died and run a second time beside itself.
struct JobBeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JobBeat {
    fn start(processing: Arc<Processing>, id: i64, every: Duration) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kiln-job-beat".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(error) = processing.store.beat(id, &processing.owner) {
                        tracing::warn!("job {id}: could not record that it is still running: {error}");
                    }
                }
            })
            .inspect_err(|error| tracing::warn!("job {id}: no beat thread ({error}); its tiles beat alone"))
            .ok();
        Self { stop: Some(stop), thread }
    }
}

impl Drop for JobBeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_job(engine: &Engine, job: Job, device: &DeviceId) {
    let _beat = JobBeat::start(engine.state.processing.clone(), job.id, BEAT_EVERY);
    let store = &engine.state.processing.store;
    let id = job.id;
    announce(engine, id);
    let steps = job.spec.steps.len();
    let mut outcomes = job.outcomes.clone();
    let started = Instant::now();
    for index in job.step as usize..steps {
        let input = if index == 0 { job.spec.input.clone() } else { outcomes[index - 1].output().to_owned() };
        let mut stop: Option<Control> = None;
        let result =
            catch_unwind(AssertUnwindSafe(|| run_step(engine, &job, index, &input, device, started, &mut stop)))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    Err(ApiError::internal(format!("the step failed unexpectedly: {message}")))
                });
        match result {
            Ok(outcome) => {
                let progress = (index + 1) as f64 / steps as f64;
                let _ = store.log(
                    id,
                    "info",
                    &format!("step {} ({}) wrote {}", index + 1, job.spec.steps[index].kind(), outcome.output()),
                );
                if let Err(error) = store.step_done(id, index as u32, &outcome, progress) {
                    let _ = store.finish(id, JobState::Failed, Some(&error.into()));
                    announce(engine, id);
                    return;
                }
                outcomes.push(outcome);
            }
            Err(error) if error.code == ErrorCode::Cancelled => {
                let (state, line) = match stop {
                    Some(Control::Pause) => (JobState::Paused, "paused; resumes at this step"),
                    _ => (JobState::Cancelled, "cancelled"),
                };
                let _ = store.log(id, "info", line);
                let _ = store.finish(id, state, None);
                announce(engine, id);
                return;
            }
            Err(error) => {
                let _ = store.log(id, "error", &error.message);
                let _ = store.finish(id, JobState::Failed, Some(&error));
                announce(engine, id);
                return;
            }
        }
    }
    let _ = store.log(id, "info", &format!("done in {:.2} s", started.elapsed().as_secs_f64()));
    // The work folder goes before the job reads as done, so nobody who sees it done finds the
    // folder still there. Every step's outcome is recorded by now: a process that dies here
    // leaves a job that resumes past its last step and only finishes.
    discard_work(engine, id);
    let _ = store.finish(id, JobState::Done, None);
    announce(engine, id);
}

/// Runs step `index` of `job` on `input`, reporting progress; `stop` records a pause or cancel.
fn run_step(
    engine: &Engine,
    job: &Job,
    index: usize,
    input: &str,
    device: &DeviceId,
    job_started: Instant,
    stop: &mut Option<Control>,
) -> Result<StepOutcome, ApiError> {
    let store = &engine.state.processing.store;
    let steps = job.spec.steps.len();
    let last = index + 1 == steps;
    let step_started = Instant::now();
    match &job.spec.steps[index] {
        Step::Upscale(settings) => {
            let mut settings = settings.clone();
            let output_file = (!last).then(|| {
                settings.format = OutputFormat::Png;
                work_dir(engine, job.id).join(format!("step-{}.png", index + 1))
            });
            if let Some(file) = &output_file
                && let Some(parent) = file.parent()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot create {}: {e}", parent.display())))?;
            }
            let model = PathBuf::from(settings.model.clone().unwrap_or_default());
            let mut last_beat = Instant::now() - Duration::from_secs(1);
            let mut last_event = Instant::now() - Duration::from_secs(1);
            let mut on_event = |event: UpscaleEvent| -> bool {
                match event {
                    UpscaleEvent::Note(line) => {
                        let _ = store.log(job.id, "info", &line);
                        true
                    }
                    UpscaleEvent::Warning(line) => {
                        let _ = store.log(job.id, "warn", &line);
                        true
                    }
                    UpscaleEvent::Ready { tile, precision, tiles_per_pass, passes } => {
                        let _ = store.log(
                            job.id,
                            "info",
                            &format!(
                                "{tiles_per_pass} tile{} of at most {tile} px{}, {precision:?}",
                                if tiles_per_pass == 1 { "" } else { "s" },
                                if passes > 1 { ", then the alpha plane" } else { "" }
                            ),
                        );
                        true
                    }
                    UpscaleEvent::Tile { done, total } => {
                        let fraction = done as f64 / total.max(1) as f64;
                        let progress = (index as f64 + fraction) / steps as f64;
                        let finished = done == total;
                        if last_beat.elapsed() >= Duration::from_millis(250) || finished {
                            last_beat = Instant::now();
                            match store.heartbeat(job.id, progress) {
                                Ok(Some(control)) => {
                                    *stop = Some(control);
                                    return false;
                                }
                                Ok(None) => {}
                                Err(error) => tracing::warn!("job {}: {error}", job.id),
                            }
                        }
                        if last_event.elapsed() >= Duration::from_millis(100) || finished {
                            last_event = Instant::now();
                            let elapsed = step_started.elapsed().as_secs_f64();
                            engine.emit(KilnEvent::JobProgress {
                                progress: JobProgress {
                                    job_id: job.id,
                                    device_id: device.clone(),
                                    progress,
                                    step: index as u32,
                                    steps: steps as u32,
                                    step_kind: "upscale".into(),
                                    tiles_done: done as u32,
                                    tiles_total: total as u32,
                                    eta_s: (fraction > 0.0).then(|| elapsed / fraction * (1.0 - fraction)),
                                    elapsed_s: job_started.elapsed().as_secs_f64(),
                                },
                            });
                        }
                        true
                    }
                }
            };
            let outcome = engine.upscale_file(
                UpscaleRequest {
                    input: Path::new(input),
                    output_dir: Path::new(&job.spec.output_dir),
                    output_file: output_file.as_deref(),
                    model: &model,
                    device_id: device,
                    settings: &settings,
                    owner: format!("job {}", job.id),
                },
                &mut on_event,
            )?;
            Ok(StepOutcome::Upscale(outcome))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processing::JobSpec;
    use crate::processing::store::NewJob;

    /// A job whose tiles stay silent longer than the stale limit is still its process's while
    /// the beat runs; once the beat stops (the process hung or died) it goes back to the queue.
    #[test]
    fn a_slow_job_keeps_its_claim_while_its_beat_runs() {
        let dir = kiln_testdir::TempDir::new();
        let processing = Arc::new(Processing::open(dir.path()).unwrap());
        let spec = JobSpec {
            input: "/in/a.png".into(),
            steps: vec![Step::Upscale(Default::default())],
            output_dir: "/out".into(),
        };
        let new = NewJob { name: "a".into(), spec, priority: 0, device_request: None, session_id: None };
        processing.store.submit(&[new], None).unwrap();
        let device = DeviceId("cpu".into());
        let job = processing.store.claim(&device, true, &Scope::All, &processing.owner).unwrap().unwrap();
        let alive = |_: &str| true;
        // Beats 30 times as often as the stale limit, so a loaded machine's scheduling never
        // looks like silence.
        let stale_ms = 1500;

        let beat = JobBeat::start(processing.clone(), job.id, Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(3 * stale_ms));
        assert_eq!(processing.store.reclaim(&alive, stale_ms).unwrap(), Vec::<i64>::new());
        drop(beat);
        std::thread::sleep(Duration::from_millis(2 * stale_ms));
        assert_eq!(processing.store.reclaim(&alive, stale_ms).unwrap(), vec![job.id]);
    }
}
