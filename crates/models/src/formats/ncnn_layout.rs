//! Which upscaler an ncnn graph holds, and the Real-ESRGAN key names of its weights:
//! SRVGGNetCompact (`xinntao/Real-ESRGAN` `realesrgan/archs/srvgg_arch.py`) and RRDBNet
//! (`XPixelGroup/BasicSR` `basicsr/archs/rrdbnet_arch.py`). An ncnn `.bin` keeps no names, so
//! names come from position: converters write layers in graph order, and each architecture's
//! convolutions form a chain, so order plus the shapes checked here pin every name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::error::{ModelError, ModelErrorKind};

use super::ncnn::{LayerWeights, NcnnGraph, NcnnLayer, NcnnLayout, NcnnParam, WeightKind, clip};

const COMPACT: &str = "SRVGGNetCompact";
const RRDB: &str = "RRDBNet";
/// RRDBNet's `nn.LeakyReLU(negative_slope=0.2)`, fused into its convolutions by converters.
const LEAKY_SLOPE: f32 = 0.2;
/// RRDBNet's tail after its blocks: conv_body, conv_up1, conv_up2, conv_hr, conv_last.
const RRDB_TAIL: [&str; 5] = ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"];

/// The recognised layout and the key prefix of each weighted layer, in `.bin` order.
pub(super) struct Recognised {
    pub layout: NcnnLayout,
    pub prefixes: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

pub(super) fn recognise(
    path: &Path,
    graph: &NcnnGraph,
    weights: &[LayerWeights<'_>],
) -> Result<Recognised, ModelError> {
    let compact = weights.iter().any(|w| w.kind == WeightKind::PRelu)
        || graph.layers.iter().any(|layer| layer.kind == "PixelShuffle");
    if compact { compact_layout(path, graph, weights) } else { rrdb_layout(path, graph, weights) }
}

fn wrong(path: &Path, architecture: &str, reason: String) -> ModelError {
    ModelError::new(path, ModelErrorKind::WrongArchitecture { architecture: architecture.to_string(), reason })
}

/// SRVGGNetCompact's `body` is Conv, PReLU, Conv, PReLU, .., Conv, so weighted layer `i` is
/// `body.{i}`; a PixelShuffle follows the last conv.
fn compact_layout(path: &Path, graph: &NcnnGraph, weights: &[LayerWeights<'_>]) -> Result<Recognised, ModelError> {
    let mismatch = |reason: String| wrong(path, COMPACT, reason);
    let count = weights.len();
    if count < 3 || count.is_multiple_of(2) {
        return Err(mismatch(format!(
            "{count} weighted layers, where Convolution and PReLU alternate from a Convolution to a Convolution"
        )));
    }
    let roots = split_roots(graph);
    let mut feat = 0;
    let mut in_channels = 0;
    let mut last_out = 0;
    let mut previous: Option<&str> = None;
    for (i, w) in weights.iter().enumerate() {
        let layer = w.layer;
        let input = layer.inputs.first().map(|blob| root(&roots, blob));
        if let Some(previous) = previous.filter(|previous| input != Some(*previous)) {
            return Err(mismatch(format!(
                "layer `{}` does not read the output `{}`",
                clip(&layer.name),
                clip(previous)
            )));
        }
        previous = layer.outputs.first().map(String::as_str);
        if i % 2 == 1 {
            let slopes = match (w.kind, w.tensors.first()) {
                (WeightKind::PRelu, Some((_, slope))) => slope.numel(),
                _ => return Err(mismatch(format!("layer `{}` is where a PReLU belongs", clip(&layer.name)))),
            };
            if slopes != feat {
                return Err(mismatch(format!("PReLU `{}` has {slopes} slopes for {feat} features", clip(&layer.name))));
            }
            continue;
        }
        let (out, inp) = conv_channels(path, COMPACT, w, false)?;
        if i == 0 {
            (feat, in_channels) = (out, inp);
        } else if inp != feat || (i + 1 < count && out != feat) {
            return Err(mismatch(format!(
                "convolution `{}` maps {inp} to {out} channels in a network of {feat} features",
                clip(&layer.name)
            )));
        }
        last_out = out;
    }

    let shuffles: Vec<&NcnnLayer> = graph.layers.iter().filter(|layer| layer.kind == "PixelShuffle").collect();
    let [shuffle] = shuffles.as_slice() else {
        return Err(mismatch(format!("{} PixelShuffle layers where the network has one", shuffles.len())));
    };
    if shuffle.inputs.first().map(|blob| root(&roots, blob)) != previous {
        return Err(mismatch("the PixelShuffle does not read the last convolution's output".into()));
    }
    // `mode` 0 is PyTorch's channel order (ncnn's 1 is TensorFlow's depth_to_space).
    let scale = shuffle.int(0, 1).and_then(|s| usize::try_from(s).ok()).filter(|s| *s > 0);
    let Some(scale) = scale.filter(|_| shuffle.int(1, 0) == Some(0)) else {
        return Err(mismatch("the PixelShuffle is not a PyTorch-order upscale".into()));
    };
    if scale.checked_mul(scale).and_then(|s| s.checked_mul(in_channels)) != Some(last_out) {
        return Err(mismatch(format!(
            "the last convolution has {last_out} outputs, not {in_channels} channels times {scale}x{scale}"
        )));
    }
    Ok(Recognised {
        layout: NcnnLayout::Compact { num_conv: (count - 3) / 2, scale },
        prefixes: (0..count).map(|i| format!("body.{i}")).collect(),
        metadata: final_resize(path, COMPACT, graph)?,
    })
}

/// RRDBNet's convolutions in forward order: conv_first; per block three RDBs of conv1..conv5
/// (conv k reads num_feat + (k-1) * num_grow_ch channels, conv1..4 write num_grow_ch, conv5
/// num_feat); then the tail.
fn rrdb_layout(path: &Path, graph: &NcnnGraph, weights: &[LayerWeights<'_>]) -> Result<Recognised, ModelError> {
    let mismatch = |reason: String| wrong(path, RRDB, reason);
    let count = weights.len();
    if count < 21 || !(count - 6).is_multiple_of(15) {
        return Err(mismatch(format!("{count} convolutions, where RRDBNet has 6 plus 15 per block")));
    }
    let blocks = (count - 6) / 15;
    let feat = weights.first().and_then(|w| w.tensors.first()).and_then(|(_, t)| t.shape.first().copied());
    let grow = weights.get(1).and_then(|w| w.tensors.first()).and_then(|(_, t)| t.shape.first().copied());
    let (Some(feat), Some(grow)) = (feat, grow) else {
        return Err(mismatch("the first convolutions have no shape".into()));
    };

    // (prefix, outputs, inputs, whether a LeakyReLU follows); `None` is free (image channels).
    let mut plan: Vec<(String, Option<usize>, Option<usize>, bool)> =
        vec![("conv_first".into(), Some(feat), None, false)];
    for b in 0..blocks {
        for r in 1..=3 {
            for k in 1..=5usize {
                let inputs = grow.saturating_mul(k - 1).saturating_add(feat);
                let outputs = if k == 5 { feat } else { grow };
                plan.push((format!("body.{b}.rdb{r}.conv{k}"), Some(outputs), Some(inputs), k < 5));
            }
        }
    }
    for name in RRDB_TAIL {
        let outputs = (name != "conv_last").then_some(feat);
        plan.push((name.into(), outputs, Some(feat), matches!(name, "conv_up1" | "conv_up2" | "conv_hr")));
    }

    let roots = split_roots(graph);
    let writers: HashMap<&str, &NcnnLayer> =
        graph.layers.iter().flat_map(|layer| layer.outputs.iter().map(move |blob| (blob.as_str(), layer))).collect();
    for (w, (prefix, outputs, inputs, leaky)) in weights.iter().zip(&plan) {
        let (out, inp) = conv_channels(path, RRDB, w, *leaky)?;
        if outputs.is_some_and(|o| o != out) || inputs.is_some_and(|i| i != inp) {
            return Err(mismatch(format!(
                "`{prefix}` (layer `{}`) maps {inp} to {out} channels; num_feat {feat} and num_grow_ch {grow} need {} to {}",
                clip(&w.layer.name),
                inputs.map_or("any".into(), |i| i.to_string()),
                outputs.map_or("any".into(), |o| o.to_string()),
            )));
        }
        // The two upsampling convolutions read a nearest-neighbour Interp: a check that the
        // tail is in forward order, since conv_body..conv_hr share one shape.
        if matches!(prefix.as_str(), "conv_up1" | "conv_up2") {
            let reader = w.layer.inputs.first().map(|blob| root(&roots, blob));
            if reader.and_then(|blob| writers.get(blob)).is_none_or(|writer| writer.kind != "Interp") {
                return Err(mismatch(format!(
                    "`{prefix}` (layer `{}`) does not follow an upsample",
                    clip(&w.layer.name)
                )));
            }
        }
    }
    Ok(Recognised {
        layout: NcnnLayout::Rrdb { blocks },
        prefixes: plan.into_iter().map(|(prefix, ..)| prefix).collect(),
        metadata: final_resize(path, RRDB, graph)?,
    })
}

/// A convolution's (outputs, inputs) once it is the 3x3, stride-1, padding-1 convolution with
/// bias both networks use (Kiln's burn networks hard-wire that geometry), with a fused
/// activation only where the network has a LeakyReLU(0.2).
fn conv_channels(
    path: &Path,
    arch: &str,
    w: &LayerWeights<'_>,
    leaky_allowed: bool,
) -> Result<(usize, usize), ModelError> {
    let layer = w.layer;
    let shape = match (w.kind, w.tensors.first()) {
        (WeightKind::Convolution, Some((_, weight))) => weight.shape.as_slice(),
        _ => {
            let reason = format!("layer `{}` is where a Convolution belongs", clip(&layer.name));
            return Err(wrong(path, arch, reason));
        }
    };
    let mismatch = |reason: &str| wrong(path, arch, format!("convolution `{}` {reason}", clip(&layer.name)));
    let &[out, inp, 3, 3] = shape else { return Err(mismatch("is not 3x3")) };
    if w.tensors.len() != 2 {
        return Err(mismatch("has no bias"));
    }
    // ncnn defaults: dilation_h = dilation_w, stride_h = stride_w, pad_right = pad_top = pad_left,
    // pad_bottom = pad_top. -233 / -234 are "same" padding, which is 1 for this geometry.
    let int = |id: i32, default: i64| layer.int(id, default);
    let dilation = int(2, 1);
    let stride = int(3, 1);
    let pad_left = int(4, 0);
    let pad_top = int(14, pad_left.unwrap_or(0));
    let geometry = [dilation, int(12, dilation.unwrap_or(1)), stride, int(13, stride.unwrap_or(1))];
    let pads = [pad_left, int(15, pad_left.unwrap_or(0)), pad_top, int(16, pad_top.unwrap_or(0))];
    if geometry.iter().any(|v| *v != Some(1)) {
        return Err(mismatch("has a stride or dilation other than 1"));
    }
    if pads.iter().any(|p| !matches!(p, Some(1 | -233 | -234))) {
        return Err(mismatch("does not pad by 1"));
    }
    let leaky = match layer.params.get(&10) {
        Some(NcnnParam::Floats(params)) => params.first().is_some_and(|s| (*s - LEAKY_SLOPE).abs() < 1e-6),
        _ => false,
    };
    match int(9, 0) {
        Some(0) => Ok((out, inp)),
        Some(2) if leaky_allowed && leaky => Ok((out, inp)),
        _ => Err(mismatch("has a fused activation the network does not have there")),
    }
}

/// Maps each blob written by a Split (which only copies) to the blob it copies.
fn split_roots(graph: &NcnnGraph) -> HashMap<&str, &str> {
    let mut roots: HashMap<&str, &str> = HashMap::new();
    for layer in graph.layers.iter().filter(|layer| layer.kind == "Split") {
        if let Some(input) = layer.inputs.first() {
            let source = root(&roots, input);
            for output in &layer.outputs {
                roots.insert(output.as_str(), source);
            }
        }
    }
    roots
}

fn root<'a>(roots: &HashMap<&'a str, &'a str>, blob: &'a str) -> &'a str {
    roots.get(blob).copied().unwrap_or(blob)
}

/// Real-ESRGAN's x2 and x3 animevideov3 graphs are the x4 network followed by a bicubic
/// downscale (`Interp` 0.5 / 0.75) of its output; the weights cannot say so, so the metadata
/// does: `ncnn.final_resize_scale` and `ncnn.final_resize_mode`.
fn final_resize(path: &Path, arch: &str, graph: &NcnnGraph) -> Result<BTreeMap<String, String>, ModelError> {
    let mut metadata = BTreeMap::new();
    let consumed: HashSet<&str> =
        graph.layers.iter().flat_map(|layer| layer.inputs.iter().map(String::as_str)).collect();
    let last =
        graph.layers.iter().rev().find(|layer| layer.outputs.iter().any(|blob| !consumed.contains(blob.as_str())));
    let Some(interp) = last.filter(|layer| layer.kind == "Interp") else { return Ok(metadata) };
    let mode = match interp.int(0, 0) {
        Some(1) => "nearest",
        Some(2) => "bilinear",
        Some(3) => "bicubic",
        _ => return Err(wrong(path, arch, "the output is resized with an unknown Interp mode".into())),
    };
    let (height, width) = (interp.float(1, 1.0), interp.float(2, 1.0));
    let fixed_size = interp.int(3, 0) != Some(0) || interp.int(4, 0) != Some(0);
    match (height, width) {
        (Some(h), Some(w)) if h == w && h > 0.0 && !fixed_size => {
            metadata.insert(super::ncnn::FINAL_RESIZE_SCALE.to_string(), h.to_string());
            metadata.insert(super::ncnn::FINAL_RESIZE_MODE.to_string(), mode.to_string());
            Ok(metadata)
        }
        _ => Err(wrong(path, arch, "the output is resized, but not by one factor on both axes".into())),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::{Path, PathBuf};

    use super::super::ncnn::{NcnnLayout, TAG_FP16, TAG_FP32, read_parts};
    use crate::error::{ModelError, ModelErrorKind};
    use crate::tensors::{DType, StateDict};

    /// Writes a .param/.bin pair layer by layer, as ncnn's converters do.
    pub(crate) struct Model {
        lines: Vec<String>,
        blobs: usize,
        pub(crate) bin: Vec<u8>,
        /// Where each tensor's data starts in `bin`, in write order.
        pub(crate) offsets: Vec<usize>,
    }

    impl Model {
        /// A graph holding its Input layer, which writes blob `b0`.
        pub(crate) fn new() -> Self {
            let mut model = Self { lines: Vec::new(), blobs: 0, bin: Vec::new(), offsets: Vec::new() };
            model.layer("Input", &[], "");
            model
        }

        /// A layer reading `inputs` and writing `outputs` new blobs, which it returns.
        pub(crate) fn layer_n(&mut self, kind: &str, inputs: &[&str], outputs: usize, params: &str) -> Vec<String> {
            let written: Vec<String> = (self.blobs..self.blobs + outputs).map(|i| format!("b{i}")).collect();
            self.blobs += outputs;
            let (count, reads, writes) = (inputs.len(), inputs.join(" "), written.join(" "));
            self.lines.push(format!("{kind} {kind}_{} {count} {outputs} {reads} {writes} {params}", self.lines.len()));
            written
        }

        pub(crate) fn layer(&mut self, kind: &str, inputs: &[&str], params: &str) -> String {
            self.layer_n(kind, inputs, 1, params).remove(0)
        }

        /// The blob the last layer wrote.
        pub(crate) fn last(&self) -> String {
            format!("b{}", self.blobs - 1)
        }

        fn floats(&mut self, count: usize) {
            self.offsets.push(self.bin.len());
            for i in 0..count {
                self.bin.extend((i as f32 * 0.25).to_le_bytes());
            }
        }

        /// A 3x3 convolution with bias, its weights stored under `tag`; `extra` adds parameters.
        pub(crate) fn conv(&mut self, input: &str, cin: usize, cout: usize, tag: u32, extra: &str) -> String {
            let size = cin * cout * 9;
            self.bin.extend(tag.to_le_bytes());
            if tag == TAG_FP16 {
                self.offsets.push(self.bin.len());
                self.bin.extend(std::iter::repeat_n(0x3c00u16.to_le_bytes(), size).flatten());
                self.bin.resize(self.bin.len().next_multiple_of(4), 0);
            } else {
                self.floats(size);
            }
            self.floats(cout);
            self.layer("Convolution", &[input], &format!("0={cout} 1=3 4=1 5=1 6={size} {extra}"))
        }

        pub(crate) fn prelu(&mut self, input: &str, slopes: usize) -> String {
            self.floats(slopes);
            self.layer("PReLU", &[input], &format!("0={slopes}"))
        }

        pub(crate) fn param(&self) -> String {
            format!("7767517\n{} {}\n{}\n", self.lines.len(), self.blobs, self.lines.join("\n"))
        }

        pub(crate) fn read(&self) -> Result<(StateDict, NcnnLayout), ModelError> {
            read_with(&self.param(), &self.bin)
        }
    }

    pub(crate) fn read_with(param: &str, bin: &[u8]) -> Result<(StateDict, NcnnLayout), ModelError> {
        read_parts(Path::new("m.param"), param, Path::new("m.bin"), bin)
    }

    /// The refused model's file and error.
    pub(crate) fn failure(result: Result<(StateDict, NcnnLayout), ModelError>) -> (PathBuf, ModelErrorKind) {
        let error = result.expect_err("the model should be refused");
        (error.path, error.kind)
    }

    /// A tiny SRVGGNetCompact (num_conv 2, PixelShuffle 2, 5 features, so the fp16 first conv's
    /// 135 weights need padding), its weights under the fp16, fp32 and zero tags.
    pub(crate) fn compact_with(last_out: usize, slopes: usize) -> Model {
        let mut m = Model::new();
        let split = m.layer_n("Split", &["b0"], 2, "");
        let mut x = m.conv(&split[0], 3, 5, TAG_FP16, "");
        for tag in [TAG_FP32, 0] {
            x = m.prelu(&x, slopes);
            x = m.conv(&x, 5, 5, tag, "");
        }
        x = m.prelu(&x, slopes);
        x = m.conv(&x, 5, last_out, TAG_FP16, "");
        let up = m.layer("PixelShuffle", &[x.as_str()], "0=2");
        let base = m.layer("Interp", &[split[1].as_str()], "0=1 1=2.000000e+00 2=2.000000e+00");
        m.layer("BinaryOp", &[up.as_str(), base.as_str()], "0=0");
        m
    }

    pub(crate) fn compact() -> Model {
        compact_with(12, 5)
    }

    #[test]
    fn names_compact_tensors_at_their_offsets() {
        let model = compact();
        let (dict, layout) = model.read().expect("a valid model");
        assert_eq!(layout, NcnnLayout::Compact { num_conv: 2, scale: 2 });
        let names = [
            "body.0.weight",
            "body.0.bias",
            "body.1.weight",
            "body.2.weight",
            "body.2.bias",
            "body.3.weight",
            "body.4.weight",
            "body.4.bias",
            "body.5.weight",
            "body.6.weight",
            "body.6.bias",
        ];
        assert_eq!(dict.tensors.len(), names.len());
        for (name, offset) in names.iter().zip(&model.offsets) {
            assert_eq!(dict.tensors[*name].data.offset, *offset as u64, "{name}");
        }
        let first = &dict.tensors["body.0.weight"];
        assert_eq!((first.dtype, first.shape.as_slice(), first.data.region_len), (DType::F16, &[5, 3, 3, 3][..], 270));
        assert_eq!(first.data.strides, vec![27, 9, 3, 1]);
        // The tag, then 270 bytes of fp16 padded to 272.
        assert_eq!(dict.tensors["body.0.bias"].data.offset, 276);
        assert_eq!(dict.tensors["body.0.bias"].dtype, DType::F32);
        assert_eq!(dict.shape("body.1.weight"), Some(&[5][..]));
        assert_eq!(dict.tensors["body.2.weight"].dtype, DType::F32);
        assert_eq!(dict.tensors["body.4.weight"].dtype, DType::F32);
        let last = &dict.tensors["body.6.weight"];
        assert_eq!((last.dtype, last.shape.as_slice()), (DType::F16, &[12, 5, 3, 3][..]));
        let bias = &dict.tensors["body.6.bias"];
        assert_eq!((bias.data.region_len, bias.data.offset + 48), (48, model.bin.len() as u64));
        assert!(dict.metadata.is_empty());
    }

    const LEAKY: &str = "9=2 -23310=1,2.000000e-01";
    const RESIDUAL: &str = "0=1 -23301=2,2.000000e-01,1.000000e+00";

    /// A tiny RRDBNet (4 features, growth 2) in the order ncnn's converters write
    /// `RRDBNet.forward`: dense blocks of Concat + Convolution, scaled residual Eltwise adds.
    fn rrdb(blocks: usize) -> Model {
        let (feat, grow) = (4, 2);
        let mut m = Model::new();
        let first = m.conv("b0", 3, feat, TAG_FP16, "");
        let mut h = first.clone();
        for _ in 0..blocks {
            let block_in = h.clone();
            for _ in 0..3 {
                let mut feats = vec![h.clone()];
                for k in 0..5 {
                    let reads: Vec<&str> = feats.iter().map(String::as_str).collect();
                    let input = if k == 0 { h.clone() } else { m.layer("Concat", &reads, "") };
                    let (out, act) = if k < 4 { (grow, LEAKY) } else { (feat, "") };
                    let written = m.conv(&input, feat + k * grow, out, TAG_FP16, act);
                    feats.push(written);
                }
                let dense = m.last();
                h = m.layer("Eltwise", &[dense.as_str(), h.as_str()], RESIDUAL);
            }
            h = m.layer("Eltwise", &[h.as_str(), block_in.as_str()], RESIDUAL);
        }
        let body = m.conv(&h, feat, feat, TAG_FP16, "");
        let mut x = m.layer("BinaryOp", &[first.as_str(), body.as_str()], "0=0");
        for _ in 0..2 {
            x = m.layer("Interp", &[x.as_str()], "0=1 1=2.000000e+00 2=2.000000e+00");
            x = m.conv(&x, feat, feat, TAG_FP16, LEAKY);
        }
        x = m.conv(&x, feat, feat, TAG_FP16, LEAKY);
        m.conv(&x, feat, 3, TAG_FP32, "");
        m
    }

    fn wrong_architecture(model: &Model) -> bool {
        matches!(failure(model.read()).1, ModelErrorKind::WrongArchitecture { .. })
    }

    #[test]
    fn names_rrdb_tensors() {
        let model = rrdb(1);
        let (dict, layout) = model.read().expect("a valid model");
        assert_eq!(layout, NcnnLayout::Rrdb { blocks: 1 });
        assert_eq!(dict.tensors.len(), 42);
        let shapes: [(&str, &[usize]); 10] = [
            ("conv_first.weight", &[4, 3, 3, 3]),
            ("body.0.rdb1.conv1.weight", &[2, 4, 3, 3]),
            ("body.0.rdb2.conv4.weight", &[2, 10, 3, 3]),
            ("body.0.rdb3.conv5.weight", &[4, 12, 3, 3]),
            ("body.0.rdb3.conv5.bias", &[4]),
            ("conv_body.weight", &[4, 4, 3, 3]),
            ("conv_up1.weight", &[4, 4, 3, 3]),
            ("conv_up2.bias", &[4]),
            ("conv_hr.weight", &[4, 4, 3, 3]),
            ("conv_last.weight", &[3, 4, 3, 3]),
        ];
        for (name, shape) in shapes {
            assert_eq!(dict.shape(name), Some(shape), "{name}");
        }
        // Write order: conv_first's weight and bias, then the first RDB's conv1.
        assert_eq!(dict.tensors["body.0.rdb1.conv1.weight"].data.offset, model.offsets[2] as u64);
        assert_eq!(dict.tensors["conv_hr.weight"].dtype, DType::F16);
        assert_eq!(dict.tensors["conv_last.weight"].dtype, DType::F32);
        let bias = &dict.tensors["conv_last.bias"];
        assert_eq!(bias.data.offset + bias.data.region_len, model.bin.len() as u64);
    }

    #[test]
    fn counts_rrdb_blocks() {
        let (dict, layout) = rrdb(2).read().expect("a valid model");
        assert_eq!(layout, NcnnLayout::Rrdb { blocks: 2 });
        assert_eq!(dict.shape("body.1.rdb3.conv5.weight"), Some(&[4, 12, 3, 3][..]));
    }

    #[test]
    fn refuses_a_stray_rrdb_convolution() {
        let mut model = rrdb(1);
        let last = model.last();
        model.conv(&last, 3, 3, TAG_FP16, "");
        assert!(wrong_architecture(&model));
    }

    #[test]
    fn refuses_compact_shapes_that_do_not_fit() {
        // 8 outputs are not 3 channels times 2x2; one shared slope is not SRVGG's per-feature PReLU.
        assert!(wrong_architecture(&compact_with(8, 5)));
        assert!(wrong_architecture(&compact_with(12, 1)));
    }

    #[test]
    fn reports_a_final_resize() {
        let mut model = compact();
        let last = model.last();
        model.layer("Interp", &[last.as_str()], "0=3 1=5.000000e-01 2=5.000000e-01");
        let (dict, layout) = model.read().expect("a valid model");
        assert_eq!(layout, NcnnLayout::Compact { num_conv: 2, scale: 2 });
        assert_eq!(dict.metadata.get("ncnn.final_resize_scale").map(String::as_str), Some("0.5"));
        assert_eq!(dict.metadata.get("ncnn.final_resize_mode").map(String::as_str), Some("bicubic"));

        let mut model = compact();
        let last = model.last();
        model.layer("Interp", &[last.as_str()], "0=3 1=5.000000e-01 2=2.500000e-01");
        assert!(wrong_architecture(&model));
    }
}
