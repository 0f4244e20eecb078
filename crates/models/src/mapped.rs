//! A model file's bytes, memory-mapped (read-only) so multi-gigabyte checkpoints are never
//! copied to be inspected, with bounds-checked access.

use std::path::{Path, PathBuf};

use super::error::{ModelError, ModelErrorKind};
use super::tensors::{DType, TensorEntry, contiguous_strides};

/// A read-only view of a whole file.
pub struct MappedFile {
    path: PathBuf,
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let io = |e: std::io::Error| ModelError::new(path, ModelErrorKind::Io(e.to_string()));
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // An empty file cannot be mapped; it has no bytes to give either.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only; a file truncated underneath while mapped can fault
            // on access, as with every memory-mapped reader (safetensors, llama.cpp).
            Some(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Ok(Self { path: path.to_path_buf(), map })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// A tensor's bytes in row-major order, gathering strided views (PyTorch may store a
    /// transposed or sliced view of a larger storage). Checks the view stays inside its region.
    pub fn tensor_bytes(&self, name: &str, entry: &TensorEntry) -> Result<std::borrow::Cow<'_, [u8]>, ModelError> {
        let size = entry.dtype.size();
        let numel = entry.numel();
        // The furthest element a strided view touches must lie inside its region.
        let last: usize = entry.shape.iter().zip(&entry.data.strides).map(|(d, s)| d.saturating_sub(1) * s).sum();
        let span = if numel == 0 { 0 } else { (last as u64 + 1) * size as u64 };
        if span > entry.data.region_len.max(numel as u64 * size as u64) {
            return Err(ModelError::new(
                &self.path,
                ModelErrorKind::Malformed {
                    format: "tensor",
                    reason: format!("{name}: its strides reach past its data"),
                },
            ));
        }
        let bytes = self.range(entry.data.offset, span, name)?;
        if entry.data.strides == contiguous_strides(&entry.shape) {
            return Ok(std::borrow::Cow::Borrowed(bytes));
        }
        let mut out = Vec::with_capacity(numel * size);
        let mut index = vec![0usize; entry.shape.len()];
        for _ in 0..numel {
            let at = index.iter().zip(&entry.data.strides).map(|(i, s)| i * s).sum::<usize>() * size;
            out.extend_from_slice(&bytes[at..at + size]);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < entry.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Ok(std::borrow::Cow::Owned(out))
    }

    /// A tensor's values widened to f32, in row-major order (f16/bf16 exactly, f64 rounded,
    /// integers converted, booleans as 0 or 1).
    pub fn tensor_f32(&self, name: &str, entry: &TensorEntry) -> Result<Vec<f32>, ModelError> {
        let bytes = self.tensor_bytes(name, entry)?;
        let le2 = |b: &[u8]| [b[0], b[1]];
        let le4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        let le8 = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        let chunks = bytes.chunks_exact(entry.dtype.size());
        Ok(match entry.dtype {
            DType::F32 => chunks.map(|b| f32::from_le_bytes(le4(b))).collect(),
            DType::F16 => chunks.map(|b| half::f16::from_le_bytes(le2(b)).to_f32()).collect(),
            DType::Bf16 => chunks.map(|b| half::bf16::from_le_bytes(le2(b)).to_f32()).collect(),
            DType::F64 => chunks.map(|b| f64::from_le_bytes(le8(b)) as f32).collect(),
            DType::I64 => chunks.map(|b| i64::from_le_bytes(le8(b)) as f32).collect(),
            DType::I32 => chunks.map(|b| i32::from_le_bytes(le4(b)) as f32).collect(),
            DType::I16 => chunks.map(|b| i16::from_le_bytes(le2(b)) as f32).collect(),
            DType::I8 => chunks.map(|b| b[0] as i8 as f32).collect(),
            DType::U8 => chunks.map(|b| b[0] as f32).collect(),
            DType::Bool => chunks.map(|b| if b[0] != 0 { 1.0 } else { 0.0 }).collect(),
        })
    }

    /// `len` bytes at `offset`, or a truncation error naming what was being read.
    pub fn range(&self, offset: u64, len: u64, what: &str) -> Result<&[u8], ModelError> {
        let bytes = self.bytes();
        let end = offset.checked_add(len).filter(|end| *end <= bytes.len() as u64).ok_or_else(|| {
            ModelError::new(
                &self.path,
                ModelErrorKind::Truncated(format!(
                    "{what} needs bytes {offset}..{} but the file has {}",
                    offset.saturating_add(len),
                    bytes.len()
                )),
            )
        })?;
        Ok(&bytes[offset as usize..end as usize])
    }
}

#[cfg(test)]
mod f32_tests {
    use super::*;

    #[test]
    fn tensors_widen_to_f32_from_every_dtype() {
        let dir = kiln_testdir::TempDir::new();
        let path = dir.path().join("m.safetensors");
        let f16 = [half::f16::from_f32(1.5), half::f16::from_f32(-2.0)];
        let bytes = crate::formats::safetensors::tests::build(
            &[
                ("h", "F16", &[2], f16.iter().flat_map(|v| v.to_le_bytes()).collect()),
                ("b", "BF16", &[1], half::bf16::from_f32(0.25).to_le_bytes().to_vec()),
                ("u", "U8", &[2], vec![0, 255]),
                ("i", "I32", &[1], (-7i32).to_le_bytes().to_vec()),
            ],
            None,
        );
        std::fs::write(&path, bytes).unwrap();
        let dict = crate::formats::read(&path).unwrap().dict;
        let file = MappedFile::open(&path).unwrap();
        let values = |n: &str| file.tensor_f32(n, &dict.tensors[n]).unwrap();
        assert_eq!(values("h"), vec![1.5, -2.0]);
        assert_eq!(values("b"), vec![0.25]);
        assert_eq!(values("u"), vec![0.0, 255.0]);
        assert_eq!(values("i"), vec![-7.0]);
    }
}
