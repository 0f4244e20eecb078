//! Images of any size through a network that only fits tiles: the tile plan, reflect padding at
//! the image's borders, overlapping tiles blended with a raised-cosine ramp, and the retry with
//! smaller tiles when the device runs out of memory.
//!
//! Every tile of a plan has the same shape (kernels compile and tune once per shape). The whole
//! image is the one-tile case of the same code, so a tiled result and a whole-image result differ
//! only by the context a tile lacks near its inner edges; the blend gives those pixels little or
//! no weight where a neighbour saw them with full context.

use crate::compute::ComputeError;

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

/// Runs the network on one tile.
pub trait TileRunner {
    /// The network's integer scale.
    fn scale(&self) -> usize;
    /// What tile sides must be a multiple of (pixel-unshuffle).
    fn multiple(&self) -> usize;
    /// RGB planes in, RGB planes `scale` times larger out.
    fn run(&mut self, tile: &Planes) -> Result<Planes, ComputeError>;
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

/// Upscales RGB `image` tile by tile. `on_event` sees every finished tile and every retry, and
/// stops the work by returning `false`.
pub fn upscale(
    image: &Planes,
    runner: &mut dyn TileRunner,
    options: TileOptions,
    on_event: &mut dyn FnMut(TileEvent) -> bool,
) -> Result<Planes, TileError> {
    let mut max_tile = options.max_tile.max(options.min_tile);
    loop {
        match upscale_once(image, runner, TileOptions { max_tile, ..options }, on_event) {
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
    on_event: &mut dyn FnMut(TileEvent) -> bool,
) -> Result<Planes, TileError> {
    let scale = runner.scale();
    let multiple = runner.multiple();
    let border = options.border;
    // Tiles under twice the overlap share half their side (only out-of-memory retries go there).
    let overlap = options.overlap.min(options.max_tile / 2);
    let xs = plan_axis(image.width, options.max_tile, overlap, border, multiple);
    let ys = plan_axis(image.height, options.max_tile, overlap, border, multiple);
    let (out_w, out_h) = (image.width * scale, image.height * scale);
    let mut sum = Planes::zeros(image.channels, out_w, out_h);
    let mut weight = vec![0.0f32; out_w * out_h];
    let overlap_out = overlap * scale;
    // The blend runs on its own thread, one tile behind: while it adds tile n into the canvas,
    // the device already computes tile n + 1. The rendezvous channel keeps at most two tile
    // results in host memory.
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<Blend>(0);
        let (sum, weight) = (&mut sum, &mut weight);
        let blender = scope.spawn(move || {
            for b in receive {
                accumulate(sum, weight, &b.tile, b.at, &b.wx, &b.wy);
            }
        });
        let outcome = run_tiles(image, runner, (&xs, &ys), overlap_out, on_event, &send);
        drop(send);
        if let Err(panic) = blender.join() {
            std::panic::resume_unwind(panic);
        }
        outcome
    })?;
    normalise(&mut sum, &weight);
    Ok(sum)
}

/// A tile's result on its way to the blend: where it lands and its column and row weights.
struct Blend {
    tile: Planes,
    at: (isize, isize),
    wx: Vec<f32>,
    wy: Vec<f32>,
}

/// Runs every tile of the plan (`xs` × `ys`) through `runner` in order and sends each result
/// to `blend`.
fn run_tiles(
    image: &Planes,
    runner: &mut dyn TileRunner,
    (xs, ys): (&AxisPlan, &AxisPlan),
    overlap_out: usize,
    on_event: &mut dyn FnMut(TileEvent) -> bool,
    blend: &std::sync::mpsc::SyncSender<Blend>,
) -> Result<(), TileError> {
    let scale = runner.scale();
    let total = xs.starts.len() * ys.starts.len();
    let mut done = 0;
    for (iy, &y0) in ys.starts.iter().enumerate() {
        let wy: Vec<f32> = (0..ys.len * scale)
            .map(|u| edge_weight(u, ys.len * scale, overlap_out, iy > 0, iy + 1 < ys.starts.len()))
            .collect();
        for (ix, &x0) in xs.starts.iter().enumerate() {
            let wx: Vec<f32> = (0..xs.len * scale)
                .map(|u| edge_weight(u, xs.len * scale, overlap_out, ix > 0, ix + 1 < xs.starts.len()))
                .collect();
            let tile = image.window(x0, y0, xs.len, ys.len);
            let out = runner.run(&tile).map_err(TileError::Compute)?;
            let (tw, th) = (xs.len * scale, ys.len * scale);
            if out.width != tw || out.height != th || out.channels != image.channels {
                return Err(TileError::Compute(ComputeError::Failed(format!(
                    "the network returned {}×{}×{} for a tile that should become {tw}×{th}×{}",
                    out.channels, out.width, out.height, image.channels
                ))));
            }
            let at = (x0 * scale as isize, y0 * scale as isize);
            // The blender only stops early by panicking, which the caller re-raises.
            let _ = blend.send(Blend { tile: out, at, wx, wy: wy.clone() });
            done += 1;
            if !on_event(TileEvent::Tile { done, total, tile_width: xs.len, tile_height: ys.len }) {
                return Err(TileError::Cancelled);
            }
        }
    }
    Ok(())
}

/// How many threads the host side of tiling uses on `values` values: one per core (at most 8)
/// for the large canvases of real images, one for small ones.
fn threads_for(values: usize) -> usize {
    if values < 1 << 20 {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// Divides the weighted sums by their weights, clamped to [0, 1], on every core.
fn normalise(sum: &mut Planes, weight: &[f32]) {
    let plane = sum.width * sum.height;
    let threads = threads_for(sum.data.len());
    let chunk = plane.div_ceil(threads).max(1);
    let divide = |values: &mut [f32], weights: &[f32]| {
        for (v, w) in values.iter_mut().zip(weights) {
            *v = if *w > 0.0 { (*v / w).clamp(0.0, 1.0) } else { 0.0 };
        }
    };
    if threads == 1 {
        for values in sum.data.chunks_mut(plane) {
            divide(values, weight);
        }
        return;
    }
    std::thread::scope(|scope| {
        for values in sum.data.chunks_mut(plane) {
            for (values, weights) in values.chunks_mut(chunk).zip(weight.chunks(chunk)) {
                scope.spawn(move || divide(values, weights));
            }
        }
    });
}

/// One output row of a blend: the tile row it takes, that row's weight, and the canvas's weight
/// row and channel rows cut to the tile's span.
type BlendRow<'a> = (usize, f32, &'a mut [f32], Vec<&'a mut [f32]>);

/// Adds `tile` (placed at output position `at`, which may start before the image) weighted by
/// `wx[x]·wy[y]`, skipping the mirrored border. Each output row is one piece of work (its weight
/// row and its row in every channel), spread over the cores in bands: no two threads touch the
/// same row, so the result does not depend on the thread count. Row slices and zipped iterators
/// keep the inner loops free of bounds checks: this touches every output pixel of every tile.
fn accumulate(sum: &mut Planes, weight: &mut [f32], tile: &Planes, at: (isize, isize), wx: &[f32], wy: &[f32]) {
    let (out_w, out_h) = (sum.width as isize, sum.height as isize);
    let x_from = (-at.0).max(0) as usize;
    let x_to = ((out_w - at.0).min(tile.width as isize)).max(0) as usize;
    if x_from >= x_to {
        return;
    }
    let width = sum.width;
    let plane = sum.width * sum.height;
    let wx = &wx[x_from..x_to];
    let ox = (at.0 + x_from as isize) as usize;
    let span = ox..ox + wx.len();
    let mut weight_rows: Vec<&mut [f32]> = weight.chunks_mut(width).collect();
    let mut channel_rows: Vec<Vec<&mut [f32]>> =
        sum.data.chunks_mut(plane).map(|p| p.chunks_mut(width).collect()).collect();
    let mut rows: Vec<BlendRow> = Vec::with_capacity(wy.len());
    for (ty, &w_row) in wy.iter().enumerate() {
        let oy = at.1 + ty as isize;
        if oy < 0 || oy >= out_h || w_row == 0.0 {
            continue;
        }
        let oy = oy as usize;
        let weight_row = &mut std::mem::take(&mut weight_rows[oy])[span.clone()];
        let channels: Vec<&mut [f32]> =
            channel_rows.iter_mut().map(|c| &mut std::mem::take(&mut c[oy])[span.clone()]).collect();
        rows.push((ty, w_row, weight_row, channels));
    }
    let add = |band: &mut [BlendRow]| {
        for (ty, w_row, weight_row, channels) in band.iter_mut() {
            for (w, &x) in weight_row.iter_mut().zip(wx) {
                *w += x * *w_row;
            }
            for (c, dst) in channels.iter_mut().enumerate() {
                let src_start = (c * tile.height + *ty) * tile.width + x_from;
                let src = &tile.data[src_start..src_start + wx.len()];
                for ((d, &v), &x) in dst.iter_mut().zip(src).zip(wx) {
                    *d += v * x * *w_row;
                }
            }
        }
    };
    let threads = threads_for(rows.len() * wx.len() * tile.channels);
    if threads == 1 {
        add(&mut rows);
        return;
    }
    let band = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for band in rows.chunks_mut(band) {
            scope.spawn(move || add(band));
        }
    });
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

    impl TileRunner for BlurNearest {
        fn scale(&self) -> usize {
            self.scale
        }
        fn multiple(&self) -> usize {
            self.multiple
        }
        fn run(&mut self, tile: &Planes) -> Result<Planes, ComputeError> {
            self.calls.push((tile.width, tile.height));
            if self.fail_above.is_some_and(|max| tile.width * tile.height > max * max) {
                return Err(ComputeError::OutOfMemory("can't allocate buffer".into()));
            }
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
            Ok(out)
        }
    }

    fn runner(scale: usize, multiple: usize) -> BlurNearest {
        BlurNearest { scale, multiple, fail_above: None, calls: vec![] }
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

    #[test]
    fn tiled_and_whole_results_agree() {
        let image = gradient(150, 97);
        let whole =
            upscale(&image, &mut runner(2, 1), TileOptions { max_tile: 4096, ..Default::default() }, &mut |_| true)
                .unwrap();
        let mut small = runner(2, 1);
        let tiled =
            upscale(&image, &mut small, TileOptions { max_tile: 64, ..Default::default() }, &mut |_| true).unwrap();
        assert!(small.calls.len() > 4);
        let worst = whole.data.iter().zip(&tiled.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "worst difference {worst}");
        assert_eq!((tiled.width, tiled.height), (300, 194));
    }

    #[test]
    fn the_blend_spread_over_cores_gives_the_one_thread_result() {
        // A canvas past a million values takes the threaded blend and normalisation.
        let image = gradient(520, 500);
        let whole =
            upscale(&image, &mut runner(2, 1), TileOptions { max_tile: 4096, ..Default::default() }, &mut |_| true)
                .unwrap();
        let tiled =
            upscale(&image, &mut runner(2, 1), TileOptions { max_tile: 200, ..Default::default() }, &mut |_| true)
                .unwrap();
        let worst = whole.data.iter().zip(&tiled.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "worst difference {worst}");
    }

    #[test]
    fn out_of_memory_shrinks_the_tiles_and_finishes() {
        let image = gradient(200, 120);
        let mut failing = BlurNearest { fail_above: Some(100), ..runner(4, 2) };
        let mut events = vec![];
        let out = upscale(&image, &mut failing, TileOptions { max_tile: 512, ..Default::default() }, &mut |e| {
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
        let reference =
            upscale(&image, &mut runner(4, 2), TileOptions { max_tile: 1024, ..Default::default() }, &mut |_| true)
                .unwrap();
        let worst = reference.data.iter().zip(&out.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5);

        let mut hopeless = BlurNearest { fail_above: Some(8), ..runner(4, 2) };
        let error = upscale(&image, &mut hopeless, TileOptions::default(), &mut |_| true).unwrap_err();
        assert!(matches!(error, TileError::OutOfMemory { tile: 32, .. }), "{error:?}");
    }

    #[test]
    fn returning_false_cancels_at_the_next_tile() {
        let image = gradient(300, 300);
        let mut seen = 0;
        let error = upscale(&image, &mut runner(1, 1), TileOptions { max_tile: 64, ..Default::default() }, &mut |_| {
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
        let out = upscale(&image, &mut runner(4, 4), TileOptions::default(), &mut |_| true).unwrap();
        assert_eq!((out.width, out.height), (4, 4));
    }
}
