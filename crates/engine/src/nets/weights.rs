//! Loading upscaler weights from any format `kiln-models` reads into burn tensors.
//!
//! One rule per key layout: Real-ESRGAN's own names are used as they are; BSRGAN's and the
//! original ESRGAN's are mapped onto them. Every tensor's shape is checked against what the
//! detected hyper-parameters need before any is used, so a wrong or damaged file is a typed
//! error naming the tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use kiln_models::detect::{Architecture, EsrganLayout};
use kiln_models::mapped::MappedFile;

use super::compact::{CompactNet, ConvPrelu};
use super::layers::Conv3x3;
use super::rrdbnet::{Rdb, Rrdb, RrdbNet};
use super::upscaler::UpscalerError;

/// One tensor in host memory, as f32.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// An upscaler file's weights in host memory, identified and widened to f32: what the RAM
/// cache holds, and what is uploaded to a device.
#[derive(Debug, Clone)]
pub struct HostWeights {
    pub source: PathBuf,
    pub architecture: Architecture,
    pub tensors: BTreeMap<String, HostTensor>,
    /// A resize the file asks for after the network (ncnn animevideov3 x2/x3: 0.5, 0.75).
    pub final_resize: Option<f32>,
}

impl HostWeights {
    /// Reads and identifies `path`; refuses files that are not upscalers Kiln runs.
    pub fn read(path: &Path) -> Result<Self, UpscalerError> {
        let model = |e: kiln_models::ModelError| UpscalerError::Model(e.to_string());
        let file = kiln_models::formats::read(path).map_err(model)?;
        let architecture = file.declared.clone().unwrap_or_else(|| kiln_models::detect::detect(&file.dict));
        if !matches!(architecture, Architecture::Esrgan { .. } | Architecture::Compact { .. }) {
            return Err(UpscalerError::NotAnUpscaler(architecture.label()));
        }
        let mapped = MappedFile::open(&file.data_path).map_err(model)?;
        let mut tensors = BTreeMap::new();
        for (name, entry) in &file.dict.tensors {
            if !entry.dtype.is_float() {
                continue;
            }
            let values = mapped.tensor_f32(name, entry).map_err(model)?;
            tensors.insert(name.clone(), HostTensor { shape: entry.shape.clone(), values });
        }
        let final_resize =
            file.dict.metadata.get(kiln_models::formats::ncnn::FINAL_RESIZE_SCALE).and_then(|v| v.parse().ok());
        Ok(Self { source: path.to_path_buf(), architecture, tensors, final_resize })
    }

    /// Host bytes the weights take.
    pub fn bytes(&self) -> u64 {
        self.tensors.values().map(|t| t.values.len() as u64 * 4).sum()
    }
}

/// Reads named tensors of host weights onto a device, checking shapes.
pub struct WeightReader<'a> {
    weights: &'a HostWeights,
    device: &'a Device,
    /// The dtype the tensors are stored in on the device.
    dtype: FloatDType,
}

impl<'a> WeightReader<'a> {
    pub fn new(weights: &'a HostWeights, device: &'a Device, dtype: FloatDType) -> Self {
        Self { weights, device, dtype }
    }

    /// The tensor's values as f32, in row-major order.
    pub fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, UpscalerError> {
        let tensor = self.weights.tensors.get(name).ok_or_else(|| UpscalerError::missing(name))?;
        if tensor.shape != shape {
            return Err(UpscalerError::WrongShape {
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: tensor.shape.clone(),
            });
        }
        Ok(tensor.values.clone())
    }

    pub fn tensor4(&self, name: &str, shape: [usize; 4]) -> Result<Tensor<4>, UpscalerError> {
        Ok(Tensor::<4>::from_data(TensorData::new(self.values(name, &shape)?, shape), self.device).cast(self.dtype))
    }

    pub fn tensor1(&self, name: &str, len: usize) -> Result<Tensor<1>, UpscalerError> {
        Ok(Tensor::<1>::from_data(TensorData::new(self.values(name, &[len])?, [len]), self.device).cast(self.dtype))
    }

    /// A 3×3 conv `prefix.weight` / `prefix.bias` of `inputs` -> `outputs` channels.
    pub fn conv(&self, prefix: &str, inputs: usize, outputs: usize) -> Result<Conv3x3, UpscalerError> {
        Ok(Conv3x3 {
            weight: self.tensor4(&format!("{prefix}.weight"), [outputs, inputs, 3, 3])?,
            bias: self.tensor1(&format!("{prefix}.bias"), outputs)?,
        })
    }
}

/// The hyper-parameters RRDBNet is built from (from detection).
#[derive(Debug, Clone, Copy)]
pub struct RrdbShape {
    pub layout: EsrganLayout,
    pub blocks: usize,
    pub features: usize,
    pub growth: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub upsamples: usize,
    pub pixel_unshuffle: usize,
}

/// Where each Real-ESRGAN parameter lives under another layout's names.
struct Names {
    layout: EsrganLayout,
    blocks: usize,
    upsamples: usize,
}

impl Names {
    fn conv_first(&self) -> String {
        match self.layout {
            EsrganLayout::Old => "model.0".into(),
            _ => "conv_first".into(),
        }
    }
    fn rdb_conv(&self, block: usize, rdb: usize, conv: usize) -> String {
        match self.layout {
            EsrganLayout::New => format!("body.{block}.rdb{rdb}.conv{conv}"),
            EsrganLayout::Bsrgan => format!("RRDB_trunk.{block}.RDB{rdb}.conv{conv}"),
            EsrganLayout::Old => format!("model.1.sub.{block}.RDB{rdb}.conv{conv}.0"),
        }
    }
    fn conv_body(&self) -> String {
        match self.layout {
            EsrganLayout::New => "conv_body".into(),
            EsrganLayout::Bsrgan => "trunk_conv".into(),
            // The trunk's last module follows the blocks.
            EsrganLayout::Old => format!("model.1.sub.{}", self.blocks),
        }
    }
    fn conv_up(&self, step: usize) -> String {
        match self.layout {
            EsrganLayout::New => format!("conv_up{step}"),
            EsrganLayout::Bsrgan => format!("upconv{step}"),
            // model: 0 conv, 1 trunk, then (upsample, conv, activation) per step.
            EsrganLayout::Old => format!("model.{}", 3 * step),
        }
    }
    fn conv_hr(&self) -> String {
        match self.layout {
            EsrganLayout::New => "conv_hr".into(),
            EsrganLayout::Bsrgan => "HRconv".into(),
            EsrganLayout::Old => format!("model.{}", 3 * self.upsamples + 2),
        }
    }
    fn conv_last(&self) -> String {
        match self.layout {
            EsrganLayout::Old => format!("model.{}", 3 * self.upsamples + 4),
            _ => "conv_last".into(),
        }
    }
}

pub fn rrdbnet(reader: &WeightReader, s: RrdbShape) -> Result<RrdbNet, UpscalerError> {
    let names = Names { layout: s.layout, blocks: s.blocks, upsamples: s.upsamples };
    let (f, g) = (s.features, s.growth);
    let mut body = Vec::with_capacity(s.blocks);
    for b in 0..s.blocks {
        let rdb = |r: usize| -> Result<Rdb, UpscalerError> {
            Ok(Rdb {
                conv1: reader.conv(&names.rdb_conv(b, r, 1), f, g)?,
                conv2: reader.conv(&names.rdb_conv(b, r, 2), f + g, g)?,
                conv3: reader.conv(&names.rdb_conv(b, r, 3), f + 2 * g, g)?,
                conv4: reader.conv(&names.rdb_conv(b, r, 4), f + 3 * g, g)?,
                conv5: reader.conv(&names.rdb_conv(b, r, 5), f + 4 * g, f)?,
            })
        };
        body.push(Rrdb { rdb1: rdb(1)?, rdb2: rdb(2)?, rdb3: rdb(3)? });
    }
    Ok(RrdbNet {
        conv_first: reader.conv(&names.conv_first(), s.in_channels, f)?,
        body,
        conv_body: reader.conv(&names.conv_body(), f, f)?,
        conv_up: (1..=s.upsamples).map(|i| reader.conv(&names.conv_up(i), f, f)).collect::<Result<_, _>>()?,
        conv_hr: reader.conv(&names.conv_hr(), f, f)?,
        conv_last: reader.conv(&names.conv_last(), f, s.out_channels)?,
        pixel_unshuffle: s.pixel_unshuffle,
    })
}

/// SRVGGNetCompact: `body.0` conv and `body.1` PReLU, conv/PReLU pairs, then the last conv.
pub fn compact(
    reader: &WeightReader,
    num_conv: usize,
    features: usize,
    channels: usize,
    scale: usize,
) -> Result<CompactNet, UpscalerError> {
    let mut body = Vec::with_capacity(num_conv + 1);
    for j in 0..=num_conv {
        let inputs = if j == 0 { channels } else { features };
        body.push(ConvPrelu {
            conv: reader.conv(&format!("body.{}", 2 * j), inputs, features)?,
            alpha: reader.tensor1(&format!("body.{}.weight", 2 * j + 1), features)?,
        });
    }
    let last = reader.conv(&format!("body.{}", 2 * num_conv + 2), features, channels * scale * scale)?;
    Ok(CompactNet { body, last, scale })
}
