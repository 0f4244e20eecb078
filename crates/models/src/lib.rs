//! Kiln's model files: safe readers for every format users bring (safetensors, PyTorch
//! pickles, ncnn, diffusers folders), detection of what a file holds from its tensor names
//! and shapes, and file hashes. No GPU, no async, nothing run from the files: the engine
//! builds on this, and the fuzz targets exercise it alone.

pub mod convert;
pub mod detect;
pub mod error;
pub mod formats;
pub mod hash;
pub mod mapped;
pub mod scan;
pub mod tensors;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use detect::Architecture;
pub use error::{ModelError, ModelErrorKind};
pub use formats::ModelFormat;
pub use tensors::{DType, StateDict};

/// How many tensors of one dtype a model has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DTypeCount {
    pub dtype: DType,
    pub tensors: u32,
}

/// What Kiln knows about a model file from reading its header and tensor table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ModelInfo {
    pub path: String,
    /// File name without extension (the folder name for diffusers).
    pub name: String,
    pub format: ModelFormat,
    pub architecture: Architecture,
    /// `ESRGAN x4 (23 blocks)`, `SDXL`, `LoRA SD1 rank 8`.
    pub label: String,
    /// The output scale of an upscaler, after any resize the file asks for (the ncnn
    /// animevideov3 x2 and x3 models are the x4 network followed by a bicubic downscale).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f32>,
    /// Bytes on disk (both files of an ncnn model, every file of a diffusers folder).
    pub file_size: u64,
    pub parameters: u64,
    pub tensors: u32,
    pub dtypes: Vec<DTypeCount>,
    /// The file's own metadata (safetensors `__metadata__`).
    pub metadata: BTreeMap<String, String>,
}

/// Reads and identifies a model file (no hashing: see `hash`).
pub fn inspect(path: &Path) -> Result<ModelInfo, ModelError> {
    let file = formats::read(path)?;
    let architecture = file.declared.clone().unwrap_or_else(|| detect::detect(&file.dict));
    let resize = file.dict.metadata.get(formats::ncnn::FINAL_RESIZE_SCALE).and_then(|v| v.parse::<f32>().ok());
    let scale = architecture.scale().map(|s| s as f32 * resize.unwrap_or(1.0));
    let label = match (resize, scale) {
        (Some(resize), Some(scale)) => format!("{} then ×{resize} = x{scale}", architecture.label()),
        _ => architecture.label(),
    };
    let file_size = disk_size(path, &file.data_path);
    let name =
        path.file_stem().or_else(|| path.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(ModelInfo {
        path: path.display().to_string(),
        name,
        format: file.format,
        label,
        scale,
        architecture,
        file_size,
        parameters: file.dict.parameter_count(),
        tensors: file.dict.tensors.len() as u32,
        dtypes: file.dict.dtypes().into_iter().map(|(dtype, n)| DTypeCount { dtype, tensors: n as u32 }).collect(),
        metadata: file.dict.metadata,
    })
}

/// Bytes a model takes on disk: its file (and an ncnn model's `.bin`), or a folder's files.
fn disk_size(path: &Path, data: &Path) -> u64 {
    fn folder(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() { folder(&p) } else { e.metadata().map_or(0, |m| m.len()) }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    if path.is_dir() {
        return folder(path);
    }
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    if data != path { size(path) + size(data) } else { size(path) }
}
