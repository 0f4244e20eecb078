//! A model file's bytes, memory-mapped (read-only) so multi-gigabyte checkpoints are never
//! copied to be inspected, with bounds-checked access.

use std::path::{Path, PathBuf};

use super::error::{ModelError, ModelErrorKind};
use super::tensors::{TensorEntry, contiguous_strides};

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
