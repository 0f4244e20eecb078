//! The queue's operations: submit (files, folders, uploads), list, inspect with the log,
//! cancel, pause, resume, retry, reorder, priorities, the queue's own pause, sessions, the
//! results behind the gallery, and images of inputs and results for the UI.
//!
//! Paths from the UI are canonicalised and must lie under an allowed root: the user's home,
//! Kiln's data folder, the output folder and the roots added in settings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::store::{JobFilter, NewJob};
use super::workers::{WorkerStatus, announce};
use super::{Batch, Job, JobSpec, JobState, LogLine, Session, SessionState, Step};
use crate::devices::{DeviceId, NoInput};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorCode};
use crate::events::KilnEvent;
use crate::postprocessing::images;

/// The most bytes one upload may carry.
pub const MAX_UPLOAD_BYTES: usize = 512 << 20;
/// The most files one submission may queue.
pub const MAX_FILES: usize = 10_000;

/// An input: a file or folder on this machine, or image bytes sent by a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum InputItem {
    Path { path: String },
    Upload { name: String, data_base64: String },
}

/// Queue work: each input (every image of a folder) becomes a job running `steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct SubmitJobs {
    pub inputs: Vec<InputItem>,
    /// Include images in sub-folders of folder inputs.
    #[serde(default)]
    pub recursive: bool,
    pub steps: Vec<Step>,
    /// Where results go; absent: the output folder in settings.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    /// Run on this device; absent: any device Kiln picks.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    #[serde(default)]
    pub priority: i32,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    /// A name for the batch; several inputs make a batch in any case.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_name: Option<String>,
}

/// An input that did not become a job, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Skipped {
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Submitted {
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<i64>,
    pub jobs: Vec<Job>,
    pub skipped: Vec<Skipped>,
}

/// Which jobs to list; empty `states` lists all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct JobQuery {
    pub states: Vec<JobState>,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<i64>,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    /// At most this many (default 500).
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The queue: jobs, batches, sessions, whether it is paused, and the workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct JobList {
    pub jobs: Vec<Job>,
    pub batches: Vec<Batch>,
    pub sessions: Vec<Session>,
    pub paused: bool,
    pub workers: Vec<WorkerStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct JobRef {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct JobIds {
    pub ids: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SetPriority {
    pub id: i64,
    pub priority: i32,
}

/// A job with its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct JobDetails {
    pub job: Job,
    pub log: Vec<LogLine>,
}

/// The jobs an operation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Changed {
    pub ids: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct QueueFlags {
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct NewSession {
    pub name: String,
    /// Start at once; otherwise it collects jobs until started.
    #[serde(default)]
    pub start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SessionAction {
    Start,
    Pause,
    Resume,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SessionControl {
    pub id: i64,
    pub action: SessionAction,
}

/// Which image of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    Input,
    Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ImageRequest {
    pub id: i64,
    pub which: ImageKind,
    /// A thumbnail no larger than this (made once, then cached); absent: the file itself.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_side: Option<u32>,
}

/// An image for the UI, as bytes a browser displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ImageData {
    pub mime: String,
    pub data_base64: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct GalleryQuery {
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct OpenResult {
    pub id: i64,
    /// Open the folder holding the result instead of the file.
    #[serde(default)]
    pub folder: bool,
}

/// Folders a path from the UI may lie under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct ProcessingSettings {
    /// Where results go unless a submission names a folder; empty: `Pictures/Kiln`.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    /// Folders beyond the home folder, Kiln's data folder and the output folder that inputs
    /// and outputs named by the UI may lie in.
    pub allowed_roots: Vec<String>,
}

impl ProcessingSettings {
    pub fn validate(&self) -> Result<(), ApiError> {
        let relative = self.output_dir.iter().chain(&self.allowed_roots).find(|p| !Path::new(p).is_absolute());
        match relative {
            Some(path) => Err(ApiError::invalid_input(format!("{path} is not an absolute path"))),
            None => Ok(()),
        }
    }
}

fn not_allowed(path: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PermissionDenied,
        format!("{path} is outside the folders Kiln may read and write (home, Kiln's data folder, the output folder, and those added in Settings)"),
    )
    .with_details(serde_json::json!({ "path": path }))
}

/// Bytes from base64 (standard alphabet, padding optional).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            3 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]),
            2 => out.push((n >> 16) as u8),
            _ => return None,
        }
    }
    Some(out)
}

pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n =
            (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A file name safe to create: the base name with only harmless characters.
fn safe_name(name: &str) -> String {
    let base = Path::new(name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let cleaned: String =
        base.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') { c } else { '_' }).collect();
    let cleaned = cleaned.trim_start_matches('.').trim().to_owned();
    if cleaned.is_empty() { "image".into() } else { cleaned.chars().take(120).collect() }
}

/// The images under `folder`, sorted, optionally recursing.
fn images_in(folder: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        if path.is_dir() {
            if recursive {
                images_in(&path, recursive, out);
            }
        } else if images::is_image_path(&path) {
            out.push(path);
        }
    }
}

impl Engine {
    /// Where results go by default.
    pub fn default_output_dir(&self) -> PathBuf {
        match self.settings().processing.output_dir {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => dirs::picture_dir()
                .or_else(|| dirs::home_dir().map(|h| h.join("Pictures")))
                .map(|p| p.join("Kiln"))
                .unwrap_or_else(|| self.data_dir().join("outputs")),
        }
    }

    fn allowed_roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = vec![self.data_dir().to_path_buf(), self.default_output_dir()];
        roots.extend(dirs::home_dir());
        roots.extend(self.settings().processing.allowed_roots.iter().map(PathBuf::from));
        roots.into_iter().filter_map(|r| r.canonicalize().ok()).collect()
    }

    /// A path from the UI, canonical and under an allowed root.
    pub(crate) fn allowed_path(&self, path: &str) -> Result<PathBuf, ApiError> {
        let canonical = Path::new(path).canonicalize().map_err(|e| {
            ApiError::new(ErrorCode::NotFound, format!("{path}: {e}")).with_details(serde_json::json!({ "path": path }))
        })?;
        if self.allowed_roots().iter().any(|root| canonical.starts_with(root)) {
            Ok(canonical)
        } else {
            Err(not_allowed(path))
        }
    }

    /// An output folder from the UI: created if missing, then checked like any path.
    fn allowed_output_dir(&self, path: &str) -> Result<PathBuf, ApiError> {
        let requested = Path::new(path);
        if !requested.is_absolute() {
            return Err(ApiError::invalid_input(format!("the output folder {path} is not an absolute path")));
        }
        // The folder may not exist yet: check the nearest existing ancestor.
        let existing = requested.ancestors().find(|a| a.exists()).ok_or_else(|| not_allowed(path))?;
        let canonical = existing.canonicalize().map_err(|_| not_allowed(path))?;
        if !self.allowed_roots().iter().any(|root| canonical.starts_with(root)) {
            return Err(not_allowed(path));
        }
        std::fs::create_dir_all(requested)
            .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot create the output folder {path}: {e}")))?;
        requested.canonicalize().map_err(|e| ApiError::new(ErrorCode::Io, format!("{path}: {e}")))
    }

    /// The model an upscale step names, else the bundled default: checked, canonical.
    fn resolve_model(&self, model: Option<&str>, trusted: bool) -> Result<String, ApiError> {
        let path = match model {
            Some(model) if trusted => Path::new(model)
                .canonicalize()
                .map_err(|e| ApiError::new(ErrorCode::NotFound, format!("model {model}: {e}")))?,
            Some(model) => self.library_path(model)?,
            None => {
                let bundled = crate::library::ops::bundled_folder();
                let library = self.library();
                let found = library
                    .models
                    .iter()
                    .filter(|m| m.runnable)
                    .find(|m| bundled.as_ref().is_some_and(|b| Path::new(&m.path).starts_with(b)));
                PathBuf::from(
                    &found
                        .ok_or_else(|| {
                            ApiError::new(ErrorCode::NotFound, "no model named and no bundled upscaler found: run scripts/fetch-models.sh or choose a model")
                        })?
                        .path,
                )
            }
        };
        Ok(path.display().to_string())
    }

    /// Queues jobs. `trusted` callers (the CLI, run by the user at a shell) may name any path;
    /// paths from the UI must lie under an allowed root.
    pub fn submit_jobs(&self, request: SubmitJobs, trusted: bool) -> Result<Submitted, ApiError> {
        if request.steps.is_empty() {
            return Err(ApiError::invalid_input("a job needs at least one step"));
        }
        if request.inputs.is_empty() {
            return Err(ApiError::invalid_input("nothing to process: no inputs"));
        }
        let mut steps = request.steps.clone();
        for step in &mut steps {
            match step {
                Step::Upscale(settings) => {
                    settings.validate()?;
                    settings.model = Some(self.resolve_model(settings.model.as_deref(), trusted)?);
                }
            }
        }
        if let Some(device) = &request.device_id {
            let bound = self.bound(device)?;
            if bound.binding.compute.is_none() {
                return Err(ApiError::new(
                    ErrorCode::Unsupported,
                    format!("{} has no compute backend Kiln can use", bound.device.name),
                ));
            }
        }
        let output_dir = match &request.output_dir {
            Some(dir) if trusted => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot create {dir}: {e}")))?;
                PathBuf::from(dir).canonicalize().map_err(|e| ApiError::new(ErrorCode::Io, format!("{dir}: {e}")))?
            }
            Some(dir) => self.allowed_output_dir(dir)?,
            None => {
                let dir = self.default_output_dir();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot create {}: {e}", dir.display())))?;
                dir.canonicalize().unwrap_or(dir)
            }
        };

        let mut files: Vec<PathBuf> = Vec::new();
        let mut skipped = Vec::new();
        let mut folder_name = None;
        for input in &request.inputs {
            match input {
                InputItem::Path { path } => {
                    let canonical = if trusted {
                        Path::new(path)
                            .canonicalize()
                            .map_err(|e| ApiError::new(ErrorCode::NotFound, format!("{path}: {e}")))
                    } else {
                        self.allowed_path(path)
                    };
                    let canonical = match canonical {
                        Ok(c) => c,
                        Err(error) => {
                            skipped.push(Skipped { input: path.clone(), reason: error.message });
                            continue;
                        }
                    };
                    if canonical.is_dir() {
                        folder_name.get_or_insert_with(|| {
                            canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                        });
                        let before = files.len();
                        images_in(&canonical, request.recursive, &mut files);
                        if files.len() == before {
                            skipped.push(Skipped { input: path.clone(), reason: "no images in this folder".into() });
                        }
                    } else if images::is_image_path(&canonical) {
                        files.push(canonical);
                    } else {
                        skipped.push(Skipped {
                            input: path.clone(),
                            reason: "not an image Kiln reads (PNG, JPEG, WebP, TIFF, BMP)".into(),
                        });
                    }
                }
                InputItem::Upload { name, data_base64 } => {
                    if data_base64.len() > MAX_UPLOAD_BYTES / 3 * 4 + 4 {
                        skipped.push(Skipped {
                            input: name.clone(),
                            reason: format!("larger than {} MiB", MAX_UPLOAD_BYTES >> 20),
                        });
                        continue;
                    }
                    let Some(bytes) = base64_decode(data_base64) else {
                        skipped.push(Skipped { input: name.clone(), reason: "the upload is not valid base64".into() });
                        continue;
                    };
                    match self.save_upload(name, &bytes) {
                        Ok(path) => files.push(path),
                        Err(error) => skipped.push(Skipped { input: name.clone(), reason: error.message }),
                    }
                }
            }
            if files.len() >= MAX_FILES {
                skipped
                    .push(Skipped {
                        input: "…".into(), reason: format!("at most {MAX_FILES} images per submission")
                    });
                break;
            }
        }
        files.dedup();
        if files.is_empty() {
            return Ok(Submitted { batch_id: None, jobs: vec![], skipped });
        }
        let new_jobs: Vec<NewJob> = files
            .iter()
            .map(|file| NewJob {
                name: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                spec: JobSpec {
                    input: file.display().to_string(),
                    steps: steps.clone(),
                    output_dir: output_dir.display().to_string(),
                },
                priority: request.priority,
                device_request: request.device_id.clone(),
                session_id: request.session_id,
            })
            .collect();
        let batch_name = request
            .batch_name
            .clone()
            .or(folder_name)
            .or_else(|| (new_jobs.len() > 1).then(|| format!("{} images", new_jobs.len())));
        let batch = batch_name.as_deref().map(|name| (name, request.session_id));
        let (batch_id, jobs) = self.state.processing.store.submit(&new_jobs, batch)?;
        self.state.processing.notify();
        self.emit(KilnEvent::QueueChanged);
        Ok(Submitted { batch_id, jobs, skipped })
    }

    /// Keeps an uploaded image in `<data>/uploads` once it decodes as one.
    fn save_upload(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ApiError> {
        let name = safe_name(name);
        images::decode_bytes(bytes, Path::new(&name))?;
        let dir = self.data_dir().join("uploads");
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot create {}: {e}", dir.display())))?;
        let path = crate::postprocessing::upscale::unused_path(dir.join(&name));
        std::fs::write(&path, bytes)
            .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot write {}: {e}", path.display())))?;
        path.canonicalize().map_err(|e| ApiError::new(ErrorCode::Io, e.to_string()))
    }

    pub async fn jobs_submit(&self, request: SubmitJobs) -> Result<Submitted, ApiError> {
        self.blocking(move |engine| engine.submit_jobs(request, false)).await?
    }

    pub async fn jobs_list(&self, query: JobQuery) -> Result<JobList, ApiError> {
        self.blocking(move |engine| {
            let store = &engine.state.processing.store;
            Ok(JobList {
                jobs: store.list(&JobFilter {
                    states: query.states,
                    batch_id: query.batch_id,
                    session_id: query.session_id,
                    limit: Some(query.limit.unwrap_or(500).min(5000)),
                })?,
                batches: store.batches()?,
                sessions: store.sessions()?,
                paused: store.paused()?,
                workers: engine.workers(),
            })
        })
        .await?
    }

    fn job(&self, id: i64) -> Result<Job, ApiError> {
        self.state.processing.store.get(id)?.ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("no job {id}")).with_details(serde_json::json!({ "id": id }))
        })
    }

    pub async fn jobs_get(&self, input: JobRef) -> Result<JobDetails, ApiError> {
        self.blocking(move |engine| {
            let job = engine.job(input.id)?;
            let log = engine.state.processing.store.log_of(input.id)?;
            Ok(JobDetails { job, log })
        })
        .await?
    }

    /// Runs a change on the store, then tells workers and subscribers.
    async fn change_jobs(
        &self,
        ids: Vec<i64>,
        change: fn(&super::store::Store, &[i64]) -> Result<Vec<i64>, super::store::StoreError>,
    ) -> Result<Changed, ApiError> {
        self.blocking(move |engine| {
            let changed = change(&engine.state.processing.store, &ids)?;
            engine.state.processing.notify();
            for id in &changed {
                announce(&engine, *id);
            }
            Ok(Changed { ids: changed })
        })
        .await?
    }

    pub async fn jobs_cancel(&self, input: JobIds) -> Result<Changed, ApiError> {
        self.change_jobs(input.ids, super::store::Store::cancel).await
    }

    pub async fn jobs_pause(&self, input: JobIds) -> Result<Changed, ApiError> {
        self.change_jobs(input.ids, super::store::Store::pause).await
    }

    pub async fn jobs_resume(&self, input: JobIds) -> Result<Changed, ApiError> {
        self.change_jobs(input.ids, super::store::Store::resume).await
    }

    pub async fn jobs_retry(&self, input: JobIds) -> Result<Changed, ApiError> {
        self.change_jobs(input.ids, super::store::Store::retry).await
    }

    pub async fn jobs_remove(&self, input: JobIds) -> Result<Changed, ApiError> {
        let changed = self.change_jobs(input.ids, super::store::Store::remove).await?;
        let removed = changed.ids.clone();
        self.blocking(move |engine| removed.iter().for_each(|&id| super::workers::discard_work(&engine, id))).await?;
        self.emit(KilnEvent::QueueChanged);
        Ok(changed)
    }

    pub async fn jobs_move_to_front(&self, input: JobRef) -> Result<Changed, ApiError> {
        self.blocking(move |engine| {
            let moved = engine.state.processing.store.move_to_front(input.id)?;
            engine.emit(KilnEvent::QueueChanged);
            Ok(Changed { ids: if moved { vec![input.id] } else { vec![] } })
        })
        .await?
    }

    pub async fn jobs_reorder(&self, input: JobIds) -> Result<Changed, ApiError> {
        self.blocking(move |engine| {
            engine.state.processing.store.reorder(&input.ids)?;
            engine.emit(KilnEvent::QueueChanged);
            Ok(Changed { ids: input.ids })
        })
        .await?
    }

    pub async fn jobs_set_priority(&self, input: SetPriority) -> Result<Changed, ApiError> {
        self.blocking(move |engine| {
            let changed = engine.state.processing.store.set_priority(input.id, input.priority)?;
            engine.emit(KilnEvent::QueueChanged);
            Ok(Changed { ids: if changed { vec![input.id] } else { vec![] } })
        })
        .await?
    }

    async fn set_queue_paused(&self, paused: bool) -> Result<QueueFlags, ApiError> {
        self.blocking(move |engine| {
            engine.state.processing.store.set_paused(paused)?;
            engine.state.processing.notify();
            engine.emit(KilnEvent::QueueChanged);
            Ok(QueueFlags { paused })
        })
        .await?
    }

    pub async fn queue_pause(&self, _: NoInput) -> Result<QueueFlags, ApiError> {
        self.set_queue_paused(true).await
    }

    pub async fn queue_resume(&self, _: NoInput) -> Result<QueueFlags, ApiError> {
        self.set_queue_paused(false).await
    }

    fn session(&self, id: i64) -> Result<Session, ApiError> {
        self.state.processing.store.sessions()?.into_iter().find(|s| s.id == id).ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("no session {id}")).with_details(serde_json::json!({ "id": id }))
        })
    }

    pub async fn sessions_create(&self, input: NewSession) -> Result<Session, ApiError> {
        if input.name.trim().is_empty() {
            return Err(ApiError::invalid_input("a session needs a name"));
        }
        self.blocking(move |engine| {
            let id = engine.state.processing.store.create_session(input.name.trim(), input.start)?;
            engine.emit(KilnEvent::QueueChanged);
            engine.session(id)
        })
        .await?
    }

    pub async fn sessions_control(&self, input: SessionControl) -> Result<Session, ApiError> {
        self.blocking(move |engine| {
            let state = match input.action {
                SessionAction::Start | SessionAction::Resume => SessionState::Active,
                SessionAction::Pause => SessionState::Paused,
                SessionAction::Cancel => SessionState::Cancelled,
            };
            let current = engine.session(input.id)?;
            if current.state == SessionState::Cancelled {
                return Err(ApiError::invalid_input(format!("session {} was cancelled", current.name)));
            }
            engine.state.processing.store.set_session_state(input.id, state)?;
            engine.state.processing.notify();
            engine.emit(KilnEvent::QueueChanged);
            engine.session(input.id)
        })
        .await?
    }

    pub async fn gallery_list(&self, query: GalleryQuery) -> Result<Vec<Job>, ApiError> {
        self.blocking(move |engine| {
            let jobs = engine.state.processing.store.results(query.limit.unwrap_or(500).min(5000))?;
            // Results whose file was deleted since are left out.
            Ok(jobs.into_iter().filter(|j| j.output().is_some_and(|o| Path::new(o).exists())).collect())
        })
        .await?
    }

    pub async fn jobs_image(&self, input: ImageRequest) -> Result<ImageData, ApiError> {
        self.blocking(move |engine| engine.job_image(input)).await?
    }

    fn job_image(&self, input: ImageRequest) -> Result<ImageData, ApiError> {
        let job = self.job(input.id)?;
        let path = match input.which {
            ImageKind::Input => PathBuf::from(&job.spec.input),
            ImageKind::Output => PathBuf::from(
                job.output()
                    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("job {} has no result yet", job.id)))?,
            ),
        };
        match input.max_side {
            Some(side) => {
                let side = side.clamp(16, 2048);
                let which = match input.which {
                    ImageKind::Input => "in",
                    ImageKind::Output => "out",
                };
                let cached = self.data_dir().join("thumbnails").join(format!("{}-{which}-{side}.webp", job.id));
                if !cached.exists() {
                    let decoded = images::decode_file(&path)?;
                    let thumbnail = decoded.image.thumbnail(side, side);
                    if let Some(parent) = cached.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    images::write(&thumbnail, &cached, images::OutputFormat::Webp, 82, &Default::default())?;
                }
                let bytes = std::fs::read(&cached).map_err(|e| ApiError::new(ErrorCode::Io, e.to_string()))?;
                let (width, height) = images::dimensions(&cached)?;
                Ok(ImageData { mime: "image/webp".into(), data_base64: base64_encode(&bytes), width, height })
            }
            None => {
                let (width, height) = images::dimensions(&path)?;
                let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
                let mime = match ext.as_str() {
                    "png" => Some("image/png"),
                    "jpg" | "jpeg" => Some("image/jpeg"),
                    "webp" => Some("image/webp"),
                    "bmp" => Some("image/bmp"),
                    _ => None,
                };
                let (mime, bytes) = match mime {
                    Some(mime) => {
                        (mime, std::fs::read(&path).map_err(|e| ApiError::new(ErrorCode::Io, e.to_string()))?)
                    }
                    // TIFF and anything else browsers do not show: as PNG.
                    None => {
                        let decoded = images::decode_file(&path)?;
                        let bytes = images::encode(&decoded.image, images::OutputFormat::Png, 100, &Default::default())
                            .map_err(ApiError::internal)?;
                        ("image/png", bytes)
                    }
                };
                Ok(ImageData { mime: mime.into(), data_base64: base64_encode(&bytes), width, height })
            }
        }
    }

    /// Opens a result (or its folder) with the desktop's default application, on the machine
    /// Kiln runs on.
    pub async fn jobs_open(&self, input: OpenResult) -> Result<Changed, ApiError> {
        let job = self.job(input.id)?;
        let output = PathBuf::from(
            job.output().ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("job {} has no result", job.id)))?,
        );
        let target = if input.folder { output.parent().map(Path::to_path_buf).unwrap_or(output) } else { output };
        let program = if cfg!(target_os = "macos") {
            "open"
        } else if cfg!(windows) {
            "explorer"
        } else {
            "xdg-open"
        };
        std::process::Command::new(program)
            .arg(&target)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                ApiError::new(ErrorCode::Unsupported, format!("cannot open {} with {program}: {e}", target.display()))
            })?;
        Ok(Changed { ids: vec![input.id] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for len in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base64_encode(b"Kiln"), "S2lsbg==");
        assert!(base64_decode("S2l*bg==").is_none());
    }

    #[test]
    fn upload_names_cannot_escape_the_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("..."), "image");
        assert_eq!(safe_name("a b\u{0}c.png"), "a b_c.png");
    }
}
