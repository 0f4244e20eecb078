//! What a model file holds, from its tensor names and shapes alone (../shared/FIELD_GUIDE.md
//! §2-3; the rules follow spandrel's `ESRGAN` and `Compact` loaders, InvokeAI's model probe
//! and A1111's `sd_models_config`): upscalers with their scale, blocks and pixel-unshuffle;
//! Stable Diffusion checkpoints by family and UNet input channels; VAEs, LoRAs, ControlNets and
//! CLIP text encoders. Anything else is "unsupported" with the reason.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::tensors::StateDict;

/// The key layout of an ESRGAN-family checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum EsrganLayout {
    /// Original ESRGAN (`model.0.weight`, `model.1.sub.N.RDB1.conv1.0.weight`).
    Old,
    /// Real-ESRGAN / BasicSR (`conv_first`, `body.N.rdb1.conv1`).
    New,
    /// BSRGAN (`RRDB_trunk.N.RDB1.conv1`, `trunk_conv`, `upconv1`).
    Bsrgan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SdFamily {
    Sd1,
    Sd2,
    Sdxl,
    SdxlRefiner,
}

impl SdFamily {
    fn from_context_dim(dim: usize) -> Option<Self> {
        Some(match dim {
            768 => Self::Sd1,
            1024 => Self::Sd2,
            2048 => Self::Sdxl,
            1280 => Self::SdxlRefiner,
            _ => return None,
        })
    }
}

/// What the UNet's first convolution takes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum UnetVariant {
    /// 4 latent channels.
    Normal,
    /// 9 channels: latents, mask, masked-image latents.
    Inpaint,
    /// 5 channels: latents and depth.
    Depth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LoraStyle {
    /// `lora_unet_…​.lora_down.weight`, `.alpha` (kohya-ss, A1111, Civitai).
    Kohya,
    /// `unet.…​.lora_A.weight` / `lora.down.weight` (diffusers, PEFT).
    Diffusers,
}

/// A detected architecture and the hyper-parameters read from the shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// RRDBNet: ESRGAN, Real-ESRGAN, BSRGAN.
    Esrgan {
        layout: EsrganLayout,
        scale: u32,
        blocks: u32,
        features: u32,
        growth: u32,
        in_channels: u32,
        out_channels: u32,
        /// Input pixel-unshuffle factor (1 = none; 2 for x2 models, 4 for x1).
        pixel_unshuffle: u32,
    },
    /// SRVGGNetCompact (realesr-animevideov3, realesr-general-x4v3).
    Compact {
        scale: u32,
        num_conv: u32,
        features: u32,
        in_channels: u32,
        out_channels: u32,
    },
    /// A single-file Stable Diffusion checkpoint.
    StableDiffusion {
        family: SdFamily,
        variant: UnetVariant,
        has_vae: bool,
        has_text_encoder: bool,
    },
    /// An autoencoder on its own.
    Vae {
        latent_channels: u32,
    },
    Lora {
        style: LoraStyle,
        family: Option<SdFamily>,
        rank: u32,
        modules: u32,
    },
    ControlNet {
        family: Option<SdFamily>,
    },
    /// A CLIP or OpenCLIP text encoder on its own.
    TextEncoder {
        width: u32,
    },
    Unsupported {
        reason: String,
    },
}

impl Architecture {
    /// A short label for tables: `ESRGAN x4 (23 blocks)`, `SD1 inpainting`.
    pub fn label(&self) -> String {
        match self {
            Self::Esrgan { layout, scale, blocks, .. } => {
                let name = if *layout == EsrganLayout::Bsrgan { "BSRGAN" } else { "ESRGAN" };
                format!("{name} x{scale} ({blocks} blocks)")
            }
            Self::Compact { scale, num_conv, .. } => format!("Compact x{scale} ({num_conv} convs)"),
            Self::StableDiffusion { family, variant, .. } => {
                let family = family_name(*family);
                match variant {
                    UnetVariant::Normal => family.to_owned(),
                    UnetVariant::Inpaint => format!("{family} inpainting"),
                    UnetVariant::Depth => format!("{family} depth"),
                }
            }
            Self::Vae { latent_channels } => format!("VAE ({latent_channels} latent channels)"),
            Self::Lora { family, rank, .. } => {
                format!("LoRA{} rank {rank}", family.map_or(String::new(), |f| format!(" {}", family_name(f))))
            }
            Self::ControlNet { family } => {
                format!("ControlNet{}", family.map_or(String::new(), |f| format!(" {}", family_name(f))))
            }
            Self::TextEncoder { width } => format!("Text encoder ({width} wide)"),
            Self::Unsupported { .. } => "Unsupported".to_owned(),
        }
    }

    /// The upscale factor, for upscalers.
    pub fn scale(&self) -> Option<u32> {
        match self {
            Self::Esrgan { scale, .. } | Self::Compact { scale, .. } => Some(*scale),
            _ => None,
        }
    }
}

fn family_name(family: SdFamily) -> &'static str {
    match family {
        SdFamily::Sd1 => "SD1",
        SdFamily::Sd2 => "SD2",
        SdFamily::Sdxl => "SDXL",
        SdFamily::SdxlRefiner => "SDXL refiner",
    }
}

/// Detects the architecture of a state dict.
pub fn detect(dict: &StateDict) -> Architecture {
    detect_esrgan(dict)
        .or_else(|| detect_compact(dict))
        .or_else(|| detect_stable_diffusion(dict))
        .or_else(|| detect_lora(dict))
        .or_else(|| detect_controlnet(dict))
        .or_else(|| detect_vae(dict))
        .or_else(|| detect_text_encoder(dict))
        .unwrap_or_else(|| Architecture::Unsupported { reason: unsupported_reason(dict) })
}

fn dim(dict: &StateDict, name: &str, axis: usize) -> Option<u32> {
    dict.shape(name).and_then(|s| s.get(axis)).map(|d| *d as u32)
}

/// Distinct integer indexes `N` of keys shaped `prefix N suffix`.
fn indexes(dict: &StateDict, prefix: &str, suffix: &str) -> Vec<usize> {
    let mut found: Vec<usize> =
        dict.tensors.keys().filter_map(|k| k.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()).collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// `in = out × u²` gives the input pixel-unshuffle factor `u`.
fn unshuffle(in_channels: u32, out_channels: u32) -> Option<u32> {
    if out_channels == 0 || !in_channels.is_multiple_of(out_channels) {
        return None;
    }
    let ratio = in_channels / out_channels;
    let root = (ratio as f64).sqrt().round() as u32;
    (root * root == ratio).then_some(root)
}

fn detect_esrgan(dict: &StateDict) -> Option<Architecture> {
    // Per layout: the first conv, the blocks, block 0's first conv (its output is the growth),
    // the last conv, and how many ×2 upsampling steps there are.
    struct Keys {
        layout: EsrganLayout,
        first: &'static str,
        blocks: usize,
        growth: &'static str,
        last: String,
        ups: u32,
    }
    let keys = if dict.contains("conv_first.weight") && dict.contains("body.0.rdb1.conv1.weight") {
        Keys {
            layout: EsrganLayout::New,
            first: "conv_first.weight",
            blocks: indexes(dict, "body.", ".rdb1.conv1.weight").len(),
            growth: "body.0.rdb1.conv1.weight",
            last: "conv_last.weight".to_owned(),
            ups: (1..=4).filter(|i| dict.contains(&format!("conv_up{i}.weight"))).count() as u32,
        }
    } else if dict.contains("conv_first.weight") && dict.contains("RRDB_trunk.0.RDB1.conv1.weight") {
        Keys {
            layout: EsrganLayout::Bsrgan,
            first: "conv_first.weight",
            blocks: indexes(dict, "RRDB_trunk.", ".RDB1.conv1.weight").len(),
            growth: "RRDB_trunk.0.RDB1.conv1.weight",
            last: "conv_last.weight".to_owned(),
            ups: (1..=4).filter(|i| dict.contains(&format!("upconv{i}.weight"))).count() as u32,
        }
    } else if dict.contains("model.0.weight") && dict.contains("model.1.sub.0.RDB1.conv1.0.weight") {
        // model.N: 0 first conv, 1 trunk, then per ×2 step an upsample, a conv and an
        // activation, then the HR conv, an activation and the last conv at the highest index.
        let last_index = *indexes(dict, "model.", ".weight").last()?;
        Keys {
            layout: EsrganLayout::Old,
            first: "model.0.weight",
            blocks: indexes(dict, "model.1.sub.", ".RDB1.conv1.0.weight").len(),
            growth: "model.1.sub.0.RDB1.conv1.0.weight",
            last: format!("model.{last_index}.weight"),
            ups: (last_index.checked_sub(4)? / 3) as u32,
        }
    } else {
        return None;
    };
    let features = dim(dict, keys.first, 0)?;
    let in_channels = dim(dict, keys.first, 1)?;
    let out_channels = dim(dict, &keys.last, 0)?;
    let growth = dim(dict, keys.growth, 0)?;
    let pixel_unshuffle = unshuffle(in_channels, out_channels)?;
    let upscale = 1u32 << keys.ups;
    if !upscale.is_multiple_of(pixel_unshuffle) {
        return None;
    }
    Some(Architecture::Esrgan {
        layout: keys.layout,
        scale: upscale / pixel_unshuffle,
        blocks: keys.blocks as u32,
        features,
        growth,
        in_channels,
        out_channels,
        pixel_unshuffle,
    })
}

fn detect_compact(dict: &StateDict) -> Option<Architecture> {
    // body.0 conv, body.1 PReLU, then conv/PReLU pairs, and the last conv.
    let first = dict.shape("body.0.weight")?;
    if first.len() != 4 || dict.shape("body.1.weight")?.len() != 1 {
        return None;
    }
    let highest = *indexes(dict, "body.", ".weight").last()?;
    if highest < 4 || highest % 2 != 0 {
        return None;
    }
    let num_conv = (highest - 2) / 2;
    let last = format!("body.{highest}.weight");
    let in_channels = first[1] as u32;
    let features = first[0] as u32;
    let last_out = dim(dict, &last, 0)?;
    // The last conv makes out_channels × scale² channels for the pixel shuffle; the output has
    // the input's channel count (the net adds the upsampled input).
    let out_channels = in_channels;
    let scale = unshuffle(last_out, out_channels)?;
    Some(Architecture::Compact { scale, num_conv: num_conv as u32, features, in_channels, out_channels })
}

/// The first cross-attention key projection's input width under `prefix`.
fn context_dim(dict: &StateDict, prefix: &str) -> Option<usize> {
    dict.tensors
        .iter()
        .find(|(k, _)| k.starts_with(prefix) && k.ends_with("attn2.to_k.weight"))
        .and_then(|(_, t)| t.shape.get(1).copied())
}

fn detect_stable_diffusion(dict: &StateDict) -> Option<Architecture> {
    let unet = "model.diffusion_model.";
    let input_channels = dim(dict, "model.diffusion_model.input_blocks.0.0.weight", 1)?;
    let family = SdFamily::from_context_dim(context_dim(dict, unet)?)?;
    let variant = match input_channels {
        4 => UnetVariant::Normal,
        9 => UnetVariant::Inpaint,
        5 => UnetVariant::Depth,
        _ => return None,
    };
    let has = |prefix: &str| dict.tensors.keys().any(|k| k.starts_with(prefix));
    Some(Architecture::StableDiffusion {
        family,
        variant,
        has_vae: has("first_stage_model."),
        has_text_encoder: has("cond_stage_model.") || has("conditioner.embedders."),
    })
}

fn detect_lora(dict: &StateDict) -> Option<Architecture> {
    let kohya: Vec<&String> = dict.tensors.keys().filter(|k| k.ends_with(".lora_down.weight")).collect();
    let diffusers: Vec<&String> = dict
        .tensors
        .keys()
        .filter(|k| {
            k.ends_with(".lora_A.weight")
                || k.ends_with(".lora.down.weight")
                || k.ends_with("lora_linear_layer.down.weight")
        })
        .collect();
    let (style, downs) = if !kohya.is_empty() {
        (LoraStyle::Kohya, kohya)
    } else if !diffusers.is_empty() {
        (LoraStyle::Diffusers, diffusers)
    } else {
        return None;
    };
    let rank = downs.iter().filter_map(|k| dict.shape(k)?.first().copied()).max().unwrap_or(0) as u32;
    // The text-side width of a cross-attention key projection says the family.
    let family = downs
        .iter()
        .find(|k| {
            let text_side = k.starts_with("lora_te") || k.contains("text_encoder") || k.starts_with("te.");
            (k.contains("attn2_to_k") || k.contains("attn2.to_k")) && !text_side
        })
        .and_then(|k| dict.shape(k)?.get(1).copied())
        .and_then(SdFamily::from_context_dim)
        .or_else(|| dict.tensors.keys().any(|k| k.starts_with("lora_te2_")).then_some(SdFamily::Sdxl));
    Some(Architecture::Lora { style, family, rank, modules: downs.len() as u32 })
}

fn detect_controlnet(dict: &StateDict) -> Option<Architecture> {
    if dict.contains("control_model.input_hint_block.0.weight") {
        let family = context_dim(dict, "control_model.").and_then(SdFamily::from_context_dim);
        return Some(Architecture::ControlNet { family });
    }
    if dict.contains("controlnet_cond_embedding.conv_in.weight") {
        let family = context_dim(dict, "").and_then(SdFamily::from_context_dim);
        return Some(Architecture::ControlNet { family });
    }
    None
}

fn detect_vae(dict: &StateDict) -> Option<Architecture> {
    for prefix in ["", "first_stage_model.", "vae."] {
        if dict.contains(&format!("{prefix}encoder.conv_in.weight"))
            && dict.contains(&format!("{prefix}decoder.conv_in.weight"))
        {
            let latent_channels = dim(dict, &format!("{prefix}decoder.conv_in.weight"), 1)?;
            return Some(Architecture::Vae { latent_channels });
        }
    }
    None
}

fn detect_text_encoder(dict: &StateDict) -> Option<Architecture> {
    for key in ["text_model.embeddings.token_embedding.weight", "token_embedding.weight"] {
        if let Some(width) = dim(dict, key, 1) {
            return Some(Architecture::TextEncoder { width });
        }
    }
    None
}

fn unsupported_reason(dict: &StateDict) -> String {
    if dict.tensors.is_empty() {
        return "the file holds no tensors".to_owned();
    }
    let sample: Vec<&str> = dict.tensors.keys().take(4).map(String::as_str).collect();
    format!("no architecture Kiln knows has these {} tensors (first keys: {})", dict.tensors.len(), sample.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::{DType, TensorData, TensorEntry, contiguous_strides};

    fn dict(entries: &[(&str, &[usize])]) -> StateDict {
        let mut d = StateDict::default();
        for (name, shape) in entries {
            d.tensors.insert(
                (*name).to_owned(),
                TensorEntry {
                    dtype: DType::F32,
                    shape: shape.to_vec(),
                    data: TensorData { offset: 0, strides: contiguous_strides(shape), region_len: 0 },
                },
            );
        }
        d
    }

    /// Keys of a new-layout RRDBNet with `blocks` blocks, `in_ch` input channels and `ups` ×2 steps.
    fn rrdb_new(blocks: usize, in_ch: usize, ups: usize) -> StateDict {
        let mut e: Vec<(String, Vec<usize>)> = vec![("conv_first.weight".into(), vec![64, in_ch, 3, 3])];
        for b in 0..blocks {
            for r in 1..=3 {
                for c in 1..=5 {
                    let out = if c == 5 { 64 } else { 32 };
                    e.push((format!("body.{b}.rdb{r}.conv{c}.weight"), vec![out, 64 + 32 * (c - 1), 3, 3]));
                }
            }
        }
        e.push(("conv_body.weight".into(), vec![64, 64, 3, 3]));
        for u in 1..=ups {
            e.push((format!("conv_up{u}.weight"), vec![64, 64, 3, 3]));
        }
        e.push(("conv_hr.weight".into(), vec![64, 64, 3, 3]));
        e.push(("conv_last.weight".into(), vec![3, 64, 3, 3]));
        let refs: Vec<(&str, &[usize])> = e.iter().map(|(k, s)| (k.as_str(), s.as_slice())).collect();
        dict(&refs)
    }

    #[test]
    fn real_esrgan_layouts_with_scale_and_unshuffle() {
        let x4 = detect(&rrdb_new(23, 3, 2));
        assert_eq!(
            x4,
            Architecture::Esrgan {
                layout: EsrganLayout::New,
                scale: 4,
                blocks: 23,
                features: 64,
                growth: 32,
                in_channels: 3,
                out_channels: 3,
                pixel_unshuffle: 1
            }
        );
        assert_eq!(x4.label(), "ESRGAN x4 (23 blocks)");
        // x2plus: input pixel-unshuffled by 2 (3 -> 12 channels), two ×2 steps.
        let x2 = detect(&rrdb_new(23, 12, 2));
        assert!(matches!(x2, Architecture::Esrgan { scale: 2, pixel_unshuffle: 2, .. }), "{x2:?}");
        let x1 = detect(&rrdb_new(6, 48, 2));
        assert!(matches!(x1, Architecture::Esrgan { scale: 1, pixel_unshuffle: 4, blocks: 6, .. }), "{x1:?}");
    }

    #[test]
    fn old_esrgan_and_bsrgan_layouts() {
        let mut e: Vec<(String, Vec<usize>)> = vec![("model.0.weight".into(), vec![64, 3, 3, 3])];
        for b in 0..2 {
            e.push((format!("model.1.sub.{b}.RDB1.conv1.0.weight"), vec![32, 64, 3, 3]));
        }
        for i in [3, 6, 8] {
            e.push((format!("model.{i}.weight"), vec![64, 64, 3, 3]));
        }
        e.push(("model.10.weight".into(), vec![3, 64, 3, 3]));
        let refs: Vec<(&str, &[usize])> = e.iter().map(|(k, s)| (k.as_str(), s.as_slice())).collect();
        assert!(matches!(
            detect(&dict(&refs)),
            Architecture::Esrgan { layout: EsrganLayout::Old, scale: 4, blocks: 2, .. }
        ));

        let bsrgan = dict(&[
            ("conv_first.weight", &[64, 3, 3, 3]),
            ("RRDB_trunk.0.RDB1.conv1.weight", &[32, 64, 3, 3]),
            ("trunk_conv.weight", &[64, 64, 3, 3]),
            ("upconv1.weight", &[64, 64, 3, 3]),
            ("upconv2.weight", &[64, 64, 3, 3]),
            ("HRconv.weight", &[64, 64, 3, 3]),
            ("conv_last.weight", &[3, 64, 3, 3]),
        ]);
        assert!(matches!(detect(&bsrgan), Architecture::Esrgan { layout: EsrganLayout::Bsrgan, scale: 4, .. }));
    }

    #[test]
    fn compact_networks_by_conv_count_and_last_channels() {
        let mut e: Vec<(String, Vec<usize>)> =
            vec![("body.0.weight".into(), vec![64, 3, 3, 3]), ("body.0.bias".into(), vec![64])];
        e.push(("body.1.weight".into(), vec![64]));
        for i in 1..=16 {
            e.push((format!("body.{}.weight", 2 * i), vec![64, 64, 3, 3]));
            e.push((format!("body.{}.weight", 2 * i + 1), vec![64]));
        }
        e.push(("body.34.weight".into(), vec![48, 64, 3, 3]));
        let refs: Vec<(&str, &[usize])> = e.iter().map(|(k, s)| (k.as_str(), s.as_slice())).collect();
        assert_eq!(
            detect(&dict(&refs)),
            Architecture::Compact { scale: 4, num_conv: 16, features: 64, in_channels: 3, out_channels: 3 }
        );
    }

    #[test]
    fn stable_diffusion_families_and_variants() {
        let sd = |ctx: usize, inp: usize| {
            dict(&[
                ("model.diffusion_model.input_blocks.0.0.weight", &[320, inp, 3, 3]),
                ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", &[320, ctx]),
                ("first_stage_model.decoder.conv_in.weight", &[512, 4, 3, 3]),
                ("cond_stage_model.transformer.text_model.final_layer_norm.weight", &[768]),
            ])
        };
        assert_eq!(detect(&sd(768, 4)).label(), "SD1");
        assert_eq!(detect(&sd(1024, 9)).label(), "SD2 inpainting");
        assert_eq!(detect(&sd(2048, 4)).label(), "SDXL");
        assert_eq!(detect(&sd(1280, 4)).label(), "SDXL refiner");
        assert!(matches!(
            detect(&sd(768, 4)),
            Architecture::StableDiffusion { has_vae: true, has_text_encoder: true, .. }
        ));
    }

    #[test]
    fn loras_controlnets_vaes_and_text_encoders() {
        let kohya = dict(&[
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", &[8, 768]),
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", &[320, 8]),
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha", &[]),
        ]);
        assert_eq!(
            detect(&kohya),
            Architecture::Lora { style: LoraStyle::Kohya, family: Some(SdFamily::Sd1), rank: 8, modules: 1 }
        );
        let peft = dict(&[("unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", &[16, 320])]);
        assert!(matches!(detect(&peft), Architecture::Lora { style: LoraStyle::Diffusers, rank: 16, .. }));
        let control = dict(&[
            ("control_model.input_hint_block.0.weight", &[16, 3, 3, 3]),
            ("control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", &[320, 768]),
        ]);
        assert_eq!(detect(&control), Architecture::ControlNet { family: Some(SdFamily::Sd1) });
        let vae = dict(&[("encoder.conv_in.weight", &[128, 3, 3, 3]), ("decoder.conv_in.weight", &[512, 4, 3, 3])]);
        assert_eq!(detect(&vae), Architecture::Vae { latent_channels: 4 });
        let clip = dict(&[("text_model.embeddings.token_embedding.weight", &[49408, 768])]);
        assert_eq!(detect(&clip), Architecture::TextEncoder { width: 768 });
    }

    #[test]
    fn anything_else_is_unsupported_with_a_reason() {
        let odd = dict(&[("fc.weight", &[10, 10])]);
        match detect(&odd) {
            Architecture::Unsupported { reason } => assert!(reason.contains("fc.weight"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(detect(&StateDict::default()), Architecture::Unsupported { .. }));
    }
}
