//! Rewrites any model file Kiln reads as a `.safetensors` file: the tensors as the reader sees
//! them (names after unwrapping, strided views made contiguous, dtypes kept), the file's own
//! metadata, and where it came from. Converting a pickle this way leaves a file that can be
//! loaded by anyone without trusting the pickle.

use std::io::Write;
use std::path::Path;

use super::error::{ModelError, ModelErrorKind};
use super::formats;
use super::mapped::MappedFile;
use super::tensors::DType;

/// The safetensors name of a dtype.
fn safetensors_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "F64",
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::Bf16 => "BF16",
        DType::I64 => "I64",
        DType::I32 => "I32",
        DType::I16 => "I16",
        DType::I8 => "I8",
        DType::U8 => "U8",
        DType::Bool => "BOOL",
    }
}

/// Writes `input`'s tensors to `output` (written beside it under a temporary name, then
/// renamed, so a failed conversion leaves nothing half-written). Returns the tensor count.
pub fn to_safetensors(input: &Path, output: &Path) -> Result<usize, ModelError> {
    let file = formats::read(input)?;
    let mapped = MappedFile::open(&file.data_path)?;
    let io = |e: std::io::Error| ModelError::new(output, ModelErrorKind::Io(e.to_string()));

    let mut header = serde_json::Map::new();
    let mut metadata: serde_json::Map<String, serde_json::Value> =
        file.dict.metadata.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    let source = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    metadata.insert("kiln.converted_from".into(), source.into());
    header.insert("__metadata__".into(), metadata.into());
    let mut offset = 0u64;
    for (name, entry) in &file.dict.tensors {
        let len = (entry.numel() * entry.dtype.size()) as u64;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": safetensors_dtype(entry.dtype),
                "shape": entry.shape,
                "data_offsets": [offset, offset + len],
            }),
        );
        offset += len;
    }
    let mut header = serde_json::to_vec(&header).map_err(|e| io(std::io::Error::other(e)))?;
    // The data starts 8-byte aligned, as the format recommends.
    while (header.len() + 8) % 8 != 0 {
        header.push(b' ');
    }

    let partial = output.with_extension("safetensors.partial");
    let write = || -> Result<(), ModelError> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(io)?);
        out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
        out.write_all(&header).map_err(io)?;
        for (name, entry) in &file.dict.tensors {
            out.write_all(&mapped.tensor_bytes(name, entry)?).map_err(io)?;
        }
        out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
        std::fs::rename(&partial, output).map_err(io)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    Ok(file.dict.tensors.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_converted_file_reads_back_with_the_same_tensors_and_bytes() {
        let dir = kiln_testdir::TempDir::new();
        let source = dir.path().join("m.safetensors");
        let bytes = crate::formats::safetensors::tests::build(
            &[("b", "F16", &[2], vec![1, 2, 3, 4]), ("a", "F32", &[1, 2], (0..8).collect())],
            Some(r#"{"note":"kept"}"#),
        );
        std::fs::write(&source, bytes).unwrap();
        let out = dir.path().join("out.safetensors");
        assert_eq!(to_safetensors(&source, &out).unwrap(), 2);
        let back = formats::read(&out).unwrap();
        assert_eq!(back.dict.metadata["note"], "kept");
        assert_eq!(back.dict.metadata["kiln.converted_from"], "m.safetensors");
        let mapped = MappedFile::open(&out).unwrap();
        assert_eq!(&*mapped.tensor_bytes("a", &back.dict.tensors["a"]).unwrap(), &(0..8).collect::<Vec<u8>>()[..]);
        assert_eq!(&*mapped.tensor_bytes("b", &back.dict.tensors["b"]).unwrap(), &[1, 2, 3, 4]);
    }

    #[test]
    fn a_failed_conversion_leaves_nothing() {
        let dir = kiln_testdir::TempDir::new();
        let source = dir.path().join("bad.safetensors");
        std::fs::write(&source, b"garbage").unwrap();
        let out = dir.path().join("out.safetensors");
        assert!(to_safetensors(&source, &out).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
