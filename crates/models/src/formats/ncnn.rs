//! ncnn models (a `.param` graph in text and a `.bin` of raw weights) read as a state dict by
//! Kiln's own parser. The format follows Tencent/ncnn: `docs/developer-guide/
//! param-and-model-file-structure.md` and `src/paramdict.cpp` for the text (magic `7767517`,
//! `key=value` pairs, array keys at `-23300 - index`), `src/modelbin.cpp` for tagged weight loads
//! (fp16 / int8 / fp32 tags), and `src/layer/convolution.cpp` and `src/layer/prelu.cpp` for what
//! each layer stores and in which order. The `.bin` holds no names, so the tensors are named
//! after the upscaler the graph is recognised as (`ncnn_layout`): Real-ESRGAN's own key names.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, ModelErrorKind};
use crate::mapped::MappedFile;
use crate::tensors::{DType, StateDict, TensorData, TensorEntry, contiguous_strides};

use super::ncnn_layout;

const FORMAT: &str = "ncnn";
const MAGIC: &str = "7767517";
/// ncnn's `NCNN_MAX_PARAM_COUNT`: parameter indices are 0..32.
const MAX_PARAM_ID: i32 = 32;
/// A key at or below this is an array for index `ARRAY_KEY_BASE - key`.
const ARRAY_KEY_BASE: i32 = -23300;
/// Upscaler graphs are far smaller (Real-ESRGAN x4plus: 116 kB); this bounds what is read.
const MAX_PARAM_BYTES: u64 = 16 << 20;

/// `modelbin.cpp` tags in front of a weight array.
pub(super) const TAG_FP16: u32 = 0x0130_6B47;
pub(super) const TAG_INT8: u32 = 0x000D_4B38;
pub(super) const TAG_FP32: u32 = 0x0002_C056;

/// Layer types that store nothing in the `.bin`. Anything else that is not a Convolution or a
/// PReLU may store data Kiln cannot skip (`Padding` even does so only for some parameters), so
/// it is refused rather than guessed at.
const WEIGHTLESS: &[&str] = &[
    "AbsVal",
    "BinaryOp",
    "Clip",
    "Concat",
    "Crop",
    "Dropout",
    "ELU",
    "Eltwise",
    "Exp",
    "Flatten",
    "GELU",
    "HardSigmoid",
    "HardSwish",
    "Input",
    "Interp",
    "Log",
    "Mish",
    "Noop",
    "Permute",
    "PixelShuffle",
    "Pooling",
    "Power",
    "ReLU",
    "Reorg",
    "Reshape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Swish",
    "TanH",
    "UnaryOp",
];

/// Metadata key: the factor of the resize an ncnn model applies after its network (`0.5`).
pub const FINAL_RESIZE_SCALE: &str = "ncnn.final_resize_scale";
/// Metadata key: that resize's filter (`bicubic`).
pub const FINAL_RESIZE_MODE: &str = "ncnn.final_resize_mode";

/// Which upscaler layout an ncnn model holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcnnLayout {
    /// Real-ESRGAN SRVGGNetCompact; `scale` is the PixelShuffle factor of the network (a graph
    /// may resize its output after it: see the `ncnn.final_resize_*` metadata).
    Compact { num_conv: usize, scale: usize },
    /// ESRGAN / Real-ESRGAN RRDBNet.
    Rrdb { blocks: usize },
}

/// A parsed .param: layers in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NcnnGraph {
    pub layers: Vec<NcnnLayer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NcnnLayer {
    pub kind: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// By parameter index (0..32); an array key `-23301` is stored under index 1.
    pub params: BTreeMap<i32, NcnnParam>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NcnnParam {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
}

impl NcnnLayer {
    /// Integer parameter `id`, `default` when absent, `None` when it holds another type.
    pub fn int(&self, id: i32, default: i64) -> Option<i64> {
        match self.params.get(&id) {
            None => Some(default),
            Some(NcnnParam::Int(value)) => Some(*value),
            Some(_) => None,
        }
    }

    /// Float parameter `id`, `default` when absent; an integer is widened (`1=2` is valid text).
    pub fn float(&self, id: i32, default: f32) -> Option<f32> {
        match self.params.get(&id) {
            None => Some(default),
            Some(NcnnParam::Float(value)) => Some(*value),
            Some(NcnnParam::Int(value)) => Some(*value as f32),
            Some(_) => None,
        }
    }
}

/// What a weighted layer stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WeightKind {
    Convolution,
    PRelu,
}

/// One weighted layer's tensors as found in the `.bin`.
pub(super) struct LayerWeights<'g> {
    pub layer: &'g NcnnLayer,
    pub kind: WeightKind,
    /// Name suffixes with their tensors: `weight`, then `bias` when the layer has one.
    pub tensors: Vec<(&'static str, TensorEntry)>,
}

/// Reads `x.param` and its `x.bin` (the same stem), and returns the named tensors (offsets into
/// the .bin) and the layout.
pub fn read(param_path: &Path) -> Result<(StateDict, PathBuf, NcnnLayout), ModelError> {
    let text = read_param_text(param_path)?;
    let bin_path = param_path.with_extension("bin");
    let bin = MappedFile::open(&bin_path)?;
    let (dict, layout) = read_parts(param_path, &text, &bin_path, bin.bytes())?;
    Ok((dict, bin_path, layout))
}

/// The same from bytes already in memory (for tests and fuzzing).
pub fn read_parts(
    param_path: &Path,
    param_text: &str,
    bin_path: &Path,
    bin: &[u8],
) -> Result<(StateDict, NcnnLayout), ModelError> {
    let graph = parse_param(param_path, param_text)?;
    let weights = load_weights(param_path, bin_path, &graph, bin)?;
    let recognised = ncnn_layout::recognise(param_path, &graph, &weights)?;
    let mut dict = StateDict { metadata: recognised.metadata, ..StateDict::default() };
    for (layer, prefix) in weights.into_iter().zip(recognised.prefixes) {
        for (suffix, tensor) in layer.tensors {
            dict.tensors.insert(format!("{prefix}.{suffix}"), tensor);
        }
    }
    Ok((dict, recognised.layout))
}

/// The .param text, read with a cap so a wrong or hostile file cannot fill memory.
fn read_param_text(path: &Path) -> Result<String, ModelError> {
    let io = |e: std::io::Error| ModelError::new(path, ModelErrorKind::Io(e.to_string()));
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_PARAM_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_PARAM_BYTES {
        return Err(ModelError::new(
            path,
            ModelErrorKind::TooLarge(format!("an ncnn .param over {} MiB", MAX_PARAM_BYTES >> 20)),
        ));
    }
    String::from_utf8(bytes).map_err(|_| ModelError::malformed(path, FORMAT, "the .param file is not UTF-8 text"))
}

/// Parses `.param` text: magic, counts, and one layer per line, with its blobs checked.
pub fn parse_param(path: &Path, text: &str) -> Result<NcnnGraph, ModelError> {
    let bad = |reason: String| ModelError::malformed(path, FORMAT, reason);
    let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line.trim())).filter(|(_, line)| !line.is_empty());

    let (_, magic) = lines.next().ok_or_else(|| bad("the .param file is empty".into()))?;
    if magic != MAGIC {
        return Err(bad(format!("the first line is `{}`, not the ncnn magic {MAGIC}", clip(magic))));
    }
    let (_, counts) = lines.next().ok_or_else(|| bad("the layer and blob counts are missing".into()))?;
    let counts: Vec<&str> = counts.split_whitespace().collect();
    let (layer_count, blob_count) = match counts.as_slice() {
        [layers, blobs] => (parse_count(layers), parse_count(blobs)),
        _ => (None, None),
    };
    let (Some(layer_count), Some(blob_count)) = (layer_count, blob_count) else {
        return Err(bad("line 2 is not `layer_count blob_count`".into()));
    };

    // The header's counts are only compared with, never used to allocate.
    let mut layers = Vec::new();
    for (line_no, line) in lines {
        if layers.len() == layer_count {
            return Err(bad(format!("line {line_no}: more layers than the {layer_count} the header declares")));
        }
        layers.push(parse_layer(line).map_err(|reason| bad(format!("line {line_no}: {reason}")))?);
    }
    if layers.len() != layer_count {
        return Err(bad(format!("the header declares {layer_count} layers but the file has {}", layers.len())));
    }
    check_blobs(&layers, blob_count).map_err(bad)?;
    Ok(NcnnGraph { layers })
}

/// `Type name n_in n_out in.. out.. k=v ..`
fn parse_layer(line: &str) -> Result<NcnnLayer, String> {
    let mut tokens = line.split_whitespace();
    let kind = tokens.next().ok_or("the line is empty")?.to_string();
    let name = tokens.next().ok_or("the layer name is missing")?.to_string();
    let n_in = tokens.next().and_then(parse_count).ok_or("the input count is missing or not a count")?;
    let n_out = tokens.next().and_then(parse_count).ok_or("the output count is missing or not a count")?;
    let inputs = take_names(&mut tokens, n_in, "input")?;
    let outputs = take_names(&mut tokens, n_out, "output")?;
    let mut params = BTreeMap::new();
    for token in tokens {
        let (key, value) = token.split_once('=').ok_or_else(|| format!("`{}` is not key=value", clip(token)))?;
        let key: i32 = key.parse().map_err(|_| format!("`{}` is not a parameter key", clip(key)))?;
        // No overflow: key >= i32::MIN keeps the difference below i32::MAX.
        let (id, value) = if key <= ARRAY_KEY_BASE {
            (ARRAY_KEY_BASE - key, parse_array(value)?)
        } else {
            (key, parse_scalar(value)?)
        };
        if !(0..MAX_PARAM_ID).contains(&id) {
            return Err(format!("parameter key {key} is outside ncnn's {MAX_PARAM_ID} slots"));
        }
        if params.insert(id, value).is_some() {
            return Err(format!("parameter {id} is given twice"));
        }
    }
    Ok(NcnnLayer { kind, name, inputs, outputs, params })
}

/// `count` blob names; the Vec grows only as names are found, whatever `count` claims.
fn take_names<'a>(tokens: &mut impl Iterator<Item = &'a str>, count: usize, what: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for _ in 0..count {
        let name = tokens.next().ok_or_else(|| format!("fewer {what} blob names than the {count} declared"))?;
        names.push(name.to_string());
    }
    Ok(names)
}

fn parse_count(text: &str) -> Option<usize> {
    text.parse().ok()
}

/// ncnn's `vstr_is_float`: a value is a float when it has a `.` or an exponent.
fn is_float(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

fn parse_float(text: &str) -> Result<f32, String> {
    text.parse::<f32>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("`{}` is not a finite number", clip(text)))
}

fn parse_int(text: &str) -> Result<i64, String> {
    text.parse().map_err(|_| format!("`{}` is not an integer", clip(text)))
}

fn parse_scalar(text: &str) -> Result<NcnnParam, String> {
    if is_float(text) { parse_float(text).map(NcnnParam::Float) } else { parse_int(text).map(NcnnParam::Int) }
}

/// `count,v1,v2,..`: floats if any element is one (ncnn types each element on its own).
fn parse_array(text: &str) -> Result<NcnnParam, String> {
    let mut parts = text.split(',');
    let count =
        parts.next().and_then(parse_count).ok_or_else(|| format!("`{}` is not `count,values..`", clip(text)))?;
    let items: Vec<&str> = parts.collect();
    if items.len() != count {
        return Err(format!("an array declares {count} values but has {}", items.len()));
    }
    if items.iter().any(|item| is_float(item)) {
        items.iter().map(|item| parse_float(item)).collect::<Result<_, _>>().map(NcnnParam::Floats)
    } else {
        items.iter().map(|item| parse_int(item)).collect::<Result<_, _>>().map(NcnnParam::Ints)
    }
}

/// Every blob is written once, read only after it is written (ncnn converters write layers in
/// graph order, which the layout's naming relies on), and the header's blob count is right.
fn check_blobs(layers: &[NcnnLayer], blob_count: usize) -> Result<(), String> {
    let mut written: HashSet<&str> = HashSet::new();
    for layer in layers {
        if let Some(input) = layer.inputs.iter().find(|input| !written.contains(input.as_str())) {
            return Err(format!(
                "layer `{}` reads blob `{}` before any layer writes it",
                clip(&layer.name),
                clip(input)
            ));
        }
        for output in &layer.outputs {
            if !written.insert(output.as_str()) {
                return Err(format!("blob `{}` is written twice", clip(output)));
            }
        }
    }
    if written.len() != blob_count {
        return Err(format!("the header declares {blob_count} blobs but the layers write {}", written.len()));
    }
    Ok(())
}

/// Walks the `.bin` in layer order; it must be consumed exactly, since nothing else tells
/// whether it belongs to this `.param`.
fn load_weights<'g>(
    param_path: &Path,
    bin_path: &Path,
    graph: &'g NcnnGraph,
    bin: &[u8],
) -> Result<Vec<LayerWeights<'g>>, ModelError> {
    let mut cursor = BinCursor { path: bin_path, bin, pos: 0 };
    let mut weights = Vec::new();
    for layer in &graph.layers {
        match layer.kind.as_str() {
            "Convolution" => weights.push(load_convolution(param_path, &mut cursor, layer)?),
            "PReLU" => weights.push(load_prelu(param_path, &mut cursor, layer)?),
            kind if WEIGHTLESS.contains(&kind) => {}
            kind => {
                return Err(ModelError::new(
                    param_path,
                    ModelErrorKind::Unsupported(format!(
                        "ncnn layer type `{}` (layer `{}`): Kiln reads Convolution and PReLU weights only",
                        clip(kind),
                        clip(&layer.name)
                    )),
                ));
            }
        }
    }
    let extra = bin.len().saturating_sub(cursor.pos);
    if extra != 0 {
        return Err(ModelError::malformed(
            bin_path,
            FORMAT,
            format!("{extra} bytes follow the last layer's weights: this .bin does not belong to its .param"),
        ));
    }
    Ok(weights)
}

/// `convolution.cpp` `load_model`: tagged weights, then the bias as raw fp32.
fn load_convolution<'g>(
    param_path: &Path,
    cursor: &mut BinCursor<'_>,
    layer: &'g NcnnLayer,
) -> Result<LayerWeights<'g>, ModelError> {
    let unsupported = |what: &str| {
        ModelError::new(param_path, ModelErrorKind::Unsupported(format!("layer `{}`: {what}", clip(&layer.name))))
    };
    if int_param(param_path, layer, 19, 0)? != 0 {
        return Err(unsupported("convolution weights given as an input blob (dynamic_weight)"));
    }
    if int_param(param_path, layer, 8, 0)? != 0 {
        return Err(unsupported("int8-quantized convolution (int8_scale_term)"));
    }
    let num_output = count_param(param_path, layer, 0, 0)?;
    let kernel_w = count_param(param_path, layer, 1, 0)?;
    let kernel_h = count_param(param_path, layer, 11, kernel_w as i64)?;
    let bias_term = int_param(param_path, layer, 5, 0)?;
    let weight_size = count_param(param_path, layer, 6, 0)?;

    let per_input = num_output.checked_mul(kernel_h).and_then(|n| n.checked_mul(kernel_w)).filter(|n| *n > 0);
    let Some(per_input) = per_input else {
        let reason = format!("num_output {num_output} with a {kernel_h}x{kernel_w} kernel is not a convolution");
        return Err(param_error(param_path, layer, reason));
    };
    if weight_size == 0 || weight_size % per_input != 0 {
        let reason = format!(
            "weight_data_size {weight_size} is not a positive multiple of num_output*kernel_h*kernel_w = {per_input}"
        );
        return Err(param_error(param_path, layer, reason));
    }
    let shape = vec![num_output, weight_size / per_input, kernel_h, kernel_w];
    let weight = cursor.tagged(shape, weight_size, &format!("the weights of layer `{}`", clip(&layer.name)))?;
    let mut tensors = vec![("weight", weight)];
    match bias_term {
        0 => {}
        1 => {
            let what = format!("the bias of layer `{}`", clip(&layer.name));
            tensors.push(("bias", cursor.raw_f32(vec![num_output], num_output, &what)?));
        }
        other => return Err(param_error(param_path, layer, format!("bias_term is {other}, not 0 or 1"))),
    }
    Ok(LayerWeights { layer, kind: WeightKind::Convolution, tensors })
}

/// `prelu.cpp` `load_model`: `num_slope` raw fp32 slopes.
fn load_prelu<'g>(
    param_path: &Path,
    cursor: &mut BinCursor<'_>,
    layer: &'g NcnnLayer,
) -> Result<LayerWeights<'g>, ModelError> {
    let slopes = count_param(param_path, layer, 0, 0)?;
    if slopes == 0 {
        return Err(param_error(param_path, layer, "num_slope is 0".into()));
    }
    let slope = cursor.raw_f32(vec![slopes], slopes, &format!("the slopes of layer `{}`", clip(&layer.name)))?;
    Ok(LayerWeights { layer, kind: WeightKind::PRelu, tensors: vec![("weight", slope)] })
}

fn param_error(path: &Path, layer: &NcnnLayer, reason: String) -> ModelError {
    ModelError::malformed(path, FORMAT, format!("layer `{}`: {reason}", clip(&layer.name)))
}

fn int_param(path: &Path, layer: &NcnnLayer, id: i32, default: i64) -> Result<i64, ModelError> {
    layer.int(id, default).ok_or_else(|| param_error(path, layer, format!("parameter {id} is not an integer")))
}

fn count_param(path: &Path, layer: &NcnnLayer, id: i32, default: i64) -> Result<usize, ModelError> {
    let value = int_param(path, layer, id, default)?;
    usize::try_from(value).map_err(|_| param_error(path, layer, format!("parameter {id} is {value}, not a count")))
}

/// A read position in the `.bin`; every step is checked against its length before it is taken.
struct BinCursor<'a> {
    path: &'a Path,
    bin: &'a [u8],
    pos: usize,
}

impl BinCursor<'_> {
    fn truncated(&self, reason: String) -> ModelError {
        ModelError::new(self.path, ModelErrorKind::Truncated(reason))
    }

    /// Claims `len` bytes and returns where they start.
    fn take(&mut self, len: usize, what: &str) -> Result<usize, ModelError> {
        let start = self.pos;
        let Some(end) = start.checked_add(len).filter(|end| *end <= self.bin.len()) else {
            let reason =
                format!("{what} need bytes {start}..{} but the file has {}", start.saturating_add(len), self.bin.len());
            return Err(self.truncated(reason));
        };
        self.pos = end;
        Ok(start)
    }

    /// Claims `count` elements of `size` bytes each, padded up to a multiple of `align`.
    fn take_elements(
        &mut self,
        count: usize,
        size: usize,
        align: usize,
        what: &str,
    ) -> Result<(usize, usize), ModelError> {
        let bytes = count.checked_mul(size);
        let Some((bytes, padded)) = bytes.and_then(|b| Some((b, b.checked_next_multiple_of(align)?))) else {
            return Err(self.truncated(format!("{what} claim {count} elements, more than any file holds")));
        };
        Ok((self.take(padded, what)?, bytes))
    }

    fn tag(&mut self, what: &str) -> Result<u32, ModelError> {
        let start = self.take(4, what)?;
        let bytes = self.bin.get(start..self.pos).and_then(|b| <[u8; 4]>::try_from(b).ok());
        bytes.map(u32::from_le_bytes).ok_or_else(|| self.truncated(format!("{what} have no storage tag")))
    }

    /// `ModelBin::load(w, 0)`: a tag says how the array is stored.
    fn tagged(&mut self, shape: Vec<usize>, count: usize, what: &str) -> Result<TensorEntry, ModelError> {
        let path = self.path;
        let unsupported = |reason: String| ModelError::new(path, ModelErrorKind::Unsupported(reason));
        match self.tag(what)? {
            // fp16 arrays are padded to 4 bytes so the next tag stays aligned.
            TAG_FP16 => {
                let (start, bytes) = self.take_elements(count, 2, 4, what)?;
                Ok(entry(DType::F16, shape, start, bytes))
            }
            TAG_FP32 | 0 => self.raw_f32(shape, count, what),
            TAG_INT8 => Err(unsupported(format!("{what} are int8-quantized"))),
            other => Err(unsupported(format!(
                "{what} use storage tag {other:#010x} (ncnn's 8-bit lookup-table quantization, or a damaged file)"
            ))),
        }
    }

    /// `ModelBin::load(w, 1)`: untagged little-endian fp32.
    fn raw_f32(&mut self, shape: Vec<usize>, count: usize, what: &str) -> Result<TensorEntry, ModelError> {
        let (start, bytes) = self.take_elements(count, 4, 1, what)?;
        Ok(entry(DType::F32, shape, start, bytes))
    }
}

fn entry(dtype: DType, shape: Vec<usize>, offset: usize, byte_len: usize) -> TensorEntry {
    let strides = contiguous_strides(&shape);
    TensorEntry { dtype, shape, data: TensorData { offset: offset as u64, strides, region_len: byte_len as u64 } }
}

/// Untrusted text quoted in an error, cut so a hostile file cannot make the message huge.
pub(super) fn clip(text: &str) -> String {
    const MAX_CHARS: usize = 48;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ncnn_layout::tests::{Model, compact, failure, read_with};
    use super::*;

    #[test]
    fn parses_values_and_arrays() {
        let text = "7767517\n2 2\nInput in 0 1 data 0=3\n\
                    Convolution c 1 1 data out 0=4 1=3 9=2 -23310=1,2.000000e-01 -23307=2,1,-2 4=1.5\n";
        for text in [text.to_string(), text.replace('\n', "\r\n")] {
            let graph = parse_param(Path::new("m.param"), &text).expect("valid text");
            let conv = &graph.layers[1];
            assert_eq!((conv.kind.as_str(), conv.name.as_str()), ("Convolution", "c"));
            assert_eq!(
                (conv.inputs.as_slice(), conv.outputs.as_slice()),
                (&["data".to_string()][..], &["out".to_string()][..])
            );
            assert_eq!(conv.params.get(&10), Some(&NcnnParam::Floats(vec![0.2])));
            assert_eq!(conv.params.get(&7), Some(&NcnnParam::Ints(vec![1, -2])));
            assert_eq!(conv.params.get(&4), Some(&NcnnParam::Float(1.5)));
            assert_eq!((conv.int(0, 0), conv.int(11, 3), conv.int(4, 0)), (Some(4), Some(3), None));
            assert_eq!(conv.float(0, 0.0), Some(4.0));
        }
    }

    #[test]
    fn refuses_truncated_and_extra_bin_bytes() {
        let model = compact();
        let bin = &model.bin;
        let (path, kind) = failure(read_with(&model.param(), &bin[..bin.len() - 1]));
        assert_eq!(path, Path::new("m.bin"));
        assert!(matches!(kind, ModelErrorKind::Truncated(_)), "{kind:?}");
        let mut longer = bin.clone();
        longer.extend([0; 4]);
        let (path, kind) = failure(read_with(&model.param(), &longer));
        assert_eq!(path, Path::new("m.bin"));
        assert!(matches!(kind, ModelErrorKind::Malformed { .. }), "{kind:?}");
    }

    #[test]
    fn refuses_bad_magic() {
        let model = compact();
        let (path, kind) = failure(read_with(&model.param().replacen(MAGIC, "7767518", 1), &model.bin));
        assert_eq!(path, Path::new("m.param"));
        assert!(matches!(kind, ModelErrorKind::Malformed { .. }), "{kind:?}");
    }

    #[test]
    fn int8_and_unknown_tags_are_unsupported() {
        for tag in [TAG_INT8, 0x1234_5678] {
            let mut model = compact();
            model.bin[..4].copy_from_slice(&tag.to_le_bytes());
            let (path, kind) = failure(model.read());
            assert_eq!(path, Path::new("m.bin"));
            assert!(matches!(kind, ModelErrorKind::Unsupported(_)), "{kind:?}");
        }
    }

    #[test]
    fn unknown_weighted_layers_are_unsupported() {
        for (kind, params) in [("InnerProduct", "0=4 1=1 2=12"), ("ConvolutionDepthWise", "0=3 1=3 5=1 6=27 7=3")] {
            let mut model = Model::new();
            model.layer(kind, &["b0"], params);
            model.bin = vec![0; 64];
            assert!(matches!(failure(model.read()).1, ModelErrorKind::Unsupported(_)), "{kind}");
        }
    }

    #[test]
    fn refuses_inconsistent_or_huge_convolution_sizes() {
        let cases = [
            // weight_data_size 100 is no multiple of 4 outputs * 3x3.
            "0=4 1=3 5=1 6=100",
            // Counts far beyond the file: they fail the length check, nothing is allocated.
            "0=4 1=3 5=1 6=9223372036854775800",
            "0=4611686018427387904 1=3 6=36",
            "0=-4 1=3 6=36",
            "0=4 1=0 6=36",
            "0=4 1=3 5=7 6=36",
            "0=4 1=3 6=36 8=1",
            "0=4 1=3.0 6=36",
        ];
        for params in cases {
            let mut model = Model::new();
            model.layer("Convolution", &["b0"], params);
            model.bin = vec![0; 4 + 400 + 16];
            // Refused while reading the layer, before any architecture is considered.
            let (_, kind) = failure(model.read());
            assert!(!matches!(kind, ModelErrorKind::WrongArchitecture { .. }), "{params}: {kind:?}");
        }
    }

    #[test]
    fn garbage_param_text_is_malformed() {
        let cases = [
            "",
            "7767517\n",
            "7767517\nx y\n",
            "7767517\n1\n",
            "7767517 1 1\nInput in 0 1 data\n",
            "7767517\n1 1\nInput\n",
            "7767517\n1 1\nInput in 0 1\n",
            "7767517\n1 1\nInput in 18446744073709551615 1 data\n",
            "7767517\n1 1\nInput in -1 1 data\n",
            "7767517\n1 1\nInput in 0 1 data 0=abc\n",
            "7767517\n1 1\nInput in 0 1 data 0=1e99\n",
            "7767517\n1 1\nInput in 0 1 data =1\n",
            "7767517\n1 1\nInput in 0 1 data junk\n",
            "7767517\n1 1\nInput in 0 1 data 32=1\n",
            "7767517\n1 1\nInput in 0 1 data -1=1\n",
            "7767517\n1 1\nInput in 0 1 data -23332=1,1\n",
            "7767517\n1 1\nInput in 0 1 data -23301=3,1,2\n",
            "7767517\n1 1\nInput in 0 1 data -23301=99999999999999999999999,1\n",
            "7767517\n1 1\nInput in 0 1 data -23301=1,x\n",
            "7767517\n1 1\nInput in 0 1 data 0=1 0=2\n",
            "7767517\n2 1\nInput in 0 1 data\n",
            "7767517\n1 2\nInput in 0 1 data\n",
            "7767517\n1 1\nInput in 0 1 data\nReLU r 1 1 data out\n",
            "7767517\n1 1\nReLU r 1 1 nothing out\n",
            "7767517\n2 1\nInput in 0 1 data\nInput again 0 1 data\n",
        ];
        for text in cases {
            let error = parse_param(Path::new("m.param"), text).expect_err(text);
            assert_eq!(error.path, Path::new("m.param"));
            assert!(matches!(error.kind, ModelErrorKind::Malformed { .. }), "{text:?}: {error}");
        }
    }

    #[test]
    fn damaged_models_never_panic() {
        let model = compact();
        let param = model.param();
        for (cut, _) in param.char_indices() {
            let _ = read_with(&param[..cut], &model.bin);
        }
        for (at, c) in param.char_indices().filter(|(_, c)| c.is_ascii_digit()) {
            for digit in ["0", "9", "-1"] {
                let damaged = format!("{}{digit}{}", &param[..at], &param[at + c.len_utf8()..]);
                let _ = read_with(&damaged, &model.bin);
            }
        }
        for cut in 0..model.bin.len() {
            assert!(read_with(&param, &model.bin[..cut]).is_err(), "{cut}");
        }
    }
}
