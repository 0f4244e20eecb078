//! An upscaler ready to run: a detected ESRGAN-family or compact network with its weights on a
//! burn device, and the resize some files ask for after the network.

use std::path::Path;

use burn::tensor::{Device, FloatDType, Tensor};
use kiln_models::detect::Architecture;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::compact::CompactNet;
use super::fused::{FusedCompactNet, FusedRrdbNet, TAIL_BAND_BYTES};
use super::rrdbnet::RrdbNet;
use super::weights::{self, HostWeights, RrdbShape, WeightReader};
use crate::compute::kernels::{self, KernelChoice};
use crate::error::{ApiError, ErrorCode};

/// Why a file cannot be run as an upscaler.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpscalerError {
    #[error("{0}")]
    Model(String),
    #[error("this model is not an upscaler Kiln runs: {0}")]
    NotAnUpscaler(String),
    #[error("tensor {0} is missing for the detected architecture")]
    Missing(String),
    #[error("tensor {name} has shape {found:?}, the detected architecture needs {expected:?}")]
    WrongShape { name: String, expected: Vec<usize>, found: Vec<usize> },
}

impl UpscalerError {
    pub(crate) fn missing(name: &str) -> Self {
        Self::Missing(name.to_owned())
    }
}

impl From<UpscalerError> for ApiError {
    fn from(error: UpscalerError) -> Self {
        let code = match error {
            UpscalerError::NotAnUpscaler(_) => ErrorCode::Unsupported,
            _ => ErrorCode::InvalidModel,
        };
        ApiError::new(code, error.to_string())
    }
}

/// The dtype weights and activations are kept in on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    /// Half the memory and, where the device has fast f16, several times the speed.
    F16,
}

impl Precision {
    fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::F16 => FloatDType::F16,
        }
    }

    pub fn bytes(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

/// Which implementation runs a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// burn's operations (NCHW): the CPU backend, and the reference in tests.
    Burn,
    /// Kiln's fused NHWC kernels (`compute::kernels`) on GPUs, in the form given.
    Kiln(KernelChoice),
}

impl Kernels {
    /// Kiln's kernels wherever the device runs them.
    pub fn best_for(device: &Device) -> Self {
        if kernels::has_kernels(device) { Self::Kiln(KernelChoice::Best) } else { Self::Burn }
    }
}

/// The network an upscaler runs: burn's operations or Kiln's kernels, for either architecture
/// (boxed: each holds hundreds of bytes of tensor handles).
#[derive(Debug, Clone)]
pub enum Network {
    Rrdb(Box<RrdbNet>),
    Compact(Box<CompactNet>),
    FusedRrdb(Box<FusedRrdbNet>),
    FusedCompact(Box<FusedCompactNet>),
}

/// What the memory estimates need of a network's shape.
#[derive(Debug, Clone, Copy)]
struct NetShape {
    features: u64,
    /// RRDBNet's dense-block growth channels (0 for the compact nets).
    growth: u64,
    unshuffle: u64,
    compact: bool,
}

/// A loaded upscaler.
#[derive(Debug, Clone)]
pub struct Upscaler {
    pub network: Network,
    pub architecture: Architecture,
    /// The network's own scale.
    pub net_scale: usize,
    /// A resize the file asks for after the network (ncnn animevideov3 x2/x3: 0.5, 0.75).
    pub final_resize: Option<f32>,
    pub precision: Precision,
    shape: NetShape,
    device: Device,
}

impl Upscaler {
    /// Reads, identifies and loads an upscaler onto `device` in f32.
    pub fn load(path: &Path, device: &Device) -> Result<Self, UpscalerError> {
        Self::build(&HostWeights::read(path)?, device, Precision::F32)
    }

    /// Uploads host weights to `device` as the network their architecture names, on the
    /// fastest implementation the device has.
    pub fn build(weights: &HostWeights, device: &Device, precision: Precision) -> Result<Self, UpscalerError> {
        Self::build_with(weights, device, precision, Kernels::best_for(device))
    }

    /// [`Upscaler::build`] on the implementation given.
    pub fn build_with(
        weights: &HostWeights,
        device: &Device,
        precision: Precision,
        kernels: Kernels,
    ) -> Result<Self, UpscalerError> {
        let reader = WeightReader::new(weights, device, precision.dtype());
        let architecture = weights.architecture.clone();
        let network = match architecture {
            Architecture::Esrgan {
                layout,
                blocks,
                features,
                growth,
                in_channels,
                out_channels,
                pixel_unshuffle,
                scale,
            } => {
                let upsamples = ((scale * pixel_unshuffle) as f32).log2().round() as usize;
                Network::Rrdb(Box::new(weights::rrdbnet(
                    &reader,
                    RrdbShape {
                        layout,
                        blocks: blocks as usize,
                        features: features as usize,
                        growth: growth as usize,
                        in_channels: in_channels as usize,
                        out_channels: out_channels as usize,
                        upsamples,
                        pixel_unshuffle: pixel_unshuffle as usize,
                    },
                )?))
            }
            Architecture::Compact { scale, num_conv, features, in_channels, .. } => Network::Compact(Box::new(
                weights::compact(&reader, num_conv as usize, features as usize, in_channels as usize, scale as usize)?,
            )),
            ref other => return Err(UpscalerError::NotAnUpscaler(other.label())),
        };
        let (net_scale, shape) = match &network {
            Network::Rrdb(net) => (
                net.scale(),
                NetShape {
                    features: net.conv_first.out_channels() as u64,
                    growth: net.body.first().map_or(0, |b| b.rdb1.conv1.out_channels()) as u64,
                    unshuffle: net.pixel_unshuffle.max(1) as u64,
                    compact: false,
                },
            ),
            Network::Compact(net) => (
                net.scale,
                NetShape {
                    features: net.body.first().map_or(64, |b| b.conv.out_channels()) as u64,
                    growth: 0,
                    unshuffle: 1,
                    compact: true,
                },
            ),
            Network::FusedRrdb(_) | Network::FusedCompact(_) => unreachable!("built below"),
        };
        // The fused networks repack the burn network's weights; the burn tensors are dropped.
        let network = match (kernels, network) {
            (Kernels::Kiln(choice), Network::Rrdb(net)) => {
                Network::FusedRrdb(Box::new(FusedRrdbNet::new(&net, choice)))
            }
            (Kernels::Kiln(choice), Network::Compact(net)) => {
                Network::FusedCompact(Box::new(FusedCompactNet::new(&net, choice)))
            }
            (_, network) => network,
        };
        if matches!(network, Network::FusedRrdb(_) | Network::FusedCompact(_)) {
            // Repacking is queued lazily and holds the burn tensors until it runs: run it now,
            // so the device holds the packed weights only (what the memory ledger counts).
            let _ = device.sync();
        }
        Ok(Self {
            network,
            architecture,
            net_scale,
            final_resize: weights.final_resize,
            precision,
            shape,
            device: device.clone(),
        })
    }

    /// Drops the network's weights and has the device act on it now: burn's fusion frees
    /// tensors lazily, with the next work queued on the device, so without this an unloaded
    /// model's memory would stay in the pools' figures until then.
    pub fn release(self) {
        let device = self.device.clone();
        drop(self);
        let _ = crate::compute::guarded(|| device.flush());
    }

    /// Runs the network on RGB in [0, 1], in the network's precision; the output is f32.
    ///
    /// # Shapes
    /// `[n, 3, h, w]` -> `[n, 3, h·net_scale, w·net_scale]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.cast(self.precision.dtype());
        let out = match &self.network {
            Network::Rrdb(net) => net.forward(x),
            Network::Compact(net) => net.forward(x),
            Network::FusedRrdb(net) => net.forward(x),
            Network::FusedCompact(net) => net.forward(x),
        };
        out.cast(FloatDType::F32)
    }

    /// Device memory one input pixel of a tile needs while the network runs (activations and
    /// workspace), estimated from the network's shape: RRDBNet x4 on burn's operations about 14
    /// KiB per input pixel in f32 (64 features through the blocks, then the 2× and 4× feature
    /// maps), 8 KiB on Kiln's kernels (whose ×4 tail runs in bands of fixed size, see
    /// [`Upscaler::working_bytes_fixed`]), the compact nets about 2 KiB. Out-of-memory retries
    /// cover an estimate that is low.
    pub fn working_bytes_per_pixel(&self) -> u64 {
        let NetShape { features, unshuffle, compact, .. } = self.shape;
        let scale = self.net_scale as u64;
        let values = if compact {
            features * 6 + 12 * scale * scale
        } else {
            // Internal maps are pixel-unshuffled; the upsampling runs at (scale·unshuffle)² the
            // pixels, and whole tiles reach only (scale·unshuffle / 2)² where the last upsampling
            // runs in bands.
            let up = scale * unshuffle;
            let upsampled = if self.banded_tail() { (up / 2) * (up / 2) } else { up * up };
            features * (24 + 2 * upsampled) / (unshuffle * unshuffle)
        };
        values * self.precision.bytes()
    }

    /// Device memory a run needs whatever the tile's size: the bands of RRDBNet's tail on Kiln's
    /// kernels (about three at a time: the upsampled band, `conv_hr`'s, the input's slice).
    pub fn working_bytes_fixed(&self) -> u64 {
        if self.banded_tail() { 3 * TAIL_BAND_BYTES as u64 } else { 0 }
    }

    /// Bytes per input pixel of the largest single tensor the network makes (the RRDBNet's
    /// feature map after the last upsampling on burn's operations, before it on Kiln's kernels,
    /// whose dense blocks' workspace may be larger; the compact net's body): one GPU buffer
    /// holds it, so the device's largest storage binding caps the tile.
    pub fn largest_tensor_bytes_per_pixel(&self) -> u64 {
        let NetShape { features, growth, unshuffle, compact } = self.shape;
        let scale = self.net_scale as u64;
        let values = if compact {
            features.max(3 * scale * scale)
        } else if self.banded_tail() {
            let up = scale * unshuffle;
            // The dense blocks' workspace holds the features and four growths' channels.
            (features + 4 * growth).max(features * (up / 2) * (up / 2)) / (unshuffle * unshuffle)
        } else {
            let up = scale * unshuffle;
            features * up * up / (unshuffle * unshuffle)
        };
        values * self.precision.bytes()
    }

    /// Whether the network runs RRDBNet's tail in bands ([`FusedRrdbNet`]).
    fn banded_tail(&self) -> bool {
        matches!(self.network, Network::FusedRrdb(_))
    }

    /// How many input pixels a tile's sides must be a multiple of (pixel-unshuffle).
    pub fn size_multiple(&self) -> usize {
        self.shape.unshuffle as usize
    }
}
