//! The upscalers on Kiln's own kernels (`compute::kernels`): NHWC activations, each
//! convolution with its bias, activation and residual fused in, RRDBNet's dense blocks without
//! `cat` and its upsampling read through the next convolution. Built from the burn networks of
//! `rrdbnet.rs` and `compact.rs` (the reference they are tested against), whose weights they
//! repack once.

use burn::tensor::Tensor;

use super::compact::CompactNet;
use super::layers::{Conv3x3, pixel_shuffle, pixel_unshuffle, upsample_nearest};
use super::rrdbnet::{Rdb, RrdbNet};
use crate::compute::kernels::{self, ConvOp, DenseBlock, KernelChoice};

const SLOPE: f32 = 0.2;
const RESIDUAL: f32 = 0.2;

/// A convolution in the kernels' layout, with its per-channel activation slope.
#[derive(Debug, Clone)]
pub struct PackedConv {
    /// `[k²·in, out]`
    pub weight: Tensor<2>,
    pub bias: Tensor<1>,
    /// 1 for none, 0.2 for LeakyReLU, α for PReLU.
    pub slope: Tensor<1>,
}

impl PackedConv {
    fn new(conv: &Conv3x3, slope: Tensor<1>) -> Self {
        Self { weight: kernels::pack_weight(conv.weight.clone()), bias: conv.bias.clone(), slope }
    }

    fn with_constant_slope(conv: &Conv3x3, slope: f32) -> Self {
        let out = conv.out_channels();
        let value = Tensor::<1>::full([out], slope, &conv.bias.device()).cast(conv.bias.dtype());
        Self::new(conv, value)
    }

    fn forward(&self, x: Tensor<4>, op: ConvOp) -> Tensor<4> {
        kernels::conv(x, self.weight.clone(), self.bias.clone(), self.slope.clone(), op)
    }

    fn forward_residual(&self, x: Tensor<4>, residual: Tensor<4>, op: ConvOp) -> Tensor<4> {
        kernels::conv_residual(x, self.weight.clone(), self.bias.clone(), self.slope.clone(), residual, op)
    }
}

/// A residual dense block's five convolutions, flattened one after another.
#[derive(Debug, Clone)]
pub struct PackedDenseBlock {
    pub weights: Tensor<1>,
    pub biases: Tensor<1>,
    pub slopes: Tensor<1>,
    pub block: DenseBlock,
}

impl PackedDenseBlock {
    pub fn new(rdb: &Rdb, choice: KernelChoice) -> Self {
        let convs = [&rdb.conv1, &rdb.conv2, &rdb.conv3, &rdb.conv4, &rdb.conv5];
        let features = rdb.conv5.out_channels();
        let growth = rdb.conv1.out_channels();
        let packed: Vec<PackedConv> = convs
            .iter()
            .enumerate()
            .map(|(k, conv)| PackedConv::with_constant_slope(conv, if k == 4 { 1.0 } else { SLOPE }))
            .collect();
        let flat = |t: Tensor<2>| {
            let n: usize = t.dims().iter().product();
            t.reshape([n])
        };
        Self {
            weights: Tensor::cat(packed.iter().map(|c| flat(c.weight.clone())).collect(), 0),
            biases: Tensor::cat(packed.iter().map(|c| c.bias.clone()).collect(), 0),
            slopes: Tensor::cat(packed.iter().map(|c| c.slope.clone()).collect(), 0),
            block: DenseBlock { features, growth, convs: 5, scale: RESIDUAL, choice },
        }
    }

    /// The block and its scaled residual.
    ///
    /// # Shapes
    /// `[n, h, w, features]` (NHWC) -> the same
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        kernels::dense_block(x, self.weights.clone(), self.biases.clone(), self.slopes.clone(), self.block)
    }
}

/// RRDBNet on Kiln's kernels.
#[derive(Debug, Clone)]
pub struct FusedRrdbNet {
    pub conv_first: PackedConv,
    /// Three dense blocks per RRDB.
    pub body: Vec<[PackedDenseBlock; 3]>,
    pub conv_body: PackedConv,
    pub conv_up: Vec<PackedConv>,
    pub conv_hr: PackedConv,
    pub conv_last: PackedConv,
    pub pixel_unshuffle: usize,
    choice: KernelChoice,
}

impl FusedRrdbNet {
    pub fn new(net: &RrdbNet, choice: KernelChoice) -> Self {
        Self {
            conv_first: PackedConv::with_constant_slope(&net.conv_first, 1.0),
            body: net
                .body
                .iter()
                .map(|b| {
                    [
                        PackedDenseBlock::new(&b.rdb1, choice),
                        PackedDenseBlock::new(&b.rdb2, choice),
                        PackedDenseBlock::new(&b.rdb3, choice),
                    ]
                })
                .collect(),
            conv_body: PackedConv::with_constant_slope(&net.conv_body, 1.0),
            conv_up: net.conv_up.iter().map(|c| PackedConv::with_constant_slope(c, SLOPE)).collect(),
            conv_hr: PackedConv::with_constant_slope(&net.conv_hr, SLOPE),
            conv_last: PackedConv::with_constant_slope(&net.conv_last, 1.0),
            pixel_unshuffle: net.pixel_unshuffle,
            choice,
        }
    }

    /// # Shapes
    /// `[n, c, h, w]` -> `[n, c_out, h·scale, w·scale]` (NCHW at both ends, NHWC inside).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let op = ConvOp { choice: self.choice, ..ConvOp::new(3) };
        let x = if self.pixel_unshuffle > 1 { pixel_unshuffle(x, self.pixel_unshuffle) } else { x };
        let feat = self.conv_first.forward(x.permute([0, 2, 3, 1]), op);
        let mut body = feat.clone();
        for [rdb1, rdb2, rdb3] in &self.body {
            let out = rdb3.forward(rdb2.forward(rdb1.forward(body.clone())));
            body = out.mul_scalar(RESIDUAL) + body;
        }
        let mut feat = self.conv_body.forward_residual(body, feat, op);
        for conv in &self.conv_up {
            feat = conv.forward(feat, ConvOp { upsample: 2, ..op });
        }
        let out = self.conv_last.forward(self.conv_hr.forward(feat, op), op);
        out.permute([0, 3, 1, 2])
    }
}

/// SRVGGNetCompact on Kiln's kernels.
#[derive(Debug, Clone)]
pub struct FusedCompactNet {
    pub body: Vec<PackedConv>,
    pub last: PackedConv,
    pub scale: usize,
    choice: KernelChoice,
}

impl FusedCompactNet {
    pub fn new(net: &CompactNet, choice: KernelChoice) -> Self {
        Self {
            body: net.body.iter().map(|l| PackedConv::new(&l.conv, l.alpha.clone())).collect(),
            last: PackedConv::with_constant_slope(&net.last, 1.0),
            scale: net.scale,
            choice,
        }
    }

    /// # Shapes
    /// `[n, c, h, w]` -> `[n, c, h·scale, w·scale]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let op = ConvOp { choice: self.choice, ..ConvOp::new(3) };
        let mut out = x.clone().permute([0, 2, 3, 1]);
        for conv in &self.body {
            out = conv.forward(out, op);
        }
        let out = self.last.forward(out, op).permute([0, 3, 1, 2]);
        pixel_shuffle(out, self.scale) + upsample_nearest(x, self.scale)
    }
}
