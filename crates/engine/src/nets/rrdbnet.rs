//! RRDBNet: ESRGAN (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
//! Networks", ECCV 2018 workshops), as Real-ESRGAN and BasicSR define it in
//! `basicsr/archs/rrdbnet_arch.py`; BSRGAN and the original ESRGAN use the same network under
//! other key names (remapped in `weights.rs`).
//!
//! Field names mirror the Real-ESRGAN checkpoint keys (`conv_first`, `body.N.rdbM.convK`,
//! `conv_body`, `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`).

use burn::tensor::Tensor;
use burn::tensor::activation::leaky_relu;

use super::layers::{Conv3x3, pixel_unshuffle, upsample_nearest};

const SLOPE: f64 = 0.2;
/// Residual scaling inside dense blocks and around each RRDB.
const RESIDUAL: f64 = 0.2;

/// A residual dense block: five convolutions, each seeing every earlier output.
#[derive(Debug, Clone)]
pub struct Rdb {
    pub conv1: Conv3x3,
    pub conv2: Conv3x3,
    pub conv3: Conv3x3,
    pub conv4: Conv3x3,
    pub conv5: Conv3x3,
}

impl Rdb {
    /// # Shapes
    /// `[n, features, h, w]` -> same
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x1 = leaky_relu(self.conv1.forward(x.clone()), SLOPE);
        let x2 = leaky_relu(self.conv2.forward(Tensor::cat(vec![x.clone(), x1.clone()], 1)), SLOPE);
        let x3 = leaky_relu(self.conv3.forward(Tensor::cat(vec![x.clone(), x1.clone(), x2.clone()], 1)), SLOPE);
        let x4 =
            leaky_relu(self.conv4.forward(Tensor::cat(vec![x.clone(), x1.clone(), x2.clone(), x3.clone()], 1)), SLOPE);
        let x5 = self.conv5.forward(Tensor::cat(vec![x.clone(), x1, x2, x3, x4], 1));
        x5.mul_scalar(RESIDUAL) + x
    }
}

/// Residual-in-residual dense block: three dense blocks and a scaled skip.
#[derive(Debug, Clone)]
pub struct Rrdb {
    pub rdb1: Rdb,
    pub rdb2: Rdb,
    pub rdb3: Rdb,
}

impl Rrdb {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.rdb3.forward(self.rdb2.forward(self.rdb1.forward(x.clone())));
        out.mul_scalar(RESIDUAL) + x
    }
}

/// The whole network.
#[derive(Debug, Clone)]
pub struct RrdbNet {
    pub conv_first: Conv3x3,
    pub body: Vec<Rrdb>,
    pub conv_body: Conv3x3,
    /// One per ×2 nearest-upsampling step (two for Real-ESRGAN's ×4, ×2 and ×1 models).
    pub conv_up: Vec<Conv3x3>,
    pub conv_hr: Conv3x3,
    pub conv_last: Conv3x3,
    /// Input pixel-unshuffle factor: 2 for ×2 models, 4 for ×1, 1 otherwise.
    pub pixel_unshuffle: usize,
}

impl RrdbNet {
    /// The output/input size ratio.
    pub fn scale(&self) -> usize {
        (1 << self.conv_up.len()) / self.pixel_unshuffle
    }

    /// # Shapes
    /// `[n, c, h, w]` -> `[n, c_out, h·scale, w·scale]`; `h` and `w` must be multiples of the
    /// pixel-unshuffle factor.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // 1. Pixel-unshuffle (×2 and ×1 models trade resolution for channels first).
        let x = if self.pixel_unshuffle > 1 { pixel_unshuffle(x, self.pixel_unshuffle) } else { x };
        // 2. Trunk: features, the RRDB chain, a residual around it.
        let feat = self.conv_first.forward(x);
        let mut body = feat.clone();
        for block in &self.body {
            body = block.forward(body);
        }
        let mut feat = feat + self.conv_body.forward(body);
        // 3. Upsampling: nearest ×2, conv, LeakyReLU per step.
        for conv in &self.conv_up {
            feat = leaky_relu(conv.forward(upsample_nearest(feat, 2)), SLOPE);
        }
        // 4. Reconstruction.
        self.conv_last.forward(leaky_relu(self.conv_hr.forward(feat), SLOPE))
    }
}
