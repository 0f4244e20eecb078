//! The upscale step: one image file through an ESRGAN-family or compact network on one device,
//! tiled within the device's memory budget, with alpha, 16-bit, any output size, optional TTA,
//! and Kiln's metadata in the result.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor};
use image::imageops::FilterType;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::images::{self, OutputFormat, OutputMetadata};
use super::tiling::{self, Planes, Readout, TileEvent, TileOptions, TileRunner, Upscaled};
use crate::compute::{DeviceOwner, Expected, guarded};
use crate::devices::optimize::{MemoryPicture, Precision as Recommended, recommend};
use crate::devices::sampler::unix_ms;
use crate::devices::{DeviceId, DeviceKind};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorCode};
use crate::memory::{Allocation, AllocationKind};
use crate::nets::{Precision, Upscaler};

/// How big the result is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum OutputSize {
    /// The model's own scale.
    Model,
    /// A factor of the input's size (the model's scale, then a Lanczos resize).
    Scale { scale: f32 },
    /// A width in pixels, the height following the aspect ratio.
    Width { width: u32 },
}

/// What the alpha channel goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AlphaMode {
    /// The network, on the alpha plane as a grey image: sharp edges stay sharp.
    #[default]
    Model,
    /// A Lanczos resize: smooth, and cheaper.
    Resize,
}

/// The precision a job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PrecisionChoice {
    /// f16 where the device has shader-f16, else f32.
    #[default]
    Auto,
    F32,
    F16,
}

/// An upscale step's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct UpscaleSettings {
    /// The model file (a path in Kiln's model folders); absent: the bundled default.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub size: OutputSize,
    pub format: OutputFormat,
    /// JPEG and WebP quality, 1 to 100.
    pub quality: u8,
    pub alpha: AlphaMode,
    /// Average the 8 flips and rotations: a little cleaner, 8× the work.
    pub tta: bool,
    /// The largest tile side in input pixels; absent: chosen from the memory budget.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
    pub precision: PrecisionChoice,
}

impl Default for UpscaleSettings {
    fn default() -> Self {
        Self {
            model: None,
            size: OutputSize::Model,
            format: OutputFormat::Png,
            quality: 92,
            alpha: AlphaMode::Model,
            tta: false,
            tile: None,
            precision: PrecisionChoice::Auto,
        }
    }
}

impl UpscaleSettings {
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::invalid_input(m));
        match self.size {
            OutputSize::Scale { scale } if !(scale.is_finite() && (0.05..=16.0).contains(&scale)) => {
                return bad(format!("scale {scale} is outside 0.05 to 16"));
            }
            OutputSize::Width { width } if width == 0 || width > images::MAX_SIDE * 4 => {
                return bad(format!("width {width} is outside 1 to {}", images::MAX_SIDE * 4));
            }
            _ => {}
        }
        if !(1..=100).contains(&self.quality) {
            return bad(format!("quality {} is outside 1 to 100", self.quality));
        }
        if let Some(tile) = self.tile
            && !(16..=8192).contains(&tile)
        {
            return bad(format!("tile {tile} is outside 16 to 8192"));
        }
        Ok(())
    }

    /// The output size for an input of `w`×`h` through a network of scale `net`.
    pub fn output_size(&self, w: u32, h: u32, net: f32) -> (u32, u32) {
        let factor = match self.size {
            OutputSize::Model => net,
            OutputSize::Scale { scale } => scale,
            OutputSize::Width { width } => width as f32 / w as f32,
        };
        let out = |v: u32| ((v as f64 * factor as f64).round() as u32).max(1);
        match self.size {
            OutputSize::Width { width } => (width, out(h)),
            _ => (out(w), out(h)),
        }
    }

    /// The suffix of output file names: `_x4`, `_x1.5`, `_w1920`.
    pub fn suffix(&self, net: f32) -> String {
        let number = |v: f32| {
            let s = format!("{v:.2}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        };
        match self.size {
            OutputSize::Model => format!("_x{}", number(net)),
            OutputSize::Scale { scale } => format!("_x{}", number(scale)),
            OutputSize::Width { width } => format!("_w{width}"),
        }
    }
}

/// What the step reports while it runs. Returning `false` from the callback stops the work at
/// the next tile.
#[derive(Debug, Clone, PartialEq)]
pub enum UpscaleEvent {
    /// The model is on the device; tiles follow.
    Ready {
        tile: usize,
        precision: Precision,
        tiles_per_pass: usize,
        passes: usize,
    },
    Tile {
        done: usize,
        total: usize,
    },
    /// A line for the job's log.
    Note(String),
    /// A line for the job's log about something the user asked for that the step changed: a
    /// smaller tile after running out of memory, f32 for f16, 8 bits for 16.
    Warning(String),
}

/// What an upscale did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct UpscaleOutcome {
    pub output: String,
    pub input_width: u32,
    pub input_height: u32,
    pub output_width: u32,
    pub output_height: u32,
    pub model: String,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_autov2: Option<String>,
    pub device_id: DeviceId,
    pub precision: Precision,
    /// The tile side the work finished with.
    pub tile: u32,
    pub tta: bool,
    pub seconds: f64,
}

/// The largest tile side (a multiple of 32, 32 to 2048: a 1080p image in one tile, where the
/// device's memory allows; each tile more costs a wait for the device and the overlap's pixels
/// twice) whose working memory fits `free` bytes:
/// `per_pixel` bytes for each input pixel of the tile, and `band_per_row` for each input row of
/// it (the band of output rows the tiler blends into on the device, see [`band_bytes_per_row`]).
pub fn auto_tile(free: u64, per_pixel: u64, band_per_row: u64) -> usize {
    // The largest side t with per_pixel·t² + band_per_row·t <= free.
    let (a, b, c) = (per_pixel.max(1) as f64, band_per_row as f64, free as f64);
    let side = ((b * b + 4.0 * a * c).sqrt() - b) / (2.0 * a);
    (side as usize / 32 * 32).clamp(32, 2048)
}

/// The tile side a job of `upscaler` picks for an image `width` input pixels wide when
/// `free` bytes of the device's budget are left beside the weights: what the network needs
/// whatever the tile's size comes off first ([`Upscaler::working_bytes_fixed`]), then
/// [`auto_tile`] for its working memory per pixel (twice with 8-fold TTA, which sums) and the
/// band of output rows.
pub fn auto_tile_for(upscaler: &Upscaler, free: u64, width: u32, tta: bool) -> usize {
    let free = free.saturating_sub(upscaler.working_bytes_fixed());
    auto_tile(free, tile_bytes_per_pixel(upscaler, tta), band_bytes_per_row(width, upscaler.net_scale))
}

/// Device memory a job's tile needs for each of its input pixels: the network's working memory,
/// twice with 8-fold TTA (the orientations' outputs are summed beside the one running).
fn tile_bytes_per_pixel(upscaler: &Upscaler, tta: bool) -> u64 {
    upscaler.working_bytes_per_pixel() * if tta { 2 } else { 1 }
}

/// Device memory the tiler's band of output rows takes for each input row of a tile, for an
/// image `width` input pixels wide through a network of `scale`: RGB f32 rows `scale` times
/// wider and taller, twice (the band and the one it becomes when a tile is added).
pub fn band_bytes_per_row(width: u32, scale: usize) -> u64 {
    let row = width as u64 * scale as u64 * 3 * 4;
    2 * row * scale as u64
}

/// The largest tile side whose biggest tensor fits one storage buffer of `limit` bytes: the
/// network's largest feature map, or the band of output rows the tiler blends into, which is as
/// wide as the result (`width` input pixels).
pub fn buffer_tile_limit(upscaler: &Upscaler, limit: u64, width: u32) -> usize {
    let feature_map = ((limit / upscaler.largest_tensor_bytes_per_pixel().max(1)) as f64).sqrt() as usize;
    let band = (limit / (band_bytes_per_row(width, upscaler.net_scale) / 2).max(1)) as usize;
    (feature_map.min(band) / 32 * 32).max(32)
}

/// A network on a device as a tile runner, with optional 8-fold TTA.
pub struct NetRunner {
    upscaler: Arc<Upscaler>,
    device: Device,
    tta: bool,
}

impl NetRunner {
    pub fn new(upscaler: Arc<Upscaler>, device: Device, tta: bool) -> Self {
        Self { upscaler, device, tta }
    }

    fn once(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.tta {
            return self.upscaler.forward(x);
        }
        let mut sum: Option<Tensor<4>> = None;
        for k in 0..8 {
            let mut t = x.clone();
            if k & 1 != 0 {
                t = t.flip([3]);
            }
            if k & 2 != 0 {
                t = t.flip([2]);
            }
            if k & 4 != 0 {
                t = t.swap_dims(2, 3);
            }
            let mut y = self.upscaler.forward(t);
            if k & 4 != 0 {
                y = y.swap_dims(2, 3);
            }
            if k & 2 != 0 {
                y = y.flip([2]);
            }
            if k & 1 != 0 {
                y = y.flip([3]);
            }
            sum = Some(match sum {
                Some(s) => s + y,
                None => y,
            });
        }
        sum.expect("eight passes") / 8.0
    }
}

impl TileRunner for NetRunner {
    fn scale(&self) -> usize {
        self.upscaler.net_scale
    }

    fn multiple(&self) -> usize {
        self.upscaler.size_multiple()
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    fn run(&mut self, tile: Tensor<4>) -> Tensor<4> {
        self.once(tile)
    }

    fn release(&mut self) {
        let _ = guarded(|| {
            let _ = self.device.sync();
            self.device.memory_cleanup();
        });
    }
}

/// The network's output for a one-channel plane: the plane as grey RGB, averaged back.
fn grey_through(
    plane: &Planes,
    runner: &mut NetRunner,
    options: TileOptions,
    on_tile: &mut dyn FnMut(TileEvent) -> bool,
) -> Result<Planes, tiling::TileError> {
    let rgb = Planes {
        channels: 3,
        width: plane.width,
        height: plane.height,
        data: [plane.data.as_slice(), &plane.data, &plane.data].concat(),
    };
    let out = tiling::upscale(&rgb, runner, options, Readout::Planes, on_tile)?.into_planes();
    let n = out.width * out.height;
    let data = (0..n).map(|i| (out.data[i] + out.data[n + i] + out.data[2 * n + i]) / 3.0).collect();
    Ok(Planes { channels: 1, width: out.width, height: out.height, data })
}

/// What one pass of the tiler runs.
enum Pass {
    /// The RGB image, read back as the [`Readout`] says.
    Rgb(Readout),
    /// The alpha plane, through the network as a grey image.
    Alpha,
}

/// One pass of the tiler, reporting tiles as a share of all `passes`; returns the result and
/// the tile side it finished with.
fn run_pass(
    runner: &mut NetRunner,
    planes: &Planes,
    what: Pass,
    options: TileOptions,
    (pass, passes): (usize, usize),
    on_event: &mut dyn FnMut(UpscaleEvent) -> bool,
) -> Result<(Upscaled, usize), ApiError> {
    let mut final_tile = options.max_tile;
    let mut on_tile = |event: TileEvent| match event {
        TileEvent::Tile { done, total, .. } => {
            on_event(UpscaleEvent::Tile { done: pass * total + done, total: passes * total })
        }
        TileEvent::Shrunk { from, to, reason } => {
            final_tile = to;
            on_event(UpscaleEvent::Warning(format!(
                "out of memory with {from}-pixel tiles ({reason}); going on with {to}-pixel tiles"
            )))
        }
    };
    let result = match what {
        Pass::Alpha => grey_through(planes, runner, options, &mut on_tile).map(Upscaled::Planes),
        Pass::Rgb(readout) => tiling::upscale(planes, runner, options, readout, &mut on_tile),
    };
    let planes = result.map_err(|e| match e {
        tiling::TileError::Cancelled => ApiError::new(ErrorCode::Cancelled, "cancelled"),
        tiling::TileError::OutOfMemory { tile, reason } => ApiError::new(
            ErrorCode::OutOfMemory,
            format!("the device ran out of memory even with {tile}-pixel tiles: {reason}"),
        ),
        tiling::TileError::Compute(e) => e.into(),
    })?;
    Ok((planes, final_tile))
}

/// Resizes planes with a Lanczos filter.
fn resize(planes: &Planes, width: u32, height: u32) -> Planes {
    if (planes.width as u32, planes.height as u32) == (width, height) {
        return planes.clone();
    }
    let mut out = Planes::zeros(planes.channels, width as usize, height as usize);
    for c in 0..planes.channels {
        let buffer: image::ImageBuffer<image::Luma<f32>, Vec<f32>> =
            image::ImageBuffer::from_raw(planes.width as u32, planes.height as u32, planes.plane(c).to_vec())
                .expect("sized");
        let resized = image::imageops::resize(&buffer, width, height, FilterType::Lanczos3);
        let n = (width * height) as usize;
        out.data[c * n..(c + 1) * n].copy_from_slice(resized.as_raw());
    }
    out
}

/// A free path: `path` itself, else `stem-1.ext`, `stem-2.ext`...
pub fn unused_path(path: PathBuf) -> PathBuf {
    if !path.exists() {
        return path;
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    (1..).map(|n| path.with_file_name(format!("{stem}-{n}.{ext}"))).find(|p| !p.exists()).expect("some number is free")
}

/// Everything one upscale needs.
pub struct UpscaleRequest<'a> {
    pub input: &'a Path,
    /// The output folder; the file is named `<input stem><suffix>.<ext>`.
    pub output_dir: &'a Path,
    /// A fixed output file instead (intermediate workflow steps).
    pub output_file: Option<&'a Path>,
    pub model: &'a Path,
    pub device_id: &'a DeviceId,
    pub settings: &'a UpscaleSettings,
    /// Who holds the working memory, for the ledger (`job 12`).
    pub owner: String,
}

impl Engine {
    /// The precision a job runs in on a device.
    fn upscale_precision(
        &self,
        device_id: &DeviceId,
        choice: PrecisionChoice,
    ) -> Result<(Precision, Option<String>), ApiError> {
        let bound = self.bound(device_id)?;
        let recommended = recommend(&bound.device, &MemoryPicture::default()).precision;
        Ok(match (choice, recommended) {
            (PrecisionChoice::F32, _) => (Precision::F32, None),
            (PrecisionChoice::Auto, Recommended::F16) | (PrecisionChoice::F16, Recommended::F16) => {
                (Precision::F16, None)
            }
            (PrecisionChoice::Auto, Recommended::F32) => (Precision::F32, None),
            (PrecisionChoice::F16, Recommended::F32) => {
                (Precision::F32, Some(format!("{} has no f16 compute here: running in f32", bound.device.name)))
            }
        })
    }

    /// Upscales one image file. Blocking: call from a worker thread.
    ///
    /// Decoding and encoding run here; the model's upload and the tiles run on the device's
    /// owner thread ([`crate::compute::owner`]), whose events come back to `on_event` here.
    pub fn upscale_file(
        &self,
        request: UpscaleRequest<'_>,
        on_event: &mut dyn FnMut(UpscaleEvent) -> bool,
    ) -> Result<UpscaleOutcome, ApiError> {
        let started = Instant::now();
        let settings = request.settings;
        settings.validate()?;
        let decoded = images::decode_file(request.input)?;
        let (in_w, in_h) = (decoded.image.width(), decoded.image.height());

        let bound = self.bound(request.device_id)?;
        let owner = self.device_owner(request.device_id)?;
        let (precision, note) = self.upscale_precision(request.device_id, settings.precision)?;
        if let Some(note) = note {
            on_event(UpscaleEvent::Warning(note));
        }
        let buffer_limit = bound
            .device
            .adapters
            .iter()
            .find(|a| Some(a.backend.as_str()) == bound.device.compute_backend.as_deref())
            .map(|a| a.limits.max_storage_buffer_binding_size)
            .filter(|l| *l > 0);
        let has_alpha = decoded.has_alpha();
        let (rgb, alpha) = images::to_planes(&decoded.image);
        let alpha_channel = has_alpha;
        let alpha = alpha.filter(|a| a.data.iter().any(|&v| v < 1.0));
        // 16-bit PNG output needs the f32 values back.
        let sixteen = decoded.is_16_bit() && settings.format == OutputFormat::Png;
        let work = DeviceWork {
            engine: self.clone(),
            owner: owner.clone(),
            device_id: request.device_id.clone(),
            device_name: bound.device.name.clone(),
            model: request.model.to_path_buf(),
            settings: settings.clone(),
            holder: request.owner.clone(),
            precision,
            buffer_limit,
            rgb,
            alpha,
            alpha_channel,
            sixteen,
        };
        let expected = Expected::new(first_step_allowance(bound.device.kind, in_w as u64 * in_h as u64));
        let what = format!(
            "{}: upscaling {}",
            request.owner,
            request.input.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
        let done = owner.run_reporting(
            what,
            expected,
            move |device, reporter| work.run(device, &mut |event| reporter.report(event)),
            on_event,
        )??;
        let DeviceResult { rgb: up_rgb, alpha: up_alpha, tile: final_tile, precision, net_scale, out_w, out_h } = done;
        let (up_w, up_h) = up_rgb.dimensions();

        // The size asked for, then the file.
        let (rgb, alpha) = if (up_w as u32, up_h as u32) != (out_w, out_h) {
            on_event(UpscaleEvent::Note(format!("resizing {up_w}×{up_h} to {out_w}×{out_h} (Lanczos)")));
            let rgb = Upscaled::Planes(resize(&up_rgb.into_planes(), out_w, out_h));
            (rgb, up_alpha.map(|a| resize(&a, out_w, out_h)))
        } else {
            (up_rgb, up_alpha)
        };
        // An input with an opaque alpha channel keeps one.
        let alpha = alpha.or_else(|| {
            has_alpha.then(|| Planes {
                channels: 1,
                width: out_w as usize,
                height: out_h as usize,
                data: vec![1.0; (out_w * out_h) as usize],
            })
        });
        if decoded.is_16_bit() && !sixteen {
            on_event(UpscaleEvent::Warning(format!(
                "{} holds 8 bits a channel: the 16-bit input is written as 8-bit",
                settings.format.extension().to_uppercase()
            )));
        }
        let image = match rgb {
            Upscaled::Rgb8 { width, height, data } => images::from_rgb8(width, height, data, alpha.as_ref()),
            Upscaled::Planes(rgb) => images::from_planes(&rgb, alpha.as_ref(), sixteen),
        };
        let name =
            request.input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
        let output = match request.output_file {
            Some(file) => file.to_path_buf(),
            None => {
                std::fs::create_dir_all(request.output_dir).map_err(|e| {
                    ApiError::new(ErrorCode::Io, format!("cannot create {}: {e}", request.output_dir.display()))
                })?;
                unused_path(request.output_dir.join(format!(
                    "{name}{}.{}",
                    settings.suffix(net_scale),
                    settings.format.extension()
                )))
            }
        };
        let model_autov2 = crate::library::hashed_file(request.model)
            .and_then(|file| self.state.library.hashes.get(&file))
            .map(|sha256| kiln_models::hash::autov2(&sha256));
        let mut outcome = UpscaleOutcome {
            output: output.display().to_string(),
            input_width: in_w,
            input_height: in_h,
            output_width: out_w,
            output_height: out_h,
            model: request.model.display().to_string(),
            model_autov2,
            device_id: request.device_id.clone(),
            precision,
            tile: final_tile as u32,
            tta: settings.tta,
            seconds: 0.0,
        };
        outcome.seconds = started.elapsed().as_secs_f64();
        let metadata = OutputMetadata {
            icc_profile: decoded.icc_profile.clone(),
            exif: decoded.exif.clone(),
            kiln_json: serde_json::to_string(&serde_json::json!({
                "kiln": env!("CARGO_PKG_VERSION"),
                "step": "upscale",
                "input": request.input.file_name().map(|n| n.to_string_lossy()),
                "model": request.model.file_name().map(|n| n.to_string_lossy()),
                "model_autov2": outcome.model_autov2,
                "scale": out_w as f32 / in_w as f32,
                "tile": outcome.tile,
                "tta": settings.tta,
                "precision": outcome.precision,
                "device": bound.device.name,
                "seconds": (outcome.seconds * 1000.0).round() / 1000.0,
            }))
            .ok(),
        };
        images::write(&image, &output, settings.format, settings.quality, &metadata)?;
        outcome.seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }
}

/// What a job's first step on a device (its model's upload, kernels compiled and tuned, the
/// first tile) may take before the watchdog calls it a stall: minutes on a GPU, far longer on
/// a software rasteriser or the CPU, and more for a larger image (a larger first tile). Later
/// steps are held to the longest step seen (`compute::owner`).
pub fn first_step_allowance(kind: DeviceKind, input_pixels: u64) -> Duration {
    let megapixels = input_pixels as f64 / 1e6;
    let (base, per_megapixel) = match kind {
        DeviceKind::Cpu | DeviceKind::SoftwareGpu => (600.0, 1200.0),
        _ => (120.0, 30.0),
    };
    Duration::from_secs_f64(base + per_megapixel * megapixels.min(4.0))
}

/// The part of an upscale that runs on the device's owner thread, with what it needs owned.
struct DeviceWork {
    engine: Engine,
    owner: Arc<DeviceOwner>,
    device_id: DeviceId,
    device_name: String,
    model: PathBuf,
    settings: UpscaleSettings,
    /// Who holds the working memory, for the ledger (`job 12`).
    holder: String,
    precision: Precision,
    /// The device's largest storage buffer, where known.
    buffer_limit: Option<u64>,
    rgb: Planes,
    /// The alpha plane, where the image has a non-opaque one.
    alpha: Option<Planes>,
    /// Whether the image has an alpha channel at all (opaque or not).
    alpha_channel: bool,
    sixteen: bool,
}

/// What the device part gives back.
struct DeviceResult {
    rgb: Upscaled,
    alpha: Option<Planes>,
    /// The tile side the work finished with.
    tile: usize,
    precision: Precision,
    /// The network's scale with the file's own resize.
    net_scale: f32,
    out_w: u32,
    out_h: u32,
}

impl DeviceWork {
    /// The model onto the device (held for the whole job so no eviction takes it), the tile
    /// size from the budget, and the passes. Runs on the owner thread of `device`.
    fn run(self, device: &Device, on_event: &mut dyn FnMut(UpscaleEvent) -> bool) -> Result<DeviceResult, ApiError> {
        let engine = &self.engine;
        let settings = &self.settings;
        let (in_w, in_h) = (self.rgb.width as u32, self.rgb.height as u32);
        let budget = engine.device_memory(&self.device_id)?.budget_bytes;
        let (upscaler, load) = engine.state.residency.load_as(
            &self.device_id,
            &self.owner,
            &self.model,
            budget,
            engine.ram_budget(),
            self.precision,
        )?;
        engine.emit(crate::events::KilnEvent::ModelsChanged);
        on_event(UpscaleEvent::Note(format!(
            "model {} on {} in {:?} ({:?}, {:.2} s)",
            self.model.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            self.device_name,
            upscaler.precision,
            load.source,
            load.seconds
        )));
        let net_scale = upscaler.net_scale as f32 * upscaler.final_resize.unwrap_or(1.0);
        let (out_w, out_h) = settings.output_size(in_w, in_h, net_scale);
        let format_max = settings.format.max_side();
        if out_w > format_max || out_h > format_max {
            return Err(ApiError::invalid_input(format!(
                "{out_w}×{out_h} is larger than {} holds ({format_max} px a side): choose PNG or a smaller size",
                settings.format.extension().to_uppercase()
            )));
        }
        // The result is assembled in RAM as f32 planes at the network's scale: three for RGB and
        // one of slack (a band in flight, the encoded image); an alpha plane through the network
        // adds three more while its grey result is averaged into one.
        let (net_w, net_h) = (in_w as u64 * upscaler.net_scale as u64, in_h as u64 * upscaler.net_scale as u64);
        let assembly = net_w * net_h * 4 * (if self.alpha_channel { 8 } else { 4 });
        let ram_total = engine
            .latest_status(&DeviceId(DeviceId::CPU.into()))
            .and_then(|s| s.memory_total_bytes.map(|r| r.value))
            .unwrap_or(16 << 30);
        if assembly > ram_total / 2 {
            return Err(ApiError::new(
                ErrorCode::OutOfMemory,
                format!(
                    "a {in_w}×{in_h} image becomes {net_w}×{net_h} at the model's scale, which needs {:.1} GiB of RAM to assemble; this machine has {:.1} GiB",
                    assembly as f64 / (1u64 << 30) as f64,
                    ram_total as f64 / (1u64 << 30) as f64
                ),
            ));
        }

        // Tiles: the largest that fit what the budget leaves beside the weights.
        let per_pixel = tile_bytes_per_pixel(&upscaler, settings.tta);
        let free = budget.saturating_sub(engine.state.residency.weights_on(&self.device_id));
        let multiple = upscaler.size_multiple().max(1);
        let band_per_row = band_bytes_per_row(in_w, upscaler.net_scale);
        let tile = match settings.tile {
            Some(tile) => tile as usize,
            None => auto_tile_for(&upscaler, free, in_w, settings.tta),
        };
        let tile = match self.buffer_limit.map(|limit| buffer_tile_limit(&upscaler, limit, in_w)) {
            Some(cap) if cap < tile => {
                on_event(UpscaleEvent::Note(format!(
                    "tiles of at most {cap} px: a larger tile's feature map, or its band of output rows, would not fit one GPU buffer"
                )));
                cap
            }
            _ => tile,
        };
        let tile = (tile / multiple * multiple).max(multiple);
        let options = TileOptions { max_tile: tile, min_tile: 16.max(multiple), ..TileOptions::default() };
        let tiles = |t: usize| {
            tiling::plan_axis(in_w as usize, t, options.overlap.min(t / 2), options.border, multiple).starts.len()
                * tiling::plan_axis(in_h as usize, t, options.overlap.min(t / 2), options.border, multiple).starts.len()
        };
        let model_alpha = self.alpha.is_some() && settings.alpha == AlphaMode::Model;
        let passes = if model_alpha { 2 } else { 1 };
        on_event(UpscaleEvent::Ready { tile, precision: upscaler.precision, tiles_per_pass: tiles(tile), passes });
        let tile_rows = tile.min(in_h as usize + 2 * options.border) as u64;
        let tile_area = tile.min(in_w as usize + 2 * options.border) as u64 * tile_rows;
        let _working = engine.state.residency.hold_working(Allocation {
            id: 0,
            device_id: self.device_id.clone(),
            owner: self.holder.clone(),
            component: "tiles".into(),
            kind: AllocationKind::Activations,
            bytes: tile_area * per_pixel + tile_rows * band_per_row + upscaler.working_bytes_fixed(),
            since_ms: unix_ms(),
            path: None,
        });

        // 8-bit output at the model's own scale is rounded on the device and read back as
        // bytes; resizing and 16-bit output need the f32 values.
        let readout = if (net_w, net_h) == (out_w as u64, out_h as u64) && !self.sixteen {
            Readout::Rgb8
        } else {
            Readout::Planes
        };
        let mut runner = NetRunner::new(upscaler.clone(), device.clone(), settings.tta);
        let (up_rgb, mut final_tile) =
            run_pass(&mut runner, &self.rgb, Pass::Rgb(readout), options, (0, passes), on_event)?;
        let (up_w, up_h) = up_rgb.dimensions();
        let up_alpha = match (&self.alpha, settings.alpha) {
            (Some(a), AlphaMode::Model) => {
                let options = TileOptions { max_tile: final_tile, ..options };
                let (plane, last_tile) = run_pass(&mut runner, a, Pass::Alpha, options, (1, passes), on_event)?;
                final_tile = last_tile;
                Some(plane.into_planes())
            }
            (Some(a), AlphaMode::Resize) => Some(resize(a, up_w as u32, up_h as u32)),
            (None, _) => None,
        };
        runner.release();
        Ok(DeviceResult {
            rgb: up_rgb,
            alpha: up_alpha,
            tile: final_tile,
            precision: upscaler.precision,
            net_scale,
            out_w,
            out_h,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tiles_leave_room_for_the_band_of_output_rows() {
        let (free, per_pixel) = (1u64 << 30, 6144);
        assert_eq!(auto_tile(free, per_pixel, 0), 416, "sqrt(free / per_pixel), down to a multiple of 32");
        let band = band_bytes_per_row(1920, 4);
        assert_eq!(band, 2 * 1920 * 4 * 3 * 4 * 4);
        let fits = |t: u64| per_pixel * t * t + band * t <= free;
        let tile = auto_tile(free, per_pixel, band) as u64;
        assert!(fits(tile) && !fits(tile + 32), "{tile}");
        assert!(tile < 416);
        assert_eq!(auto_tile(1 << 40, per_pixel, band), 2048);
        assert_eq!(auto_tile(0, per_pixel, band), 32);
    }

    #[test]
    fn sizes_and_suffixes_follow_the_setting() {
        let mut s = UpscaleSettings::default();
        assert_eq!(s.output_size(100, 50, 4.0), (400, 200));
        assert_eq!(s.suffix(4.0), "_x4");
        s.size = OutputSize::Scale { scale: 1.5 };
        assert_eq!((s.output_size(100, 51, 4.0), s.suffix(4.0)), ((150, 77), "_x1.5".into()));
        s.size = OutputSize::Width { width: 1920 };
        assert_eq!((s.output_size(960, 540, 4.0), s.suffix(4.0)), ((1920, 1080), "_w1920".into()));
        s.size = OutputSize::Scale { scale: 0.0 };
        assert!(s.validate().is_err());
    }

    #[test]
    fn outputs_never_overwrite() {
        let dir = kiln_testdir::TempDir::new();
        let path = dir.path().join("a_x4.png");
        assert_eq!(unused_path(path.clone()), path);
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(unused_path(path.clone()), dir.path().join("a_x4-1.png"));
    }
}
