//! The library's operations: list, inspect, add and remove folders (the watcher that rescans on
//! change notices is in `watcher.rs`).

use std::path::{Path, PathBuf};

use kiln_models::ModelInfo;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::walk::Recheck;
pub(crate) use super::watcher::spawn_watcher;
use super::{FolderKind, Library, LibraryModel, ModelFolder, hashed_file, system_folders};
use crate::engine::Engine;
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

    /// Brings the library up to date, listing what `recheck` says; true when something changed.
    pub(crate) fn rescan_models(&self, recheck: &Recheck) -> bool {
        self.state.library.scan(&self.model_folders(), recheck)
    }

    /// A path from outside, checked: canonical, and a model of the library.
    pub(crate) fn library_path(&self, path: &str) -> Result<PathBuf, ApiError> {
        let not_found = || {
            ApiError::new(ErrorCode::NotFound, format!("{path} is not a model in Kiln's model folders"))
                .with_details(serde_json::json!({ "path": path }))
        };
        let canonical = Path::new(path).canonicalize().map_err(|_| not_found())?;
        if !self.state.library.contains(&canonical) {
            self.rescan_models(&Recheck::Mtimes);
        }
        if self.state.library.contains(&canonical) { Ok(canonical) } else { Err(not_found()) }
    }

    pub async fn models_list(&self, _: crate::devices::NoInput) -> Result<Library, ApiError> {
        self.blocking(|engine| engine.library()).await
    }

    pub(crate) fn library(&self) -> Library {
        // The directories' times only (a few hundred `stat`s): the watcher keeps the rest current,
        // and an engine without one (tests, benches, the CLI) still sees what changed.
        self.rescan_models(&Recheck::Mtimes);
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
                scan: self.state.library.folder_scan(&path),
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

    /// Adds a folder of the user's, refusing a drive's root, a pseudo-file system and the
    /// system's own folders (see `system_folders`).
    pub async fn models_add_folder(&self, input: FolderRef) -> Result<Library, ApiError> {
        let path = PathBuf::from(&input.path);
        let folder = self.blocking(move |_| system_folders::check(&path)).await??;
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
