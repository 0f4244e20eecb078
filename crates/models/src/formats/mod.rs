//! Model file formats, each read without running anything from the file: safetensors, PyTorch
//! pickles (zip and legacy), ncnn `.param`/`.bin`, and diffusers folders.

pub mod diffusers;
pub mod ncnn;
mod ncnn_layout;
pub mod pickle;
pub mod safetensors;
pub mod torch;
pub mod zip;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::error::{ModelError, ModelErrorKind};
use super::mapped::MappedFile;
use super::tensors::StateDict;

/// A model's storage format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    Safetensors,
    /// A PyTorch pickle checkpoint (`.pth`, `.pt`, `.ckpt`, `.bin` from torch.save).
    Pytorch,
    /// An ncnn `.param` with its `.bin`.
    Ncnn,
    Onnx,
    /// A diffusers pipeline folder (`model_index.json`).
    Diffusers,
}

impl ModelFormat {
    /// The format a path's name says, before its bytes are read.
    pub fn of_path(path: &Path) -> Option<Self> {
        if path.is_dir() {
            return path.join("model_index.json").is_file().then_some(Self::Diffusers);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "safetensors" | "sft" => Self::Safetensors,
            "pth" | "pt" | "ckpt" => Self::Pytorch,
            "param" => Self::Ncnn,
            "onnx" => Self::Onnx,
            _ => return None,
        })
    }
}

/// A model file's tensors and where their bytes live.
pub struct ModelFile {
    pub format: ModelFormat,
    pub dict: StateDict,
    /// The file holding the tensor bytes (the `.bin` of an ncnn model).
    pub data_path: PathBuf,
    /// The architecture when the format itself says it (diffusers configs), not the shapes.
    pub declared: Option<super::detect::Architecture>,
}

/// Reads a model file's tensors (names, dtypes, shapes, byte offsets; no tensor data yet).
pub fn read(path: &Path) -> Result<ModelFile, ModelError> {
    let format = ModelFormat::of_path(path)
        .ok_or_else(|| ModelError::new(path, ModelErrorKind::Unsupported("not a model file Kiln recognises".into())))?;
    let dict = match format {
        ModelFormat::Safetensors => {
            let file = MappedFile::open(path)?;
            normalise(safetensors::read(path, file.bytes())?)
        }
        ModelFormat::Pytorch => {
            let file = MappedFile::open(path)?;
            if !torch::sniff(file.bytes()) && safetensors::sniff(file.bytes()) {
                // Some tools save safetensors with a .pt name.
                normalise(safetensors::read(path, file.bytes())?)
            } else {
                torch::read(&file)?
            }
        }
        ModelFormat::Ncnn => {
            let (dict, bin, _layout) = ncnn::read(path)?;
            return Ok(ModelFile { format, dict, data_path: bin, declared: None });
        }
        ModelFormat::Diffusers => {
            let (architecture, dict) = diffusers::read(path)?;
            return Ok(ModelFile { format, dict, data_path: path.to_path_buf(), declared: Some(architecture) });
        }
        ModelFormat::Onnx => {
            return Err(ModelError::new(
                path,
                ModelErrorKind::Unsupported("ONNX weights cannot be read by Kiln yet; the file is listed only".into()),
            ));
        }
    };
    Ok(ModelFile { format, dict, data_path: path.to_path_buf(), declared: None })
}

/// Strips a prefix every tensor name shares when training wrappers added it (`module.` from
/// DataParallel, `netG.` from ESRGAN's trainer), as spandrel's canonicalisation does.
pub fn normalise(mut dict: StateDict) -> StateDict {
    for prefix in ["module.", "netG.", "model.module."] {
        if !dict.tensors.is_empty() && dict.tensors.keys().all(|k| k.starts_with(prefix)) {
            dict.tensors =
                std::mem::take(&mut dict.tensors).into_iter().map(|(k, v)| (k[prefix.len()..].to_owned(), v)).collect();
        }
    }
    dict
}
