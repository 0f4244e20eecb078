//! Images of any size through a network that only fits tiles: the tile plan, reflect padding at
//! the image's borders, overlapping tiles blended with a raised-cosine ramp, and the retry with
//! smaller tiles when the device runs out of memory.
//!
//! Tiles are cut, run and blended on the network's device: the image goes up once, finished
//! rows come back once, in pieces (see [`run_bands`]).
//!
//! Every tile of a plan has the same shape (kernels compile and tune once per shape). The whole
//! image is the one-tile case of the same code, so a tiled result and a whole-image result differ
//! only by the context a tile lacks near its inner edges; the blend gives those pixels little or
//! no weight where a neighbour saw them with full context.

use burn::tensor::{Device, Tensor, TensorData};

use crate::compute::{ComputeError, guarded};

/// An image as f32 planes, channel-major (`[c][y][x]`), values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Planes {
    pub fn zeros(channels: usize, width: usize, height: usize) -> Self {
        Self { channels, width, height, data: vec![0.0; channels * width * height] }
    }

    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[c * n..(c + 1) * n]
    }

    /// The `w`×`h` window at (`x0`, `y0`), which may reach outside the image: outside pixels
    /// mirror the image (reflect-101, as PyTorch's `reflect` padding).
    pub fn window(&self, x0: isize, y0: isize, w: usize, h: usize) -> Planes {
        let mut out = Planes::zeros(self.channels, w, h);
        let xs: Vec<usize> = (0..w).map(|i| reflect(x0 + i as isize, self.width)).collect();
        for c in 0..self.channels {
            let src = self.plane(c);
            for y in 0..h {
                let sy = reflect(y0 + y as isize, self.height);
                let row = &src[sy * self.width..(sy + 1) * self.width];
                let dst = &mut out.data[(c * h + y) * w..(c * h + y + 1) * w];
                for (d, &sx) in dst.iter_mut().zip(&xs) {
                    *d = row[sx];
                }
            }
        }
        out
    }
}

/// Index `i` mirrored into `0..n` (reflect-101, repeated for windows wider than the image).
pub fn reflect(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

/// Runs the network on one tile, on a device the tiler also blends on.
pub trait TileRunner {
    /// The network's integer scale.
    fn scale(&self) -> usize;
    /// What tile sides must be a multiple of (pixel-unshuffle).
    fn multiple(&self) -> usize;
    /// The device tiles are computed and blended on.
    fn device(&self) -> Device;
    /// Queues the network on one tile: `[1, C, h, w]` f32 in, `[1, C, h·scale, w·scale]` f32 out.
    /// Failures surface as panics, when the work is queued or when it is waited for; the tiler
    /// runs both inside [`guarded`].
    fn run(&mut self, tile: Tensor<4>) -> Tensor<4>;
    /// Gives back what a failed tile left allocated, before a retry with smaller tiles.
    fn release(&mut self) {}
}

/// How to split an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileOptions {
    /// The largest tile side, in input pixels.
    pub max_tile: usize,
    /// The smallest side out-of-memory retries may shrink to.
    pub min_tile: usize,
    /// Input pixels neighbouring tiles share at least.
    pub overlap: usize,
    /// Mirrored pixels added around the image (the network sees natural context at borders).
    pub border: usize,
}

impl Default for TileOptions {
    fn default() -> Self {
        Self { max_tile: 512, min_tile: 32, overlap: 32, border: 16 }
    }
}

/// Where the tiles of one axis start, and their common length, in padded coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisPlan {
    pub starts: Vec<isize>,
    pub len: usize,
}

fn round_up(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

/// Splits `length` pixels (plus `border` mirrored on each side, rounded up to `multiple`) into
/// tiles of one length no larger than `max_tile` that overlap by at least `overlap`.
pub fn plan_axis(length: usize, max_tile: usize, overlap: usize, border: usize, multiple: usize) -> AxisPlan {
    let multiple = multiple.max(1);
    let total = round_up(length + 2 * border, multiple);
    let max_tile = (max_tile / multiple * multiple).max(multiple);
    if total <= max_tile {
        return AxisPlan { starts: vec![-(border as isize)], len: total };
    }
    // Start positions are rounded down to the multiple, which can widen a step by up to
    // `multiple - 1`: plan with that much more overlap.
    let overlap = (overlap + multiple - 1).min(max_tile.saturating_sub(multiple));
    let step = max_tile - overlap;
    let count = (total - overlap).div_ceil(step).max(2);
    let len = round_up((total + (count - 1) * overlap).div_ceil(count), multiple).min(total);
    let span = total - len;
    let starts = (0..count)
        .map(|i| {
            let offset = if i + 1 == count { span } else { i * span / (count - 1) / multiple * multiple };
            offset as isize - border as isize
        })
        .collect();
    AxisPlan { starts, len }
}

/// The blend weight of output pixel `u` (of `len` along the axis) near an inner edge, where the
/// guaranteed overlap is `overlap` output pixels: nothing from the outer quarter, a sin² ramp
/// over the middle half, full weight beyond. Some tile always has weight at every pixel.
fn edge_weight(u: usize, len: usize, overlap: usize, left: bool, right: bool) -> f32 {
    let ramp = |d: usize| -> f32 {
        let q = overlap as f32 / 4.0;
        let d = d as f32 + 0.5;
        if d < q {
            0.0
        } else if d < 3.0 * q {
            let t = (d - q) / (2.0 * q);
            (t * std::f32::consts::FRAC_PI_2).sin().powi(2)
        } else {
            1.0
        }
    };
    let l = if left { ramp(u) } else { 1.0 };
    let r = if right { ramp(len - 1 - u) } else { 1.0 };
    l * r
}

/// What the tiler reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum TileEvent {
    /// A tile finished.
    Tile { done: usize, total: usize, tile_width: usize, tile_height: usize },
    /// The device ran out of memory; the image starts again with smaller tiles.
    Shrunk { from: usize, to: usize, reason: String },
}

/// Why tiling stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TileError {
    #[error("cancelled")]
    Cancelled,
    #[error("out of memory even with {tile}-pixel tiles: {reason}")]
    OutOfMemory { tile: usize, reason: String },
    #[error(transparent)]
    Compute(ComputeError),
}

/// What the tiler reads back from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readout {
    /// f32 planes in [0, 1]: for resizing, 16-bit output and the alpha plane's grey pass.
    Planes,
    /// 8-bit RGB, rounded and packed on the device: a third of the bytes to read back and to
    /// write into host memory (the default for jobs at the model's scale).
    Rgb8,
}

/// An upscaled image, as its [`Readout`] asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Upscaled {
    Planes(Planes),
    /// Interleaved RGB, `round(v · 255)` of the values [`Readout::Planes`] gives.
    Rgb8 {
        width: usize,
        height: usize,
        data: Vec<u8>,
    },
}

impl Upscaled {
    pub fn dimensions(&self) -> (usize, usize) {
        match self {
            Self::Planes(p) => (p.width, p.height),
            Self::Rgb8 { width, height, .. } => (*width, *height),
        }
    }

    /// The image as f32 planes (8-bit values divided by 255).
    pub fn into_planes(self) -> Planes {
        match self {
            Self::Planes(p) => p,
            Self::Rgb8 { width, height, data } => {
                let mut planes = Planes::zeros(3, width, height);
                let n = width * height;
                for (i, pixel) in data.chunks_exact(3).enumerate() {
                    for (c, &v) in pixel.iter().enumerate() {
                        planes.data[c * n + i] = v as f32 / 255.0;
                    }
                }
                planes
            }
        }
    }
}

/// Upscales `image` tile by tile, read back as `readout` says ([`Readout::Rgb8`] needs three
/// channels). `on_event` sees every finished tile and every retry, and stops the work by
/// returning `false`.
pub fn upscale(
    image: &Planes,
    runner: &mut dyn TileRunner,
    options: TileOptions,
    readout: Readout,
    on_event: &mut dyn FnMut(TileEvent) -> bool,
) -> Result<Upscaled, TileError> {
    if readout == Readout::Rgb8 && image.channels != 3 {
        return Err(TileError::Compute(ComputeError::Failed(format!(
            "8-bit RGB read-back needs three channels, not {}",
            image.channels
        ))));
    }
    let mut max_tile = options.max_tile.max(options.min_tile);
    loop {
        match upscale_once(image, runner, TileOptions { max_tile, ..options }, readout, on_event) {
            Err(TileError::Compute(ComputeError::OutOfMemory(reason))) => {
                runner.release();
                let smaller = (max_tile / 2 / runner.multiple().max(1)) * runner.multiple().max(1);
                if smaller < options.min_tile || smaller == 0 {
                    return Err(TileError::OutOfMemory { tile: max_tile, reason });
                }
                if !on_event(TileEvent::Shrunk { from: max_tile, to: smaller, reason }) {
                    return Err(TileError::Cancelled);
                }
                max_tile = smaller;
            }
            other => return other,
        }
    }
}

fn upscale_once(
    image: &Planes,
    runner: &mut dyn TileRunner,
    options: TileOptions,
    readout: Readout,
    on_event: &mut dyn FnMut(TileEvent) -> bool,
) -> Result<Upscaled, TileError> {
    let scale = runner.scale();
    let multiple = runner.multiple();
    let border = options.border;
    // Tiles under twice the overlap share half their side (only out-of-memory retries go there).
    let overlap = options.overlap.min(options.max_tile / 2);
    let xs = plan_axis(image.width, options.max_tile, overlap, border, multiple);
    let ys = plan_axis(image.height, options.max_tile, overlap, border, multiple);
    let (out_w, out_h) = (image.width * scale, image.height * scale);
    let weights =
        (blend_weights(&xs, scale, overlap * scale, out_w), blend_weights(&ys, scale, overlap * scale, out_h));
    let mut out = match readout {
        Readout::Planes => Upscaled::Planes(Planes::zeros(image.channels, out_w, out_h)),
        Readout::Rgb8 => Upscaled::Rgb8 { width: out_w, height: out_h, data: vec![0; out_w * out_h * 3] },
    };
    // Finished rows come back from the device in pieces; a thread copies each piece into the
    // result while the device already computes the next tiles.
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<FinalRows>(4);
        let out = &mut out;
        let copier = scope.spawn(move || {
            for rows in receive {
                rows.copy_into(out);
            }
        });
        let plan = (&xs, &ys);
        let outcome = run_bands(image, runner, plan, (&weights.0, &weights.1), readout, on_event, &send);
        drop(send);
        if let Err(panic) = copier.join() {
            std::panic::resume_unwind(panic);
        }
        outcome
    })?;
    Ok(out)
}

/// Each tile's blend weights along one axis (output pixels), divided by the sum of all tiles'
/// weights at that pixel, and zero outside the image. Blend weights are separable (a tile's
/// weight at (x, y) is its column weight times its row weight) and the tiles form a grid, so the
/// weights over all tiles at a pixel sum to one: the weighted tiles add up to the result with no
/// weight canvas and no division afterwards.
fn blend_weights(plan: &AxisPlan, scale: usize, overlap_out: usize, out_len: usize) -> Vec<Vec<f32>> {
    let len = plan.len * scale;
    let count = plan.starts.len();
    let inside = |start: isize, u: usize| {
        let at = start * scale as isize + u as isize;
        (0..out_len as isize).contains(&at).then_some(at as usize)
    };
    let raw: Vec<Vec<f32>> = (0..count)
        .map(|i| (0..len).map(|u| edge_weight(u, len, overlap_out, i > 0, i + 1 < count)).collect())
        .collect();
    let mut total = vec![0.0f32; out_len];
    for (weights, &start) in raw.iter().zip(&plan.starts) {
        for (u, &w) in weights.iter().enumerate() {
            if let Some(at) = inside(start, u) {
                total[at] += w;
            }
        }
    }
    raw.into_iter()
        .zip(&plan.starts)
        .map(|(mut weights, &start)| {
            for (u, w) in weights.iter_mut().enumerate() {
                *w = match inside(start, u) {
                    Some(at) if total[at] > 0.0 => *w / total[at],
                    _ => 0.0,
                };
            }
            weights
        })
        .collect()
}

/// The most bytes one read-back asks for. Reading a 1080p image's ×4 result (398 MB of f32) in
/// one piece took 0.25-0.37 s on the lent H200 (wgpu-Vulkan, 2026-11-28), in pieces of about
/// 8 MB 0.06 s, repeatably: large reads apparently pay for fresh host memory each time (a
/// vector over glibc's 32 MB threshold is mapped anew, page by page), small ones reuse it.
/// (Reading f16 and widening it on the host was measured slower than reading f32, on the H100
/// the same day, when tiles were read whole.)
pub const READ_BYTES: usize = 8 << 20;

/// Output rows no later tile adds to, read back from the device: `count` rows from `first`,
/// channel-major (`[c][row][x]`) f32, or one packed value a pixel ([`pack_rgb8`]).
struct FinalRows {
    first: usize,
    count: usize,
    data: Vec<f32>,
}

impl FinalRows {
    /// Copies (or, packed, unpacks) the rows into `out`, on every core: a result's host memory
    /// is written here first, and on the lent GPU machine the page faults alone cost 0.06 s
    /// for a 1080p image's ×4 8-bit result.
    fn copy_into(&self, out: &mut Upscaled) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        let chunk = |len: usize| len.div_ceil(threads).max(1 << 16);
        match out {
            Upscaled::Planes(out) => {
                let span = self.count * out.width;
                let plane = out.width * out.height;
                let first = self.first * out.width;
                let targets = out.data.chunks_mut(plane).map(|p| &mut p[first..first + span]);
                std::thread::scope(|scope| {
                    for (target, rows) in targets.zip(self.data.chunks_exact(span)) {
                        for (to, from) in target.chunks_mut(chunk(span)).zip(rows.chunks(chunk(span))) {
                            scope.spawn(move || to.copy_from_slice(from));
                        }
                    }
                });
            }
            Upscaled::Rgb8 { width, data, .. } => {
                let at = self.first * *width * 3;
                let target = &mut data[at..at + self.count * *width * 3];
                let pixels = chunk(self.data.len());
                std::thread::scope(|scope| {
                    for (bytes, packed) in target.chunks_mut(3 * pixels).zip(self.data.chunks(pixels)) {
                        scope.spawn(move || {
                            for (pixel, &value) in bytes.chunks_exact_mut(3).zip(packed) {
                                let value = value as u32;
                                pixel[0] = value as u8;
                                pixel[1] = (value >> 8) as u8;
                                pixel[2] = (value >> 16) as u8;
                            }
                        });
                    }
                });
            }
        }
    }
}

/// RGB in [0, 1] (`[1, 3, h, w]`) to one value a pixel (`[1, 1, h, w]`): `r + 256·g + 65536·b`
/// of the channels rounded to 8 bits. Integers below 2^24 are exact in f32, so the read-back
/// stays a plain f32 read.
fn pack_rgb8(rgb: Tensor<4>) -> Tensor<4> {
    let place = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 256.0, 65536.0], [1, 3, 1, 1]), &rgb.device());
    ((rgb * 255.0 + 0.5).floor() * place).sum_dim(1)
}

/// Runs every tile of the plan (`xs` × `ys`) through `runner`, one row of tiles at a time, and
/// sends the rows each band finishes to `finished`.
///
/// Everything stays on the device: the padded image is uploaded once and each tile is a window
/// of it; each tile's output, times its blend weights, is added into a band of output rows as
/// wide as the image and as tall as a tile; when a row of tiles is done, the band's rows above
/// the next row of tiles are final (clamped to [0, 1] and read back) and the rows below carry
/// over into the next band. Device memory is one band and one tile at a time, whatever the
/// image's height.
fn run_bands(
    image: &Planes,
    runner: &mut dyn TileRunner,
    (xs, ys): (&AxisPlan, &AxisPlan),
    (wx, wy): (&[Vec<f32>], &[Vec<f32>]),
    readout: Readout,
    on_event: &mut dyn FnMut(TileEvent) -> bool,
    finished: &std::sync::mpsc::SyncSender<FinalRows>,
) -> Result<(), TileError> {
    let (scale, device, channels) = (runner.scale(), runner.device(), image.channels);
    let (out_w, out_h) = (image.width * scale, image.height * scale);
    let (tile_w, tile_h) = (xs.len * scale, ys.len * scale);
    let total = xs.starts.len() * ys.starts.len();
    let compute = |e: ComputeError| TileError::Compute(e);
    let (x_first, y_first) = (xs.starts[0], ys.starts[0]);
    let source_w = (xs.starts[xs.starts.len() - 1] - x_first) as usize + xs.len;
    let source_h = (ys.starts[ys.starts.len() - 1] - y_first) as usize + ys.len;
    let padded = image.window(x_first, y_first, source_w, source_h);
    let source =
        guarded(|| Tensor::<4>::from_data(TensorData::new(padded.data, [1, channels, source_h, source_w]), &device))
            .map_err(compute)?;
    let mut carry: Option<Tensor<4>> = None;
    let mut done = 0;
    for (iy, &y0) in ys.starts.iter().enumerate() {
        let top = y0 * scale as isize;
        let sy = (y0 - y_first) as usize;
        let (mut band, row_weights) = guarded(|| {
            let row_weights = Tensor::<4>::from_data(TensorData::new(wy[iy].clone(), [1, 1, tile_h, 1]), &device);
            let fresh = |rows: usize| Tensor::<4>::zeros([1, channels, rows, out_w], &device);
            let band = match carry.take() {
                Some(kept) if kept.dims()[2] < tile_h => {
                    let rows = kept.dims()[2];
                    Tensor::cat(vec![kept, fresh(tile_h - rows)], 2)
                }
                Some(kept) => kept,
                None => fresh(tile_h),
            };
            (band, row_weights)
        })
        .map_err(compute)?;
        for (ix, &x0) in xs.starts.iter().enumerate() {
            let left = x0 * scale as isize;
            // The tile's output columns inside the image (tiles at the borders reach past it).
            let u0 = (-left).max(0) as usize;
            let u1 = (out_w as isize - left).clamp(0, tile_w as isize) as usize;
            let sx = (x0 - x_first) as usize;
            let current = band;
            band = guarded(|| {
                let window = source.clone().slice([0..1, 0..channels, sy..sy + ys.len, sx..sx + xs.len]);
                let out = runner.run(window);
                if out.dims() != [1, channels, tile_h, tile_w] {
                    return Err(ComputeError::Failed(format!(
                        "the network returned {:?} for a tile that should become {:?}",
                        out.dims(),
                        [1, channels, tile_h, tile_w]
                    )));
                }
                if u0 >= u1 {
                    return Ok(current);
                }
                let column_weights =
                    Tensor::<4>::from_data(TensorData::new(wx[ix][u0..u1].to_vec(), [1, 1, 1, u1 - u0]), &device);
                let weighted = out.slice([0..1, 0..channels, 0..tile_h, u0..u1]) * column_weights * row_weights.clone();
                let columns = (left + u0 as isize) as usize..(left + u1 as isize) as usize;
                let at = [0..1, 0..channels, 0..tile_h, columns];
                let next = current.clone().slice_assign(at.clone(), current.slice(at) + weighted);
                // Waiting for each tile keeps progress and cancellation in step with the device.
                device.sync().map_err(|e| ComputeError::from_message(format!("{e:?}")))?;
                Ok(next)
            })
            .map_err(compute)?
            .map_err(compute)?;
            done += 1;
            if !on_event(TileEvent::Tile { done, total, tile_width: xs.len, tile_height: ys.len }) {
                return Err(TileError::Cancelled);
            }
            // A tile is a step: the device's owner serves the UI's short requests here, and its
            // watchdog sees the job making progress.
            crate::compute::between_steps();
        }
        // Rows above the next row of tiles are final; the rest carry over.
        let next_top = ys.starts.get(iy + 1).map_or(top + tile_h as isize, |&y| y * scale as isize);
        let (first, last) = (top.max(0), next_top.min(out_h as isize));
        // Finished rows come back in pieces of at most READ_BYTES.
        let values_per_row = out_w * if readout == Readout::Rgb8 { 1 } else { channels };
        let piece = (READ_BYTES / (4 * values_per_row)).max(1) as isize;
        for from in (first..last).step_by(piece as usize) {
            let to = (from + piece).min(last);
            let rows = (from - top) as usize..(to - top) as usize;
            let data = guarded(|| {
                let rows = band.clone().slice([0..1, 0..channels, rows, 0..out_w]).clamp(0.0, 1.0);
                match readout {
                    Readout::Planes => rows,
                    Readout::Rgb8 => pack_rgb8(rows),
                }
                .try_into_vec_as::<f32>()
            })
            .map_err(compute)?
            .map_err(|e| compute(ComputeError::Failed(format!("reading the result back failed: {e:?}"))))?;
            let rows = FinalRows { first: from as usize, count: (to - from) as usize, data };
            // The copier only stops early by panicking, which the caller re-raises.
            let _ = finished.send(rows);
        }
        let kept = (next_top - top).max(0) as usize;
        carry = (kept < tile_h).then(|| band.slice([0..1, 0..channels, kept..tile_h, 0..out_w]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network stand-in whose output depends on a 5×5 neighbourhood (like a stack of two 3×3
    /// convolutions with zero padding), upscaled by nearest neighbour.
    struct BlurNearest {
        scale: usize,
        multiple: usize,
        fail_above: Option<usize>,
        calls: Vec<(usize, usize)>,
    }

    impl BlurNearest {
        fn blur(&self, tile: &Planes) -> Planes {
            let s = self.scale;
            let mut out = Planes::zeros(tile.channels, tile.width * s, tile.height * s);
            for c in 0..tile.channels {
                for y in 0..tile.height {
                    for x in 0..tile.width {
                        let mut acc = 0.0;
                        for dy in -2isize..=2 {
                            for dx in -2isize..=2 {
                                let (sx, sy) = (x as isize + dx, y as isize + dy);
                                if sx >= 0 && sy >= 0 && (sx as usize) < tile.width && (sy as usize) < tile.height {
                                    acc += tile.data[(c * tile.height + sy as usize) * tile.width + sx as usize];
                                }
                            }
                        }
                        for oy in 0..s {
                            for ox in 0..s {
                                out.data[(c * tile.height * s + y * s + oy) * tile.width * s + x * s + ox] = acc / 25.0;
                            }
                        }
                    }
                }
            }
            out
        }
    }

    impl TileRunner for BlurNearest {
        fn scale(&self) -> usize {
            self.scale
        }
        fn multiple(&self) -> usize {
            self.multiple
        }
        fn device(&self) -> Device {
            Device::flex()
        }
        fn run(&mut self, tile: Tensor<4>) -> Tensor<4> {
            let [_, channels, height, width] = tile.dims();
            self.calls.push((width, height));
            if self.fail_above.is_some_and(|max| width * height > max * max) {
                panic!("can't allocate buffer");
            }
            let data = tile.try_into_vec_as::<f32>().unwrap();
            let out = self.blur(&Planes { channels, width, height, data });
            let shape = [1, out.channels, out.height, out.width];
            Tensor::from_data(TensorData::new(out.data, shape), &self.device())
        }
    }

    fn runner(scale: usize, multiple: usize) -> BlurNearest {
        BlurNearest { scale, multiple, fail_above: None, calls: vec![] }
    }

    fn upscale_planes(
        image: &Planes,
        runner: &mut BlurNearest,
        options: TileOptions,
        on_event: &mut dyn FnMut(TileEvent) -> bool,
    ) -> Result<Planes, TileError> {
        upscale(image, runner, options, Readout::Planes, on_event).map(Upscaled::into_planes)
    }

    fn gradient(w: usize, h: usize) -> Planes {
        let mut p = Planes::zeros(3, w, h);
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    p.data[(c * h + y) * w + x] = ((x * 7 + y * 13 + c * 50) % 97) as f32 / 96.0;
                }
            }
        }
        p
    }

    #[test]
    fn reflection_mirrors_without_repeating_the_edge() {
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect(-5, 1), 0);
    }

    #[test]
    fn axis_plans_cover_the_padded_image_with_equal_overlapping_tiles() {
        let cases = [(1000, 256, 1, 32), (1080, 1024, 4, 32), (300, 64, 2, 16), (100, 512, 1, 32), (4097, 500, 2, 32)];
        for (length, max, multiple, overlap) in cases {
            let plan = plan_axis(length, max, overlap, 16, multiple);
            let total = round_up(length + 32, multiple) as isize;
            assert!(plan.len <= max.max(multiple) || plan.starts.len() == 1);
            assert_eq!(plan.len % multiple, 0);
            assert_eq!(plan.starts[0], -16);
            assert_eq!(*plan.starts.last().unwrap() + plan.len as isize, total - 16, "{length} {max}");
            for pair in plan.starts.windows(2) {
                assert_eq!(pair[0].rem_euclid(multiple as isize), pair[1].rem_euclid(multiple as isize));
                assert!(pair[0] + plan.len as isize - pair[1] >= overlap as isize, "{length}: overlap {pair:?}");
            }
        }
        // 1080 rows in tiles of at most 1024 take two tiles of about half, not 1024 + a sliver.
        assert_eq!(plan_axis(1080, 1024, 32, 16, 1).len, 572);
    }

    /// Tiles of at most `max_tile` against one whole-image tile: equal but for float rounding
    /// (the stand-in network sees less far than the overlap). Returns the tiles run.
    fn tiled_matches_whole(width: usize, height: usize, max_tile: usize) -> usize {
        let image = gradient(width, height);
        let options = |max_tile| TileOptions { max_tile, ..Default::default() };
        let whole = upscale_planes(&image, &mut runner(2, 1), options(4096), &mut |_| true).unwrap();
        let mut tiled_runner = runner(2, 1);
        let tiled = upscale_planes(&image, &mut tiled_runner, options(max_tile), &mut |_| true).unwrap();
        let worst = whole.data.iter().zip(&tiled.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "worst difference {worst}");
        assert_eq!((tiled.width, tiled.height), (2 * width, 2 * height));
        tiled_runner.calls.len()
    }

    #[test]
    fn tiled_and_whole_results_agree() {
        assert!(tiled_matches_whole(150, 97, 64) > 4);
    }

    #[test]
    fn rows_carried_from_band_to_band_give_the_whole_result() {
        // 64-pixel tiles over 500 rows: sixteen rows of tiles, each band handing rows on.
        assert_eq!(tiled_matches_whole(520, 500, 64), 17 * 16);
    }

    #[test]
    fn rgb8_readout_is_the_rounded_planes() {
        let image = gradient(150, 97);
        let options = TileOptions { max_tile: 64, ..Default::default() };
        let planes = upscale_planes(&image, &mut runner(2, 1), options, &mut |_| true).unwrap();
        let packed = upscale(&image, &mut runner(2, 1), options, Readout::Rgb8, &mut |_| true).unwrap();
        let Upscaled::Rgb8 { width, height, data } = &packed else { panic!("{packed:?}") };
        assert_eq!((*width, *height, data.len()), (300, 194, 300 * 194 * 3));
        let n = width * height;
        for (i, pixel) in data.chunks_exact(3).enumerate() {
            for (c, &v) in pixel.iter().enumerate() {
                let expected = (planes.data[c * n + i] * 255.0).round();
                assert_eq!(v as f32, expected, "pixel {i} channel {c}");
            }
        }
        let grey = Planes::zeros(1, 8, 8);
        let error = upscale(&grey, &mut runner(2, 1), options, Readout::Rgb8, &mut |_| true).unwrap_err();
        assert!(matches!(error, TileError::Compute(ComputeError::Failed(_))), "{error:?}");
    }

    #[test]
    fn weights_over_all_tiles_sum_to_one_inside_the_image() {
        for (length, max, overlap, multiple, scale) in [(500, 64, 32, 1, 2), (97, 40, 20, 4, 4), (1080, 1024, 32, 4, 4)]
        {
            let plan = plan_axis(length, max, overlap, 16, multiple);
            let weights = blend_weights(&plan, scale, overlap.min(max / 2) * scale, length * scale);
            let mut total = vec![0.0f32; length * scale];
            for (w, &start) in weights.iter().zip(&plan.starts) {
                for (u, v) in w.iter().enumerate() {
                    let at = start * scale as isize + u as isize;
                    if (0..total.len() as isize).contains(&at) {
                        total[at as usize] += v;
                    } else {
                        assert_eq!(*v, 0.0, "weight outside the image");
                    }
                }
            }
            assert!(total.iter().all(|t| (t - 1.0).abs() < 1e-6), "{length}: {total:?}");
        }
    }

    #[test]
    fn out_of_memory_shrinks_the_tiles_and_finishes() {
        let image = gradient(200, 120);
        let mut failing = BlurNearest { fail_above: Some(100), ..runner(4, 2) };
        let mut events = vec![];
        let out = upscale_planes(&image, &mut failing, TileOptions { max_tile: 512, ..Default::default() }, &mut |e| {
            events.push(e);
            true
        })
        .unwrap();
        let shrinks: Vec<(usize, usize)> = events
            .iter()
            .filter_map(|e| match e {
                TileEvent::Shrunk { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(shrinks, vec![(512, 256), (256, 128)]);
        assert_eq!((out.width, out.height), (800, 480));
        let reference = upscale_planes(
            &image,
            &mut runner(4, 2),
            TileOptions { max_tile: 1024, ..Default::default() },
            &mut |_| true,
        )
        .unwrap();
        let worst = reference.data.iter().zip(&out.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5);

        let mut hopeless = BlurNearest { fail_above: Some(8), ..runner(4, 2) };
        let error = upscale_planes(&image, &mut hopeless, TileOptions::default(), &mut |_| true).unwrap_err();
        assert!(matches!(error, TileError::OutOfMemory { tile: 32, .. }), "{error:?}");
    }

    #[test]
    fn returning_false_cancels_at_the_next_tile() {
        let image = gradient(300, 300);
        let mut seen = 0;
        let error =
            upscale_planes(&image, &mut runner(1, 1), TileOptions { max_tile: 64, ..Default::default() }, &mut |_| {
                seen += 1;
                seen < 3
            })
            .unwrap_err();
        assert_eq!(error, TileError::Cancelled);
        assert_eq!(seen, 3);
    }

    #[test]
    fn tiny_images_work() {
        let image = gradient(1, 1);
        let out = upscale_planes(&image, &mut runner(4, 4), TileOptions::default(), &mut |_| true).unwrap();
        assert_eq!((out.width, out.height), (4, 4));
    }
}
