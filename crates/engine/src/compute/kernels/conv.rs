//! Kiln's convolution kernels (cubecl): 3×3 and 1×1, stride 1, "same" padding, on NHWC
//! activations, as an implicit GEMM (rows: output pixels; columns: output channels; depth: the
//! taps × input channels), accumulating in f32 whatever the storage type.
//!
//! Two forms share one host interface ([`launch`]):
//! - **cooperative matrices** (`cmma`, tensor cores) where the device offers 16×16×16 f16
//!   fragments with f32 accumulators and 32-wide planes: blocks of 8 output rows × 32 columns
//!   × 64 channels (16 rows for 32 channels), whose input halo each stage loads once for all
//!   nine taps, the next stage's loads in flight while this stage's MMAs run; each plane owns 4
//!   rows × 16 columns × 32 channels and reads each halo row's fragment once for every tap row
//!   that needs it;
//! - **a register-tiled fallback** everywhere else (f32, lavapipe, Metal and DX12 without
//!   cooperative matrices): 64 pixels × 32 or 64 channels a block, staged in shared memory,
//!   4×4 outputs per thread.
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
}

/// The buffers of one launch; `weight` is `[kernel²·in_channels, padded(out_channels)]`
/// (tap-major, then input channel; see [`padded`]), starting at `weight_offset`; `bias` and
/// `slope` have `out_channels` values from `bias_offset`; lengths are in elements.
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

/// Weight rows are padded with zero columns to a multiple of 8 output channels, so that every
/// row starts on a 16-byte boundary in f16 and loads of 8 never straddle two rows.
pub fn padded(out_channels: usize) -> usize {
    out_channels.div_ceil(8) * 8
}

/// Which kernel form runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    Tiled,
    Cmma(CmmaBlock),
}

impl ConvKernel {
    /// The fastest form `client` runs, for f16 (`half`) or f32 storage.
    pub fn best(client: &Client, half: bool) -> Self {
        if half && supports_cmma(client) { Self::Cmma(CmmaBlock::BEST) } else { Self::Tiled }
    }
}

/// The tensor-core kernel's block shape: 8 rows × 32 columns × 64 channels where there are more
/// than 32 output channels, else 16 rows × 32 columns × 32 channels; input channels staged 16
/// at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CmmaBlock {
    /// 32-channel blocks whatever the output count.
    pub narrow: bool,
    /// Planes (warps) a block: 8, each with eight 16×16 accumulators, or 4 with sixteen (each
    /// weight fragment read from shared memory then feeds four MMAs instead of two).
    pub planes: usize,
    /// The next stage's loads held in registers while this stage's MMAs run (else a block
    /// waits for its loads, and other blocks on the multiprocessor fill the time).
    pub prefetch: bool,
    /// Each of eight planes owns 4 rows × 16 columns × 32 channels instead of whole rows × 32
    /// columns × the block's channels: one fragment of a halo row then feeds the rows of up to
    /// three taps (the same input pixels sit under tap `ky` of output row `r` and tap `ky + 1`
    /// of row `r - 1`), so a plane reads 36 fragments from shared memory a stage for its 72
    /// MMAs instead of 54.
    pub stacked: bool,
}

impl CmmaBlock {
    /// The shape Kiln runs (measured fastest on the H200: see docs/performance.md).
    pub const BEST: Self = Self { narrow: false, planes: 8, prefetch: true, stacked: true };
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

/// Output rows of a tensor-core block with 64 and with 32 channels.
const CMMA_ROWS: usize = 8;
const CMMA_NARROW_ROWS: usize = 16;
const CMMA_COLS: usize = 32;
const CMMA_BK: usize = 16;
/// Shared-memory rows are padded by 8 halves (16 bytes) so that the 16 rows a fragment load
/// reads fall in different banks.
const CMMA_PAD: usize = 8;
/// Shared memory of a block of `rows` × `bn` channels on `planes` planes: the input halo and
/// all nine taps' weights of a stage in f16, a 16×16 f32 tile per plane.
const fn cmma_shared_bytes(rows: usize, bn: usize, planes: usize) -> usize {
    ((rows + 2) * (CMMA_COLS + 2) * (CMMA_BK + CMMA_PAD) + 9 * CMMA_BK * (bn + CMMA_PAD)) * 2 + planes * 256 * 4
}
/// The largest of the block shapes' (49 088 bytes, eight planes of 64 channels: under the
/// 48 KiB Vulkan devices offer).
const CMMA_SHARED_BYTES: usize = {
    let (wide, narrow) = (cmma_shared_bytes(CMMA_ROWS, 64, 8), cmma_shared_bytes(CMMA_NARROW_ROWS, 32, 8));
    if wide > narrow { wide } else { narrow }
};
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
    let narrow = matches!(kernel, ConvKernel::Cmma(block) if block.narrow);
    let bn = if g.out_channels <= 32 || narrow { 32 } else { 64 };
    // 32-channel blocks take twice the rows, so that as many planes share each stage's weights
    // (x4plus's dense-block convolutions: 27 % less network time than 8-row blocks on the H200).
    let rows = if bn == 32 { CMMA_NARROW_ROWS } else { CMMA_ROWS };
    let (residual, residual_len, residual_stride, has_residual) = match buffers.residual {
        Some((handle, len, stride)) => (handle, len, stride, true),
        // Not read: `has_residual` is false at compile time.
        None => (buffers.bias.clone(), buffers.vector_len, 0, false),
    };
    let count = match kernel {
        ConvKernel::Tiled => {
            // Blocks of pixels spread over x and z: a dimension holds at most 65535 groups.
            let blocks = g.pixels().div_ceil(TILED_BM);
            let x = blocks.min(32768);
            CubeCount::Static(x as u32, g.out_channels.div_ceil(bn) as u32, blocks.div_ceil(x) as u32)
        }
        ConvKernel::Cmma(_) => CubeCount::Static(
            g.out_width().div_ceil(CMMA_COLS) as u32,
            g.out_height().div_ceil(rows) as u32,
            (g.batch * g.out_channels.div_ceil(bn)) as u32,
        ),
    };
    // 16-byte loads where every channel count, stride and offset the kernel reads by is a
    // multiple of 8 (all of RRDBNet's and the compact net's convolutions but the first and last).
    let vec = match kernel {
        ConvKernel::Cmma(_)
            if [g.in_channels, g.in_stride, buffers.weight_offset, buffers.input_len, buffers.weight_len]
                .iter()
                .all(|v| v % 8 == 0) =>
        {
            8
        }
        _ => 1,
    };
    // 16-byte stores (and residual loads) where output channel groups of 8 are whole and aligned.
    let out_vec = match kernel {
        ConvKernel::Cmma(_)
            if [g.out_channels, g.out_stride, g.out_offset, buffers.output_len, residual_stride, residual_len]
                .iter()
                .all(|v| v % 8 == 0) =>
        {
            8
        }
        _ => 1,
    };
    unsafe {
        let (input_len, weight_len) = (buffers.input_len / vec, buffers.weight_len / vec);
        let input = BufferArg::from_raw_parts(buffers.input, input_len);
        let weight = BufferArg::from_raw_parts(buffers.weight, weight_len);
        let bias = BufferArg::from_raw_parts(buffers.bias, buffers.vector_len);
        let slope = BufferArg::from_raw_parts(buffers.slope, buffers.vector_len);
        let (residual_len, output_len) = match kernel {
            ConvKernel::Tiled => (residual_len, buffers.output_len),
            _ => (residual_len / out_vec, buffers.output_len / out_vec),
        };
        let residual = BufferArg::from_raw_parts(residual, residual_len);
        let output = BufferArg::from_raw_parts(buffers.output, output_len);
        let shape = ConvShapeLaunch::new(
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
            padded(g.out_channels) as u32,
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
            ConvKernel::Cmma(block) => {
                assert!(block.planes == 4 || block.planes == 8, "tensor-core blocks have 4 or 8 planes");
                assert!(!block.stacked || block.planes == 8, "stacked plane tiles come in blocks of 8 planes");
                conv_cmma::launch::<F>(
                    client,
                    count,
                    CubeDim::new_2d(32, block.planes as u32),
                    vec,
                    out_vec,
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
                    vec as u32,
                    out_vec as u32,
                    bn as u32,
                    rows as u32,
                    block.planes as u32,
                    block.prefetch,
                    block.stacked,
                )
            }
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
    /// Elements per weight row ([`padded`] output channels).
    weight_stride: u32,
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

    let m0 = (CUBE_POS_Z * CUBE_COUNT_X + CUBE_POS_X) * bm;
    if m0 >= shape.pixels {
        terminate!();
    }
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
                    v = f32::cast_from(weight[(shape.weight_offset + row * shape.weight_stride + n0 + n) as usize]);
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

/// Tensor-core implicit GEMM on a 2D block: `rows` output rows × 32 columns × `bn` output
/// channels per cube, split over `planes` planes (warps) of `rows / planes` rows each; a plane
/// owns a 16×16 f32 accumulator for each of its rows' two 16-column segments and each 16
/// channels of the block. Each stage loads the block's input halo (`rows + 2` × 34 pixels × 16
/// channels) and the nine taps' weights once (with `prefetch`, fetched into registers during the
/// previous stage's MMAs); every tap then reads its shifted window of the halo straight into
/// fragments (rows: 16 neighbouring pixels; columns: the 16 channels), so the input is read from
/// memory once per stage, not once per tap. A plane reads each tap's weight fragments once for
/// all of its rows: more rows a plane, fewer shared-memory reads per MMA.
///
/// `N` is the vector width of `input` and `weight` loads (8 f16 = 16 bytes where channel counts,
/// strides and offsets allow, else 1), `vec` the same number at compile time; `M` and `out_vec`
/// the same for `output` stores and `residual` loads.
// Kernel code: cubecl has no `div_ceil`, and an `if` settled at compile time stays apart from
// one settled at run time.
#[allow(clippy::manual_div_ceil, clippy::collapsible_if)]
#[cube(launch)]
fn conv_cmma<F: Float, N: Size, M: Size>(
    input: &[Vector<F, N>],
    weight: &[Vector<F, N>],
    bias: &[F],
    slope: &[F],
    residual: &[Vector<F, M>],
    output: &mut [Vector<F, M>],
    shape: ConvShape,
    #[comptime] kernel: u32,
    #[comptime] upsample: u32,
    #[comptime] has_residual: bool,
    #[comptime] vec: u32,
    #[comptime] out_vec: u32,
    #[comptime] bn: u32,
    #[comptime] rows: u32,
    #[comptime] planes: u32,
    #[comptime] prefetch: bool,
    #[comptime] stacked: bool,
) {
    let cols = comptime!(CMMA_COLS as u32);
    let bk = comptime!(CMMA_BK as u32);
    // Padded strides, in elements: a halo pixel's channels and a weight row.
    let ks = comptime!((CMMA_BK + CMMA_PAD) as u32);
    let ns = comptime!(bn + CMMA_PAD as u32);
    // Stacked: planes split the block's channels in 32s, its columns in 16s, and its rows in
    // groups of `plane_rows`; else each plane owns whole rows of the block.
    let channel_groups = comptime!(bn / 32);
    let plane_rows = comptime!(if stacked { rows * 2 * channel_groups / planes } else { rows / planes });
    let nb = comptime!(if stacked { 2 } else { bn / 16 });
    let threads = comptime!(32 * planes);
    let taps = comptime!(kernel * kernel);
    let halo_w = comptime!(cols + kernel - 1);
    let halo_h = comptime!(rows + kernel - 1);
    let mut halo = Shared::<[Vector<F, N>]>::new_slice(comptime!((halo_h * halo_w * ks / vec) as usize));
    let mut weights = Shared::<[Vector<F, N>]>::new_slice(comptime!((taps * bk * ns / vec) as usize));
    let mut scratch = Shared::<[f32]>::new_slice(comptime!((planes * 256) as usize));

    let x0 = CUBE_POS_X * cols;
    let y0 = CUBE_POS_Y * rows;
    let n_blocks = (shape.out_channels + bn - 1) / bn;
    let image = CUBE_POS_Z / n_blocks;
    let n0 = (CUBE_POS_Z % n_blocks) * bn;
    let unit = UNIT_POS_Y * 32 + UNIT_POS_X;
    let warp = UNIT_POS_Y;
    let half_k = comptime!((kernel / 2) as i32);
    // The plane's first row in the block, its column segment (stacked; else it owns both) and
    // its first channel within the block (stacked; else it owns them all).
    let stack = comptime!(if stacked { 1u32 } else { 0u32 });
    let plane_row = warp / comptime!(if stacked { 2 * channel_groups } else { 1 }) * plane_rows;
    let plane_segment = (warp / channel_groups) % 2 * stack;
    let plane_channel = (warp % channel_groups) * 32 * stack;
    // Column segments a plane owns: two of 16 columns, or one when stacked.
    let segments = comptime!(if stacked { 1u32 } else { 2u32 });

    // Accumulator (r · segments + s) · nb + j: the plane's row r, column segment s, channels 16·j.
    let mut acc = Sequence::<cmma::Matrix<f32>>::new();
    #[unroll]
    for _ in 0..comptime!(plane_rows * segments * nb) {
        acc.push(zero_tile());
    }

    // Software pipelining (with `prefetch`): the next stage's halo and weights are fetched into
    // registers while this stage's MMAs run, and placed in shared memory after them.
    let halo_len = comptime!(halo_h * halo_w * bk / vec);
    let weight_len = comptime!(taps * bk * bn / vec);
    let mut halo_regs = Array::<Vector<F, N>>::new(comptime!(halo_len.div_ceil(threads) as usize));
    let mut weight_regs = Array::<Vector<F, N>>::new(comptime!(weight_len.div_ceil(threads) as usize));
    let corner = Corner { image, y: y0 as i32 - half_k, x: x0 as i32 - half_k, n: n0 };
    if comptime!(prefetch) {
        fetch_halo::<F, N>(input, &shape, &corner, &mut halo_regs, unit, 0, upsample, vec, halo_w, threads, halo_len);
        fetch_weights::<F, N>(weight, &shape, &corner, &mut weight_regs, unit, 0, bn, vec, threads, weight_len);
    }

    let mut c0 = 0u32;
    while c0 < shape.in_channels {
        if comptime!(!prefetch) {
            fetch_halo::<F, N>(
                input,
                &shape,
                &corner,
                &mut halo_regs,
                unit,
                c0,
                upsample,
                vec,
                halo_w,
                threads,
                halo_len,
            );
            fetch_weights::<F, N>(weight, &shape, &corner, &mut weight_regs, unit, c0, bn, vec, threads, weight_len);
        }
        // The halo: channel fastest, each pixel's 16 channels in a padded row.
        #[unroll]
        for s in 0..comptime!(halo_len.div_ceil(threads)) {
            let e = unit + s * threads;
            if e < halo_len {
                halo[(e / comptime!(bk / vec) * comptime!(ks / vec) + e % comptime!(bk / vec)) as usize] =
                    halo_regs[s as usize];
            }
        }
        // The weights of every tap for these 16 input channels: [tap][channel][output].
        #[unroll]
        for s in 0..comptime!(weight_len.div_ceil(threads)) {
            let e = unit + s * threads;
            if e < weight_len {
                weights[(e / comptime!(bn / vec) * comptime!(ns / vec) + e % comptime!(bn / vec)) as usize] =
                    weight_regs[s as usize];
            }
        }
        sync_cube();
        let next = c0 + bk;
        // Two `if`s: the outer is settled when the kernel is compiled, the inner when it runs.
        if comptime!(prefetch) {
            if next < shape.in_channels {
                fetch_halo::<F, N>(
                    input,
                    &shape,
                    &corner,
                    &mut halo_regs,
                    unit,
                    next,
                    upsample,
                    vec,
                    halo_w,
                    threads,
                    halo_len,
                );
                fetch_weights::<F, N>(
                    weight,
                    &shape,
                    &corner,
                    &mut weight_regs,
                    unit,
                    next,
                    bn,
                    vec,
                    threads,
                    weight_len,
                );
            }
        }
        if comptime!(stacked) {
            stacked_taps::<F, N>(
                &halo,
                &weights,
                &mut acc,
                plane_row,
                plane_segment,
                plane_channel,
                kernel,
                vec,
                ns,
                halo_w,
                plane_rows,
            );
        } else {
            #[unroll]
            for tap in 0..taps {
                let ky = comptime!(tap / kernel);
                let kx = comptime!(tap % kernel);
                // Offsets and lengths in vectors of `vec`; fragment strides in elements.
                let b_at = comptime!((tap * bk * ns / vec) as usize);
                let b_len = comptime!((15 * ns / vec + 16 / vec) as usize);
                let q = comptime!((16 / vec) as usize);
                let a_len = comptime!((15 * ks / vec + 16 / vec) as usize);
                let seg = comptime!(16 * ks / vec);
                let mut b = Sequence::<cmma::Matrix<Vector<F, N>>>::new();
                #[unroll]
                for j in 0..nb {
                    let at = b_at + comptime!(j as usize) * q;
                    b.push(fragment::<F, N>(cmma::MatrixIdent::B, &weights[at..at + b_len], ns));
                }
                #[unroll]
                for r in 0..plane_rows {
                    #[unroll]
                    for s in 0..2u32 {
                        let a0 = ((plane_row + r + ky) * halo_w + kx) * comptime!(ks / vec) + s * seg;
                        let a = fragment::<F, N>(cmma::MatrixIdent::A, &halo[a0 as usize..a0 as usize + a_len], ks);
                        #[unroll]
                        for j in 0..nb {
                            let i = comptime!(((r * 2 + s) * nb + j) as usize);
                            cmma::execute(&a, b.index(comptime!(j as usize)), acc.index(i), acc.index(i));
                        }
                    }
                }
            }
        }
        sync_cube();
        c0 = next;
    }

    // Each plane drains its accumulators one 16×16 tile at a time through its own scratch.
    let at = (warp * 256) as usize;
    #[unroll]
    for r in 0..plane_rows {
        #[unroll]
        for s in 0..segments {
            #[unroll]
            for j in 0..nb {
                drain::<F, M>(
                    acc.index(comptime!(((r * segments + s) * nb + j) as usize)),
                    &mut scratch,
                    at,
                    output,
                    bias,
                    slope,
                    residual,
                    &shape,
                    image,
                    y0 + plane_row + r,
                    x0 + (plane_segment + s) * 16,
                    n0 + plane_channel + j * 16,
                    has_residual,
                    out_vec,
                );
            }
        }
    }
}

/// One stage's MMAs for a stacked plane tile (`plane_rows` rows from `plane_row` × 16 columns
/// from segment `segment` × 32 channels from `channel`; accumulator `r · 2 + j` holds row `r`,
/// channels 16·j): for each tap column `kx`, the plane holds the weight fragments of the three
/// tap rows, then reads each halo row's fragment once and adds it into every output row that
/// reads it, through tap row `ky` of output row `h - ky`.
#[cube]
fn stacked_taps<F: Float, N: Size>(
    halo: &[Vector<F, N>],
    weights: &[Vector<F, N>],
    acc: &mut Sequence<cmma::Matrix<f32>>,
    plane_row: u32,
    segment: u32,
    channel: u32,
    #[comptime] kernel: u32,
    #[comptime] vec: u32,
    #[comptime] ns: u32,
    #[comptime] halo_w: u32,
    #[comptime] plane_rows: u32,
) {
    let bk = comptime!(CMMA_BK as u32);
    let ks = comptime!((CMMA_BK + CMMA_PAD) as u32);
    let b_len = comptime!((15 * ns / vec + 16 / vec) as usize);
    let a_len = comptime!((15 * ks / vec + 16 / vec) as usize);
    #[unroll]
    for kx in 0..kernel {
        // Fragment ky · 2 + j: tap (ky, kx), channels `channel + 16·j`.
        let mut b = Sequence::<cmma::Matrix<Vector<F, N>>>::new();
        #[unroll]
        for ky in 0..kernel {
            #[unroll]
            for j in 0..2u32 {
                let at = (comptime!((ky * kernel + kx) * bk * ns) + channel + j * 16) / vec;
                b.push(fragment::<F, N>(cmma::MatrixIdent::B, &weights[at as usize..at as usize + b_len], ns));
            }
        }
        #[unroll]
        for h in 0..comptime!(plane_rows + kernel - 1) {
            let a0 = ((plane_row + h) * halo_w + kx) * comptime!(ks / vec) + segment * comptime!(16 * ks / vec);
            let a = fragment::<F, N>(cmma::MatrixIdent::A, &halo[a0 as usize..a0 as usize + a_len], ks);
            #[unroll]
            for ky in 0..kernel {
                // Output row h - ky, where it is one of the plane's rows.
                if comptime!(h >= ky && h - ky < plane_rows) {
                    #[unroll]
                    for j in 0..2u32 {
                        let i = comptime!(((h - ky) * 2 + j) as usize);
                        cmma::execute(&a, b.index(comptime!((ky * 2 + j) as usize)), acc.index(i), acc.index(i));
                    }
                }
            }
        }
    }
}

/// Where a block's input halo starts (image, row and column, possibly outside the image) and
/// its first output channel.
#[derive(CubeType)]
struct Corner {
    image: u32,
    y: i32,
    x: i32,
    n: u32,
}

/// Loads this thread's share of the halo of input channels `c0..c0 + 16` into `regs` (zeros
/// outside the image and past the last channel): element `e` of the halo (channel vector
/// fastest, then column, then row) goes to `regs[s]` for `e = unit + s · threads`.
#[cube]
fn fetch_halo<F: Float, N: Size>(
    input: &[Vector<F, N>],
    shape: &ConvShape,
    corner: &Corner,
    regs: &mut Array<Vector<F, N>>,
    unit: u32,
    c0: u32,
    #[comptime] upsample: u32,
    #[comptime] vec: u32,
    #[comptime] halo_w: u32,
    #[comptime] threads: u32,
    #[comptime] len: u32,
) {
    let bk = comptime!(CMMA_BK as u32);
    #[unroll]
    for s in 0..comptime!(len.div_ceil(threads)) {
        let e = unit + s * threads;
        let kv = e % comptime!(bk / vec);
        let p = e / comptime!(bk / vec);
        let iy = corner.y + (p / halo_w) as i32;
        let ix = corner.x + (p % halo_w) as i32;
        let c = c0 + kv * vec;
        let inside = e < len
            && iy >= 0
            && ix >= 0
            && iy < shape.height as i32
            && ix < shape.width as i32
            && c < shape.in_channels;
        let mut v = Vector::new(F::new(0.0));
        if inside {
            let sy = iy as u32 / upsample;
            let sx = ix as u32 / upsample;
            let at = ((corner.image * shape.in_height + sy) * shape.in_width + sx) * shape.in_stride + c;
            v = input[(at / vec) as usize];
        }
        regs[s as usize] = v;
    }
}

/// Loads this thread's share of the nine taps' weights for input channels `c0..c0 + 16` and
/// the block's output channels into `regs` (`[tap][channel][output]`, output vector fastest).
#[cube]
fn fetch_weights<F: Float, N: Size>(
    weight: &[Vector<F, N>],
    shape: &ConvShape,
    corner: &Corner,
    regs: &mut Array<Vector<F, N>>,
    unit: u32,
    c0: u32,
    #[comptime] bn: u32,
    #[comptime] vec: u32,
    #[comptime] threads: u32,
    #[comptime] len: u32,
) {
    let bk = comptime!(CMMA_BK as u32);
    #[unroll]
    for s in 0..comptime!(len.div_ceil(threads)) {
        let e = unit + s * threads;
        let n = (e % comptime!(bn / vec)) * vec;
        let rest = e / comptime!(bn / vec);
        let kk = rest % bk;
        let tap = rest / bk;
        let mut v = Vector::new(F::new(0.0));
        if e < len && c0 + kk < shape.in_channels && corner.n + n < shape.weight_stride {
            let row = tap * shape.in_channels + c0 + kk;
            v = weight[((shape.weight_offset + row * shape.weight_stride + corner.n + n) / vec) as usize];
        }
        regs[s as usize] = v;
    }
}

/// A 16×16 f32 accumulator at zero.
#[cube]
fn zero_tile() -> cmma::Matrix<f32> {
    cmma::Matrix::<f32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0.0,
    )
}

/// A 16×16 operand fragment (`ident` A or B) read row-major from `slice`, `stride` elements
/// between rows.
#[cube]
fn fragment<F: Float, N: Size>(
    #[comptime] ident: cmma::MatrixIdent,
    slice: &[Vector<F, N>],
    stride: u32,
) -> cmma::Matrix<Vector<F, N>> {
    cmma::Matrix::<Vector<F, N>>::from_slice(
        ident,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::RowMajor,
        slice,
        stride,
    )
}

/// The epilogue of one 16×16 accumulator tile of a plane, through the plane's scratch at
/// `at`: 16 pixels of output row `oy` from column `ox`, 16 channels from `n`. The tile goes to
/// scratch column-major (a lane's eight channels are then 16 floats apart, so neighbouring lanes
/// read neighbouring banks); each lane finishes eight channels of one pixel and stores them as
/// vectors of `out_vec` (8: one 16-byte store).
#[cube]
fn drain<F: Float, M: Size>(
    acc: &cmma::Matrix<f32>,
    scratch: &mut [f32],
    at: usize,
    output: &mut [Vector<F, M>],
    bias: &[F],
    slope: &[F],
    residual: &[Vector<F, M>],
    shape: &ConvShape,
    image: u32,
    oy: u32,
    ox: u32,
    n: u32,
    #[comptime] has_residual: bool,
    #[comptime] out_vec: u32,
) {
    cmma::store(&mut scratch[at..at + 256], acc, 16, cmma::MatrixLayout::ColMajor);
    sync_plane();
    let i = UNIT_POS_X / 2;
    let first = (UNIT_POS_X % 2) * 8;
    let x = ox + i;
    if oy < shape.height && x < shape.width {
        let pixel = (image * shape.height + oy) * shape.width + x;
        #[unroll]
        for g in 0..comptime!(8 / out_vec) {
            let c = first + g * out_vec;
            // With 8-wide vectors a group of eight channels is either all inside or all past the end.
            if n + c < shape.out_channels {
                let mut r = Vector::<F, M>::empty();
                if comptime!(has_residual) {
                    r = residual[((pixel * shape.residual_stride + n + c) / out_vec) as usize];
                }
                let mut o = Vector::<F, M>::empty();
                #[unroll]
                for j in 0..out_vec {
                    let b = (shape.bias_offset + n + c + j) as usize;
                    let mut v = scratch[at + ((c + j) * 16 + i) as usize] + f32::cast_from(bias[b]);
                    if v < 0.0 {
                        v *= f32::cast_from(slope[b]);
                    }
                    v *= shape.scale;
                    if comptime!(has_residual) {
                        v += f32::cast_from(r.extract(j as usize));
                    }
                    o.insert(j as usize, F::cast_from(v));
                }
                output[((pixel * shape.out_stride + shape.out_offset + n + c) / out_vec) as usize] = o;
            }
        }
    }
    sync_plane();
}
