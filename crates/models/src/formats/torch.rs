//! PyTorch checkpoints (`.pth`, `.pt`, `.ckpt`) read without running any of their code: the zip
//! archive `torch.save` writes since PyTorch 1.6 and the legacy stream of pickles before it,
//! as PyTorch's `torch/serialization.py` writes them (`_save`, `_legacy_save`). The pickles go
//! through Kiln's own machine (`pickle.rs`), which refuses every global outside a short
//! allow-list; tensor bytes are located, bounds-checked and left in the file.

use std::collections::HashMap;
use std::path::Path;

use super::pickle::{self, Loaded, MAX_DEPTH, Node, Tensor, Value};
use super::zip::{self, Archive, Entry};
use crate::error::{ModelError, ModelErrorKind};
use crate::mapped::MappedFile;
use crate::tensors::{StateDict, TensorData, TensorEntry};

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as the LONG1 digits that start a
/// legacy file.
const LEGACY_MAGIC: &[u8] = b"l\xfc\x9cF\xf9\x20j\xa8P\x19";
/// `torch.serialization.PROTOCOL_VERSION`, the second pickle of a legacy file.
const LEGACY_PROTOCOL: i64 = 1001;
/// Keys a training checkpoint keeps its state dict under, best first: BasicSR-style trainers
/// (Real-ESRGAN, GFPGAN) save the EMA weights as `params_ema` next to the raw `params`.
const WRAPPERS: &[&str] = &["params_ema", "params", "state_dict", "model", "net", "generator"];

/// Reads a PyTorch checkpoint's tensors without running any of its code.
pub fn read(file: &MappedFile) -> Result<StateDict, ModelError> {
    read_bytes(file.path(), file.bytes())
}

/// Whether the bytes look like a PyTorch checkpoint (zip with a data.pkl, or the legacy pickle magic).
pub fn sniff(bytes: &[u8]) -> bool {
    if zip::looks_like_zip(bytes) {
        return Archive::parse(Path::new(""), bytes).is_ok_and(|archive| data_pickles(&archive).next().is_some());
    }
    // PROTO n, an optional FRAME (protocol 4 and up), then LONG1 of ten bytes: the magic number.
    let rest = match bytes {
        [0x80, 2..=5, 0x95, rest @ ..] => rest.get(8..).unwrap_or_default(),
        [0x80, 2..=5, rest @ ..] => rest,
        _ => return false,
    };
    rest.starts_with(&[0x8a, 10]) && rest[2..].starts_with(LEGACY_MAGIC)
}

/// Reads a checkpoint from its bytes; `path` only names the file in errors.
pub fn read_bytes(path: &Path, bytes: &[u8]) -> Result<StateDict, ModelError> {
    if zip::looks_like_zip(bytes) {
        read_zip(path, bytes)
    } else if bytes.first() == Some(&0x80) {
        read_legacy(path, bytes)
    } else {
        Err(malformed(path, "neither a zip archive nor a pickle"))
    }
}

/// Each `<prefix>/data.pkl` and its prefix (with the slash), as `torch.save` names it; the
/// name's ASCII case ignored, as PyTorch's reader ignores it.
fn data_pickles<'e>(archive: &'e Archive<'_>) -> impl Iterator<Item = (&'e str, &'e Entry)> {
    archive.entries().iter().filter_map(|entry| {
        let at = entry.name.len().checked_sub("data.pkl".len())?;
        let (prefix, file) = (entry.name.get(..at)?, entry.name.get(at..)?);
        if !file.eq_ignore_ascii_case("data.pkl") {
            return None;
        }
        let folder = prefix.strip_suffix('/')?;
        (!folder.is_empty() && !folder.contains('/')).then_some((prefix, entry))
    })
}

/// The zip format: the pickle in `data.pkl`, each storage's bytes in `data/<key>`.
fn read_zip(path: &Path, bytes: &[u8]) -> Result<StateDict, ModelError> {
    let archive = Archive::parse(path, bytes)?;
    let mut pickles = data_pickles(&archive);
    let (prefix, pickle_entry) = pickles.next().ok_or_else(|| malformed(path, "the archive has no data.pkl"))?;
    // torch.load reads the data.pkl in the folder of the archive's first entry: a second one
    // could be the pickle torch runs while this reader checks a harmless one. Refuse, as the
    // zip reader refuses a name held twice.
    if let Some((other, _)) = pickles.next() {
        return Err(malformed(path, format!("the archive holds data.pkl in two folders ({prefix} and {other})")));
    }
    // Written since PyTorch 1.10; older archives are always little-endian.
    if let Some(entry) = archive.get(&format!("{prefix}byteorder")) {
        match archive.stored_bytes(path, entry)?.trim_ascii() {
            b"little" => {}
            b"big" => return Err(unsupported(path, "big-endian PyTorch checkpoints")),
            _ => return Err(malformed(path, "a byteorder entry that is neither little nor big")),
        }
    }
    let loaded = pickle::load(path, archive.stored_bytes(path, pickle_entry)?, 0, true)?;
    collect(path, &loaded, |storage| {
        let name = format!("{prefix}data/{}", storage.key);
        let entry =
            archive.get(&name).ok_or_else(|| malformed(path, format!("a tensor's storage {name} is missing")))?;
        let (start, len) = archive.stored_range(path, entry)?;
        let expected = storage.numel.checked_mul(storage.dtype.size() as u64);
        if expected != Some(len) {
            return Err(malformed(
                path,
                format!("{name} holds {len} bytes, not {} {} elements", storage.numel, storage.dtype.as_str()),
            ));
        }
        Ok(start)
    })
}

/// The legacy format: pickles of the magic number, the protocol version, the system info, the
/// object, and the storage keys; then each storage in key order as an 8-byte little-endian
/// element count and its elements.
fn read_legacy(path: &Path, bytes: &[u8]) -> Result<StateDict, ModelError> {
    let magic = pickle::load(path, bytes, 0, false)?;
    if !matches!(&magic.root, Value::BigInt(digits) if **digits == *LEGACY_MAGIC) {
        return Err(malformed(path, "a pickle without PyTorch's magic number"));
    }
    let version = pickle::load(path, bytes, magic.end, false)?;
    if version.root != Value::Int(LEGACY_PROTOCOL) {
        return Err(unsupported(path, "a legacy PyTorch file of an unknown protocol version"));
    }
    let system = pickle::load(path, bytes, version.end, false)?;
    if let Some(Node::Dict(items)) = system.node(&system.root)
        && lookup(items, "little_endian") == Some(&Value::Bool(false))
    {
        return Err(unsupported(path, "big-endian PyTorch checkpoints"));
    }
    let main = pickle::load(path, bytes, system.end, true)?;
    let keys = pickle::load(path, bytes, main.end, false)?;
    let Some(Node::List(keys_list)) = keys.node(&keys.root) else {
        return Err(malformed(path, "the storage key list is not a list"));
    };

    // Each storage's type and size, from the ids in the object.
    let mut named = HashMap::new();
    for node in &main.nodes {
        if let Node::Storage(s) = node
            && named.insert(&*s.key, (s.dtype, s.numel)).is_some_and(|seen| seen != (s.dtype, s.numel))
        {
            return Err(malformed(path, format!("storage {} is named with two types or sizes", s.key)));
        }
    }
    let mut starts = HashMap::new();
    let mut pos = keys.end as u64;
    for key in keys_list {
        let Value::Str(key) = key else { return Err(malformed(path, "a storage key that is not text")) };
        let Some(&(dtype, numel)) = named.get(&**key) else {
            return Err(malformed(path, format!("storage {key} has data but nothing uses it")));
        };
        let count = pos
            .checked_add(8)
            .and_then(|end| bytes.get(pos as usize..end as usize))
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| truncated(path, format!("the size of storage {key} at byte {pos} is missing")))?;
        if count != numel {
            return Err(malformed(path, format!("storage {key} holds {count} elements, not {numel}")));
        }
        let start = pos + 8;
        pos = count
            .checked_mul(dtype.size() as u64)
            .and_then(|len| start.checked_add(len))
            .filter(|end| *end <= bytes.len() as u64)
            .ok_or_else(|| truncated(path, format!("storage {key} at byte {start} runs past the end")))?;
        if starts.insert(key.to_string(), start).is_some() {
            return Err(malformed(path, format!("storage {key} is listed twice")));
        }
    }
    collect(path, &main, |storage| {
        starts
            .get(&*storage.key)
            .copied()
            .ok_or_else(|| malformed(path, format!("storage {} has no data", storage.key)))
    })
}

/// The tensors of an unpickled checkpoint, placed in the file: `locate` gives where a storage's
/// bytes start after checking their size.
fn collect(
    path: &Path,
    loaded: &Loaded,
    mut locate: impl FnMut(&pickle::Storage) -> Result<u64, ModelError>,
) -> Result<StateDict, ModelError> {
    let items = state_items(path, loaded)?;
    let mut walk = Walk {
        path,
        loaded,
        steps: loaded.ops,
        // Honest names appear in the pickle; nesting may only repeat them so much.
        name_bytes: loaded.end.saturating_mul(8).saturating_add(1 << 20),
        found: Vec::new(),
    };
    walk.visit("", items, 0)?;
    let mut dict = StateDict::default();
    for (name, tensor) in walk.found {
        let start = locate(&tensor.storage)?;
        let entry = place(path, &name, tensor, start)?;
        dict.tensors.insert(name, entry);
    }
    if dict.tensors.is_empty() {
        return Err(malformed(path, "the checkpoint holds no tensors"));
    }
    Ok(super::normalise(dict))
}

/// The dict holding the tensors: the top object, or what it wraps under a `WRAPPERS` key.
fn state_items<'l>(path: &Path, loaded: &'l Loaded) -> Result<&'l [(Value, Value)], ModelError> {
    let Some(Node::Dict(top)) = loaded.node(&loaded.root) else {
        return Err(malformed(path, "the checkpoint's object is not a dictionary"));
    };
    let mut items = top.as_slice();
    // A few levels cover `{"state_dict": {"model": {...}}}`; a dict with tensors is the one.
    for _ in 0..4 {
        if items.iter().any(|(_, v)| matches!(loaded.node(v), Some(Node::Tensor(_)))) {
            break;
        }
        let inner = WRAPPERS.iter().find_map(|key| match loaded.node(lookup(items, key)?) {
            Some(Node::Dict(inner)) => Some(inner),
            _ => None,
        });
        match inner {
            Some(inner) => items = inner.as_slice(),
            None => break,
        }
    }
    Ok(items)
}

/// The value under a text key; the last one wins, as in the dict Python would build.
fn lookup<'v>(items: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    items.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if &**s == key)).map(|(_, v)| v)
}

/// Flattens nested dicts into dotted names. `steps` bounds the work when dicts are shared
/// (a dict holding the same dict twice, 60 levels deep, names 2^60 tensors).
struct Walk<'l> {
    path: &'l Path,
    loaded: &'l Loaded,
    steps: usize,
    name_bytes: usize,
    found: Vec<(String, &'l Tensor)>,
}

impl<'l> Walk<'l> {
    fn visit(&mut self, prefix: &str, items: &'l [(Value, Value)], depth: usize) -> Result<(), ModelError> {
        if depth > MAX_DEPTH {
            return Err(malformed(self.path, format!("dictionaries nest more than {MAX_DEPTH} deep")));
        }
        for (key, value) in items {
            let node = self.loaded.node(value);
            let cost = match node {
                Some(Node::Tensor(t)) => 1 + t.shape.len(),
                _ => 1,
            };
            self.steps = self.steps.checked_sub(cost).ok_or_else(|| too_large(self.path, "its dictionaries"))?;
            let key = match key {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                _ => continue,
            };
            if !matches!(node, Some(Node::Tensor(_) | Node::Dict(_))) {
                continue;
            }
            let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
            self.name_bytes =
                self.name_bytes.checked_sub(name.len()).ok_or_else(|| too_large(self.path, "its names"))?;
            match node {
                Some(Node::Tensor(tensor)) => self.found.push((name, &**tensor)),
                Some(Node::Dict(inner)) => self.visit(&name, inner, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks that every element a tensor's shape and strides reach lies in its storage, and gives
/// where element 0 is.
fn place(path: &Path, name: &str, tensor: &Tensor, storage_start: u64) -> Result<TensorEntry, ModelError> {
    let storage = &tensor.storage;
    let element = storage.dtype.size() as u64;
    let bad = |reason: String| malformed(path, format!("tensor {name}: {reason}"));
    // A legacy view is a slice of its root storage.
    let (first, numel) = match storage.view {
        None => (0, storage.numel),
        Some((offset, len)) if offset.checked_add(len).is_some_and(|end| end <= storage.numel) => (offset, len),
        Some(_) => return Err(bad(format!("a view past the end of storage {}", storage.key))),
    };
    let count = tensor.shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
    if count.is_none() {
        return Err(bad("its element count overflows".into()));
    }
    // The highest element: offset + Σ (size - 1) × stride, for a tensor with any elements.
    let mut last = Some(tensor.storage_offset);
    if !tensor.shape.contains(&0) {
        for (size, stride) in tensor.shape.iter().zip(&tensor.strides) {
            let reach = ((*size - 1) as u64).checked_mul(*stride as u64);
            last = last.zip(reach).and_then(|(l, r)| l.checked_add(r));
        }
    }
    let inside =
        if tensor.shape.contains(&0) { tensor.storage_offset <= numel } else { last.is_some_and(|last| last < numel) };
    if !inside {
        return Err(bad(format!(
            "offset {} with shape {:?} and strides {:?} reaches past the {numel} elements of storage {}",
            tensor.storage_offset, tensor.shape, tensor.strides, storage.key
        )));
    }
    // Both fit: the storage's bytes were checked against the file.
    let offset = storage_start + (first + tensor.storage_offset) * element;
    let region_len = (numel - tensor.storage_offset) * element;
    Ok(TensorEntry {
        dtype: storage.dtype,
        shape: tensor.shape.clone(),
        data: TensorData { offset, strides: tensor.strides.clone(), region_len },
    })
}

fn malformed(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::malformed(path, "PyTorch", reason)
}

fn truncated(path: &Path, what: String) -> ModelError {
    ModelError::new(path, ModelErrorKind::Truncated(what))
}

fn unsupported(path: &Path, what: &str) -> ModelError {
    ModelError::new(path, ModelErrorKind::Unsupported(what.into()))
}

fn too_large(path: &Path, what: &str) -> ModelError {
    ModelError::new(path, ModelErrorKind::TooLarge(format!("walking {what} takes more steps than the pickle did")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::formats::pickle::assemble::Pickle;
    use crate::formats::zip::write;
    use crate::tensors::{DType, contiguous_strides};

    /// `python3`'s pickle of `{"params_ema": state_dict, "iter": 5}` with stand-in classes named
    /// like torch's: `conv.weight` (2×3 f32, storage "0" of 6), `conv.bias` (a Parameter, 3 f16,
    /// storage "1"), and `conv.weight_t`, its transposed view of storage "0" (strides 1, 3).
    const PYTHON_ZIP_PICKLE: &[u8] = b"\
        \x80\x02}q\x00(X\x0a\x00\x00\x00params_emaq\x01ccollections\x0aOrderedDict\x0aq\x02)Rq\x03(X\x0b\x00\
        \x00\x00conv.weightq\x04ctorch._utils\x0a_rebuild_tensor_v2\x0aq\x05((X\x07\x00\x00\x00storageq\x06ctor\
        ch\x0aFloatStorage\x0aq\x07X\x01\x00\x00\x000q\x08X\x03\x00\x00\x00cpuq\x09K\x06tq\x0aQK\x00K\x02K\x03\
        \x86q\x0bK\x03K\x01\x86q\x0c\x89h\x02)Rq\x0dtq\x0eRq\x0fX\x09\x00\x00\x00conv.biasq\x10ctorch._utils\
        \x0a_rebuild_parameter\x0aq\x11h\x05((h\x06ctorch\x0aHalfStorage\x0aq\x12X\x01\x00\x00\x001q\x13h\x09K\
        \x03tq\x14QK\x00K\x03\x85q\x15K\x01\x85q\x16\x89h\x02)Rq\x17tq\x18Rq\x19\x88h\x02)Rq\x1a\x87q\x1bRq\x1c\
        X\x0d\x00\x00\x00conv.weight_tq\x1dh\x05((h\x06h\x07h\x08h\x09K\x06tq\x1eQK\x00K\x03K\x02\x86q\x1fK\x01\
        K\x03\x86q\x20\x89h\x02)Rq!tq\x22Rq#u}q$X\x09\x00\x00\x00_metadataq%h\x02)Rq&X\x04\x00\x00\x00convq'}q(\
        X\x07\x00\x00\x00versionq)K\x01sssbX\x04\x00\x00\x00iterq*K\x05u.";

    /// A torch 0.4-era legacy file from `python3`, saved from the GPU (`torch.cuda.FloatStorage`):
    /// `model.0.weight` = [[1, 2], [3, 4]] and `model.0.bias` = [0.5, -0.5].
    const PYTHON_LEGACY: &[u8] = b"\
        \x80\x02\x8a\x0al\xfc\x9cF\xf9\x20j\xa8P\x19.\x80\x02M\xe9\x03.\x80\x02}q\x00(X\x10\x00\x00\x00protocol\
        _versionq\x01M\xe9\x03X\x0d\x00\x00\x00little_endianq\x02\x88X\x0a\x00\x00\x00type_sizesq\x03}q\x04(X\
        \x05\x00\x00\x00shortq\x05K\x02X\x03\x00\x00\x00intq\x06K\x04X\x04\x00\x00\x00longq\x07K\x04uu.\x80\x02\
        ccollections\x0aOrderedDict\x0aq\x00)Rq\x01(X\x0e\x00\x00\x00model.0.weightq\x02ctorch._utils\x0a_rebui\
        ld_tensor_v2\x0aq\x03((X\x07\x00\x00\x00storageq\x04ctorch.cuda\x0aFloatStorage\x0aq\x05X\x08\x00\x00\
        \x0094209040q\x06X\x06\x00\x00\x00cuda:0q\x07K\x04Ntq\x08QK\x00K\x02K\x02\x86q\x09K\x02K\x01\x86q\x0a\
        \x89h\x00)Rq\x0btq\x0cRq\x0dX\x0c\x00\x00\x00model.0.biasq\x0eh\x03((h\x04h\x05X\x08\x00\x00\x009420936\
        0q\x0fh\x07K\x02Ntq\x10QK\x00K\x02\x85q\x11K\x01\x85q\x12\x89h\x00)Rq\x13tq\x14Rq\x15u.\x80\x02]q\x00(X\
        \x08\x00\x00\x0094209040q\x01X\x08\x00\x00\x0094209360q\x02e.\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00?\x00\x00\x00\xbf";

    pub fn storage_class(dtype: DType) -> &'static str {
        match dtype {
            DType::F64 => "DoubleStorage",
            DType::F32 => "FloatStorage",
            DType::F16 => "HalfStorage",
            DType::Bf16 => "BFloat16Storage",
            DType::I64 => "LongStorage",
            DType::I32 => "IntStorage",
            DType::I16 => "ShortStorage",
            DType::I8 => "CharStorage",
            DType::U8 => "ByteStorage",
            DType::Bool => "BoolStorage",
        }
    }

    /// A zip checkpoint laid out as `torch.save` writes it, from a pickle and its storages.
    pub fn archive(pickle: &[u8], storages: &[Vec<u8>], extra: &[(&str, &[u8])]) -> Vec<u8> {
        let names: Vec<String> = (0..storages.len()).map(|i| format!("archive/data/{i}")).collect();
        let mut entries: Vec<(&str, &[u8], u16)> = vec![("archive/data.pkl", pickle, 0)];
        entries.extend(names.iter().zip(storages).map(|(n, s)| (n.as_str(), s.as_slice(), 0)));
        entries.push(("archive/version", b"3\n", 0));
        entries.extend(extra.iter().map(|(n, b)| (*n, *b, 0)));
        write::archive(&entries, false)
    }

    /// A checkpoint of contiguous tensors, storage `i` filled with the byte `i + 1`.
    pub fn checkpoint(tensors: &[(&str, DType, &[usize])]) -> Vec<u8> {
        let mut pickle = Pickle::new();
        pickle.ordered_dict();
        let mut storages = Vec::new();
        for (i, (name, dtype, shape)) in tensors.iter().enumerate() {
            let numel: usize = shape.iter().product();
            let shape_i: Vec<i64> = shape.iter().map(|d| *d as i64).collect();
            let strides: Vec<i64> = contiguous_strides(shape).iter().map(|s| *s as i64).collect();
            let class = storage_class(*dtype);
            pickle.str(name).tensor(class, &i.to_string(), numel as i64, 0, &shape_i, &strides);
            storages.push(vec![i as u8 + 1; numel * dtype.size()]);
        }
        archive(&pickle.end_dict().stop(), &storages, &[])
    }

    fn read(bytes: &[u8]) -> Result<StateDict, ModelError> {
        read_bytes(Path::new("m.pth"), bytes)
    }

    fn reason(bytes: &[u8]) -> String {
        read(bytes).map(|d| format!("read {:?}", d.tensors.keys())).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn reads_names_shapes_dtypes_and_offsets() {
        let bytes = checkpoint(&[("a.weight", DType::F32, &[2, 3]), ("b.bias", DType::F16, &[4])]);
        let dict = read(&bytes).unwrap();
        assert_eq!(dict.tensors.len(), 2);
        let (a, b) = (&dict.tensors["a.weight"], &dict.tensors["b.bias"]);
        assert_eq!((a.dtype, a.shape.as_slice(), a.data.strides.as_slice()), (DType::F32, &[2, 3][..], &[3, 1][..]));
        assert_eq!((b.dtype, b.shape.as_slice(), b.data.region_len), (DType::F16, &[4][..], 8));
        for (tensor, fill, len) in [(a, 1, 24), (b, 2, 8)] {
            let at = tensor.data.offset as usize;
            assert_eq!((at % 64, tensor.data.region_len), (0, len));
            assert!(bytes[at..at + len as usize].iter().all(|x| *x == fill), "offset {at}");
        }
        assert!(sniff(&bytes));
    }

    #[test]
    fn reads_a_python_pickle_with_a_strided_view_under_params_ema() {
        let bytes = archive(PYTHON_ZIP_PICKLE, &[vec![1; 24], vec![2; 6]], &[("archive/byteorder", b"little")]);
        let dict = read(&bytes).unwrap();
        let names: Vec<_> = dict.tensors.keys().map(String::as_str).collect();
        assert_eq!(names, ["conv.bias", "conv.weight", "conv.weight_t"]);
        let (w, t, bias) = (&dict.tensors["conv.weight"], &dict.tensors["conv.weight_t"], &dict.tensors["conv.bias"]);
        assert_eq!((w.shape.as_slice(), w.data.strides.as_slice()), (&[2, 3][..], &[3, 1][..]));
        assert_eq!((t.shape.as_slice(), t.data.strides.as_slice()), (&[3, 2][..], &[1, 3][..]));
        assert_eq!((t.data.offset, t.data.region_len), (w.data.offset, 24));
        assert_eq!((bias.dtype, bias.shape.as_slice(), bias.data.region_len), (DType::F16, &[3][..], 6));
        assert_eq!(bytes[bias.data.offset as usize], 2);
    }

    #[test]
    fn prefers_params_ema_and_strips_module_prefixes() {
        let mut pickle = Pickle::new();
        pickle.op(b'}').op(b'(').str("params").ordered_dict();
        pickle.str("module.x").tensor("FloatStorage", "0", 2, 0, &[2], &[1]).end_dict();
        pickle.str("params_ema").ordered_dict();
        pickle.str("module.x").tensor("FloatStorage", "1", 2, 0, &[2], &[1]);
        pickle.str("module.y").tensor("HalfStorage", "2", 4, 1, &[3], &[1]).end_dict();
        pickle.str("epoch").int(7).end_dict();
        let bytes = archive(&pickle.stop(), &[vec![1; 8], vec![2; 8], vec![3; 8]], &[]);
        let dict = read(&bytes).unwrap();
        let names: Vec<_> = dict.tensors.keys().map(String::as_str).collect();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(bytes[dict.tensors["x"].data.offset as usize], 2);
        // A storage offset of 1 element moves the start by one f16 and shortens the region.
        let y = &dict.tensors["y"];
        assert_eq!((y.data.offset % 64, y.data.region_len), (2, 6));
    }

    #[test]
    fn nested_dicts_flatten_with_dots() {
        let mut pickle = Pickle::new();
        pickle.op(b'}').op(b'(').str("state_dict").op(b'}').op(b'(').str("encoder").op(b'}').op(b'(');
        pickle.str("conv").tensor("FloatStorage", "0", 1, 0, &[], &[]).end_dict();
        pickle.str("steps").int(3).end_dict().end_dict();
        let bytes = archive(&pickle.stop(), &[vec![0; 4]], &[]);
        let dict = read(&bytes).unwrap();
        assert_eq!(dict.tensors["encoder.conv"].shape, Vec::<usize>::new());
    }

    #[test]
    fn tensors_must_stay_inside_their_storage() {
        // (storage elements, offset, shape, strides, bytes present, expected)
        type Case<'a> = (i64, i64, &'a [i64], &'a [i64], usize, &'a str);
        let cases: &[Case] = &[
            (4, 5, &[1], &[1], 16, "reaches past"),
            (4, 4, &[1], &[1], 16, "reaches past"),
            (4, 0, &[2, 3], &[3, 1], 16, "reaches past"),
            (4, 0, &[2, 2], &[1, 4], 16, "reaches past"),
            (4, 0, &[2, 2], &[2, 1], 12, "holds 12 bytes"),
            (6, 2, &[2, 2], &[2, 1], 24, ""),
            (4, 0, &[0, 9], &[9, 1], 16, ""),
            (1, 0, &[1 << 40, 1 << 40], &[0, 0], 4, "overflows"),
        ];
        for (numel, offset, shape, strides, present, expected) in cases {
            let pickle = Pickle::new()
                .ordered_dict()
                .str("t")
                .tensor("FloatStorage", "0", *numel, *offset, shape, strides)
                .end_dict()
                .stop();
            let reason = reason(&archive(&pickle, &[vec![0; *present]], &[]));
            let wanted = if expected.is_empty() { "read" } else { *expected };
            assert!(reason.contains(wanted), "{reason} (wanted {wanted})");
        }
        // A storage the archive lacks.
        let pickle =
            Pickle::new().ordered_dict().str("t").tensor("FloatStorage", "7", 1, 0, &[1], &[1]).end_dict().stop();
        assert!(reason(&archive(&pickle, &[vec![0; 4]], &[])).contains("archive/data/7 is missing"));
    }

    #[test]
    fn every_cut_of_a_checkpoint_is_an_error() {
        let zip = checkpoint(&[("a", DType::F32, &[2]), ("b", DType::F16, &[3])]);
        for bytes in [zip.as_slice(), PYTHON_LEGACY] {
            assert!(read(bytes).is_ok());
            for cut in 0..bytes.len() {
                assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn reads_a_legacy_checkpoint() {
        assert!(sniff(PYTHON_LEGACY));
        let dict = read(PYTHON_LEGACY).unwrap();
        let (w, b) = (&dict.tensors["model.0.weight"], &dict.tensors["model.0.bias"]);
        // The data: an 8-byte count and 4 f32 for the weight, then a count and 2 f32.
        let end = PYTHON_LEGACY.len() as u64;
        assert_eq!((w.data.offset, w.data.region_len), (end - 8 - 8 - 16, 16));
        assert_eq!((b.data.offset, b.data.region_len), (end - 8, 8));
        assert_eq!((w.dtype, w.shape.as_slice()), (DType::F32, &[2, 2][..]));
        let first = &PYTHON_LEGACY[w.data.offset as usize..][..4];
        assert_eq!(f32::from_le_bytes(first.try_into().unwrap()), 1.0);
    }

    #[test]
    fn legacy_files_check_their_storage_list() {
        let head: &[u8] = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9\x20j\xa8P\x19.\x80\x02M\xe9\x03.\x80\x02}.";
        let main =
            Pickle::legacy().ordered_dict().str("w").tensor("FloatStorage", "k", 2, 0, &[2], &[1]).end_dict().stop();
        let file = |keys: &[u8], data: &[u8]| [head, main.as_slice(), keys, data].concat();
        let keys = Pickle::new().op(b']').op(b'(').str("k").op(b'e').stop();
        let good = file(&keys, &[&2u64.to_le_bytes()[..], &[0; 8]].concat());
        assert!(read(&good).is_ok());
        assert!(reason(&file(&keys, &[&3u64.to_le_bytes()[..], &[0; 12]].concat())).contains("3 elements, not 2"));
        assert!(reason(&file(&keys, &[&2u64.to_le_bytes()[..], &[0; 7]].concat())).contains("runs past the end"));
        let twice = Pickle::new().op(b']').op(b'(').str("k").str("k").op(b'e').stop();
        let data = [&2u64.to_le_bytes()[..], &[0; 8]].concat().repeat(2);
        assert!(reason(&file(&twice, &data)).contains("listed twice"));
        let unknown = Pickle::new().op(b']').op(b'(').str("z").op(b'e').stop();
        assert!(reason(&file(&unknown, &[&2u64.to_le_bytes()[..], &[0; 8]].concat())).contains("nothing uses it"));
        let no_magic = [&b"\x80\x02K\x01."[..], &good[15..]].concat();
        assert!(reason(&no_magic).contains("magic number"));
    }

    #[test]
    fn big_endian_and_compressed_checkpoints_are_unsupported() {
        let pickle =
            Pickle::new().ordered_dict().str("t").tensor("FloatStorage", "0", 1, 0, &[1], &[1]).end_dict().stop();
        let big = archive(&pickle, &[vec![0; 4]], &[("archive/byteorder", b"big")]);
        let expected = ModelErrorKind::Unsupported("big-endian PyTorch checkpoints".into());
        assert_eq!(read(&big).unwrap_err().kind, expected);
        assert_eq!(read(&legacy_big_endian()).unwrap_err().kind, expected);
        let deflated = write::archive(&[("archive/data.pkl", &pickle, 8), ("archive/data/0", &[0; 4], 0)], false);
        assert_eq!(
            read(&deflated).unwrap_err().kind,
            ModelErrorKind::Unsupported("compressed PyTorch archive entries".into())
        );
        let stored_pickle_deflated_data =
            write::archive(&[("archive/data.pkl", &pickle, 0), ("archive/data/0", &[0; 4], 8)], false);
        assert_eq!(
            read(&stored_pickle_deflated_data).unwrap_err().kind,
            ModelErrorKind::Unsupported("compressed PyTorch archive entries".into())
        );
    }

    /// PYTHON_LEGACY with its system info saying big-endian (`little_endian` False).
    fn legacy_big_endian() -> Vec<u8> {
        let mut bytes = PYTHON_LEGACY.to_vec();
        let at = bytes.windows(14).position(|w| w == b"little_endianq").unwrap() + 15;
        assert_eq!(bytes[at], 0x88);
        bytes[at] = 0x89;
        bytes
    }

    #[test]
    fn code_in_a_checkpoint_is_refused() {
        let mut pickle = Pickle::new();
        pickle.ordered_dict().str("t").tensor("FloatStorage", "0", 1, 0, &[1], &[1]).end_dict();
        // A training callback stored after the weights, as Lightning checkpoints do.
        pickle.op(b'0').global("pytorch_lightning.callbacks", "ModelCheckpoint").op(b')').op(b'R');
        let bytes = archive(&pickle.stop(), &[vec![0; 4]], &[]);
        let expected = ModelErrorKind::ForbiddenGlobal("pytorch_lightning.callbacks.ModelCheckpoint".into());
        assert_eq!(read(&bytes).unwrap_err().kind, expected);
        let system = Pickle::new().global("os", "system").op(b'(').str("touch /tmp/pwned").op(b't').op(b'R').stop();
        let bytes = archive(&system, &[], &[]);
        assert_eq!(read(&bytes).unwrap_err().kind, ModelErrorKind::ForbiddenGlobal("os.system".into()));
        assert!(sniff(&bytes));
        let eval = Pickle::new().stack_global("builtins", "eval").op(b'(').str("1").op(b't').op(b'R').stop();
        assert_eq!(
            read(&archive(&eval, &[], &[])).unwrap_err().kind,
            ModelErrorKind::ForbiddenGlobal("builtins.eval".into())
        );
    }

    #[test]
    fn a_second_data_pickle_is_refused_as_torch_could_run_either() {
        // torch.load reads the data.pkl of the first entry's folder (`evil/`); a reader taking
        // the first data.pkl it meets would check `good/` and pass the file.
        let good =
            Pickle::new().ordered_dict().str("t").tensor("FloatStorage", "0", 1, 0, &[1], &[1]).end_dict().stop();
        let evil = Pickle::new().global("os", "system").op(b'(').str("touch pwned").op(b't').op(b'R').stop();
        let entries: [(&str, &[u8], u16); 4] = [
            ("evil/version", b"3\n", 0),
            ("good/data.pkl", &good, 0),
            ("good/data/0", &[0; 4], 0),
            ("evil/data.pkl", &evil, 0),
        ];
        let reason = reason(&write::archive(&entries, false));
        assert!(reason.contains("data.pkl in two folders (good/ and evil/)"), "{reason}");
        // One data.pkl, named in capitals, is the one torch reads: it is read, and refused.
        let shouting = write::archive(&[("archive/DATA.PKL", &evil, 0)], false);
        assert_eq!(read(&shouting).unwrap_err().kind, ModelErrorKind::ForbiddenGlobal("os.system".into()));
    }

    #[test]
    fn cycles_and_shared_dicts_cost_little() {
        // d = {"t": tensor}; d["self"] = d: the walk stops at its step budget or the depth cap.
        let mut cycle = Pickle::new();
        cycle.op(b'}').put(0).op(b'(').str("t").tensor("FloatStorage", "0", 1, 0, &[1], &[1]);
        cycle.str("self").get(0).end_dict();
        assert!(read(&archive(&cycle.stop(), &[vec![0; 4]], &[])).is_err());
        // d0 = {"t": tensor}; d(i+1) = {"a": d(i), "b": d(i)}: 2^60 names if walked naively.
        let mut shared = Pickle::new();
        shared.op(b'}').op(b'(').str("t").tensor("FloatStorage", "0", 1, 0, &[1], &[1]).end_dict().put(0);
        for level in 1..=60u8 {
            shared.op(b'0').op(b'}').op(b'(').str("a").get(level - 1).str("b").get(level - 1).end_dict().put(level);
        }
        let error = read(&archive(&shared.stop(), &[vec![0; 4]], &[])).unwrap_err();
        assert!(matches!(error.kind, ModelErrorKind::TooLarge(_)), "{error}");
        // 300 dicts, each inside the one before.
        let mut deep = Pickle::new();
        for _ in 0..300 {
            deep.op(b'}').str("k");
        }
        deep.tensor("FloatStorage", "0", 1, 0, &[1], &[1]).raw(&[b's'; 300]);
        assert!(reason(&archive(&deep.stop(), &[vec![0; 4]], &[])).contains("nest more than"));
    }

    #[test]
    fn sniff_tells_checkpoints_from_other_files() {
        assert!(sniff(&checkpoint(&[("a", DType::U8, &[1])])));
        assert!(sniff(b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00\x8a\x0al\xfc\x9cF\xf9\x20j\xa8P\x19."));
        assert!(!sniff(&write::archive(&[("folder/other.txt", b"hi", 0)], false)));
        assert!(!sniff(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}"));
        assert!(!sniff(b"\x80\x02K\x01."));
        assert!(!sniff(b""));
        assert!(reason(b"GGUF").contains("neither"));
    }

    #[test]
    fn zip64_checkpoints_read_the_same() {
        let pickle =
            Pickle::new().ordered_dict().str("t").tensor("BFloat16Storage", "0", 3, 0, &[3], &[1]).end_dict().stop();
        let entries: [(&str, &[u8], u16); 2] = [("archive/data.pkl", &pickle, 0), ("archive/data/0", &[5; 6], 0)];
        let small = read(&write::archive(&entries, false)).unwrap();
        let big = read(&write::archive(&entries, true)).unwrap();
        assert_eq!(small, big);
        assert_eq!(big.tensors["t"].dtype, DType::Bf16);
    }
}
