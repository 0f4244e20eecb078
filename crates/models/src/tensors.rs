//! What every weight format reduces to: named tensors with a dtype, a shape and where their
//! bytes are, read lazily from the file (memory-mapped or read on demand).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Element types found in model files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    F64,
    F32,
    F16,
    Bf16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::Bf16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::I64 => "i64",
            Self::I32 => "i32",
            Self::I16 => "i16",
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F64 | Self::F32 | Self::F16 | Self::Bf16)
    }
}

/// Where a tensor's bytes are: a byte range of the file, little-endian, with the element
/// strides the format recorded (row-major contiguous for every format but PyTorch's, which may
/// store views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorData {
    /// Byte offset of element 0 in the file.
    pub offset: u64,
    /// Strides in elements, one per dimension.
    pub strides: Vec<usize>,
    /// Bytes of the whole backing region (for bounds checks of strided views).
    pub region_len: u64,
}

/// One tensor of a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl TensorEntry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every tensor of a file by name, in name order, after unwrapping (`params_ema`,
/// `state_dict`, ...) and prefix stripping (`module.`, `netG.`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDict {
    pub tensors: BTreeMap<String, TensorEntry>,
    /// The file's own free-form metadata (safetensors `__metadata__`).
    pub metadata: BTreeMap<String, String>,
}

impl StateDict {
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn parameter_count(&self) -> u64 {
        self.tensors.values().map(|t| t.numel() as u64).sum()
    }

    /// The dtypes present, each with how many tensors use it.
    pub fn dtypes(&self) -> BTreeMap<DType, usize> {
        let mut counts = BTreeMap::new();
        for tensor in self.tensors.values() {
            *counts.entry(tensor.dtype).or_insert(0) += 1;
        }
        counts
    }
}

/// Row-major strides for a shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1].max(1);
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_are_row_major() {
        assert_eq!(contiguous_strides(&[64, 3, 3, 3]), vec![27, 9, 3, 1]);
        assert_eq!(contiguous_strides(&[5]), vec![1]);
        assert!(contiguous_strides(&[]).is_empty());
    }
}
