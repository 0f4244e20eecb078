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
/// The most bytes one tensor of RRDBNet's tail (the last upsampling and the two convolutions
/// after it, at the output's resolution) takes: the tail runs in bands of rows this size, so
/// that a tile is no longer capped by the largest feature map one GPU buffer holds (a 1080p
/// tile's ×4 map is 4.25 GB in f16; wgpu offers 2 GiB, and WebGPU guarantees only 128 MiB, this
/// figure). Bands overlap by [`tail_halo`] rows, recomputed: at 1080p in f16 about half a
/// percent more work for the whole network.
pub const TAIL_BAND_BYTES: usize = 128 << 20;

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
    /// [`TAIL_BAND_BYTES`], smaller in tests.
    tail_band_bytes: usize,
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
            tail_band_bytes: TAIL_BAND_BYTES,
        }
    }

    /// The same network with the tail's bands capped at `bytes` (tests: many small bands).
    pub fn with_tail_band_bytes(self, bytes: usize) -> Self {
        Self { tail_band_bytes: bytes, ..self }
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
        let last_up = self.conv_up.split_last().map(|(last, earlier)| {
            for conv in earlier {
                feat = conv.forward(feat.clone(), ConvOp { upsample: 2, ..op });
            }
            last
        });
        self.tail(feat, last_up, op).permute([0, 3, 1, 2])
    }

    /// Rows of the tail's input (`dims`, NHWC, `elem` bytes a value, upsampled `up` times by
    /// the tail) each band computes, besides its halo rows: as many as keep the band's largest
    /// tensor within `tail_band_bytes`, at least one.
    pub fn tail_band_rows(&self, dims: [usize; 4], elem: usize, up: usize) -> usize {
        let [n, _, w, c] = dims;
        let bytes_per_row = n * w * up * up * c * elem;
        (self.tail_band_bytes / bytes_per_row.max(1)).saturating_sub(2 * tail_halo(up)).max(1)
    }

    /// The last upsampling convolution (if any), `conv_hr` and `conv_last` on `feat` (NHWC), in
    /// bands of rows whose largest tensor stays within `tail_band_bytes`. Each band is computed
    /// with [`tail_halo`] rows of `feat` beyond each cut, and the output rows those rows reach
    /// (padding where the band ends) are dropped, so the result is the unbanded one exactly.
    fn tail(&self, feat: Tensor<4>, last_up: Option<&PackedConv>, op: ConvOp) -> Tensor<4> {
        let run = |band: Tensor<4>| {
            let band = match last_up {
                Some(conv) => conv.forward(band, ConvOp { upsample: 2, ..op }),
                None => band,
            };
            self.conv_last.forward(self.conv_hr.forward(band, op), op)
        };
        let [n, h, w, c] = feat.dims();
        let up = if last_up.is_some() { 2 } else { 1 };
        let halo = tail_halo(up);
        let rows = self.tail_band_rows(feat.dims(), feat.dtype().size(), up);
        if rows >= h {
            return run(feat);
        }
        let bands = (0..h)
            .step_by(rows)
            .map(|top| {
                let bottom = (top + rows).min(h);
                let (from, to) = (top.saturating_sub(halo), (bottom + halo).min(h));
                let out = run(feat.clone().slice([0..n, from..to, 0..w, 0..c]));
                let [_, _, out_w, out_c] = out.dims();
                out.slice([0..n, (top - from) * up..(bottom - from) * up, 0..out_w, 0..out_c])
            })
            .collect();
        Tensor::cat(bands, 1)
    }
}

/// Rows of the tail's input a band reads beyond each of its cuts: its three 3×3 convolutions
/// reach three output rows, which are `up` times smaller in the input.
pub fn tail_halo(up: usize) -> usize {
    3usize.div_ceil(up)
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

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;
    use crate::compute::kernels::tests::on_software_gpu;
    use crate::nets::rrdbnet::Rrdb;

    #[test]
    fn the_banded_tail_gives_the_unbanded_result() {
        on_software_gpu(banded_tail_on);
    }

    fn banded_tail_on(device: &burn::tensor::Device) {
        let device = device.clone();
        let conv = |cin: usize, cout: usize| Conv3x3 {
            weight: Tensor::random([cout, cin, 3, 3], Distribution::Uniform(-0.3, 0.3), &device),
            bias: Tensor::random([cout], Distribution::Uniform(-0.1, 0.1), &device),
        };
        let (f, g) = (8, 4);
        let rdb = || Rdb {
            conv1: conv(f, g),
            conv2: conv(f + g, g),
            conv3: conv(f + 2 * g, g),
            conv4: conv(f + 3 * g, g),
            conv5: conv(f + 4 * g, f),
        };
        let x = Tensor::<4>::random([1, 3, 13, 10], Distribution::Uniform(0.0, 1.0), &device);
        for upsamples in [2, 0] {
            let net = RrdbNet {
                conv_first: conv(3, f),
                body: vec![Rrdb { rdb1: rdb(), rdb2: rdb(), rdb3: rdb() }],
                conv_body: conv(f, f),
                conv_up: (0..upsamples).map(|_| conv(f, f)).collect(),
                conv_hr: conv(f, f),
                conv_last: conv(f, 3),
                pixel_unshuffle: 1,
            };
            let whole = FusedRrdbNet::new(&net, KernelChoice::Best);
            let expected: Vec<f32> = whole.forward(x.clone()).into_data().try_to_vec().unwrap();
            let reference: Vec<f32> = net.forward(x.clone()).into_data().try_to_vec().unwrap();
            let off = expected.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(off < 1e-4, "the fused network is {off} from burn's");
            // The tail's input: 26 rows of 20 at ×2 before the last upsampling, 13 of 10 without.
            let (up, dims) = if upsamples > 0 { (2, [1, 26, 20, f]) } else { (1, [1, 13, 10, f]) };
            let bytes_per_row = dims[2] * up * up * f * 4;
            assert!(whole.tail_band_rows(dims, 4, up) >= dims[1], "the default: one band");
            for rows in [1, 2, 5] {
                let banded = whole.clone().with_tail_band_bytes(bytes_per_row * (rows + 2 * tail_halo(up)));
                assert_eq!(banded.tail_band_rows(dims, 4, up), rows, "the bands the test means to run");
                let ours: Vec<f32> = banded.forward(x.clone()).into_data().try_to_vec().unwrap();
                assert_eq!(ours, expected, "{upsamples} upsamplings, bands of {rows} rows");
            }
        }
    }
}
