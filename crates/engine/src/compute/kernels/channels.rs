//! Copying a tensor into a channel slice of a wider one (the first step of a dense block).

use burn::cubecl;
use burn::cubecl::prelude::*;
use burn::tensor::DType;
use burn_cubecl::tensor::CubeTensor;

use super::len;

/// Copies `src` `[n, h, w, c]` into the first `c` channels of each pixel of `dst` (`stride`
/// channels a pixel).
pub fn copy_into(src: &CubeTensor, dst: &CubeTensor, stride: usize) {
    match src.dtype {
        DType::F32 => launch::<f32>(src, dst, stride),
        DType::F16 => launch::<half::f16>(src, dst, stride),
        other => panic!("Kiln's kernels run in f32 or f16, not {other:?}"),
    }
}

fn launch<F: Float + CubeElement>(src: &CubeTensor, dst: &CubeTensor, stride: usize) {
    let count = len(src);
    // Groups spread over x and y: one dimension holds at most 65535.
    let groups = count.div_ceil(256);
    let x = groups.min(32768);
    let cubes = CubeCount::Static(x as u32, groups.div_ceil(x) as u32, 1);
    unsafe {
        copy_channels_kernel::launch::<F>(
            &src.client,
            cubes,
            CubeDim::new_1d(256),
            BufferArg::from_raw_parts(src.handle.clone(), count),
            BufferArg::from_raw_parts(dst.handle.clone(), len(dst)),
            count as u32,
            src.meta.shape()[3] as u32,
            stride as u32,
        );
    }
}

#[cube(launch)]
fn copy_channels_kernel<F: Float>(src: &[F], dst: &mut [F], count: u32, channels: u32, stride: u32) {
    let i = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X;
    if i < count {
        let pixel = i / channels;
        let channel = i - pixel * channels;
        dst[(pixel * stride + channel) as usize] = src[i as usize];
    }
}
