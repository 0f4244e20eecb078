//! safetensors files through Hugging Face's `safetensors` crate (its reader caps the header at
//! 100 MB, checks the JSON, and checks that the data offsets are in order, contiguous, inside
//! the file and of the size each dtype and shape needs), memory-mapped by the caller.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors};

use crate::error::{ModelError, ModelErrorKind};
use crate::tensors::{DType, StateDict, TensorData, TensorEntry, contiguous_strides};

/// Whether the bytes start like a safetensors file: a little-endian header length, then JSON.
pub fn sniff(bytes: &[u8]) -> bool {
    let Some(len) = bytes.get(..8) else { return false };
    let len = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
    len >= 2 && bytes.get(8) == Some(&b'{')
}

/// Every tensor of a safetensors file, with the file's `__metadata__`.
pub fn read(path: &Path, bytes: &[u8]) -> Result<StateDict, ModelError> {
    let (header_len, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| describe(path, e))?;
    let data_start = 8 + header_len as u64;
    let mut dict = StateDict::default();
    for (name, info) in metadata.tensors() {
        let dtype = map_dtype(info.dtype).ok_or_else(|| {
            ModelError::new(path, ModelErrorKind::Unsupported(format!("tensor {name} has dtype {:?}", info.dtype)))
        })?;
        let (start, end) = info.data_offsets;
        dict.tensors.insert(
            name,
            TensorEntry {
                dtype,
                shape: info.shape.clone(),
                data: TensorData {
                    offset: data_start + start as u64,
                    strides: contiguous_strides(&info.shape),
                    region_len: (end - start) as u64,
                },
            },
        );
    }
    if let Some(extra) = metadata.metadata() {
        dict.metadata = extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>();
    }
    Ok(dict)
}

fn map_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::Bf16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

fn describe(path: &Path, error: SafeTensorError) -> ModelError {
    let kind = match error {
        SafeTensorError::HeaderTooLarge => ModelErrorKind::TooLarge("the header is over 100 MB".into()),
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            ModelErrorKind::Truncated("the header is cut short".into())
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            ModelErrorKind::Truncated("the tensor data does not match the file's length".into())
        }
        other => ModelErrorKind::Malformed { format: "safetensors", reason: other.to_string() },
    };
    ModelError::new(path, kind)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A safetensors file from (name, dtype, shape, bytes) parts, laid out as the format says.
    pub fn build(tensors: &[(&str, &str, &[usize], Vec<u8>)], metadata: Option<&str>) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if let Some(m) = metadata {
            header.insert("__metadata__".into(), serde_json::from_str(m).unwrap());
        }
        let mut offset = 0;
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            header.insert(
                (*name).into(),
                serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()] }),
            );
            offset += bytes.len();
            data.extend_from_slice(bytes);
        }
        let header = serde_json::to_vec(&header).unwrap();
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header);
        file.extend(data);
        file
    }

    #[test]
    fn reads_names_shapes_offsets_and_metadata() {
        let bytes = build(
            &[("a.weight", "F32", &[2, 3], vec![0; 24]), ("b.bias", "F16", &[4], vec![0; 8])],
            Some(r#"{"ss_network_dim":"8"}"#),
        );
        let dict = read(Path::new("m.safetensors"), &bytes).unwrap();
        let a = &dict.tensors["a.weight"];
        assert_eq!((a.dtype, a.shape.clone()), (DType::F32, vec![2, 3]));
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(a.data.offset, 8 + header_len);
        assert_eq!(dict.tensors["b.bias"].data.offset, 8 + header_len + 24);
        assert_eq!(dict.metadata["ss_network_dim"], "8");
        assert!(sniff(&bytes));
    }

    #[test]
    fn truncated_and_inconsistent_files_are_typed_errors() {
        let bytes = build(&[("a", "F32", &[2, 2], vec![0; 16])], None);
        for cut in 0..bytes.len() {
            let error = read(Path::new("cut.safetensors"), &bytes[..cut]).unwrap_err();
            assert!(error.to_string().starts_with("cut.safetensors: "), "{error}");
        }
        // Data offsets that disagree with the shape.
        let bad = build(&[("a", "F32", &[3, 3], vec![0; 16])], None);
        assert!(matches!(read(Path::new("x"), &bad).unwrap_err().kind, ModelErrorKind::Malformed { .. }));
        // A header length far beyond the file.
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(read(Path::new("x"), &huge).is_err());
    }
}
