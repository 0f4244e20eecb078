//! The library's operations: list, inspect, add and remove folders, and the watcher that
//! rescans on change notices (and periodically) and hashes in the background.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kiln_models::ModelInfo;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{FolderKind, Library, LibraryModel, ModelFolder, hashed_file};
use crate::engine::{Engine, EngineState};
use crate::error::{ApiError, ErrorCode};
use crate::events::KilnEvent;

/// A model of the library, by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ModelRef {
    pub path: String,
}

/// A folder to add to or remove from the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct FolderRef {
    pub path: String,
}

/// The models that ship with Kiln: `$KILN_ASSETS_DIR/models`, `assets/models` beside the
/// executable or one of its parents (a source checkout's `target/debug/kiln`), else the
/// checkout this was built from.
pub fn bundled_folder() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("KILN_ASSETS_DIR") {
        candidates.push(PathBuf::from(dir).join("models"));
    }
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|d| d.join("assets/models")));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/models"));
    candidates.into_iter().find(|c| c.is_dir()).and_then(|c| c.canonicalize().ok())
}

impl Engine {
    /// The library's folders in order: default, bundled, the user's.
    pub(crate) fn model_folders(&self) -> Vec<(PathBuf, FolderKind)> {
        let default = self.data_dir().join("models");
        let _ = std::fs::create_dir_all(&default);
        let mut folders = vec![(default.canonicalize().unwrap_or(default), FolderKind::Default)];
        if let Some(bundled) = bundled_folder() {
            folders.push((bundled, FolderKind::Bundled));
        }
        for folder in self.settings().models.folders {
            let path = PathBuf::from(&folder);
            folders.push((path.canonicalize().unwrap_or(path), FolderKind::User));
        }
        folders.dedup_by(|a, b| a.0 == b.0);
        folders
    }

    /// Rescans the folders; true when something changed.
    pub(crate) fn rescan_models(&self) -> bool {
        let folders: Vec<PathBuf> = self.model_folders().into_iter().map(|(p, _)| p).collect();
        self.state.library.scan(&folders)
    }

    /// A path from outside, checked: canonical, and a model of the library.
    pub(crate) fn library_path(&self, path: &str) -> Result<PathBuf, ApiError> {
        let not_found = || {
            ApiError::new(ErrorCode::NotFound, format!("{path} is not a model in Kiln's model folders"))
                .with_details(serde_json::json!({ "path": path }))
        };
        let canonical = Path::new(path).canonicalize().map_err(|_| not_found())?;
        if !self.state.library.contains(&canonical) {
            self.rescan_models();
        }
        if self.state.library.contains(&canonical) { Ok(canonical) } else { Err(not_found()) }
    }

    pub async fn models_list(&self, _: crate::devices::NoInput) -> Result<Library, ApiError> {
        self.blocking(|engine| engine.library()).await
    }

    pub(crate) fn library(&self) -> Library {
        self.rescan_models();
        let folders = self.model_folders();
        let scanned = self.state.library.scanned.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let residency = &self.state.residency;
        let mut models: Vec<LibraryModel> = scanned
            .iter()
            .map(|(path, s)| {
                let (info, error) = match &s.found {
                    Ok(info) => (Some(info.clone()), None),
                    Err(e) => (None, Some(e.clone())),
                };
                let sha256 = hashed_file(path).and_then(|f| self.state.library.hashes.get(&f));
                LibraryModel {
                    path: path.display().to_string(),
                    name: info.as_ref().map(|i| i.name.clone()).unwrap_or_else(|| {
                        path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                    }),
                    folder: s.folder.display().to_string(),
                    runnable: info.as_ref().is_some_and(runnable),
                    info,
                    error,
                    autov2: sha256.as_deref().map(kiln_models::hash::autov2),
                    sha256,
                    in_ram: residency.in_ram(path),
                    on_devices: residency.devices_holding(path),
                    last_used_ms: residency.last_used(path),
                }
            })
            .collect();
        models.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.path.cmp(&b.path)));
        let folders = folders
            .into_iter()
            .map(|(path, kind)| ModelFolder {
                models: models.iter().filter(|m| Path::new(&m.folder) == path).count() as u32,
                exists: path.is_dir(),
                path: path.display().to_string(),
                kind,
            })
            .collect();
        Library { folders, models, hashing: self.state.library.pending_hashes() }
    }

    pub async fn models_inspect(&self, input: ModelRef) -> Result<ModelInfo, ApiError> {
        self.blocking(move |engine| {
            let path = engine.library_path(&input.path)?;
            kiln_models::inspect(&path).map_err(ApiError::from)
        })
        .await?
    }

    pub async fn models_add_folder(&self, input: FolderRef) -> Result<Library, ApiError> {
        let folder = Path::new(&input.path).canonicalize().ok().filter(|p| p.is_dir()).ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("{} is not a folder", input.path))
                .with_details(serde_json::json!({ "path": input.path }))
        })?;
        let mut settings = self.settings();
        let text = folder.display().to_string();
        if !settings.models.folders.contains(&text) {
            settings.models.folders.push(text);
            self.settings_update(settings).await?;
        }
        let library = self.blocking(|engine| engine.library()).await?;
        self.emit(KilnEvent::ModelsChanged);
        Ok(library)
    }

    pub async fn models_remove_folder(&self, input: FolderRef) -> Result<Library, ApiError> {
        let mut settings = self.settings();
        let canonical = Path::new(&input.path).canonicalize().map(|p| p.display().to_string()).ok();
        let before = settings.models.folders.len();
        settings.models.folders.retain(|f| f != &input.path && Some(f) != canonical.as_ref());
        if settings.models.folders.len() == before {
            return Err(ApiError::new(ErrorCode::NotFound, format!("{} is not a folder you added", input.path)));
        }
        self.settings_update(settings).await?;
        let library = self.blocking(|engine| engine.library()).await?;
        self.emit(KilnEvent::ModelsChanged);
        Ok(library)
    }
}

/// Whether Kiln can run this architecture today.
pub fn runnable(info: &ModelInfo) -> bool {
    matches!(info.architecture, kiln_models::Architecture::Esrgan { .. } | kiln_models::Architecture::Compact { .. })
}

/// How long the watcher waits for a change notice before rescanning anyway (folders on network
/// filesystems, and platforms without change notices, are caught by this).
const RESCAN_EVERY: Duration = Duration::from_secs(10);
/// Notices arriving this close together are one change (a copy writes many times).
const SETTLE: Duration = Duration::from_millis(300);

/// Watches the model folders (inotify, FSEvents, ReadDirectoryChangesW through `notify`):
/// rescans when they change, and every ten seconds regardless; hashes new files; tells
/// subscribers when anything changed.
pub(crate) fn spawn_watcher(state: Weak<EngineState>, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("kiln-models".into())
        .spawn(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.send(());
                }
            })
            .inspect_err(|e| tracing::warn!("model folders are not watched for changes ({e}); rescanning every 10 s"))
            .ok();
            let mut watched: Vec<PathBuf> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Some(state) = state.upgrade() else { return };
                let engine = Engine { state };
                if let Some(watcher) = watcher.as_mut() {
                    watch_folders(watcher, &mut watched, &engine);
                }
                if engine.rescan_models() {
                    engine.emit(KilnEvent::ModelsChanged);
                }
                let stopping = || stop.load(Ordering::Relaxed);
                if engine.state.library.hash_pending(&stopping) > 0 {
                    engine.emit(KilnEvent::ModelsChanged);
                }
                drop(engine);
                // Wake on a change notice (then let a burst settle), or after the period; check
                // the stop flag every second.
                let mut waited = Duration::ZERO;
                while waited < RESCAN_EVERY && !stop.load(Ordering::Relaxed) {
                    match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(()) => {
                            std::thread::sleep(SETTLE);
                            while rx.try_recv().is_ok() {}
                            break;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => waited += Duration::from_secs(1),
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(Duration::from_secs(1));
                            waited += Duration::from_secs(1);
                        }
                    }
                }
            }
        })
        .expect("a thread can be spawned");
}

/// Keeps the watcher on exactly the library's folders (the user may add or remove some).
fn watch_folders(watcher: &mut notify::RecommendedWatcher, watched: &mut Vec<PathBuf>, engine: &Engine) {
    use notify::Watcher;
    let folders: Vec<PathBuf> = engine.model_folders().into_iter().map(|(p, _)| p).collect();
    for gone in watched.iter().filter(|w| !folders.contains(w)) {
        let _ = watcher.unwatch(gone);
    }
    watched.retain(|w| folders.contains(w));
    for folder in folders {
        if !watched.contains(&folder) && folder.is_dir() {
            match watcher.watch(&folder, notify::RecursiveMode::Recursive) {
                Ok(()) => watched.push(folder),
                Err(e) => tracing::warn!("cannot watch {}: {e}; it is rescanned every 10 s", folder.display()),
            }
        }
    }
}
