//! diffusers pipeline folders: `model_index.json` names the pipeline and its components
//! (`unet/`, `vae/`, `text_encoder(_2)/`, `tokenizer(_2)/`, `scheduler/`), each component folder
//! has a `config.json` and its weights (`diffusion_pytorch_model.safetensors`, `model.safetensors`).
//! The UNet's config says the family (`cross_attention_dim`) and variant (`in_channels`).

use std::path::Path;

use serde_json::Value;

use crate::detect::{Architecture, SdFamily, UnetVariant};
use crate::error::{ModelError, ModelErrorKind};
use crate::mapped::MappedFile;
use crate::tensors::StateDict;

/// A diffusers folder's architecture and every component's tensors (names prefixed with the
/// component folder, so `unet.conv_in.weight`).
pub fn read(folder: &Path) -> Result<(Architecture, StateDict), ModelError> {
    let index = read_json(folder, &folder.join("model_index.json"))?;
    let class = index.get("_class_name").and_then(Value::as_str).unwrap_or("");
    let mut dict = StateDict::default();
    for component in ["unet", "vae", "text_encoder", "text_encoder_2", "controlnet"] {
        let dir = folder.join(component);
        for name in [
            "diffusion_pytorch_model.safetensors",
            "model.safetensors",
            "diffusion_pytorch_model.fp16.safetensors",
            "model.fp16.safetensors",
        ] {
            let file = dir.join(name);
            if file.is_file() {
                let mapped = MappedFile::open(&file)?;
                let part = super::safetensors::read(&file, mapped.bytes())?;
                for (k, v) in part.tensors {
                    dict.tensors.insert(format!("{component}.{k}"), v);
                }
                break;
            }
        }
    }
    let unet_config = folder.join("unet/config.json");
    let architecture = if unet_config.is_file() {
        let unet = read_json(folder, &unet_config)?;
        let context = unet.get("cross_attention_dim").and_then(Value::as_u64).unwrap_or(0) as usize;
        let family = match context {
            768 => Some(SdFamily::Sd1),
            1024 => Some(SdFamily::Sd2),
            2048 => Some(SdFamily::Sdxl),
            1280 => Some(SdFamily::SdxlRefiner),
            _ => None,
        };
        let variant = match unet.get("in_channels").and_then(Value::as_u64) {
            Some(4) => Some(UnetVariant::Normal),
            Some(9) => Some(UnetVariant::Inpaint),
            Some(5) => Some(UnetVariant::Depth),
            _ => None,
        };
        match (family, variant) {
            (Some(family), Some(variant)) => Architecture::StableDiffusion {
                family,
                variant,
                has_vae: folder.join("vae").is_dir(),
                has_text_encoder: folder.join("text_encoder").is_dir() || folder.join("text_encoder_2").is_dir(),
            },
            _ => Architecture::Unsupported {
                reason: format!(
                    "{class}: a UNet with cross_attention_dim {context} is not a Stable Diffusion family Kiln knows"
                ),
            },
        }
    } else {
        Architecture::Unsupported { reason: format!("{class}: the pipeline has no unet/config.json") }
    };
    Ok((architecture, dict))
}

fn read_json(folder: &Path, file: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ModelError::new(folder, ModelErrorKind::Io(format!("{}: {e}", file.display()))))?;
    serde_json::from_str(&text)
        .map_err(|e| ModelError::malformed(folder, "diffusers", format!("{}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_family_from_the_unet_config() {
        let dir = kiln_testdir::TempDir::new();
        let root = dir.path();
        std::fs::write(root.join("model_index.json"), r#"{"_class_name":"StableDiffusionXLPipeline"}"#).unwrap();
        std::fs::create_dir_all(root.join("unet")).unwrap();
        std::fs::create_dir_all(root.join("vae")).unwrap();
        std::fs::write(root.join("unet/config.json"), r#"{"cross_attention_dim":2048,"in_channels":4}"#).unwrap();
        let bytes = crate::formats::safetensors::tests::build(
            &[("conv_in.weight", "F16", &[320, 4, 3, 3], vec![0; 320 * 4 * 9 * 2])],
            None,
        );
        std::fs::write(root.join("unet/diffusion_pytorch_model.safetensors"), bytes).unwrap();
        let (architecture, dict) = read(root).unwrap();
        assert_eq!(
            architecture,
            Architecture::StableDiffusion {
                family: SdFamily::Sdxl,
                variant: UnetVariant::Normal,
                has_vae: true,
                has_text_encoder: false
            }
        );
        assert_eq!(dict.shape("unet.conv_in.weight"), Some(&[320, 4, 3, 3][..]));
    }

    #[test]
    fn a_broken_index_is_a_typed_error() {
        let dir = kiln_testdir::TempDir::new();
        std::fs::write(dir.path().join("model_index.json"), "{ nope").unwrap();
        assert!(matches!(read(dir.path()).unwrap_err().kind, ModelErrorKind::Malformed { .. }));
    }
}
