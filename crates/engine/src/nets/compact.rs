//! SRVGGNetCompact: Real-ESRGAN's compact network (`realesrgan/archs/srvgg_arch.py`), used by
//! realesr-animevideov3 and realesr-general-x4v3: a plain stack of 3×3 convolutions with
//! per-channel PReLU, a pixel shuffle, and the nearest-upsampled input added back.
//!
//! Field names mirror the checkpoint: `body.0` first conv, `body.1` its PReLU, then conv/PReLU
//! pairs, and the last conv.

use burn::tensor::Tensor;
use burn::tensor::activation::prelu;

use super::layers::{Conv3x3, pixel_shuffle, upsample_nearest};

/// A convolution followed by its PReLU.
#[derive(Debug, Clone)]
pub struct ConvPrelu {
    pub conv: Conv3x3,
    /// Per-channel slopes, `[features]`.
    pub alpha: Tensor<1>,
}

#[derive(Debug, Clone)]
pub struct CompactNet {
    /// The first conv and every body conv, each with its PReLU.
    pub body: Vec<ConvPrelu>,
    /// The last conv, making `out_channels × scale²` channels.
    pub last: Conv3x3,
    pub scale: usize,
}

impl CompactNet {
    /// # Shapes
    /// `[n, c, h, w]` -> `[n, c, h·scale, w·scale]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut out = x.clone();
        for layer in &self.body {
            out = prelu(layer.conv.forward(out), layer.alpha.clone());
        }
        let out = pixel_shuffle(self.last.forward(out), self.scale);
        out + upsample_nearest(x, self.scale)
    }
}
