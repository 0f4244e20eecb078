//! Kiln's convolution kernels (cubecl): 3×3 and 1×1, stride 1, "same" padding, on NHWC
//! activations, as an implicit GEMM (rows: output pixels; columns: output channels; depth: the
//! taps × input channels), accumulating in f32 whatever the storage type.
//!
//! Two forms share one host interface ([`launch`]):
//! - **cooperative matrices** (`cmma`, tensor cores) where the device offers 16×16×16 f16
//!   fragments with f32 accumulators and 32-wide planes: 128×bn tiles, warps of 32×32;
//! - **a register-tiled fallback** everywhere else (f32, lavapipe, Metal and DX12 without
//!   cooperative matrices): 64×bn tiles staged in shared memory, 4×4 outputs per thread.
//!
//! What makes them Kiln's rather than a generic convolution is the epilogue and the
//! addressing, fused so that no extra pass over the activations is needed:
//! `out = act(conv + bias) · scale + residual`, where `act` is a per-channel leaky ReLU (slope
//! 1 = none, 0.2 = LeakyReLU, PReLU's α); the input may be read through a nearest ×2 upsampling
//! (RRDBNet's `conv_up`, without materialising the 4× larger map); and input and output are
//! addressed with a pixel stride and channel offset, so a dense block's convolutions read a
//! channel prefix of one workspace and write their growth channels into it (no `cat`).

use burn::cubecl;
use burn::cubecl::client::Client;
use burn::cubecl::prelude::*;
use burn::cubecl::{cmma, server::Handle};

/// Where a convolution reads and writes, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    /// The input as stored (before the fused upsampling).
    pub in_height: usize,
    pub in_width: usize,
    pub in_channels: usize,
    /// Elements between neighbouring pixels of the input (≥ `in_channels`).
    pub in_stride: usize,
    pub out_channels: usize,
    pub out_stride: usize,
    /// The output's first channel inside each pixel.
    pub out_offset: usize,
    /// 1 or 2: nearest upsampling of the input before the convolution.
    pub upsample: usize,
    /// 3 or 1.
    pub kernel: usize,
}

impl ConvGeometry {
    pub fn out_height(&self) -> usize {
        self.in_height * self.upsample
    }

    pub fn out_width(&self) -> usize {
        self.in_width * self.upsample
    }

    pub fn pixels(&self) -> usize {
        self.batch * self.out_height() * self.out_width()
    }

    /// Multiply-adds ×2.
    pub fn flops(&self) -> f64 {
        2.0 * (self.pixels() * self.kernel * self.kernel * self.in_channels * self.out_channels) as f64
    }
}

/// The buffers of one launch; `weight` is `[kernel²·in_channels, out_channels]` (tap-major,
/// then input channel), starting at `weight_offset`; `bias` and `slope` have `out_channels`
/// values from `bias_offset`.
pub struct ConvBuffers {
    pub input: Handle,
    pub input_len: usize,
    pub weight: Handle,
    pub weight_len: usize,
    pub weight_offset: usize,
    pub bias: Handle,
    pub slope: Handle,
    pub vector_len: usize,
    pub bias_offset: usize,
    /// `(buffer, len, pixel stride)`, added after scaling.
    pub residual: Option<(Handle, usize, usize)>,
    pub output: Handle,
    pub output_len: usize,
}

/// Which kernel form runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    Tiled,
    Cmma,
}

impl ConvKernel {
    /// The fastest form `client` can run for `dtype`.
    pub fn best(client: &Client, half: bool) -> Self {
        if half && supports_cmma(client) { Self::Cmma } else { Self::Tiled }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Tiled => "kiln_tiled",
            Self::Cmma => "kiln_cmma",
        }
    }
}

/// f16 × f16 → f32 16×16×16 cooperative matrices on 32-wide planes.
pub fn supports_cmma(client: &Client) -> bool {
    use burn::cubecl::ir::features::MmaConfig;
    let hardware = &client.properties().hardware;
    let config = MmaConfig {
        a_type: half::f16::cube_type(),
        b_type: half::f16::cube_type(),
        cd_type: f32::cube_type(),
        m: 16,
        n: 16,
        k: 16,
    };
    hardware.plane_size_min == 32
        && hardware.plane_size_max == 32
        && hardware.max_shared_memory_size >= CMMA_SHARED_BYTES
        && client.features().matmul.cmma.contains(&config)
}

const CMMA_BM: usize = 128;
const CMMA_BK: usize = 32;
/// A and B stages in f16, the f32 epilogue tile for the widest block.
const CMMA_SHARED_BYTES: usize = (CMMA_BM * CMMA_BK + CMMA_BK * 64) * 2 + CMMA_BM * 64 * 4;
const TILED_BM: usize = 64;
const TILED_BK: usize = 16;

/// Launches one convolution on `client`, in `F` (f32 or f16 storage).
pub fn launch<F: Float + CubeElement>(
    client: &Client,
    kernel: ConvKernel,
    geometry: &ConvGeometry,
    buffers: ConvBuffers,
    scale: f32,
) {
    let g = geometry;
    assert!(g.kernel == 1 || g.kernel == 3, "only 1×1 and 3×3 convolutions");
    assert!(g.upsample == 1 || g.upsample == 2, "upsampling by 1 or 2");
    let bn = if g.out_channels <= 32 { 32 } else { 64 };
    let (residual, residual_len, residual_stride, has_residual) = match buffers.residual {
        Some((handle, len, stride)) => (handle, len, stride, true),
        // Not read: `has_residual` is false at compile time.
        None => (buffers.bias.clone(), buffers.vector_len, 0, false),
    };
    let args = (
        g.pixels() as u32,
        g.out_height() as u32,
        g.out_width() as u32,
        g.in_height as u32,
        g.in_width as u32,
        g.in_channels as u32,
        g.in_stride as u32,
        g.out_channels as u32,
        g.out_stride as u32,
        g.out_offset as u32,
        residual_stride as u32,
        buffers.weight_offset as u32,
        buffers.bias_offset as u32,
    );
    let bm = match kernel {
        ConvKernel::Tiled => TILED_BM,
        ConvKernel::Cmma => CMMA_BM,
    };
    let count = CubeCount::Static(g.pixels().div_ceil(bm) as u32, g.out_channels.div_ceil(bn) as u32, 1);
    unsafe {
        let input = BufferArg::from_raw_parts(buffers.input, buffers.input_len);
        let weight = BufferArg::from_raw_parts(buffers.weight, buffers.weight_len);
        let bias = BufferArg::from_raw_parts(buffers.bias, buffers.vector_len);
        let slope = BufferArg::from_raw_parts(buffers.slope, buffers.vector_len);
        let residual = BufferArg::from_raw_parts(residual, residual_len);
        let output = BufferArg::from_raw_parts(buffers.output, buffers.output_len);
        let shape = ConvShapeLaunch::new(
            args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8, args.9, args.10, args.11, args.12,
            scale,
        );
        match kernel {
            ConvKernel::Tiled => conv_tiled::launch::<F>(
                client,
                count,
                CubeDim::new_1d(((TILED_BM / 4) * (bn / 4)) as u32),
                input,
                weight,
                bias,
                slope,
                residual,
                output,
                shape,
                g.kernel as u32,
                g.upsample as u32,
                has_residual,
                bn as u32,
            ),
            ConvKernel::Cmma => conv_cmma::launch::<F>(
                client,
                count,
                CubeDim::new_2d(32, ((CMMA_BM / 32) * (bn / 32)) as u32),
                input,
                weight,
                bias,
                slope,
                residual,
                output,
                shape,
                g.kernel as u32,
                g.upsample as u32,
                has_residual,
                bn as u32,
            ),
        }
    }
}

/// The runtime part of a launch (see [`ConvGeometry`]).
#[derive(CubeLaunch, CubeType, Clone, Copy)]
pub struct ConvShape {
    pixels: u32,
    height: u32,
    width: u32,
    in_height: u32,
    in_width: u32,
    in_channels: u32,
    in_stride: u32,
    out_channels: u32,
    out_stride: u32,
    out_offset: u32,
    residual_stride: u32,
    weight_offset: u32,
    bias_offset: u32,
    scale: f32,
}

/// The output pixels whose input rows one thread stages: `slots` rows `step` apart from
/// `first`, decoded once into image, row and column (rows past the end are marked invalid).
#[derive(CubeType)]
struct Rows {
    image: Array<u32>,
    y: Array<i32>,
    x: Array<i32>,
    valid: Array<bool>,
}

#[cube]
fn decode_rows(shape: &ConvShape, first: u32, step: u32, #[comptime] slots: u32) -> Rows {
    let mut rows = Rows {
        image: Array::new(comptime!(slots as usize)),
        y: Array::new(comptime!(slots as usize)),
        x: Array::new(comptime!(slots as usize)),
        valid: Array::new(comptime!(slots as usize)),
    };
    let plane = shape.height * shape.width;
    #[unroll]
    for j in 0..slots {
        let pixel = first + j * step;
        let b = pixel / plane;
        let rest = pixel - b * plane;
        let y = rest / shape.width;
        rows.image[j as usize] = b * shape.in_height;
        rows.y[j as usize] = y as i32;
        rows.x[j as usize] = (rest - y * shape.width) as i32;
        rows.valid[j as usize] = pixel < shape.pixels;
    }
    rows
}

/// The input element row `j` of `rows` reads at offset (`dy`, `dx`) and `channel`, or -1
/// outside the image (zero padding).
#[cube]
fn input_index(
    shape: &ConvShape,
    rows: &Rows,
    j: u32,
    dy: i32,
    dx: i32,
    channel: u32,
    #[comptime] upsample: u32,
) -> i32 {
    let iy = rows.y[j as usize] + dy;
    let ix = rows.x[j as usize] + dx;
    let inside = rows.valid[j as usize]
        && channel < shape.in_channels
        && iy >= 0
        && ix >= 0
        && iy < shape.height as i32
        && ix < shape.width as i32;
    let sy = iy as u32 / upsample;
    let sx = ix as u32 / upsample;
    let index = ((rows.image[j as usize] + sy) * shape.in_width + sx) * shape.in_stride + channel;
    select(inside, index as i32, -1i32)
}

/// The epilogue for one output value `acc` (the raw sum) at `pixel`, `channel`.
#[cube]
fn write_output<F: Float>(
    output: &mut [F],
    bias: &[F],
    slope: &[F],
    residual: &[F],
    shape: &ConvShape,
    pixel: u32,
    channel: u32,
    acc: f32,
    #[comptime] has_residual: bool,
) {
    if pixel < shape.pixels && channel < shape.out_channels {
        let at = (shape.bias_offset + channel) as usize;
        let mut v = acc + f32::cast_from(bias[at]);
        if v < 0.0 {
            v *= f32::cast_from(slope[at]);
        }
        if comptime!(has_residual) {
            v = v * shape.scale + f32::cast_from(residual[(pixel * shape.residual_stride + channel) as usize]);
        } else {
            v *= shape.scale;
        }
        output[(pixel * shape.out_stride + shape.out_offset + channel) as usize] = F::cast_from(v);
    }
}

/// Register-tiled implicit GEMM: a 64-pixel × `bn`-channel block per cube, 16 deep per stage,
/// each thread 4 pixels × 4 channels.
#[cube(launch)]
fn conv_tiled<F: Float>(
    input: &[F],
    weight: &[F],
    bias: &[F],
    slope: &[F],
    residual: &[F],
    output: &mut [F],
    shape: ConvShape,
    #[comptime] kernel: u32,
    #[comptime] upsample: u32,
    #[comptime] has_residual: bool,
    #[comptime] bn: u32,
) {
    let bm = comptime!(TILED_BM as u32);
    let bk = comptime!(TILED_BK as u32);
    let threads = comptime!((TILED_BM as u32 / 4) * (bn / 4));
    let mut a_tile = Shared::<[f32]>::new_slice(comptime!((bm * bk) as usize));
    let mut b_tile = Shared::<[f32]>::new_slice(comptime!((bk * bn) as usize));

    let m0 = CUBE_POS_X * bm;
    let n0 = CUBE_POS_Y * bn;
    let tx = UNIT_POS % comptime!(bn / 4);
    let ty = UNIT_POS / comptime!(bn / 4);

    let mut acc = Array::<f32>::new(16usize);
    #[unroll]
    for i in 0..16usize {
        acc[i] = 0.0;
    }

    // Each thread stages the same input channel of `slots` rows, `threads / bk` rows apart.
    let slots = comptime!(bm * bk / threads);
    let kk_a = UNIT_POS % bk;
    let rows = decode_rows(&shape, m0 + UNIT_POS / bk, comptime!(threads / bk), slots);
    let taps = comptime!(kernel * kernel);
    let half_k = comptime!((kernel / 2) as i32);
    for tap in 0..taps {
        let dy = (tap / kernel) as i32 - half_k;
        let dx = (tap % kernel) as i32 - half_k;
        let mut c0 = 0u32;
        while c0 < shape.in_channels {
            // Stage A: bm × bk input values of this tap.
            #[unroll]
            for j in 0..slots {
                let at = input_index(&shape, &rows, j, dy, dx, c0 + kk_a, upsample);
                let mut v = 0.0f32;
                if at >= 0 {
                    v = f32::cast_from(input[at as usize]);
                }
                a_tile[((UNIT_POS / bk + j * comptime!(threads / bk)) * bk + kk_a) as usize] = v;
            }
            // Stage B: bk × bn weights.
            let mut e = UNIT_POS;
            while e < comptime!(bk * bn) {
                let kk = e / bn;
                let n = e % bn;
                let mut v = 0.0f32;
                if c0 + kk < shape.in_channels && n0 + n < shape.out_channels {
                    let row = tap * shape.in_channels + c0 + kk;
                    v = f32::cast_from(weight[(shape.weight_offset + row * shape.out_channels + n0 + n) as usize]);
                }
                b_tile[e as usize] = v;
                e += threads;
            }
            sync_cube();
            #[unroll]
            for kk in 0..bk {
                let mut a = Array::<f32>::new(4usize);
                let mut b = Array::<f32>::new(4usize);
                #[unroll]
                for i in 0..4u32 {
                    a[i as usize] = a_tile[((ty * 4 + i) * bk + kk) as usize];
                    b[i as usize] = b_tile[(kk * bn + tx * 4 + i) as usize];
                }
                #[unroll]
                for i in 0..4usize {
                    #[unroll]
                    for j in 0..4usize {
                        acc[i * 4 + j] += a[i] * b[j];
                    }
                }
            }
            sync_cube();
            c0 += bk;
        }
    }

    #[unroll]
    for i in 0..4u32 {
        #[unroll]
        for j in 0..4u32 {
            write_output::<F>(
                output,
                bias,
                slope,
                residual,
                &shape,
                m0 + ty * 4 + i,
                n0 + tx * 4 + j,
                acc[(i * 4 + j) as usize],
                has_residual,
            );
        }
    }
}

/// Tensor-core implicit GEMM: a 128-pixel × `bn`-channel block per cube, 32 deep per stage;
/// each plane (warp) owns 32×32 outputs as four 16×16 f32 accumulators.
#[cube(launch)]
fn conv_cmma<F: Float>(
    input: &[F],
    weight: &[F],
    bias: &[F],
    slope: &[F],
    residual: &[F],
    output: &mut [F],
    shape: ConvShape,
    #[comptime] kernel: u32,
    #[comptime] upsample: u32,
    #[comptime] has_residual: bool,
    #[comptime] bn: u32,
) {
    let bm = comptime!(CMMA_BM as u32);
    let bk = comptime!(CMMA_BK as u32);
    let warps_n = comptime!(bn / 32);
    let threads = comptime!(32 * (CMMA_BM as u32 / 32) * (bn / 32));
    let mut a_tile = Shared::<[F]>::new_slice(comptime!((bm * bk) as usize));
    let mut b_tile = Shared::<[F]>::new_slice(comptime!((bk * bn) as usize));
    let mut c_tile = Shared::<[f32]>::new_slice(comptime!((bm * bn) as usize));

    let m0 = CUBE_POS_X * bm;
    let n0 = CUBE_POS_Y * bn;
    let unit = UNIT_POS_Y * 32 + UNIT_POS_X;
    let warp_m = UNIT_POS_Y / warps_n;
    let warp_n = UNIT_POS_Y % warps_n;

    let c00 = cmma::Matrix::<f32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0.0,
    );
    let c01 = cmma::Matrix::<f32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0.0,
    );
    let c10 = cmma::Matrix::<f32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0.0,
    );
    let c11 = cmma::Matrix::<f32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0.0,
    );

    let slots = comptime!(bm * bk / threads);
    let kk_a = unit % bk;
    let rows = decode_rows(&shape, m0 + unit / bk, comptime!(threads / bk), slots);
    let taps = comptime!(kernel * kernel);
    let half_k = comptime!((kernel / 2) as i32);
    for tap in 0..taps {
        let dy = (tap / kernel) as i32 - half_k;
        let dx = (tap % kernel) as i32 - half_k;
        let mut c0 = 0u32;
        while c0 < shape.in_channels {
            #[unroll]
            for j in 0..slots {
                let at = input_index(&shape, &rows, j, dy, dx, c0 + kk_a, upsample);
                let mut v = F::new(0.0);
                if at >= 0 {
                    v = input[at as usize];
                }
                a_tile[((unit / bk + j * comptime!(threads / bk)) * bk + kk_a) as usize] = v;
            }
            let mut e = unit;
            while e < comptime!(bk * bn) {
                let kk = e / bn;
                let n = e % bn;
                let mut v = F::new(0.0);
                if c0 + kk < shape.in_channels && n0 + n < shape.out_channels {
                    let row = tap * shape.in_channels + c0 + kk;
                    v = weight[(shape.weight_offset + row * shape.out_channels + n0 + n) as usize];
                }
                b_tile[e as usize] = v;
                e += threads;
            }
            sync_cube();
            #[unroll]
            for k16 in 0..comptime!(bk / 16) {
                let a_start = (warp_m * 32 * bk + k16 * 16) as usize;
                let b_start = (k16 * 16 * bn + warp_n * 32) as usize;
                let a0 = cmma::Matrix::<F>::from_slice(
                    cmma::MatrixIdent::A,
                    16usize,
                    16usize,
                    16usize,
                    cmma::MatrixLayout::RowMajor,
                    &a_tile[a_start..a_start + comptime!((16 * bk) as usize)],
                    bk,
                );
                let a1 = cmma::Matrix::<F>::from_slice(
                    cmma::MatrixIdent::A,
                    16usize,
                    16usize,
                    16usize,
                    cmma::MatrixLayout::RowMajor,
                    &a_tile[a_start + comptime!((16 * bk) as usize)..a_start + comptime!((32 * bk) as usize)],
                    bk,
                );
                let b0 = cmma::Matrix::<F>::from_slice(
                    cmma::MatrixIdent::B,
                    16usize,
                    16usize,
                    16usize,
                    cmma::MatrixLayout::RowMajor,
                    &b_tile[b_start..b_start + comptime!((16 * bn) as usize)],
                    bn,
                );
                let b1 = cmma::Matrix::<F>::from_slice(
                    cmma::MatrixIdent::B,
                    16usize,
                    16usize,
                    16usize,
                    cmma::MatrixLayout::RowMajor,
                    &b_tile[b_start + 16..b_start + 16 + comptime!((16 * bn) as usize)],
                    bn,
                );
                cmma::execute(&a0, &b0, &c00, &c00);
                cmma::execute(&a0, &b1, &c01, &c01);
                cmma::execute(&a1, &b0, &c10, &c10);
                cmma::execute(&a1, &b1, &c11, &c11);
            }
            sync_cube();
            c0 += bk;
        }
    }

    // Accumulators to shared memory, then the epilogue with every thread.
    let c_start = (warp_m * 32 * bn + warp_n * 32) as usize;
    let row16 = comptime!((16 * bn) as usize);
    cmma::store(&mut c_tile[c_start..c_start + row16], &c00, bn, cmma::MatrixLayout::RowMajor);
    cmma::store(&mut c_tile[c_start + 16..c_start + 16 + row16], &c01, bn, cmma::MatrixLayout::RowMajor);
    cmma::store(&mut c_tile[c_start + row16..c_start + 2 * row16], &c10, bn, cmma::MatrixLayout::RowMajor);
    cmma::store(&mut c_tile[c_start + row16 + 16..c_start + 16 + 2 * row16], &c11, bn, cmma::MatrixLayout::RowMajor);
    sync_cube();
    let mut e = unit;
    while e < comptime!(bm * bn) {
        let m = e / bn;
        let n = e % bn;
        write_output::<F>(output, bias, slope, residual, &shape, m0 + m, n0 + n, c_tile[e as usize], has_residual);
        e += threads;
    }
}
