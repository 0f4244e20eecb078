//! Image files in and out: every decode of user input under `image::Limits`, the ICC profile
//! and EXIF kept, planes for the networks, and outputs written atomically as PNG (8/16-bit,
//! iCCP, eXIf and Kiln's own `kiln` text chunk), JPEG (quality, ICC, EXIF) or WebP (quality).

use std::io::{BufReader, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, Limits};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::tiling::Planes;
use crate::error::{ApiError, ErrorCode};

/// The largest side Kiln decodes, and the most memory one decode may take.
pub const MAX_SIDE: u32 = 32768;
pub const MAX_DECODE_BYTES: u64 = 4 << 30;

/// Why an image could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageIoError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an image Kiln reads (PNG, JPEG, WebP, TIFF, BMP)")]
    UnknownFormat { path: PathBuf },
    #[error("{path} is larger than Kiln decodes ({limit}): {reason}")]
    TooLarge { path: PathBuf, limit: String, reason: String },
    #[error("{path} is damaged or truncated: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

impl From<ImageIoError> for ApiError {
    fn from(error: ImageIoError) -> Self {
        let code = match &error {
            ImageIoError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorCode::NotFound,
            ImageIoError::Read { .. } | ImageIoError::Write { .. } => ErrorCode::Io,
            _ => ErrorCode::InvalidInput,
        };
        ApiError::new(code, error.to_string())
    }
}

/// An image file as decoded, with the metadata Kiln carries to its outputs.
#[derive(Debug)]
pub struct Decoded {
    pub image: DynamicImage,
    pub icc_profile: Option<Vec<u8>>,
    pub exif: Option<Vec<u8>>,
    pub format: image::ImageFormat,
}

impl Decoded {
    pub fn has_alpha(&self) -> bool {
        self.image.color().has_alpha()
    }

    /// Whether the file holds more than 8 bits per channel (kept in PNG outputs).
    pub fn is_16_bit(&self) -> bool {
        self.image.color().bytes_per_pixel() / self.image.color().channel_count() >= 2
    }
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

fn decode_error(path: &Path, error: image::ImageError) -> ImageIoError {
    let path = path.to_path_buf();
    match error {
        image::ImageError::Limits(e) => ImageIoError::TooLarge {
            path,
            limit: format!("{MAX_SIDE} px a side, {} GiB", MAX_DECODE_BYTES >> 30),
            reason: e.to_string(),
        },
        image::ImageError::Unsupported(_) => ImageIoError::UnknownFormat { path },
        image::ImageError::IoError(source) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            ImageIoError::Read { path, source }
        }
        other => ImageIoError::Corrupt { path, reason: other.to_string() },
    }
}

/// Reads an image file, guessing the format from its bytes.
pub fn decode_file(path: &Path) -> Result<Decoded, ImageIoError> {
    let file = std::fs::File::open(path).map_err(|source| ImageIoError::Read { path: path.to_path_buf(), source })?;
    decode(ImageReader::new(BufReader::new(file)), path)
}

/// Reads image bytes (an upload); `name` is for messages.
pub fn decode_bytes(bytes: &[u8], name: &Path) -> Result<Decoded, ImageIoError> {
    decode(ImageReader::new(BufReader::new(Cursor::new(bytes))), name)
}

fn decode<R: std::io::BufRead + std::io::Seek>(reader: ImageReader<R>, path: &Path) -> Result<Decoded, ImageIoError> {
    let mut reader =
        reader.with_guessed_format().map_err(|source| ImageIoError::Read { path: path.to_path_buf(), source })?;
    let Some(format) = reader.format() else {
        return Err(ImageIoError::UnknownFormat { path: path.to_path_buf() });
    };
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(path, e))?;
    // Metadata is a courtesy: a damaged profile does not stop the image.
    let icc_profile = decoder.icc_profile().ok().flatten();
    let exif = decoder.exif_metadata().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?;
    Ok(Decoded { image, icc_profile, exif, format })
}

/// Just the dimensions, for listing an input without decoding it.
pub fn dimensions(path: &Path) -> Result<(u32, u32), ImageIoError> {
    let file = std::fs::File::open(path).map_err(|source| ImageIoError::Read { path: path.to_path_buf(), source })?;
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|source| ImageIoError::Read { path: path.to_path_buf(), source })?;
    reader.limits(limits());
    reader.into_dimensions().map_err(|e| decode_error(path, e))
}

/// Whether a path names a file kind Kiln decodes, by extension (for folder scans).
pub fn is_image_path(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "webp" | "tif" | "tiff" | "bmp"))
}

/// RGB planes and, when the image has one, the alpha plane, in [0, 1].
pub fn to_planes(image: &DynamicImage) -> (Planes, Option<Planes>) {
    let rgba = image.to_rgba32f();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    let mut rgb = Planes::zeros(3, w, h);
    let mut alpha = image.color().has_alpha().then(|| Planes::zeros(1, w, h));
    for (i, px) in rgba.pixels().enumerate() {
        for c in 0..3 {
            rgb.data[c * w * h + i] = px.0[c];
        }
        if let Some(a) = alpha.as_mut() {
            a.data[i] = px.0[3];
        }
    }
    (rgb, alpha)
}

/// Planes back to an image: RGB or RGBA, 8 or 16 bits a channel.
pub fn from_planes(rgb: &Planes, alpha: Option<&Planes>, sixteen_bit: bool) -> DynamicImage {
    let (w, h) = (rgb.width, rgb.height);
    let n = w * h;
    let channels = if alpha.is_some() { 4 } else { 3 };
    let value =
        |i: usize, c: usize| -> f32 { if c == 3 { alpha.map_or(1.0, |a| a.data[i]) } else { rgb.data[c * n + i] } };
    // Interleaved samples in [0, `max`], rounded.
    let samples = |max: f32| (0..n).flat_map(move |i| (0..channels).map(move |c| quantise(value(i, c), max)));
    let (w, h) = (w as u32, h as u32);
    match (sixteen_bit, channels == 4) {
        (true, alpha) => {
            let data: Vec<u16> = samples(65535.0).map(|v| v as u16).collect();
            if alpha {
                DynamicImage::ImageRgba16(image::ImageBuffer::from_raw(w, h, data).expect("sized"))
            } else {
                DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(w, h, data).expect("sized"))
            }
        }
        (false, alpha) => {
            let data: Vec<u8> = samples(255.0).map(|v| v as u8).collect();
            if alpha {
                DynamicImage::ImageRgba8(image::ImageBuffer::from_raw(w, h, data).expect("sized"))
            } else {
                DynamicImage::ImageRgb8(image::ImageBuffer::from_raw(w, h, data).expect("sized"))
            }
        }
    }
}

/// A value in [0, 1] (clamped) as a sample in [0, `max`], rounded.
fn quantise(value: f32, max: f32) -> f32 {
    (value.clamp(0.0, 1.0) * max).round()
}

/// Interleaved 8-bit RGB (as the tiler reads it back) and, when given, an alpha plane in
/// [0, 1], rounded as [`from_planes`] rounds it, to an RGB or RGBA image.
pub fn from_rgb8(width: usize, height: usize, rgb: Vec<u8>, alpha: Option<&Planes>) -> DynamicImage {
    let (w, h) = (width as u32, height as u32);
    let Some(alpha) = alpha else {
        return DynamicImage::ImageRgb8(image::ImageBuffer::from_raw(w, h, rgb).expect("sized"));
    };
    let data: Vec<u8> = rgb
        .chunks_exact(3)
        .zip(&alpha.data)
        .flat_map(|(pixel, &a)| [pixel[0], pixel[1], pixel[2], quantise(a, 255.0) as u8])
        .collect();
    DynamicImage::ImageRgba8(image::ImageBuffer::from_raw(w, h, data).expect("sized"))
}

/// Output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Lossless; keeps 16-bit inputs 16-bit, alpha, ICC, EXIF and Kiln's metadata.
    #[default]
    Png,
    /// 8-bit, no alpha; keeps ICC and EXIF.
    Jpeg,
    /// 8-bit with alpha, lossy at the chosen quality (100 is lossless); at most 16383 px a side.
    Webp,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    /// The largest side the format can hold.
    pub fn max_side(self) -> u32 {
        match self {
            Self::Png => u32::MAX >> 1,
            Self::Jpeg => 65535,
            Self::Webp => 16383,
        }
    }
}

/// What goes into an output file besides pixels.
#[derive(Debug, Clone, Default)]
pub struct OutputMetadata {
    pub icc_profile: Option<Vec<u8>>,
    pub exif: Option<Vec<u8>>,
    /// Kiln's JSON (model, hash, scale, tile, device, duration): a `kiln` iTXt chunk in PNGs.
    pub kiln_json: Option<String>,
}

/// Encodes `image` and writes it to `path` atomically (a temporary file renamed into place).
pub fn write(
    image: &DynamicImage,
    path: &Path,
    format: OutputFormat,
    quality: u8,
    metadata: &OutputMetadata,
) -> Result<(), ImageIoError> {
    let failed = |reason: String| ImageIoError::Write { path: path.to_path_buf(), reason };
    if image.width() > format.max_side() || image.height() > format.max_side() {
        return Err(failed(format!(
            "{}×{} is larger than {} holds ({} px a side); choose PNG",
            image.width(),
            image.height(),
            format.extension().to_uppercase(),
            format.max_side()
        )));
    }
    let bytes = encode(image, format, quality, metadata).map_err(failed)?;
    let tmp = path.with_extension(format!("{}.part", format.extension()));
    let write = || -> std::io::Result<()> {
        let mut file = BufWriter::new(std::fs::File::create(&tmp)?);
        file.write_all(&bytes)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e.to_string())
    })
}

/// Encodes `image` in memory.
pub fn encode(
    image: &DynamicImage,
    format: OutputFormat,
    quality: u8,
    metadata: &OutputMetadata,
) -> Result<Vec<u8>, String> {
    let quality = quality.clamp(1, 100);
    let mut out = Vec::new();
    match format {
        OutputFormat::Png => {
            let (color, depth, raw): (png::ColorType, png::BitDepth, Vec<u8>) = match image {
                DynamicImage::ImageRgb16(_)
                | DynamicImage::ImageRgba16(_)
                | DynamicImage::ImageLuma16(_)
                | DynamicImage::ImageLumaA16(_) => {
                    let alpha = image.color().has_alpha();
                    let samples: Vec<u16> =
                        if alpha { image.to_rgba16().into_raw() } else { image.to_rgb16().into_raw() };
                    let raw = samples.iter().flat_map(|v| v.to_be_bytes()).collect();
                    (if alpha { png::ColorType::Rgba } else { png::ColorType::Rgb }, png::BitDepth::Sixteen, raw)
                }
                _ if image.color().has_alpha() => {
                    (png::ColorType::Rgba, png::BitDepth::Eight, image.to_rgba8().into_raw())
                }
                _ => (png::ColorType::Rgb, png::BitDepth::Eight, image.to_rgb8().into_raw()),
            };
            let mut info = png::Info::with_size(image.width(), image.height());
            info.color_type = color;
            info.bit_depth = depth;
            info.icc_profile = metadata.icc_profile.as_deref().map(Into::into);
            info.exif_metadata = metadata.exif.as_deref().map(Into::into);
            let mut encoder = png::Encoder::with_info(&mut out, info).map_err(|e| e.to_string())?;
            encoder.set_compression(png::Compression::Fast);
            if let Some(json) = &metadata.kiln_json {
                encoder.add_itxt_chunk("kiln".into(), json.clone()).map_err(|e| e.to_string())?;
            }
            let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
            writer.write_image_data(&raw).map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
        }
        OutputFormat::Jpeg => {
            let rgb = image.to_rgb8();
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
            if let Some(icc) = &metadata.icc_profile {
                let _ = encoder.set_icc_profile(icc.clone());
            }
            if let Some(exif) = &metadata.exif {
                let _ = encoder.set_exif_metadata(exif.clone());
            }
            encoder
                .write_image(rgb.as_raw(), rgb.width(), rgb.height(), image::ExtendedColorType::Rgb8)
                .map_err(|e| e.to_string())?;
        }
        OutputFormat::Webp => {
            let rgba = image.to_rgba8();
            let encoder = webp::Encoder::from_rgba(rgba.as_raw(), rgba.width(), rgba.height());
            let encoded = if quality >= 100 { encoder.encode_lossless() } else { encoder.encode(quality as f32) };
            out.extend_from_slice(&encoded);
        }
    }
    Ok(out)
}

/// Kiln's metadata from a PNG Kiln wrote, if any.
pub fn read_kiln_json(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let decoder = png::Decoder::new(BufReader::new(file));
    let reader = decoder.read_info().ok()?;
    reader.info().utf8_text.iter().find(|t| t.keyword == "kiln").and_then(|t| t.get_text().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sixteen: bool, alpha: bool) -> DynamicImage {
        let mut rgb = Planes::zeros(3, 5, 4);
        for (i, v) in rgb.data.iter_mut().enumerate() {
            *v = (i as f32 * 0.0137) % 1.0;
        }
        let a = Planes { channels: 1, width: 5, height: 4, data: (0..20).map(|i| i as f32 / 19.0).collect() };
        from_planes(&rgb, alpha.then_some(&a), sixteen)
    }

    #[test]
    fn packed_rgb_with_alpha_matches_the_planes_path() {
        let from_planes = sample(false, true);
        let rgba = from_planes.to_rgba8();
        let rgb: Vec<u8> = rgba.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2]]).collect();
        let a = Planes { channels: 1, width: 5, height: 4, data: (0..20).map(|i| i as f32 / 19.0).collect() };
        assert_eq!(from_rgb8(5, 4, rgb.clone(), Some(&a)), from_planes);
        assert_eq!(from_rgb8(5, 4, rgb, None), DynamicImage::ImageRgb8(sample(false, false).to_rgb8()));
    }

    #[test]
    fn png_keeps_16_bits_alpha_icc_and_kiln_metadata() {
        let dir = kiln_testdir::TempDir::new();
        let path = dir.path().join("out.png");
        let image = sample(true, true);
        let metadata = OutputMetadata {
            icc_profile: Some(vec![1, 2, 3, 4]),
            exif: Some(b"Exif\0\0MM\0*".to_vec()),
            kiln_json: Some(r#"{"model":"x"}"#.into()),
        };
        write(&image, &path, OutputFormat::Png, 90, &metadata).unwrap();
        let back = decode_file(&path).unwrap();
        assert!(back.is_16_bit() && back.has_alpha());
        assert_eq!(back.image, image);
        assert_eq!(back.icc_profile, Some(vec![1, 2, 3, 4]));
        assert_eq!(read_kiln_json(&path).as_deref(), Some(r#"{"model":"x"}"#));
        assert!(!dir.path().join("out.png.part").exists());
    }

    #[test]
    fn jpeg_and_webp_write_at_a_quality() {
        let dir = kiln_testdir::TempDir::new();
        for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
            let path = dir.path().join(format!("out.{}", format.extension()));
            write(&sample(false, true), &path, format, 85, &OutputMetadata::default()).unwrap();
            let back = decode_file(&path).unwrap();
            assert_eq!((back.image.width(), back.image.height()), (5, 4));
        }
    }

    #[test]
    fn tiff_and_bmp_inputs_decode_with_their_depth() {
        let dir = kiln_testdir::TempDir::new();
        let sixteen = sample(true, true);
        let tiff = dir.path().join("in.tif");
        sixteen.save_with_format(&tiff, image::ImageFormat::Tiff).unwrap();
        let back = decode_file(&tiff).unwrap();
        assert!(back.is_16_bit() && back.has_alpha());
        assert_eq!(back.image, sixteen);
        let bmp = dir.path().join("in.bmp");
        let eight = sample(false, false);
        eight.save_with_format(&bmp, image::ImageFormat::Bmp).unwrap();
        let back = decode_file(&bmp).unwrap();
        assert_eq!((back.format, back.image.to_rgb8()), (image::ImageFormat::Bmp, eight.to_rgb8()));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let dir = kiln_testdir::TempDir::new();
        let missing = decode_file(&dir.path().join("nope.png")).unwrap_err();
        assert_eq!(ApiError::from(missing).code, ErrorCode::NotFound);
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"not an image at all").unwrap();
        assert!(matches!(decode_file(&junk), Err(ImageIoError::UnknownFormat { .. })));
        // A real PNG cut in half.
        let good = encode(&sample(false, false), OutputFormat::Png, 90, &OutputMetadata::default()).unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
        assert!(matches!(decode_file(&cut), Err(ImageIoError::Corrupt { .. })), "{:?}", decode_file(&cut).err());
        // A header that claims 100000×100000 pixels.
        let mut bomb = good.clone();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let error = decode_bytes(&bomb, Path::new("bomb.png")).err().unwrap();
        assert!(matches!(error, ImageIoError::TooLarge { .. } | ImageIoError::Corrupt { .. }), "{error:?}");
        let too_wide = DynamicImage::new_rgb8(16384, 1);
        assert!(write(&too_wide, &dir.path().join("w.webp"), OutputFormat::Webp, 90, &Default::default()).is_err());
    }
}
